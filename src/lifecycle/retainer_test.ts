import assert from "node:assert/strict";
import { join } from "node:path";
import { Repository } from "../repository.ts";
import { Recorder } from "../writer/recorder.ts";
import { checkpointKey } from "../format/layout.ts";
import type { CheckpointRecord } from "../format/records.ts";
import { describePolicy, Retainer } from "./retainer.ts";

Deno.test("Retainer removes what falls outside keep-best/keep-last, once each record is stored", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rep-retainer-" });
  Deno.env.set("REP_CACHE_DIR", join(dir, "cache"));
  const repo = await Repository.open(join(dir, "repo"), { cache: false });
  try {
    const pm = { name: "loss", goal: "minimize" as const };
    const rec = await Recorder.start(repo, { primaryMetric: pm, cwd: dir });
    const calls: { ids: number[]; reason: string }[] = [];
    const retainer = new Retainer(rec, {
      policy: { keepBest: 2, keepLast: 1 },
      primaryMetric: pm,
      remove: async (cks: CheckpointRecord[], reason: string) => {
        for (const c of cks) {
          assert.ok(await repo.store.head(checkpointKey(rec.record.id, c.id)), "stored first");
        }
        calls.push({ ids: cks.map((c) => c.step!), reason });
      },
    });
    const history: [number, number][] = [[1, 0.9], [2, 0.5], [3, 0.7], [4, 0.4], [5, 0.8], [
      6,
      0.95,
    ]];
    for (const [step, loss] of history) {
      retainer.committed(await rec.commit({ tree: null, step, metrics: { loss } }));
    }
    await rec.stop("succeeded", { exitCode: 0 });
    await retainer.settle();
    const removed = calls.flatMap((c) => c.ids).sort();
    assert.deepEqual(removed, [1, 3, 5]);
    assert.deepEqual([...retainer.removed].length, 3);
    assert.equal(calls[0]!.reason, "retention: keep best 2, last 1");
    assert.equal(describePolicy({ keepLast: 3 }), "keep last 3");
  } finally {
    await repo.close();
    Deno.env.delete("REP_CACHE_DIR");
    await Deno.remove(dir, { recursive: true });
  }
});
