/**
 * End-to-end tests of the read-side commands (ls, ps, show, diff, checkout, rm), spawning main.ts
 * with the compiled binary's permissions, plus fault tests (corrupt, missing, hostile objects).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { type MadeExperiment, makeExperiment, rep, tempRepo } from "./helpers.ts";

const PM = { name: "loss", goal: "minimize" } as const;
const WEIGHTS = new Uint8Array(300_000).map((_, i) => (i * 7919) % 251);

/** A repository with four experiments: a (3 checkpoints), b (1), c (running), d (crashed). */
async function fixture() {
  const t = await tempRepo();
  const a = await makeExperiment(t.repo, {
    params: { lr: 0.1, epochs: 3, arch: "resnet" },
    primaryMetric: PM,
    code: {
      "train.py": "import torch\nlr = 0.1\nprint(lr)\n",
      "data.bin": new Uint8Array([0, 1, 2]),
    },
    checkpoints: [
      { metrics: { loss: 0.5, accuracy: 0.6 }, files: { "model.pth": "w1", "sub/opt.pt": "o1" } },
      {
        metrics: { loss: 0.3, accuracy: 0.7 },
        files: { "model.pth": WEIGHTS, "sub/opt.pt": "o2" },
      },
      { metrics: { loss: 0.4, accuracy: 0.8 }, files: { "model.pth": "w3", "sub/opt.pt": "o3" } },
    ],
    tags: ["baseline"],
    git: { commit: "1234567890abcdef", branch: "main", dirty: false },
  });
  const b = await makeExperiment(t.repo, {
    params: { lr: 0.01, epochs: 3, arch: "resnet" },
    primaryMetric: PM,
    code: {
      "train.py": "import torch\nlr = 0.01\nprint(lr)\n",
      "data.bin": new Uint8Array([0, 1, 3]),
    },
    checkpoints: [{
      metrics: { loss: 0.2, accuracy: 0.9 },
      files: { "model.pth": "v1", "extra.txt": "e" },
    }],
    provenance: { python: { version: "3.11.7", packages: ["numpy==1.26.0", "torch==2.1.0"] } },
    git: { commit: "fedcba0987654321", branch: "main", dirty: true },
  });
  const c = await makeExperiment(t.repo, {
    params: { lr: 0.001, epochs: 5, arch: "resnet" },
    status: "running",
    code: { "train.py": "import torch\nlr = 0.001\nprint(lr)\n" },
    provenance: { python: { version: "3.12.1", packages: ["numpy==1.26.0", "jax==0.4"] } },
  });
  const d = await makeExperiment(t.repo, {
    params: { lr: 0.02, epochs: 3, arch: "vit" },
    status: "crashed",
  });
  return { ...t, a, b, c, d };
}

const F = await fixture();
globalThis.addEventListener("unload", () => {
  Deno.removeSync(F.dir, { recursive: true });
});

const run = (args: string[], cwd?: string) => rep(args, { env: F.env, ...(cwd ? { cwd } : {}) });
const short = (e: MadeExperiment | string) => (typeof e === "string" ? e : e.id).slice(0, 7);

// ---- ls / ps -----------------------------------------------------------------------------------

Deno.test("rep ls prints a table of experiments with differing params and best/latest checkpoints", async () => {
  const r = await run(["ls"]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split("\n");
  assert.match(
    lines[0]!,
    /^ID\s+CREATED\s+STATUS\s+lr\s+epochs\s+arch\s+TAGS\s+BEST\s+loss\s+accuracy\s+LATEST/,
  );
  assert.equal(lines.length, 5);
  // Newest first.
  assert.deepEqual(lines.slice(1).map((l) => l.slice(0, 7)), [F.d, F.c, F.b, F.a].map(short));
  const rowA = lines.find((l) => l.startsWith(short(F.a)))!;
  assert.match(rowA, /succeeded/);
  assert.ok(rowA.includes(`${short(F.a.checkpoints[1]!)} (step 1)  0.3   0.7`), rowA);
  assert.ok(rowA.includes(`${short(F.a.checkpoints[2]!)} (step 2)`), rowA);
  assert.match(lines.find((l) => l.startsWith(short(F.c)))!, /running/);
  assert.match(lines.find((l) => l.startsWith(short(F.d)))!, /crashed/);
  // Host and user do not vary: no columns.
  assert.doesNotMatch(lines[0]!, /HOST|USER/);
});

Deno.test("rep ls hides params that are the same everywhere unless --all", async () => {
  const r = await run(["ls", "-f", "arch = resnet", "-f", "epochs = 3"]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout.split("\n")[0]!, /epochs|arch/);
  assert.match(r.stdout.split("\n")[0]!, /\blr\b/);
  const all = await run(["ls", "--all", "-f", "arch = resnet", "-f", "epochs = 3"]);
  assert.match(all.stdout.split("\n")[0]!, /lr\s+epochs\s+arch/);
});

Deno.test("rep ls --json prints the documented fields", async () => {
  const r = await run(["ls", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const list = JSON.parse(r.stdout) as Record<string, unknown>[];
  assert.equal(list.length, 4);
  const a = list.find((e) => e.id === F.a.id)!;
  for (
    const k of [
      "id",
      "created",
      "status",
      "params",
      "num_checkpoints",
      "best_checkpoint",
      "latest_checkpoint",
      "host",
      "user",
      "command",
      "tags",
      "exit_code",
      "git",
    ]
  ) {
    assert.ok(k in a, `missing ${k}`);
  }
  assert.equal(a.status, "succeeded");
  assert.equal(a.exit_code, 0);
  assert.equal(a.num_checkpoints, 3);
  assert.deepEqual(a.params, { lr: 0.1, epochs: 3, arch: "resnet" });
  assert.deepEqual(a.tags, ["baseline"]);
  assert.deepEqual(a.command, ["python", "train.py"]);
  assert.deepEqual((a.git as { commit: string }).commit, "1234567890abcdef");
  const best = a.best_checkpoint as { id: string; step: number; metrics: Record<string, number> };
  assert.deepEqual([best.id, best.step, best.metrics], [F.a.checkpoints[1], 1, {
    loss: 0.3,
    accuracy: 0.7,
  }]);
  assert.equal((a.latest_checkpoint as { id: string }).id, F.a.checkpoints[2]);
  const d = list.find((e) => e.id === F.d.id)!;
  assert.equal(d.status, "crashed");
  assert.equal(d.best_checkpoint, null);
  assert.equal(d.latest_checkpoint, null);
});

Deno.test("rep ls -q prints full ids, one per line", async () => {
  const r = await run(["ls", "-q", "-f", "accuracy < 0.8"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${F.a.id}\n`);
});

Deno.test("rep ls -f filters on params, metrics, any checkpoint and status", async () => {
  const ids = async (...filters: string[]) => {
    const r = await run(["ls", "-q", ...filters.flatMap((f) => ["-f", f])]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim().split("\n").filter(Boolean).sort();
  };
  assert.deepEqual(await ids("lr <= 0.01"), [F.b.id, F.c.id].sort());
  assert.deepEqual(await ids("arch = vit"), [F.d.id]);
  assert.deepEqual(await ids("loss < 0.35"), [F.a.id, F.b.id].sort());
  assert.deepEqual(await ids("loss < 0.25"), [F.b.id]);
  assert.deepEqual(await ids("any.loss >= 0.5"), [F.a.id]);
  assert.deepEqual(await ids("latest.loss = 0.4"), [F.a.id]);
  assert.deepEqual(await ids("status = running"), [F.c.id]);
  assert.deepEqual(await ids("status != succeeded", "lr > 0.01"), [F.d.id]);
  assert.deepEqual(await ids("tag = baseline"), [F.a.id]);
  assert.deepEqual(await ids("created > 1d"), [F.a.id, F.b.id, F.c.id, F.d.id].sort());
  assert.deepEqual(await ids("created < 2020-01-01"), []);
  assert.deepEqual(await ids("step >= 2"), [F.a.id]);
});

Deno.test("rep ls -f with an unknown name exits 2 and lists the valid names", async () => {
  const r = await run(["ls", "-f", "acuracy > 0.5"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Unknown filter name "acuracy"/);
  assert.match(r.stderr, /params: arch, epochs, lr; metrics: accuracy, loss/);
  assert.equal(r.stdout, "");
  const bad = await run(["ls", "-f", "lr"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Invalid filter "lr"/);
});

Deno.test("rep ls -s sorts by params and metrics in either direction", async () => {
  const order = async (spec: string) =>
    (await run(["ls", "-q", "-s", spec])).stdout.trim().split("\n");
  assert.deepEqual(await order("lr"), [F.c, F.b, F.d, F.a].map((e) => e.id));
  assert.deepEqual(await order("lr-desc"), [F.a, F.d, F.b, F.c].map((e) => e.id));
  // No value: last whatever the direction (ties keep newest first).
  assert.deepEqual(await order("loss-asc"), [F.b, F.a, F.d, F.c].map((e) => e.id));
  assert.deepEqual(await order("loss-desc"), [F.a, F.b, F.d, F.c].map((e) => e.id));
  assert.deepEqual((await order("accuracy-desc")).slice(0, 2), [F.b.id, F.a.id]);
  assert.deepEqual(await order("created-asc"), [F.a, F.b, F.c, F.d].map((e) => e.id));
  const bad = await run(["ls", "-s", "nope-desc"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Unknown sort name "nope"/);
});

Deno.test("rep ps lists running experiments only", async () => {
  const r = await run(["ps"]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines.length, 2);
  assert.ok(lines[1]!.startsWith(short(F.c)));
  assert.equal((await run(["ps", "-q"])).stdout, `${F.c.id}\n`);
});

Deno.test("rep -R URL ls reads the given repository from any folder", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await rep(["-R", F.repo, "ls", "-q"], {
      cwd: dir,
      env: { REP_CACHE_DIR: join(F.dir, "cache") },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split("\n").length, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- show ----------------------------------------------------------------------------------------

Deno.test("rep show ID prints an experiment with its checkpoints, best marked", async () => {
  const r = await run(["show", short(F.a)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`experiment:\\s+${F.a.id}`));
  assert.match(r.stdout, /status:\s+succeeded \(exit code 0\)/);
  assert.match(r.stdout, /git:\s+1234567890ab on main/);
  assert.match(r.stdout, /tags:\s+baseline/);
  assert.match(r.stdout, /code:\s+2 file\(s\)/);
  assert.match(r.stdout, /lr\s+0\.1/);
  assert.match(r.stdout, /ID\s+STEP\s+CREATED\s+FILES\s+loss\s+accuracy/);
  const best = r.stdout.split("\n").find((l) => l.includes(short(F.a.checkpoints[1]!)))!;
  assert.match(best, /^\s*\*\s/);
  const other = r.stdout.split("\n").find((l) => l.includes(short(F.a.checkpoints[0]!)))!;
  assert.doesNotMatch(other, /\*/);
  const b = await run(["show", short(F.b)]);
  assert.match(b.stdout, /python:\s+3\.11\.7 \(2 packages\)/);
  assert.match(b.stdout, /\(dirty\)/);
});

Deno.test("rep show CHECKPOINT prints its metrics and files", async () => {
  const r = await run(["show", F.a.checkpoints[1]!.slice(0, 10)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`checkpoint:\\s+${F.a.checkpoints[1]}`));
  assert.match(r.stdout, new RegExp(`experiment:\\s+${F.a.id}`));
  assert.match(r.stdout, /step:\s+1/);
  assert.match(r.stdout, /loss\s+0\.3/);
  assert.match(r.stdout, /model\.pth\s+293\.0 KiB/);
  assert.match(r.stdout, /sub\/opt\.pt\s+2 B/);
});

Deno.test("rep show --json includes every checkpoint's files", async () => {
  const r = await run(["show", F.a.id, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const e = JSON.parse(r.stdout);
  assert.equal(e.id, F.a.id);
  assert.equal(e.status, "succeeded");
  assert.equal(e.exit_code, 0);
  assert.deepEqual(e.params, { lr: 0.1, epochs: 3, arch: "resnet" });
  assert.equal(e.best_checkpoint, F.a.checkpoints[1]);
  assert.equal(e.checkpoints.length, 3);
  const ck = e.checkpoints[1];
  assert.deepEqual(Object.keys(ck).sort(), [
    "attempt",
    "created",
    "files",
    "id",
    "metrics",
    "primary_metric",
    "step",
    "torn",
    "warnings",
  ]);
  assert.deepEqual(ck.primary_metric, PM);
  const model = ck.files.find((f: { path: string }) => f.path === "model.pth");
  assert.equal(model.size, WEIGHTS.length);
  assert.match(model.hash, /^[0-9a-f]{64}$/);
  const c = JSON.parse((await run(["show", F.a.checkpoints[0]!, "--json"])).stdout);
  assert.equal(c.experiment, F.a.id);
  assert.equal(c.step, 0);
  assert.deepEqual(c.metrics, { loss: 0.5, accuracy: 0.6 });
  assert.deepEqual(c.files.map((f: { path: string }) => f.path).sort(), [
    "model.pth",
    "sub/opt.pt",
  ]);
});

// ---- diff ----------------------------------------------------------------------------------------

Deno.test("rep diff of two experiments shows only differences, with a code diff", async () => {
  const r = await run(["diff", short(F.a), short(F.b)]);
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout;
  assert.match(out, /git\.commit\s+1234567890abcdef\s+fedcba0987654321/);
  assert.match(out, /git\.dirty\s+false\s+true/);
  assert.match(out, /Params\n.*\n\s+lr\s+0\.1\s+0\.01\n\n/);
  assert.doesNotMatch(out, /epochs|arch/);
  assert.match(out, /loss\s+0\.3\s+0\.2/);
  assert.match(out, /python\.version\s+-\s+3\.11\.7/);
  assert.match(out, /torch\s+-\s+2\.1\.0/);
  assert.match(out, /added\s+extra\.txt/);
  assert.match(out, /changed\s+model\.pth/);
  assert.match(out, /removed\s+sub\/opt\.pt/);
  assert.match(
    out,
    /--- a\/train\.py\n\+\+\+ b\/train\.py\n@@ -1,3 \+1,3 @@\n import torch\n-lr = 0\.1\n\+lr = 0\.01\n/,
  );
  assert.match(out, /Binary files a\/data\.bin and b\/data\.bin differ/);
  const noCode = await run(["diff", short(F.a), short(F.b), "--no-code"]);
  assert.doesNotMatch(noCode.stdout, /train\.py/);
});

Deno.test("rep diff of three ids compares the first with each other", async () => {
  const r = await run(["diff", F.a.checkpoints[0]!, F.a.checkpoints[2]!, short(F.c)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /loss\s+0\.5\s+0\.4\s+-/);
  assert.match(r.stdout, /status\s+succeeded\s+succeeded\s+running/);
  assert.match(r.stdout, /jax\s+-\s+-\s+0\.4/);
  assert.match(
    r.stdout,
    /Code \(\w+ → \w+\)\nBinary file a\/data\.bin removed\n--- a\/train\.py\n\+\+\+ b\/train\.py\n@@ -1,3 \+1,3 @@/,
  );
  assert.match(r.stdout, /-lr = 0\.1\n\+lr = 0\.001/);
});

Deno.test("rep diff --json has the documented structure", async () => {
  const r = await run(["diff", short(F.a), short(F.b), F.a.checkpoints[0]!, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(d), [
    "items",
    "experiment",
    "params",
    "metrics",
    "environment",
    "comparisons",
  ]);
  assert.deepEqual(d.items[0], {
    arg: short(F.a),
    experiment: F.a.id,
    checkpoint: F.a.checkpoints[1],
    step: 1,
  });
  assert.deepEqual(d.items[2].checkpoint, F.a.checkpoints[0]);
  assert.deepEqual(d.params, { lr: [0.1, 0.01, 0.1] });
  assert.deepEqual(d.metrics.loss, [0.3, 0.2, 0.5]);
  assert.deepEqual(d.environment.packages.numpy, [null, "1.26.0", null]);
  assert.equal(d.comparisons.length, 2);
  const c1 = d.comparisons[0];
  assert.deepEqual([c1.from, c1.to], [0, 1]);
  assert.deepEqual(c1.files, {
    added: ["extra.txt"],
    removed: ["sub/opt.pt"],
    changed: ["model.pth"],
  });
  const py = c1.code.find((x: { path: string }) => x.path === "train.py");
  assert.equal(py.change, "changed");
  assert.match(py.diff, /^--- a\/train\.py/);
  assert.equal(c1.code.find((x: { path: string }) => x.path === "data.bin").binary, true);
  // Same experiment: same code.
  assert.deepEqual(d.comparisons[1].code, []);
  assert.deepEqual(d.comparisons[1].files.changed, ["model.pth", "sub/opt.pt"]);
});

Deno.test("rep diff needs two ids", async () => {
  const r = await run(["diff", short(F.a)]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /at least two ids/);
});

// ---- checkout ------------------------------------------------------------------------------------

async function readTree(dir: string, prefix = ""): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const e of Deno.readDir(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) Object.assign(out, await readTree(dir, rel));
    else out[rel] = createHash("sha256").update(await Deno.readFile(join(dir, rel))).digest("hex");
  }
  return out;
}

const sha = (b: string | Uint8Array) => createHash("sha256").update(b).digest("hex");

Deno.test("rep checkout EXPERIMENT writes its code and its best checkpoint's files", async () => {
  const out = join(F.dir, "co-exp");
  const r = await run(["checkout", short(F.a), "-o", out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /best checkpoint .* 4 file\(s\) written/);
  assert.deepEqual(await readTree(out), {
    "train.py": sha("import torch\nlr = 0.1\nprint(lr)\n"),
    "data.bin": sha(new Uint8Array([0, 1, 2])),
    "model.pth": sha(WEIGHTS),
    "sub/opt.pt": sha("o2"),
  });
  // Again: everything is up to date, nothing is written.
  const again = await run(["checkout", short(F.a), "-o", out]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /0 file\(s\) written.*4 already up to date/);
});

Deno.test("rep checkout CHECKPOINT writes that checkpoint over its experiment's code", async () => {
  const out = join(F.dir, "co-ck");
  const r = await run(["checkout", F.a.checkpoints[2]!.slice(0, 8), "-o", out]);
  assert.equal(r.code, 0, r.stderr);
  const files = await readTree(out);
  assert.equal(files["model.pth"], sha("w3"));
  assert.equal(files["sub/opt.pt"], sha("o3"));
  assert.equal(files["train.py"], sha("import torch\nlr = 0.1\nprint(lr)\n"));
  const only = join(F.dir, "co-ck-nocode");
  assert.equal((await run(["checkout", F.a.checkpoints[2]!, "-o", only, "--no-code"])).code, 0);
  assert.deepEqual(Object.keys(await readTree(only)).sort(), ["model.pth", "sub/opt.pt"]);
});

Deno.test("rep checkout --path writes only the selected files", async () => {
  const out = join(F.dir, "co-path");
  const r = await run(["checkout", short(F.a), "-o", out, "--path", "model.pth", "--path", "sub"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(Object.keys(await readTree(out)).sort(), ["model.pth", "sub/opt.pt"]);
  const missing = await run(["checkout", short(F.a), "-o", out, "--path", "nope.txt"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /No file "nope\.txt"/);
});

Deno.test("rep checkout refuses to overwrite changed files (exit 1, names them) unless --force", async () => {
  const out = join(F.dir, "co-conflict");
  await Deno.mkdir(out);
  await Deno.writeTextFile(join(out, "model.pth"), "my precious edits");
  await Deno.writeTextFile(join(out, "train.py"), "import torch\nlr = 0.1\nprint(lr)\n");
  const r = await run(["checkout", short(F.a), "-o", out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /1 file\(s\) exist with different content:\n\s+model\.pth/);
  assert.match(r.stderr, /--force/);
  assert.equal(await Deno.readTextFile(join(out, "model.pth")), "my precious edits");
  assert.equal(await Deno.stat(join(out, "data.bin")).catch(() => null), null, "nothing written");
  const f = await run(["checkout", short(F.a), "-o", out, "--force"]);
  assert.equal(f.code, 0, f.stderr);
  assert.equal((await readTree(out))["model.pth"], sha(WEIGHTS));
});

Deno.test("rep checkout defaults to the current directory", async () => {
  const out = join(F.dir, "co-cwd");
  await Deno.mkdir(out);
  const r = await run(["checkout", short(F.b)], out);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await Deno.readTextFile(join(out, "extra.txt")), "e");
});

// ---- errors --------------------------------------------------------------------------------------

Deno.test("an unknown id exits 1 with a clear message", async () => {
  for (const cmd of ["show", "checkout", "rm"]) {
    const r = await run([cmd, "f".repeat(31) + "0"]);
    assert.equal(r.code, 1, cmd);
    assert.match(r.stderr, /No experiment or checkpoint matches "f{31}0"/);
  }
  // Not hexadecimal: a name, and no experiment has it.
  const unnamed = await run(["show", "xyz"]);
  assert.equal(unnamed.code, 1);
  assert.match(unnamed.stderr, /No experiment is named "xyz", and it is not an id/);
  const bad = await run(["show", "x y/z"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Invalid id or name "x y\/z": ids are hexadecimal/);
});

Deno.test("an ambiguous prefix exits 1 and lists the candidates", async () => {
  const t = await tempRepo();
  try {
    const one = await makeExperiment(t.repo, { id: "ab" + "1".repeat(30) });
    const two = await makeExperiment(t.repo, { id: "ab" + "2".repeat(30) });
    const r = await rep(["show", "a"], { env: t.env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Ambiguous id "a"/);
    assert.ok(r.stderr.includes(one.id) && r.stderr.includes(two.id), r.stderr);
    assert.equal((await rep(["show", "ab1"], { env: t.env })).code, 0);
  } finally {
    await t.cleanup();
  }
});

Deno.test("a repository of a newer format is refused", async () => {
  const t = await tempRepo();
  try {
    await makeExperiment(t.repo, {});
    await Deno.writeTextFile(join(t.repo, "repository.json"), JSON.stringify({ format: 99 }));
    for (const args of [["ls"], ["show", "0"]]) {
      const r = await rep(args, { env: t.env });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /format 99, and this rep reads up to 2/);
      assert.match(r.stderr, /Upgrade rep/);
    }
  } finally {
    await t.cleanup();
  }
});

Deno.test("checkout of a corrupt pack fails with a clear message", async () => {
  const t = await tempRepo();
  try {
    const e = await makeExperiment(t.repo, { checkpoints: [{ files: { "model.pth": WEIGHTS } }] });
    for await (const p of Deno.readDir(join(t.repo, "packs"))) {
      const path = join(t.repo, "packs", p.name);
      const size = (await Deno.stat(path)).size;
      await Deno.writeFile(path, new Uint8Array(size).fill(0x5a));
    }
    const out = join(t.dir, "out");
    const r = await rep(["checkout", e.id, "-o", out], { env: t.env });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /Corrupt data in packs\/\w+: a chunk of model\.pth does not match its hash/,
    );
    assert.match(r.stderr, /rep verify/);
    assert.doesNotMatch(r.stderr, /unexpected/);
    assert.equal(await Deno.stat(join(out, "model.pth")).catch(() => null), null);
  } finally {
    await t.cleanup();
  }
});

Deno.test("checkout with a deleted tree fails with a clear message", async () => {
  const t = await tempRepo();
  try {
    const e = await makeExperiment(t.repo, { checkpoints: [{ files: { "model.pth": "w" } }] });
    for await (const p of Deno.readDir(join(t.repo, "trees"))) {
      await Deno.remove(join(t.repo, "trees", p.name));
    }
    const r = await rep(["checkout", e.id, "-o", join(t.dir, "out")], { env: t.env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Missing object trees\/[0-9a-f]{64}\.json/);
    const s = await rep(["show", e.checkpoints[0]!], { env: t.env });
    assert.equal(s.code, 1);
    assert.match(s.stderr, /Missing object trees/);
  } finally {
    await t.cleanup();
  }
});

/** Write a hostile tree and a checkpoint record referring to it straight into the store. */
async function hostileCheckpoint(
  repoDir: string,
  experiment: string,
  path: string,
): Promise<string> {
  const chunk = new TextEncoder().encode("evil");
  const h = sha(chunk);
  const pack = "e".repeat(32);
  await Deno.mkdir(join(repoDir, "packs"), { recursive: true });
  await Deno.writeFile(join(repoDir, "packs", pack), chunk);
  const tree = JSON.stringify({
    format: 1,
    files: [{
      path,
      size: 4,
      hash: sha(Buffer.from(h, "hex")),
      mode: 0o644,
      chunks: [[pack, 0, 4, h]],
    }],
  });
  const treeHash = sha(tree);
  await Deno.writeTextFile(join(repoDir, "trees", `${treeHash}.json`), tree);
  const id = "c".repeat(31) + String(path.length % 10);
  await Deno.writeTextFile(
    join(repoDir, "experiments", experiment, "checkpoints", `${id}.json`),
    JSON.stringify({
      format: 1,
      type: "checkpoint",
      id,
      experiment,
      created: new Date().toISOString(),
      step: 99,
      metrics: {},
      primary_metric: null,
      files: { tree: treeHash, files: 1, size: 4 },
      torn: [],
    }),
  );
  return id;
}

Deno.test("checkout refuses hostile trees whose paths leave the target", async () => {
  const t = await tempRepo();
  try {
    const e = await makeExperiment(t.repo, { checkpoints: [{ files: { "ok.txt": "ok" } }] });
    const out = join(t.dir, "deep", "out");
    for (const path of ["../evil", "/tmp/evil-abs", "a/../../evil"]) {
      const ck = await hostileCheckpoint(t.repo, e.id, path);
      // A fresh cache: a finished experiment's listing is cached and never re-read.
      const env = { ...t.env, REP_CACHE_DIR: join(t.dir, `cache-${ck}`) };
      const r = await rep(["checkout", ck, "-o", out], { env });
      assert.equal(r.code, 1, path);
      assert.match(r.stderr, /is not a clean relative path/, r.stderr);
      assert.doesNotMatch(r.stderr, /unexpected/);
      await Deno.remove(join(t.repo, "experiments", e.id, "checkpoints", `${ck}.json`));
    }
    assert.equal(await Deno.stat(join(t.dir, "deep", "evil")).catch(() => null), null);
    assert.equal(await Deno.stat("/tmp/evil-abs").catch(() => null), null);
  } finally {
    await t.cleanup();
  }
});

Deno.test("checkout refuses to write through a symlink that points outside the target", async () => {
  const t = await tempRepo();
  try {
    const e = await makeExperiment(t.repo, { checkpoints: [{ files: { "sub/model.pth": "w" } }] });
    const out = join(t.dir, "out");
    const outside = join(t.dir, "outside");
    await Deno.mkdir(out);
    await Deno.mkdir(outside);
    await Deno.symlink(outside, join(out, "sub"));
    const r = await rep(["checkout", e.id, "-o", out, "--force"], { env: t.env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is a symlink, which could lead outside/);
    assert.deepEqual([...Deno.readDirSync(outside)], []);
  } finally {
    await t.cleanup();
  }
});

Deno.test("checkout into an unwritable target fails cleanly", async () => {
  const t = await tempRepo();
  try {
    const e = await makeExperiment(t.repo, { checkpoints: [{ files: { "model.pth": "w" } }] });
    // Root ignores permission bits, so a folder under a regular file stands for "cannot write".
    const file = join(t.dir, "a-file");
    await Deno.writeTextFile(file, "x");
    for (const out of [join(file, "sub"), file]) {
      const r = await rep(["checkout", e.id, "-o", out], { env: t.env });
      assert.equal(r.code, 1, out);
      assert.match(r.stderr, /Cannot (write into|check out into) .*a-file/);
      assert.doesNotMatch(r.stderr, /unexpected/);
    }
    if (Deno.uid() !== 0) {
      const ro = join(t.dir, "ro");
      await Deno.mkdir(ro, { mode: 0o555 });
      const r = await rep(["checkout", e.id, "-o", ro], { env: t.env });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /Cannot write into/);
      await Deno.chmod(ro, 0o755);
    }
  } finally {
    await t.cleanup();
  }
});

// ---- rm ------------------------------------------------------------------------------------------

Deno.test("rep rm removes experiments by prefix and checkpoints, in one write", async () => {
  const t = await tempRepo();
  try {
    const a = await makeExperiment(t.repo, {
      primaryMetric: PM,
      checkpoints: [{ metrics: { loss: 0.1 } }, { metrics: { loss: 0.5 } }],
    });
    const b = await makeExperiment(t.repo, {});
    const c = await makeExperiment(t.repo, {});
    const r = await rep(["rm", short(b), c.id, a.checkpoints[0]!.slice(0, 9)], { env: t.env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Removed experiment ${short(b)}`));
    assert.match(
      r.stdout,
      new RegExp(
        `Removed checkpoint ${short(a.checkpoints[0]!)} \\(step 0\\) of experiment ${short(a)}`,
      ),
    );
    const changes = [...Deno.readDirSync(join(t.repo, "changes"))];
    assert.equal(changes.length, 1);
    const written = JSON.parse(await Deno.readTextFile(join(t.repo, "changes", changes[0]!.name)));
    assert.equal(written.type, "changes");
    assert.deepEqual(written.entries.map((e: { op: string }) => e.op), ["remove"]);
    assert.deepEqual(written.entries[0].experiments.sort(), [b.id, c.id].sort());
    assert.deepEqual(written.entries[0].checkpoints, [[a.id, a.checkpoints[0]]]);
    assert.equal((await rep(["ls", "-q"], { env: t.env })).stdout, `${a.id}\n`);
    const shown = JSON.parse((await rep(["show", a.id, "--json"], { env: t.env })).stdout);
    assert.deepEqual(shown.checkpoints.map((x: { id: string }) => x.id), [a.checkpoints[1]]);
    assert.equal(shown.best_checkpoint, a.checkpoints[1]);
    const gone = await rep(["show", a.checkpoints[0]!], { env: t.env });
    assert.equal(gone.code, 1);
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep rm with one bad id removes nothing", async () => {
  const t = await tempRepo();
  try {
    const a = await makeExperiment(t.repo, {});
    const r = await rep(["rm", a.id, "f".repeat(32)], { env: t.env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /No experiment or checkpoint matches/);
    assert.equal((await rep(["ls", "-q"], { env: t.env })).stdout, `${a.id}\n`);
    assert.equal(await Deno.stat(join(t.repo, "changes")).catch(() => null), null);
    const none = await rep(["rm"], { env: t.env });
    assert.equal(none.code, 2);
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep rm $(rep ls -q -f ...) removes what the filter selects", async () => {
  const t = await tempRepo();
  try {
    const low = await makeExperiment(t.repo, {
      primaryMetric: PM,
      checkpoints: [{ metrics: { loss: 0.9, accuracy: 0.1 } }],
    });
    const high = await makeExperiment(t.repo, {
      primaryMetric: PM,
      checkpoints: [{ metrics: { loss: 0.1, accuracy: 0.9 } }],
    });
    const ids = (await rep(["ls", "-q", "-f", "accuracy < 0.2"], { env: t.env })).stdout.trim()
      .split("\n");
    assert.deepEqual(ids, [low.id]);
    assert.equal((await rep(["rm", ...ids], { env: t.env })).code, 0);
    assert.equal((await rep(["ls", "-q"], { env: t.env })).stdout, `${high.id}\n`);
  } finally {
    await t.cleanup();
  }
});

Deno.test("every read command prints help with -h", async () => {
  for (const cmd of ["ls", "ps", "show", "diff", "checkout", "rm"]) {
    const r = await run([cmd, "--help"]);
    assert.equal(r.code, 0, cmd);
    assert.match(r.stdout, new RegExp(`^rep ${cmd}: `), cmd);
  }
  assert.match((await run(["rm", "-h"])).stdout, /rep gc/);
  assert.match((await run(["ls", "-h"])).stdout, /any\.loss < 0\.1/);
});
