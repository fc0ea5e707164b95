/**
 * Removals stay removed: `rep rm` then `rep gc`, on a local folder, S3 (s3rver) and GCS (the
 * emulator), seen by readers whose listing index was warm before the removal, by a cold reader,
 * and by one on "another machine" (its own cache) that never saw the removal before gc compacted
 * it away. The repository has 100+ experiments, so cold readers use the shared segments.
 *
 * Also: concurrent cold readers write one segment, not one each; `rep verify` reports orphans and
 * `rep gc` reclaims them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeExperiment, rep } from "./helpers.ts";
import { startGcs } from "./servers/gcs.ts";
import { startS3, type TestServer } from "./servers/s3.ts";
import { openStore } from "../src/storage/open.ts";
import type { Store } from "../src/storage/store.ts";

const FILLERS = 110;
const PM = { name: "loss", goal: "minimize" } as const;

interface Backend {
  name: string;
  start(): Promise<{ url: string; env: Record<string, string>; stop(): Promise<void> }>;
}

async function cloud(server: TestServer, scheme: string) {
  const bucket = await server.bucket();
  return { url: `${scheme}://${bucket}/exps`, env: server.env, stop: () => server.stop() };
}

const BACKENDS: Backend[] = [
  {
    name: "local",
    start: async () => {
      const dir = await Deno.makeTempDir({ prefix: "rep-vis-local-" });
      return { url: join(dir, "repo"), env: {}, stop: () => Deno.remove(dir, { recursive: true }) };
    },
  },
  { name: "S3", start: async () => cloud(await startS3(), "s3") },
  { name: "GCS", start: async () => cloud(await startGcs(), "gs") },
];

async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.keys(vars).map((k) => [k, Deno.env.get(k)] as const);
  for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
  try {
    return await fn();
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
}

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const hex = (i: number, c: string) => i.toString(16).padStart(32, c);

/** Finished experiments written as plain records (no data: listings never read it). */
async function fillers(store: Store, n: number): Promise<string[]> {
  const ids: string[] = [];
  const puts: [string, Uint8Array][] = [];
  for (let i = 0; i < n; i++) {
    const id = hex(i, "a");
    ids.push(id);
    const created = new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString();
    const base = `experiments/${id}/`;
    puts.push([
      base + "experiment.json",
      enc({
        format: 2,
        type: "experiment",
        id,
        created,
        name: null,
        params: { i },
        command: ["python", "train.py"],
        primary_metric: PM,
      }),
    ]);
    for (let s = 0; s < 2; s++) {
      const cid = hex(i * 2 + s, "b");
      puts.push([
        base + `checkpoints/${cid}.json`,
        enc({
          format: 2,
          type: "checkpoint",
          id: cid,
          experiment: id,
          created,
          step: s,
          metrics: { loss: 1 / (s + 1) },
          primary_metric: PM,
        }),
      ]);
    }
    puts.push([
      base + "status.json",
      enc({
        format: 2,
        type: "status",
        status: "succeeded",
        exit_code: 0,
        finished: created,
      }),
    ]);
  }
  for (let i = 0; i < puts.length; i += 32) {
    await Promise.all(puts.slice(i, i + 32).map(([k, b]) => store.put(k, b)));
  }
  return ids;
}

interface LsEntry {
  id: string;
  num_checkpoints: number;
  best_checkpoint: { id: string } | null;
  latest_checkpoint: { id: string } | null;
}

for (const backend of BACKENDS) {
  Deno.test(`removals stay removed for warm, cold and other-machine readers on ${backend.name}`, async () => {
    const srv = await backend.start();
    const tmp = await Deno.makeTempDir({ prefix: "rep-vis-" });
    // The cloud SDKs read their settings at each request: keep the server's env for the test.
    await withEnv(srv.env, () => scenario(srv, tmp)).finally(async () => {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      await srv.stop();
    });
  });
}

async function scenario(srv: { url: string; env: Record<string, string> }, tmp: string) {
  const cache = (name: string) => join(tmp, `cache-${name}`);
  const as = (who: string, args: string[]) =>
    rep(["-R", srv.url, ...args], {
      cwd: tmp,
      env: { ...srv.env, REP_CACHE_DIR: cache(who) },
    });
  const json = async <T>(who: string, args: string[]): Promise<T> => {
    const r = await as(who, args);
    assert.equal(r.code, 0, `${who} ${args.join(" ")}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };
  const store = await openStore(srv.url);
  await store.put("repository.json", enc({ format: 2 }));
  const filler = await fillers(store, FILLERS);
  // The experiment whose best checkpoint is removed: real data, three checkpoints.
  const exp = await makeExperiment(srv.url, {
    primaryMetric: PM,
    code: { "train.py": "print('hi')\n" },
    checkpoints: [
      { step: 1, metrics: { loss: 0.5 }, files: { "model.bin": "one" } },
      { step: 2, metrics: { loss: 0.1 }, files: { "model.bin": "two (the best)" } },
      { step: 3, metrics: { loss: 0.3 }, files: { "model.bin": "three" } },
    ],
  });
  const [, bestCk] = exp.checkpoints;
  // Warm readers, before the removal: "warm" on this machine, "other" on another one.
  for (const who of ["warm", "other"]) {
    const ls = await json<LsEntry[]>(who, ["ls", "--json"]);
    assert.equal(ls.length, FILLERS + 1);
    assert.equal(ls.find((e) => e.id === exp.id)?.best_checkpoint?.id, bestCk);
  }
  // The first cold listing wrote one shared segment.
  const index = (await Array.fromAsync(store.list("index/"))).map((i) => i.key);
  assert.equal(
    index.filter((k) => /^index\/[0-9a-f]{32}\.json\.gz$/.test(k)).length,
    1,
    index.join(),
  );

  // Remove the best checkpoint and one experiment, from a third machine; gc in one call.
  const rm = await as("admin", ["rm", bestCk!, filler[3]!]);
  assert.equal(rm.code, 0, rm.stderr);
  const warmAfterRm = await json<LsEntry[]>("warm", ["ls", "--json"]);
  assert.equal(warmAfterRm.length, FILLERS);
  const gc = await as("admin", ["gc", "--grace", "0"]);
  assert.equal(gc.code, 0, gc.stderr);
  assert.match(gc.stdout, /deleted \d+ record\(s\) of removed/);

  // The store: records and data of what was removed are gone, the removal was compacted
  // away (its records are all deleted) and the drop recorded.
  const keys = (await Array.fromAsync(store.list(""))).map((i) => i.key);
  assert.ok(!keys.some((k) => k.includes(bestCk!)), "the removed checkpoint's record remains");
  assert.ok(
    !keys.some((k) => k.includes(filler[3]!)),
    "the removed experiment's records remain",
  );
  const changeKeys = keys.filter((k) => k.startsWith("changes/"));
  assert.equal(changeKeys.length, 1);
  const compacted = JSON.parse(new TextDecoder().decode(await store.getBytes(changeKeys[0]!)));
  assert.deepEqual(compacted.entries, []);
  assert.equal(typeof compacted.dropped.at, "string");
  // One segment: its summary, checkpoints and ids objects.
  assert.equal(keys.filter((k) => k.startsWith("index/")).length, 3);

  // Every reader: warm from before (saw the removal), other machine (never saw it: its
  // index predates a dropped removal and is rebuilt), cold.
  for (const who of ["warm", "other", "cold", "warm", "other"]) {
    const ls = await json<LsEntry[]>(who, ["ls", "--json"]);
    assert.equal(ls.length, FILLERS, who);
    assert.ok(!ls.some((e) => e.id === filler[3]), `${who}: the removed experiment is back`);
    const e = ls.find((x) => x.id === exp.id)!;
    assert.equal(e.num_checkpoints, 2, who);
    assert.equal(e.best_checkpoint?.id, exp.checkpoints[2], who);
    assert.equal(e.latest_checkpoint?.id, exp.checkpoints[2], who);
    const shown = await json<{ checkpoints: { id: string }[] }>(who, [
      "show",
      exp.id,
      "--json",
    ]);
    assert.deepEqual(shown.checkpoints.map((c) => c.id), [
      exp.checkpoints[0],
      exp.checkpoints[2],
    ]);
    const gone = await as(who, ["show", bestCk!]);
    assert.equal(gone.code, 1, `${who}: ${gone.stdout}`);
    const out = join(tmp, `co-${who}-${crypto.randomUUID()}`);
    const co = await as(who, ["checkout", exp.id, "-o", out]);
    assert.equal(co.code, 0, `${who}: ${co.stderr}`);
    assert.equal(await Deno.readTextFile(join(out, "model.bin")), "three");
  }
  // A later gc with the default grace brings nothing back either.
  assert.equal((await as("admin", ["gc"])).code, 0);
  for (const who of ["warm", "other", "cold2"]) {
    const ls = await json<LsEntry[]>(who, ["ls", "--json"]);
    assert.equal(ls.length, FILLERS, who);
    assert.equal(ls.find((x) => x.id === exp.id)?.best_checkpoint?.id, exp.checkpoints[2]);
  }
  const v = await as("admin", ["verify"]);
  assert.equal(v.code, 0, v.stdout);
  await store.close();
}

Deno.test("four concurrent cold readers write one listing segment", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "rep-vis-seg-" });
  try {
    const url = join(tmp, "repo");
    const store = await openStore(url);
    await store.put("repository.json", enc({ format: 2 }));
    await fillers(store, FILLERS);
    const readers = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        rep(["-R", url, "ls", "-q"], { env: { REP_CACHE_DIR: join(tmp, `cache-${i}`) } })
      ),
    );
    for (const r of readers) assert.equal(r.stdout.trim().split("\n").length, FILLERS, r.stderr);
    const index = (await Array.fromAsync(store.list("index/"))).map((i) => i.key);
    // One segment: its summary, checkpoints and ids objects.
    assert.equal(index.length, 3, index.join("\n"));
    await store.close();
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("rep verify reports orphans and rep gc reclaims them", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "rep-vis-orphan-" });
  try {
    const url = join(tmp, "repo");
    const env = { REP_CACHE_DIR: join(tmp, "cache") };
    const kept = await makeExperiment(url, { checkpoints: [{ metrics: { loss: 1 } }] });
    const store = await openStore(url);
    // A checkpoint record without its experiment, and a heartbeat beside a final status.
    const orphan = "f".repeat(32);
    await store.put(`experiments/${orphan}/checkpoints/${"e".repeat(32)}.json`, enc({}));
    await store.put(
      `experiments/${kept.id}/heartbeat.json`,
      enc({ pid: 1, host: "h", updated: "2024-01-01T00:00:00.000Z", interval: 10 }),
    );
    const old = new Date(Date.now() - 3600_000);
    for (
      const p of [
        `experiments/${orphan}/checkpoints/${"e".repeat(32)}.json`,
        `experiments/${kept.id}/heartbeat.json`,
      ]
    ) {
      await Deno.utime(join(url, p), old, old);
    }
    const v = await rep(["-R", url, "verify"], { env });
    assert.equal(v.code, 1, v.stdout);
    assert.match(
      v.stdout,
      new RegExp(`ORPHAN  experiments/${orphan}/: 1 object\\(s\\) without an experiment record`),
    );
    assert.match(
      v.stdout,
      new RegExp(
        `ORPHAN  experiments/${kept.id}/heartbeat.json: a heartbeat left beside the final status`,
      ),
    );
    // The default grace (24 h) keeps them; a shorter one reclaims them.
    const keep = await rep(["-R", url, "gc"], { env });
    assert.equal(keep.code, 0, keep.stderr);
    assert.doesNotMatch(keep.stdout, /orphaned/);
    const g = await rep(["-R", url, "gc", "--grace", "30m"], { env });
    assert.equal(g.code, 0, g.stderr);
    assert.match(g.stdout, /deleted 2 orphaned object\(s\)/);
    const again = await rep(["-R", url, "verify"], { env });
    assert.equal(again.code, 0, again.stdout);
    const ls = await rep(["-R", url, "ls", "-q"], { env });
    assert.equal(ls.stdout, `${kept.id}\n`);
    await store.close();
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
