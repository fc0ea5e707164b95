import assert from "node:assert/strict";
import { join } from "node:path";
import { Repository } from "../repository.ts";
import { outboxName, Recorder } from "./recorder.ts";
import {
  parseAttempt,
  parseCheckpoint,
  parseExperiment,
  parseHeartbeat,
  parseJson,
  parseStatus,
} from "../format/records.ts";
import {
  attemptKey,
  attemptStatusKey,
  checkpointKey,
  experimentKey,
  gcListingKey,
  heartbeatKey,
  PREFIX,
  statusKey,
} from "../format/layout.ts";
import { listOutboxes } from "./recover.ts";

async function json(repo: Repository, key: string): Promise<unknown> {
  return parseJson(await repo.store.getBytes(key), key);
}

async function packs(repo: Repository): Promise<string[]> {
  return (await Array.fromAsync(repo.store.list(PREFIX.packs))).map((i) => i.key);
}

Deno.test("Recorder.resume() adds attempt n to an experiment without rewriting attempt 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rep-recorder-" });
  Deno.env.set("REP_CACHE_DIR", join(dir, "cache"));
  const repo = await Repository.open(join(dir, "repo"), { cache: false });
  try {
    const work = join(dir, "work");
    await Deno.mkdir(join(work, "output"), { recursive: true });
    // Over 1 MiB: reuse of another writer's pack waits for its check (see Dedup.check).
    const weights = new Uint8Array(1_500_000).map((_, i) => (i * 7919) % 251);
    await Deno.writeFile(join(work, "output", "model.bin"), weights);

    // Attempt 1: two checkpoints, then the process dies (no status).
    const first = await Recorder.start(repo, { name: "run-a", cwd: work, output: "output" });
    const id = first.record.id;
    assert.equal(parseHeartbeat(await json(repo, heartbeatKey(id))).attempt ?? 1, 1);
    const snap = await first.snapshot(work, ["output/model.bin"]);
    const c1 = await first.commit({ tree: snap.tree, step: 1, metrics: { loss: 0.5 } });
    await first.commit({ tree: snap.tree, step: 2, metrics: { loss: 0.4 } });
    await first.outbox.drain();
    first.abandon();
    const recordBytes = await repo.store.getBytes(experimentKey(id));
    const packsBefore = await packs(repo);
    assert.equal(parseCheckpoint(await json(repo, checkpointKey(id, c1.id))).attempt, 1);

    // Attempt 2 resumes from checkpoint 2, reusing its chunks.
    const record = parseExperiment(parseJson(recordBytes, "x"));
    const latest = first.checkpoints[1]!;
    const second = await Recorder.resume(repo, {
      record,
      attempt: 2,
      command: ["python", "train.py", "--resume"],
      cwd: work,
      resumedFrom: latest,
      seed: [await repo.tree(latest.files!.tree)],
    });
    assert.equal(second.attempt, 2);
    assert.equal(second.logKey(1), `experiments/${id}/attempts/2/logs/000001.log`);
    assert.ok(second.outbox.dir.endsWith(outboxName(id, 2)));
    assert.deepEqual(
      (await listOutboxes(repo)).map((o) => [o.experiment, o.attempt]).sort(),
      [[id, 1], [id, 2]],
    );
    const hb = parseHeartbeat(await json(repo, heartbeatKey(id)));
    assert.equal(hb.attempt, 2);
    const same = await second.snapshot(work, ["output/model.bin"]);
    const c3 = await second.commit({ tree: same.tree, step: 3, metrics: { loss: 0.3 } });
    await second.stop("succeeded", { exitCode: 0 });

    const attempt = parseAttempt(await json(repo, attemptKey(id, 2)));
    assert.equal(attempt.experiment, id);
    assert.equal(attempt.resumed_from, latest.id);
    assert.equal(attempt.resume_step, 2);
    assert.deepEqual(attempt.command, ["python", "train.py", "--resume"]);
    assert.equal(parseCheckpoint(await json(repo, checkpointKey(id, c3.id))).attempt, 2);
    assert.equal(parseStatus(await json(repo, attemptStatusKey(id, 2))).status, "succeeded");
    assert.equal(await repo.store.head(statusKey(id)), null, "attempt 1 has no status");
    assert.deepEqual(await repo.store.getBytes(experimentKey(id)), recordBytes);
    assert.deepEqual(await packs(repo), packsBefore, "unchanged files store nothing new");
    assert.equal(await repo.store.head(heartbeatKey(id)), null);
    await assert.rejects(() => Recorder.resume(repo, { record, attempt: 1 }), RangeError);
  } finally {
    await repo.close();
    Deno.env.delete("REP_CACHE_DIR");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Recorder.forgetListed() stops reusing its own chunks of packs gc has listed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rep-recorder-" });
  Deno.env.set("REP_CACHE_DIR", join(dir, "cache"));
  const repo = await Repository.open(join(dir, "repo"), { cache: false });
  try {
    const work = join(dir, "work");
    await Deno.mkdir(work);
    await Deno.writeFile(join(work, "w.bin"), new Uint8Array(100_000).map((_, i) => i % 253));
    const rec = await Recorder.start(repo, { cwd: work });
    const first = await rec.snapshot(work, ["w.bin"]);
    await rec.commit({ tree: first.tree, step: 1 });
    await rec.outbox.drain();
    const before = await packs(repo);
    assert.equal(await rec.forgetListed(), 0, "nothing listed yet");
    await repo.store.put(
      gcListingKey(),
      new TextEncoder().encode(
        JSON.stringify({ format: 2, type: "gc", created: new Date().toISOString(), keys: before }),
      ),
    );
    assert.ok((await rec.forgetListed()) > 0);
    rec.statCache.clear();
    const again = await rec.snapshot(work, ["w.bin"]);
    await rec.commit({ tree: again.tree, step: 2 });
    await rec.stop("succeeded", { exitCode: 0 });
    const after = await packs(repo);
    assert.equal(after.length, before.length + 1, "the same bytes stored again in a new pack");
    const used = new Set(again.tree.files.flatMap((f) => f.chunks.map((c) => `packs/${c[0]}`)));
    assert.ok([...used].every((k) => !before.includes(k)));
  } finally {
    await repo.close();
    Deno.env.delete("REP_CACHE_DIR");
    await Deno.remove(dir, { recursive: true });
  }
});
