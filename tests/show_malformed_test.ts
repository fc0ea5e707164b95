/**
 * `rep show` tells about the metrics lines `rep run` ignored: their count and the first few as
 * text, every one in `--json`. Recorded by a real `rep run` of a Python script.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { rep, tempRepo } from "./helpers.ts";

const SCRIPT = `
import json, os, time
os.makedirs("output", exist_ok=True)
with open("output/metrics.jsonl", "a") as f:
    f.write(json.dumps({"step": 1, "loss": 0.9}) + "\\n")
    for i in range(7):
        f.write("oops %d\\n" % i)
    f.write(json.dumps({"step": 2, "loss": 0.5}) + "\\n")
time.sleep(0.5)
`;

/** Run `script` under `rep run` in `t.dir` and return the experiment's id. */
async function recordRun(t: Awaited<ReturnType<typeof tempRepo>>, script: string): Promise<string> {
  await Deno.writeTextFile(join(t.dir, "train.py"), script);
  const run = await rep(["run", "--no-code", "--", "python3", "train.py"], {
    cwd: t.dir,
    env: t.env,
  });
  assert.equal(run.code, 0, run.stderr);
  if (script.includes("oops")) {
    assert.match(run.stderr, /7 metrics line\(s\) could not be read \(rep show lists them\)/);
  }
  const listed = JSON.parse((await rep(["ls", "--json"], { cwd: t.dir, env: t.env })).stdout);
  assert.equal(listed.length, 1);
  return listed[0].id;
}

Deno.test("rep show lists the malformed metrics lines of a run: 5 as text, all in --json", async () => {
  const t = await tempRepo();
  try {
    const exp = { id: await recordRun(t, SCRIPT) };
    const text = await rep(["show", exp.id], { cwd: t.dir, env: t.env });
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      /Malformed metrics lines \(7 ignored: no checkpoint has their metrics\)/,
    );
    for (let i = 0; i < 5; i++) {
      assert.match(text.stdout, new RegExp(`line ${i + 2}: .*"oops ${i}"`));
    }
    assert.doesNotMatch(text.stdout, /"oops 5"/);
    assert.match(text.stdout, /… and 2 more \(rep show --json\)/);

    const json = JSON.parse(
      (await rep(["show", exp.id, "--json"], { cwd: t.dir, env: t.env })).stdout,
    );
    assert.deepEqual(
      json.malformed_lines.map((m: { line: number; text: string }) => [m.line, m.text]),
      [2, 3, 4, 5, 6, 7, 8].map((n) => [n, `oops ${n - 2}`]),
    );
    assert.deepEqual(json.checkpoints.map((c: { step: number }) => c.step), [1, 2]);
    assert.deepEqual(json.checkpoints[0].warnings, []);
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep show of a run with clean metrics has no malformed section", async () => {
  const t = await tempRepo();
  try {
    const exp = { id: await recordRun(t, SCRIPT.replace(/ {4}for i in range\(7\):\n.*\n/, "")) };
    const text = await rep(["show", exp.id], { cwd: t.dir, env: t.env });
    assert.doesNotMatch(text.stdout, /Malformed/);
    const json = JSON.parse(
      (await rep(["show", exp.id, "--json"], { cwd: t.dir, env: t.env })).stdout,
    );
    assert.deepEqual(json.malformed_lines, []);
  } finally {
    await t.cleanup();
  }
});
