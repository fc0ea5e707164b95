import assert from "node:assert/strict";
import { join } from "node:path";
import { AmbiguousIdError, ConflictError, FormatVersionError, NotFoundError } from "./errors.ts";
import type { CheckpointRecord } from "./format/records.ts";
import { Recorder } from "./writer/recorder.ts";
import { LocalStore } from "./storage/local.ts";
import type { ByteRange, Store } from "./storage/store.ts";
import { bestCheckpoint, Repository, safeDestination } from "./repository.ts";

function ck(step: number, metrics: CheckpointRecord["metrics"]): CheckpointRecord {
  return {
    format: 1,
    type: "checkpoint",
    attempt: 1,
    id: String(step).padStart(32, "0"),
    experiment: "e".repeat(32),
    created: new Date(1e12 + step).toISOString(),
    step,
    metrics,
    primary_metric: null,
    files: null,
    torn: [],
    warnings: [],
  };
}

Deno.test("bestCheckpoint() ignores missing, NaN and non-numeric values", () => {
  const cks = [
    ck(0, { loss: 0.5 }),
    ck(1, { loss: NaN }),
    ck(2, {}),
    ck(3, { loss: "x" }),
    ck(4, { loss: 0.2 }),
    ck(5, { loss: 0.3 }),
  ];
  assert.equal(bestCheckpoint(cks, { name: "loss", goal: "minimize" })?.step, 4);
  assert.equal(bestCheckpoint(cks, { name: "loss", goal: "maximize" })?.step, 0);
  assert.equal(bestCheckpoint(cks, null), null);
  assert.equal(bestCheckpoint([ck(1, { loss: NaN })], { name: "loss", goal: "minimize" }), null);
});

Deno.test("safeDestination() refuses escapes and symlinked parents", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const root = join(dir, "t");
    await Deno.mkdir(root);
    assert.equal(await safeDestination(root, "a/b.txt"), join(root, "a", "b.txt"));
    for (const p of ["../x", "/etc/x", "a/../../x", "a//b", "a\\..\\x"]) {
      await assert.rejects(() => safeDestination(root, p), ConflictError, p);
    }
    await Deno.mkdir(join(dir, "outside"));
    await Deno.symlink(join(dir, "outside"), join(root, "link"));
    await assert.rejects(() => safeDestination(root, "link/x.txt"), /symlink/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A real local store that counts reads, to show what a warm listing reads. */
class CountingStore extends LocalStore {
  reads: string[] = [];
  override getBytes(key: string, range?: ByteRange): Promise<Uint8Array> {
    this.reads.push(key);
    return super.getBytes(key, range);
  }
}

async function experiment(repo: Repository, dir: string, steps: number): Promise<string> {
  const rec = await Recorder.start(repo, {
    cwd: dir,
    primaryMetric: { name: "loss", goal: "minimize" },
  });
  for (let s = 0; s < steps; s++) {
    await Deno.writeTextFile(join(dir, "w.bin"), `weights ${s} `.repeat(1000));
    const snap = await rec.snapshot(dir, ["w.bin"]);
    await rec.commit({ tree: snap.tree, step: s, metrics: { loss: 1 / (s + 1) } });
  }
  await rec.stop("succeeded");
  return rec.record.id;
}

Deno.test("Repository listing reads each record once; later refreshes read only new ones", async () => {
  const dir = await Deno.makeTempDir();
  const cache = Deno.env.get("REP_CACHE_DIR");
  Deno.env.set("REP_CACHE_DIR", join(dir, "cache"));
  try {
    const store = new CountingStore(join(dir, "repo"));
    const repo = new Repository(store);
    const a = await experiment(repo, dir, 3);
    store.reads = [];
    assert.equal((await new Repository(store).list()).length, 1);
    const cold = store.reads.filter((k) => k.startsWith("experiments/")).length;
    assert.equal(cold, 5); // experiment, 3 checkpoints, status
    store.reads = [];
    const warm = await new Repository(store).list();
    assert.deepEqual(store.reads.filter((k) => k.startsWith("experiments/")), []);
    assert.equal(warm[0]!.id, a);
    assert.equal(warm[0]!.best?.step, 2);
    const b = await experiment(repo, dir, 1);
    store.reads = [];
    const both = await new Repository(store).list();
    assert.deepEqual(both.map((e) => e.id).sort(), [a, b].sort());
    assert.equal(store.reads.filter((k) => k.startsWith("experiments/")).length, 3);
    // A removed experiment disappears at once; a deleted cache loses nothing.
    await repo.remove([a], []);
    assert.deepEqual((await new Repository(store).list()).map((e) => e.id), [b]);
    await Deno.remove(join(dir, "cache"), { recursive: true });
    assert.deepEqual((await new Repository(store).list()).map((e) => e.id), [b]);
  } finally {
    if (cache) Deno.env.set("REP_CACHE_DIR", cache);
    else Deno.env.delete("REP_CACHE_DIR");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Repository.resolve() takes experiment and checkpoint prefixes, refuses ambiguity", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const repo = new Repository(new LocalStore(join(dir, "repo")), { cache: false });
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await experiment(repo, dir, 1));
    const views = await repo.list();
    const ckId = views[0]!.checkpoints[0]!.id;
    const r = await repo.resolve(ckId.slice(0, 12));
    assert.equal(r.kind, "checkpoint");
    assert.equal((await repo.resolve(ids[3]!.slice(0, 12))).kind, "experiment");
    await assert.rejects(() => repo.resolve("0".repeat(31) + "z"), /hexadecimal/);
    const all = [...ids, ...views.flatMap((v) => v.checkpoints.map((c) => c.id))];
    const shared = "0123456789abcdef".split("").find((c) =>
      all.filter((x) => x.startsWith(c)).length > 1
    )!;
    const err = await repo.resolve(shared).catch((e) => e);
    assert.ok(err instanceof AmbiguousIdError);
    assert.ok(err.candidates.length > 1);
    const unused = "0123456789abcdef".split("").flatMap((a) =>
      "0123456789abcdef".split("").map((b) => a + b)
    )
      .find((p) => !all.some((x) => x.startsWith(p)))!;
    await assert.rejects(() => repo.resolve(unused), NotFoundError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Repository refuses a repository of a newer format", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store: Store = new LocalStore(dir);
    await store.put("repository.json", new TextEncoder().encode('{"format": 99}'));
    const repo = new Repository(store, { cache: false });
    await assert.rejects(() => repo.list(), FormatVersionError);
    await assert.rejects(() => Recorder.start(repo, {}), FormatVersionError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Repository.fileStream() returns the bytes and checkout round-trips them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const repo = new Repository(new LocalStore(join(dir, "repo")), { cache: false });
    const rec = await Recorder.start(repo, { cwd: dir });
    const data = new Uint8Array(3 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    await Deno.writeFile(join(dir, "big.bin"), data);
    const snap = await rec.snapshot(dir, ["big.bin"]);
    await rec.commit({ tree: snap.tree, step: 0 });
    await rec.stop("succeeded");
    const entry = snap.tree.files[0]!;
    assert.ok(entry.chunks.length > 10);
    const got = new Uint8Array(await new Response(repo.fileStream(entry)).arrayBuffer());
    assert.deepEqual(got, data);
    const res = await repo.checkout(snap.tree.files, join(dir, "out"));
    assert.deepEqual(res.written, ["big.bin"]);
    assert.deepEqual(await Deno.readFile(join(dir, "out", "big.bin")), data);
    const again = await repo.checkout(snap.tree.files, join(dir, "out"));
    assert.deepEqual(again.unchanged, ["big.bin"]);
    await Deno.writeTextFile(join(dir, "out", "big.bin"), "changed");
    await assert.rejects(() => repo.checkout(snap.tree.files, join(dir, "out")), /big\.bin/);
    await repo.checkout(snap.tree.files, join(dir, "out"), { force: true });
    assert.deepEqual(await Deno.readFile(join(dir, "out", "big.bin")), data);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a cold listing writes an index segment that the next cold listing reads instead", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new CountingStore(join(dir, "repo"));
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    await store.put("repository.json", enc({ format: 1 }));
    const ids: string[] = [];
    for (let i = 0; i < 120; i++) {
      const id = i.toString(16).padStart(32, "a");
      ids.push(id);
      const created = new Date(1.7e12 + i * 1000).toISOString();
      await store.put(
        `experiments/${id}/experiment.json`,
        enc({ format: 1, type: "experiment", id, created, params: { i }, command: [] }),
      );
      await store.put(
        `experiments/${id}/checkpoints/${i.toString(16).padStart(32, "c")}.json`,
        enc({
          format: 1,
          type: "checkpoint",
          attempt: 1,
          id: i.toString(16).padStart(32, "c"),
          experiment: id,
          created,
          step: 1,
          metrics: { loss: i },
        }),
      );
      await store.put(
        `experiments/${id}/status.json`,
        enc({ format: 1, type: "status", status: "succeeded", finished: created }),
      );
    }
    const first = await new Repository(store, { cache: false }).list();
    assert.equal(first.length, 120);
    // One segment: its summaries, and its checkpoint records and ids apart.
    const segs = (await Array.fromAsync(store.list("index/"))).map((i) => i.key).sort();
    assert.equal(segs.length, 3);
    assert.match(segs[0]!, /^index\/[0-9a-f]{32}\.checkpoints\.json\.gz$/);
    assert.equal(segs[1], segs[0]!.replace(".checkpoints.json.gz", ".ids.json"));
    assert.equal(segs[2], segs[0]!.replace(".checkpoints", ""));
    // A listing reads the summaries only; checkpoint records when they are needed.
    store.reads = [];
    const summary = await new Repository(store, { cache: false }).list({ summary: true });
    assert.equal(summary.length, 120);
    assert.deepEqual(summary.find((e) => e.id === ids[7])?.latestBrief?.metrics, { loss: 7 });
    assert.deepEqual(store.reads.filter((k) => !k.startsWith("changes/")), [
      "repository.json",
      segs[2],
    ]);
    store.reads = [];
    const second = await new Repository(store, { cache: false }).list();
    assert.deepEqual(second.map((e) => e.id).sort(), [...ids].sort());
    assert.deepEqual(second.find((e) => e.id === ids[7])?.checkpoints[0]?.metrics, { loss: 7 });
    assert.deepEqual(store.reads.filter((k) => k.startsWith("experiments/")), []);
    assert.equal(store.reads.filter((k) => k.startsWith("index/")).length, 2);
    // An experiment removed from the store is not resurrected by the segment.
    await store.delete([
      `experiments/${ids[0]}/experiment.json`,
      `experiments/${ids[0]}/status.json`,
      `experiments/${ids[0]}/checkpoints/${(0).toString(16).padStart(32, "c")}.json`,
    ]);
    const third = await new Repository(store, { cache: false }).list();
    assert.equal(third.length, 119);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
