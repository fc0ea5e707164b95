/**
 * Params as `rep run` reads them from a real Python command: multi-value and repeated options
 * become lists that `ls`, `show`, filters and the Python reader all see; a `-p` that contradicts
 * the command is refused before anything is recorded.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { rep, ROOT, tempRepo } from "./helpers.ts";

const SCRIPT = "import sys; print(sys.argv[1:])";

Deno.test("rep run records --layers 2 3 4 and a repeated --tag as lists", async () => {
  const t = await tempRepo();
  try {
    const cmd = ["python3", "-c", SCRIPT, "--layers", "2", "3", "4", "--tag", "a", "--tag", "b"];
    const run = await rep([
      "run",
      "--no-code",
      "-o",
      join(t.dir, "out"),
      "--",
      ...cmd,
      "--lr",
      "0.1",
    ], {
      cwd: t.dir,
      env: t.env,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout,
      /\['--layers', '2', '3', '4', '--tag', 'a', '--tag', 'b', '--lr', '0.1'\]/,
    );
    const other = await rep([
      "run",
      "--no-code",
      "-o",
      join(t.dir, "out2"),
      "--",
      ...cmd,
      "--lr",
      "0.2",
    ], {
      cwd: t.dir,
      env: t.env,
    });
    assert.equal(other.code, 0, other.stderr);

    const listed = JSON.parse((await rep(["ls", "--json"], { cwd: t.dir, env: t.env })).stdout);
    assert.equal(listed.length, 2);
    for (const e of listed) {
      assert.deepEqual(e.params.layers, [2, 3, 4]);
      assert.deepEqual(e.params.tag, ["a", "b"]);
    }
    const table = await rep(["ls", "--all"], { cwd: t.dir, env: t.env });
    assert.match(table.stdout, /\[2, 3, 4\]/);

    const has3 = await rep(["ls", "-q", "-f", "layers = 3", "-f", "lr > 0.15"], {
      cwd: t.dir,
      env: t.env,
    });
    assert.equal(has3.code, 0, has3.stderr);
    assert.equal(has3.stdout.trim().split("\n").length, 1);
    const none = await rep(["ls", "-q", "-f", "layers = 5"], { cwd: t.dir, env: t.env });
    assert.equal(none.stdout.trim(), "");
    const notB = await rep(["ls", "-q", "-f", "params.tag != b"], { cwd: t.dir, env: t.env });
    assert.equal(notB.stdout.trim(), "");

    const id = listed[0].id as string;
    const py = new Deno.Command("python3", {
      args: [
        "-c",
        `import rep, json; print(json.dumps(rep.experiments.get(${JSON.stringify(id)}).params))`,
      ],
      env: { ...t.env, PYTHONPATH: join(ROOT, "python") },
      stdout: "piped",
      stderr: "piped",
    });
    const out = await py.output();
    const dec = new TextDecoder();
    assert.equal(out.code, 0, dec.decode(out.stderr));
    const params = JSON.parse(dec.decode(out.stdout));
    assert.deepEqual(params.layers, [2, 3, 4]);
    assert.deepEqual(params.tag, ["a", "b"]);
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run refuses a -p that contradicts the command's own argument (exit 2)", async () => {
  const t = await tempRepo();
  try {
    const marker = join(t.dir, "ran");
    const code = `open(${JSON.stringify(marker)}, "w").close()`;
    const r = await rep(["run", "-p", "lr=0.1", "--", "python3", "-c", code, "--lr", "0.01"], {
      cwd: t.dir,
      env: t.env,
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /-p lr=0\.1 contradicts the command's own argument --lr 0\.01/);
    assert.match(r.stderr, /Drop -p lr/);
    assert.equal(await Deno.stat(marker).then(() => true, () => false), false, "the command ran");

    const agreeing = await rep([
      "run",
      "--no-code",
      "-p",
      "lr=0.01",
      "--",
      "python3",
      "-c",
      "pass",
      "--lr",
      "0.01",
    ], {
      cwd: t.dir,
      env: t.env,
    });
    assert.equal(agreeing.code, 0, agreeing.stderr);
  } finally {
    await t.cleanup();
  }
});
