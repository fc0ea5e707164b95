/**
 * `rep run` when things go wrong: Ctrl-C during torch.save, two runs on one output folder,
 * leftovers of earlier runs, rep itself killed with -9 while the command prints, a run after a
 * run, and bad folders.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertExact,
  ckSha,
  dec,
  fileNames,
  PRE,
  PY,
  repRun,
  runRep,
  setup,
  sideShas,
  waitForFile,
  withExperiment,
} from "./run_helpers.ts";

const TEST_CACHE = await Deno.makeTempDir({ prefix: "rep-run-faults-cache-" });
Deno.env.set("REP_CACHE_DIR", TEST_CACHE);
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(TEST_CACHE, { recursive: true });
  } catch {
    // gone
  }
});

Deno.test("rep run: Ctrl-C during torch.save never stores the partial file as a version", async () => {
  const t = await setup({
    "train.py": PRE + `
import torch
torch.manual_seed(0)
m1 = {"w%d" % i: torch.randn(64, 64) for i in range(300)}
torch.save(m1, os.path.join(OUT, "model.pt"))
record("model.pt", 1)
line({"step": 1, "loss": 0.5})
busy(0.3)
class Slow:
    def __init__(self, f):
        self.f = f
    def write(self, b):
        time.sleep(0.003)
        return self.f.write(b)
    def flush(self):
        self.f.flush()
m2 = {"w%d" % i: torch.randn(64, 64) for i in range(300)}
open("saving", "w").write("1")
with open(os.path.join(OUT, "model.pt"), "wb") as f:
    torch.save(m2, Slow(f))
line({"step": 2, "loss": 0.25})
`,
  });
  try {
    const r = await repRun(t, [], [PY, "train.py"], {
      during: async (child) => {
        await waitForFile(join(t.work, "saving"));
        await new Promise((res) => setTimeout(res, 150));
        child.kill("SIGINT");
      },
    });
    // Python exits by SIGINT (130), or 1 when torch's own cleanup fails after the interrupt.
    assert.ok([1, 130].includes(r.code), r.stderr);
    assert.match(r.stderr, /KeyboardInterrupt/);
    assert.match(r.stderr, /output\/model\.pt.*interrupted/);
    const partial = await Deno.readFile(join(t.work, "output", "model.pt"));
    await withExperiment(t.repo, async (exp) => {
      assert.equal(exp.status, "stopped");
      // Only step 1's checkpoint, exact; the interrupted save made no version of its own.
      await assertExact(exp, t.work, [1]);
      assert.equal(exp.checkpoints.length, 1, "no checkpoint of the partial file");
      const sha = (await sideShas(t.work)).get(1)!.get("output/model.pt")!;
      const { createHash } = await import("node:crypto");
      assert.notEqual(createHash("sha256").update(partial).digest("hex"), sha);
      assert.equal(await ckSha(exp.latest()!, "output/model.pt"), sha);
    });
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: a second run on an output folder a live run uses is refused", async () => {
  const t = await setup({
    "train.py": PRE + `
save("a.bin", b"A", 1)
line({"step": 1, "loss": 1.0})
open("started", "w").write("1")
while not os.path.exists("stop"):
    time.sleep(0.05)
`,
  });
  try {
    let second: Awaited<ReturnType<typeof repRun>> | null = null;
    const first = await repRun(t, [], [PY, "train.py"], {
      during: async () => {
        await waitForFile(join(t.work, "started"));
        second = await repRun(t, [], [PY, "-c", "print('never runs')"]);
        await Deno.writeTextFile(join(t.work, "stop"), "1");
      },
    });
    assert.equal(first.code, 0, first.stderr);
    assert.ok(second);
    const s = second as { code: number; stdout: string; stderr: string };
    assert.equal(s.code, 2, s.stderr);
    const id = /experiment ([0-9a-f]{7})/.exec(first.stderr)![1]!;
    assert.match(s.stderr, new RegExp(`Output folder output is in use by experiment ${id}`));
    assert.match(s.stderr, /--output/);
    assert.doesNotMatch(s.stdout, /never runs/);
    await withExperiment(t.repo, (exp) => assert.equal(exp.checkpoints.length, 1));
    // Once the first run is over, the folder is free again.
    const third = await repRun(t, [], [PY, "-c", "print('runs')"]);
    assert.equal(third.code, 0, third.stderr);
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: leftovers of earlier runs are never attributed; a run after a run sees only its own files", async () => {
  const t = await setup({
    "train.py": PRE + `
mode = sys.argv[1]
if mode == "first":
    save("model.bin", b"first run", 1)
    line({"step": 1, "loss": 1.0})
else:
    line({"step": 1, "loss": 0.5})
`,
  });
  try {
    await Deno.mkdir(join(t.work, "output"));
    await Deno.writeTextFile(join(t.work, "output", "stale.bin"), "from a run rep never saw");
    await Deno.writeTextFile(join(t.work, "output", "metrics.jsonl"), '{"step": 9, "loss": 9}\n');
    const argparse = ["-c", "import argparse; argparse.ArgumentParser().parse_args()", "--bad"];
    for (const [i, cmd] of [["-c", "import sys; sys.exit(3)"], argparse].entries()) {
      const repo = join(t.dir, `repo-${i}`);
      const r = await repRun({ ...t, repo }, [], [PY, ...cmd]);
      assert.notEqual(r.code, 0);
      await withExperiment(repo, (exp) => assert.equal(exp.checkpoints.length, 0, r.stderr));
    }
    const r1 = await repRun(t, [], [PY, "train.py", "first"]);
    assert.equal(r1.code, 0, r1.stderr);
    const r2 = await repRun(t, [], [PY, "train.py", "second"]);
    assert.equal(r2.code, 0, r2.stderr);
    const { openRepository } = await import("../mod.ts");
    const repo = await openRepository(t.repo);
    try {
      const [second, first] = await repo.experiments.list();
      assert.deepEqual(first!.checkpoints.map((c) => [c.step, c.metrics.loss]), [[1, 1]]);
      assert.deepEqual(await fileNames(first!.checkpoints[0]!), ["output/model.bin"]);
      assert.deepEqual(second!.checkpoints.map((c) => [c.step, c.metrics.loss]), [[1, 0.5]]);
      assert.equal(
        second!.checkpoints[0]!.record.files,
        null,
        "the first run's model is not the second's",
      );
    } finally {
      await repo.close();
    }
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: rep killed with -9 never harms the command; its whole log is recovered", async () => {
  const N = 120;
  const t = await setup({
    // Half of the output comes while rep runs, the other half only once rep is gone.
    "train.py": `import os, time, sys
for i in range(${N}):
    if i == ${N / 2}:
        open("printing", "w").write("1")
        t0 = time.time()
        while not os.path.exists("rep-killed") and time.time() - t0 < 60:
            time.sleep(0.01)
    print("line %d" % i, flush=True)
    print("err %d" % i, file=sys.stderr, flush=True)
    time.sleep(0.025)
open("done", "w").write("1")
`,
  });
  try {
    let errSoFar = "";
    const r = await repRun(t, [], [PY, "train.py"], {
      during: async (child) => {
        await waitForFile(join(t.work, "printing"), 60_000);
        child.kill("SIGKILL");
        await child.status;
        await Deno.writeTextFile(join(t.work, "rep-killed"), "1");
      },
    });
    errSoFar = r.stderr;
    assert.equal(r.code, 137);
    // rep died before the second half was printed.
    assert.doesNotMatch(r.stdout, new RegExp(`^line ${N / 2}$`, "m"));
    await waitForFile(join(t.work, "done"), 20_000);
    const id = /experiment ([0-9a-f]{7})/.exec(errSoFar)![1]!;
    const logs = await runRep(["logs", "-R", t.repo, id], { cwd: t.work, env: t.env });
    assert.equal(logs.code, 0, logs.stderr);
    for (let i = 0; i < N; i++) {
      assert.match(logs.stdout, new RegExp(`^line ${i}$`, "m"), `line ${i} kept`);
      assert.match(logs.stdout, new RegExp(`^err ${i}$`, "m"), `err ${i} kept`);
    }
    assert.equal(logs.stdout.split("\n").filter(Boolean).length, 2 * N, "nothing twice");
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: logs reach the repository while the command runs; rep logs -f follows", async () => {
  const t = await setup({
    "train.py": `import time, os
print("hello early", flush=True)
while not os.path.exists("seen"):
    time.sleep(0.05)
print("bye", flush=True)
`,
  });
  try {
    let followed = "";
    const r = await repRun(t, [], [PY, "train.py"], {
      during: async () => {
        const end = Date.now() + 20_000;
        let id = "";
        while (Date.now() < end && !id) {
          const ls = await runRep(["ls", "-q", "-R", t.repo], { cwd: t.work, env: t.env });
          id = ls.stdout.trim().split("\n")[0] ?? "";
          await new Promise((res) => setTimeout(res, 200));
        }
        let log = "";
        while (Date.now() < end && !log.includes("hello early")) {
          log = (await runRep(["logs", "-R", t.repo, id], { cwd: t.work, env: t.env })).stdout;
        }
        assert.match(log, /hello early/, "output stored within seconds, during the run");
        const follow = runRep(["logs", "-f", "-R", t.repo, id], { cwd: t.work, env: t.env });
        await new Promise((res) => setTimeout(res, 500));
        await Deno.writeTextFile(join(t.work, "seen"), "1");
        followed = (await follow).stdout;
      },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(followed, "hello early\nbye\n");
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: bad folders and contradicting params are refused with the flag and the fix", async () => {
  const t = await setup({ "train.py": "print('x')\n" });
  try {
    const o = await repRun(t, ["-o", "train.py/out"], [PY, "train.py"]);
    assert.equal(o.code, 1, o.stderr);
    assert.match(o.stderr, /Cannot use .*train\.py\/out as the output folder/);
    assert.match(o.stderr, /--output DIR/);
    const p = await repRun(t, ["-p", "lr=0.5"], [PY, "train.py", "--lr", "0.1"]);
    assert.equal(p.code, 2, p.stderr);
    assert.match(p.stderr, /-p lr=0\.5 contradicts the command's own argument/);
    const rr = await runRep(["run", "-R", join(t.work, "train.py", "repo"), "--", PY, "train.py"], {
      cwd: t.work,
      env: t.env,
    });
    assert.notEqual(rr.code, 0);
    assert.match(rr.stderr, /-R|--repository|REP_REPOSITORY/);
    assert.doesNotMatch(dec.decode(new TextEncoder().encode(rr.stderr)), /os error 20\)$/m);
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: checkpoint files keep their project path; checkout says when one replaces a code file", async () => {
  const t = await setup({
    "train.py": PRE + `
save("config.yaml", b"lr: 0.5 (trained)\\n", 1)
line({"step": 1, "loss": 1.0})
`,
  });
  try {
    await Deno.mkdir(join(t.work, "output"));
    await Deno.writeTextFile(join(t.work, "output", "config.yaml"), "lr: 0.1 (code)\n");
    const r = await repRun(t, [], [PY, "train.py"]);
    assert.equal(r.code, 0, r.stderr);
    await withExperiment(t.repo, async (exp) => {
      await assertExact(exp, t.work, [1]);
    });
    // The same path in code and checkpoint (an -o . run): the checkpoint wins and checkout says so.
    const t2 = await setup({
      "train.py": PRE + `
save("config.yaml", b"trained", 1)
line({"step": 1, "loss": 1.0})
`,
      "config.yaml": "code",
    });
    try {
      const r2 = await repRun(t2, ["-o", "."], [PY, "train.py"]);
      assert.equal(r2.code, 0, r2.stderr);
      const id = /experiment ([0-9a-f]{7})/.exec(r2.stderr)![1]!;
      const dir = join(t2.dir, "co");
      const co = await runRep(["checkout", "-R", t2.repo, id, "-o", dir], {
        cwd: t2.work,
        env: t2.env,
      });
      assert.equal(co.code, 0, co.stderr);
      assert.match(co.stderr, /replace the code file\(s\) at the same path: config\.yaml/);
      assert.equal(await Deno.readTextFile(join(dir, "config.yaml")), "trained");
    } finally {
      await t2.cleanup();
    }
  } finally {
    await t.cleanup();
  }
});
