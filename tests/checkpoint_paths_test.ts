/**
 * Readers present checkpoint files alike for every format (format 1 `rep run` paths, relative to
 * the output folder, read under it), and say plainly when a checkpoint has warnings or files left
 * out: `rep show` (experiment and checkpoint), `rep ls`, `rep diff`, the viewer's API.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeExperiment, rep, tempRepo } from "./helpers.ts";
import { Repository } from "../src/repository.ts";
import { viewer } from "../src/ui/server.ts";

/** Turn a recorded experiment into a format 1 `rep run` one whose output folder was `output`. */
async function makeFormat1(repoDir: string, id: string): Promise<void> {
  const path = join(repoDir, "experiments", id, "experiment.json");
  const r = JSON.parse(await Deno.readTextFile(path));
  r.format = 1;
  r.provenance = { ...r.provenance, output: "output" };
  await Deno.writeTextFile(path, JSON.stringify(r));
}

Deno.test("format 1 rep run paths read under their output folder in show, diff and the viewer", async () => {
  const t = await tempRepo();
  try {
    const e = await makeExperiment(t.repo, {
      command: ["python3", "train.py"],
      checkpoints: [
        { files: { "model.pth": "w1", "sub/a.txt": "a" } },
        { files: { "model.pth": "w2" } },
      ],
    });
    await makeFormat1(t.repo, e.id);
    const [c1, c2] = e.checkpoints as [string, string];
    const show = await rep(["show", c1, "--json"], { env: t.env });
    assert.equal(show.code, 0, show.stderr);
    assert.deepEqual(
      JSON.parse(show.stdout).files.map((f: { path: string }) => f.path),
      ["output/model.pth", "output/sub/a.txt"],
    );
    const text = await rep(["show", c1], { env: t.env });
    assert.match(text.stdout, /output\/sub\/a\.txt/);
    const whole = await rep(["show", e.id, "--json"], { env: t.env });
    assert.deepEqual(
      JSON.parse(whole.stdout).checkpoints[1].files.map((f: { path: string }) => f.path),
      ["output/model.pth"],
    );
    const diff = await rep(["diff", c1, c2, "--json"], { env: t.env });
    assert.equal(diff.code, 0, diff.stderr);
    const files = JSON.parse(diff.stdout).comparisons[0].files;
    assert.deepEqual(files.changed, ["output/model.pth"]);
    assert.deepEqual(files.removed, ["output/sub/a.txt"]);
    const repo = await Repository.open(t.repo, { cache: false });
    try {
      const serve = viewer(repo);
      const r = await serve(new Request(`http://127.0.0.1/api/checkpoints/${c1}/files`));
      assert.equal(r.status, 200);
      assert.deepEqual((await r.json()).map((f: { path: string }) => f.path), [
        "output/model.pth",
        "output/sub/a.txt",
      ]);
      const f = await serve(
        new Request(`http://127.0.0.1/api/checkpoints/${c1}/file?path=output/model.pth`),
      );
      assert.equal(await f.text(), "w1");
    } finally {
      await repo.close();
    }
    const out = join(t.dir, "co");
    const co = await rep(["checkout", c2, "-o", out], { env: t.env });
    assert.equal(co.code, 0, co.stderr);
    assert.equal(await Deno.readTextFile(join(out, "output", "model.pth")), "w2");
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep show and rep ls say plainly when a checkpoint has files left out or warnings", async () => {
  const t = await tempRepo();
  try {
    const e = await makeExperiment(t.repo, {
      primaryMetric: { name: "loss", goal: "minimize" },
      checkpoints: [
        { metrics: { loss: 2 }, files: { "output/model.bin": "m0" } },
        {
          metrics: { loss: 1 },
          files: { "output/config.json": "{}" },
          torn: ["output/model.bin"],
          warnings: [
            "output/model.bin: left out because its data could not be written (No space left on device)",
          ],
        },
      ],
    });
    const [, c2] = e.checkpoints as [string, string];
    const show = await rep(["show", e.id], { env: t.env });
    assert.equal(show.code, 0, show.stderr);
    assert.match(
      show.stdout,
      /Warnings\n {2}[0-9a-f]{7} \(step 1\): warning: output\/model\.bin: left out because its data could not be written \(No space left on device\)\n/,
    );
    const one = await rep(["show", c2], { env: t.env });
    assert.match(
      one.stdout,
      /warning: output\/model\.bin: left out because its data could not be written/,
    );
    const json = await rep(["show", c2, "--json"], { env: t.env });
    assert.deepEqual(JSON.parse(json.stdout).torn, ["output/model.bin"]);
    assert.equal(JSON.parse(json.stdout).warnings.length, 1);
    const ls = await rep(["ls"], { env: t.env });
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, new RegExp(`${c2.slice(0, 7)} \\(step 1, 1 warning\\)`));
    assert.match(ls.stdout, /warning: 1 experiment\(s\) above have a best or latest checkpoint/);
    // A clean experiment: no warning anywhere.
    const clean = await makeExperiment(t.repo, { checkpoints: [{ files: { "a": "a" } }] });
    const s2 = await rep(["show", clean.id], { env: t.env });
    assert.doesNotMatch(s2.stdout, /warning/i);
  } finally {
    await t.cleanup();
  }
});
