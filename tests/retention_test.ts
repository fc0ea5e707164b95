/**
 * Retention on finished experiments from the CLI: `rep rm ID --keep-best N --keep-last M`, by id
 * or by filter, with `--dry-run`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { makeExperiment, rep, tempRepo } from "./helpers.ts";

interface ShowJson {
  id: string;
  checkpoints: { id: string; step: number; attempt: number }[];
}

function json<T>(r: { code: number; stdout: string; stderr: string }): T {
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

Deno.test("rep rm --keep-best --keep-last prunes finished experiments, by id or filter, with --dry-run", async () => {
  const t = await tempRepo();
  try {
    const pm = { name: "loss", goal: "minimize" as const };
    const losses = [0.9, 0.5, 0.7, 0.4, 0.8, 0.95];
    const spec = (tag: string) => ({
      primaryMetric: pm,
      tags: [tag],
      checkpoints: losses.map((loss, i) => ({ step: i + 1, metrics: { loss } })),
    });
    const a = await makeExperiment(t.repo, spec("a"));
    const b = await makeExperiment(t.repo, spec("b"));
    const running = await makeExperiment(t.repo, { ...spec("a"), status: "running" });
    const steps = async (id: string) =>
      json<ShowJson>(await rep(["show", id, "--json"], { env: t.env })).checkpoints.map((c) =>
        c.step
      );

    const dry = await rep(["rm", a.id, "--keep-best", "2", "--keep-last", "1", "--dry-run"], {
      env: t.env,
    });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      /Would remove 3 checkpoint\(s\) of experiment \w{7} \(steps 1, 3, 5\); kept 3 \(steps 2, 4, 6\)/,
    );
    assert.deepEqual(await steps(a.id), [1, 2, 3, 4, 5, 6]);

    const byFilter = await rep(["rm", "-f", "tag = a", "--keep-best", "1"], { env: t.env });
    assert.equal(byFilter.code, 0, byFilter.stderr);
    assert.match(byFilter.stdout, /Left experiment \w{7} alone: it is running/);
    assert.deepEqual(await steps(a.id), [4]);
    assert.deepEqual(await steps(b.id), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(await steps(running.id), [1, 2, 3, 4, 5, 6]);

    const byId = await rep(["rm", b.id, "--keep-last", "2"], { env: t.env });
    assert.equal(byId.code, 0, byId.stderr);
    assert.deepEqual(await steps(b.id), [5, 6]);

    for (
      const [args, why] of [
        [["rm", b.id, "--keep-best", "0", "--keep-last", "0"], /would remove every checkpoint/],
        [["rm", "--keep-last", "1"], /needs experiment ids or -f filters/],
        [["rm", b.id, "--keep-last", "x"], /Invalid --keep-last/],
        [["rm", b.checkpoints[5]!, "--keep-last", "1"], /is a checkpoint/],
        [["rm", b.id, "--dry-run"], /go with --keep-best/],
      ] as [string[], RegExp][]
    ) {
      const r = await rep(args, { env: t.env });
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, why);
    }
  } finally {
    await t.cleanup();
  }
});
