import assert from "node:assert/strict";
import { join } from "node:path";
import { LocalStore } from "../storage/local.ts";
import type { Store } from "../storage/store.ts";
import { Catalog } from "./catalog.ts";

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const PM = { name: "loss", goal: "minimize" };

async function experiment(
  store: Store,
  id: string,
  losses: number[],
  status: string | null = "succeeded",
): Promise<string[]> {
  const created = "2024-05-01T00:00:00.000Z";
  await store.put(
    `experiments/${id}/experiment.json`,
    enc({
      format: 2,
      type: "experiment",
      id,
      created,
      name: null,
      params: {},
      tags: ["base"],
      primary_metric: PM,
    }),
  );
  const cks: string[] = [];
  for (const [i, loss] of losses.entries()) {
    const cid = `${[...id].reverse().join("").slice(0, 30)}${String(i).padStart(2, "0")}`;
    cks.push(cid);
    await store.put(
      `experiments/${id}/checkpoints/${cid}.json`,
      enc({
        format: 2,
        type: "checkpoint",
        id: cid,
        experiment: id,
        created: new Date(Date.parse(created) + i * 1000).toISOString(),
        step: i,
        metrics: { loss },
        primary_metric: PM,
      }),
    );
  }
  if (status) {
    await store.put(
      `experiments/${id}/status.json`,
      enc({ format: 2, type: "status", status, exit_code: 1, finished: created }),
    );
  }
  return cks;
}

async function withDir(fn: (dir: string, store: Store) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rep-catalog-" });
  const cache = Deno.env.get("REP_CACHE_DIR");
  Deno.env.set("REP_CACHE_DIR", join(dir, "cache"));
  const store = new LocalStore(join(dir, "repo"));
  try {
    await fn(dir, store);
  } finally {
    if (cache) Deno.env.set("REP_CACHE_DIR", cache);
    else Deno.env.delete("REP_CACHE_DIR");
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("Catalog: a resume change makes readers list a finished experiment again", async () => {
  await withDir(async (_dir, store) => {
    const id = "a".repeat(32);
    await experiment(store, id, [0.5], "failed");
    const warm = new Catalog(store);
    assert.equal((await warm.list())[0]!.status, "failed");
    warm.close();
    // Attempt 2 starts: its record, its heartbeat, a checkpoint, and the resume change.
    const now = new Date().toISOString();
    await store.put(
      `experiments/${id}/attempts/2/attempt.json`,
      enc({ format: 2, type: "attempt", experiment: id, attempt: 2, created: now, host: "h2" }),
    );
    await store.put(
      `experiments/${id}/heartbeat.json`,
      enc({ pid: 1, host: "h2", updated: now, interval: 10, attempt: 2 }),
    );
    await store.put(
      `experiments/${id}/checkpoints/${"b".repeat(32)}.json`,
      enc({
        format: 2,
        type: "checkpoint",
        id: "b".repeat(32),
        experiment: id,
        attempt: 2,
        created: now,
        step: 1,
        metrics: { loss: 0.1 },
        primary_metric: PM,
      }),
    );
    const writer = new Catalog(store);
    await writer.resumed(id, 2);
    writer.close();
    const again = new Catalog(store);
    const [v] = await again.list();
    assert.equal(v!.status, "running");
    assert.deepEqual(v!.attempts.map((a) => [a.attempt, a.status, a.host]), [
      [1, "failed", ""],
      [2, "running", "h2"],
    ]);
    assert.equal(v!.best?.id, "b".repeat(32));
    assert.equal(v!.numCheckpoints, 2);
    again.close();
    await store.put(
      `experiments/${id}/attempts/2/status.json`,
      enc({ format: 2, type: "status", status: "succeeded", exit_code: 0, finished: now }),
    );
    const last = new Catalog(store);
    assert.equal((await last.list())[0]!.status, "succeeded");
    last.close();
  });
});

Deno.test("Catalog: tags and notes are changes, kept by a compaction", async () => {
  await withDir(async (_dir, store) => {
    const id = "c".repeat(32);
    await experiment(store, id, [0.3]);
    const cat = new Catalog(store);
    await cat.tag(id, ["best", "lr-sweep"]);
    await cat.tag(id, [], ["base"]);
    await cat.note(id, "diverged after step 5");
    let [v] = await cat.list();
    assert.deepEqual(v!.tags, ["best", "lr-sweep"]);
    assert.deepEqual(v!.record.tags, ["best", "lr-sweep"]);
    assert.equal(v!.note, "diverged after step 5");
    await assert.rejects(() => cat.tag(id, ["two words"]), /Invalid tag "two words"/);
    // Nothing was rewritten: the experiment record still has its own tags.
    const rec = JSON.parse(
      new TextDecoder().decode(await store.getBytes(`experiments/${id}/experiment.json`)),
    );
    assert.deepEqual(rec.tags, ["base"]);
    const { collectGarbage } = await import("../maintenance/gc.ts");
    const { Repository } = await import("../repository.ts");
    const repo = new Repository(store);
    const r = await collectGarbage(repo, { grace: 0 });
    assert.equal(r.compacted, 3);
    assert.equal((await Array.fromAsync(store.list("changes/"))).length, 1);
    await cat.note(id, null);
    [v] = await new Catalog(store).list();
    assert.deepEqual(v!.tags, ["best", "lr-sweep"]);
    assert.equal(v!.note, null);
    cat.close();
  });
});

Deno.test("Catalog: removing a checkpoint of an experiment known from a segment recomputes its best", async () => {
  await withDir(async (_dir, store) => {
    const ids = Array.from({ length: 101 }, (_, i) => i.toString(16).padStart(32, "d"));
    const cks = new Map<string, string[]>();
    for (const id of ids) cks.set(id, await experiment(store, id, [0.5, 0.1, 0.3]));
    const first = new Catalog(store, { cache: false });
    assert.equal((await first.list({ summary: true })).length, 101); // writes the segment
    first.close();
    const warm = new Catalog(store); // from the segment: summaries only
    const views = await warm.list({ summary: true });
    assert.equal(views.length, 101);
    assert.equal(warm.db.pending().size, 1);
    const target = ids[7]!;
    await warm.remove([], [cks.get(target)![1]!]);
    const after = await warm.list({ summary: true });
    const v = after.find((x) => x.id === target)!;
    assert.equal(v.numCheckpoints, 2);
    assert.equal(v.bestBrief?.id, cks.get(target)![2]);
    // Ids resolve by indexed queries, loading the segment's checkpoints when needed.
    const hit = await warm.resolve(cks.get(ids[9]!)![0]!.slice(0, 32));
    assert.equal(hit.kind, "checkpoint");
    await assert.rejects(() => warm.resolve(cks.get(target)![1]!), /No experiment or checkpoint/);
    warm.close();
  });
});

const pendingCount = (c: Catalog) => [...c.db.pending().values()].reduce((n, l) => n + l.length, 0);

Deno.test("Catalog: a checkpoint id prefix resolves through the segment's ids, loading only the experiment holding it", async () => {
  await withDir(async (_dir, store) => {
    const ids = Array.from({ length: 101 }, (_, i) => i.toString(16).padStart(32, "d"));
    const cks = new Map<string, string[]>();
    for (const id of ids) cks.set(id, await experiment(store, id, [0.5, 0.1, 0.3]));
    const first = new Catalog(store, { cache: false });
    await first.list({ summary: true }); // writes the segment
    first.close();
    const keys = async () => (await Array.fromAsync(store.list("index/"))).map((i) => i.key).sort();
    const idsKey = (await keys()).find((k) => k.endsWith(".ids.json"))!;
    assert.ok(idsKey, `an ids object: ${await keys()}`);
    const written = await store.getBytes(idsKey);

    const warm = new Catalog(store);
    await warm.list({ summary: true });
    assert.equal(pendingCount(warm), 101);
    const target = cks.get(ids[0x2a]!)![1]!;
    const hit = await warm.resolve(target);
    assert.equal(hit.kind, "checkpoint");
    assert.equal(hit.kind === "checkpoint" && hit.checkpoint.id, target);
    assert.equal(hit.experiment.id, ids[0x2a]);
    assert.equal(pendingCount(warm), 100); // only the experiment holding it was loaded
    // Checkpoints of experiments 0x9, 0x19, 0x29, …: ambiguous, listed with their experiments.
    await assert.rejects(() => warm.resolve("9"), (e: Error) => {
      assert.match(e.message, /Ambiguous id "9": it matches \d+ ids/);
      assert.match(e.message, new RegExp(`checkpoint ${cks.get(ids[0x19]!)![0]}`));
      return true;
    });
    await assert.rejects(() => warm.resolve("9" + "0".repeat(31)), /No experiment or checkpoint/);
    // An experiment id prefix still needs no checkpoint records.
    const before = pendingCount(warm);
    assert.equal((await warm.resolve(ids[0x33]!)).experiment.id, ids[0x33]);
    assert.equal(pendingCount(warm), before - 1);
    warm.close();

    // A segment made before ids objects: resolved from its checkpoints, and given its ids object.
    await store.delete([idsKey]);
    Deno.env.set("REP_CACHE_DIR", join(_dir, "cache2"));
    const old = new Catalog(store);
    await old.list({ summary: true });
    const again = await old.resolve(target.toUpperCase());
    assert.equal(again.kind === "checkpoint" && again.checkpoint.id, target);
    assert.equal(pendingCount(old), 100);
    const json = async (key: string) =>
      JSON.parse(new TextDecoder().decode(await store.getBytes(key)));
    const remade = await json(idsKey);
    assert.deepEqual(remade, JSON.parse(new TextDecoder().decode(written)));
    assert.equal(remade.type, "segment-ids");
    assert.equal(remade.experiments[ids[0x2a]!], cks.get(ids[0x2a]!)!.join(""));
    old.close();
  });
});

Deno.test("Catalog: a settled folder mark skips the listing, and a new or removed folder is still seen", async () => {
  await withDir(async (dir, store) => {
    const folder = join(dir, "repo", "experiments");
    const settle = () =>
      Deno.utime(folder, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const a = "a1".repeat(16);
    const b = "b2".repeat(16);
    await experiment(store, a, [0.5]);
    await settle();
    const mark = await store.foldersMark!("experiments/");
    assert.ok(mark);
    const first = new Catalog(store);
    assert.deepEqual((await first.list()).map((v) => v.id), [a]);
    assert.equal(first.db.meta("folders_mark"), mark);
    first.close();
    // Nothing came: the next reader does not list, and sees the same.
    const again = new Catalog(store);
    assert.deepEqual((await again.list()).map((v) => v.id), [a]);
    again.close();
    // A new folder changes the mark (and a fresh one is not trusted at all).
    await experiment(store, b, [0.4]);
    assert.notEqual(await store.foldersMark!("experiments/"), mark);
    const seen = new Catalog(store);
    assert.deepEqual((await seen.list()).map((v) => v.id).sort(), [a, b]);
    seen.close();
    await settle();
    const warm = new Catalog(store);
    assert.equal((await warm.list()).length, 2);
    warm.close();
    // A folder deleted (as gc does) changes it too.
    await store.delete((await Array.fromAsync(store.list(`experiments/${b}/`))).map((i) => i.key));
    const gone = new Catalog(store);
    assert.deepEqual((await gone.list()).map((v) => v.id), [a]);
    gone.close();
  });
});
