/**
 * `rep run -- python train.py` where train.py calls `rep.init()` and `experiment.checkpoint()`:
 * the script joins the experiment rep run records (through its control socket, `REP_CONTROL`),
 * and each `checkpoint()` is an explicit checkpoint of exactly the files and metrics it names.
 * Real Python, real torch, real files; the bytes of every checkpoint's files are checked.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT } from "./helpers.ts";
import { ckSha, fileNames, repRun, setup, sideShas, withExperiment } from "./run_helpers.ts";

/**
 * A small torch training loop recording itself with the Python package. It also writes a metrics
 * line and a scratch file into rep run's output folder every epoch: rep run must make no
 * checkpoint of its own from them once the script has attached.
 */
const TRAIN = `
import hashlib, json, os, sys
import torch
import rep

torch.manual_seed(0)
model = torch.nn.Linear(16, 4)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(64, 16), torch.randn(64, 4)
experiment = rep.init(path=".", params={"lr": 0.1})
print("EXPERIMENT", experiment.id, flush=True)
os.makedirs("ckpt", exist_ok=True)
out, metrics_file = os.environ["REP_OUTPUT_DIR"], os.environ["REP_METRICS_FILE"]
for epoch in range(4):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    torch.save(model.state_dict(), "ckpt/model.pth")
    with open("ckpt/epoch.txt", "w") as f:
        f.write("epoch %d" % epoch)
    # Not named by checkpoint(): never part of a checkpoint.
    with open(os.path.join(out, "scratch.bin"), "wb") as f:
        f.write(os.urandom(4096))
    with open(metrics_file, "a") as f:
        f.write(json.dumps({"step": epoch, "noise": epoch}) + "\\n")
    with open("shas.jsonl", "a") as f:
        for name in ("ckpt/model.pth", "ckpt/epoch.txt"):
            sha = hashlib.sha256(open(name, "rb").read()).hexdigest()
            f.write(json.dumps({"step": epoch * 10, "file": name, "sha": sha}) + "\\n")
    paths = "ckpt" if epoch % 2 else ["ckpt/model.pth", "ckpt/epoch.txt"]
    ck = experiment.checkpoint(path=paths, step=epoch * 10,
                               metrics={"loss": loss.item(), "epoch": epoch},
                               primary_metric=("loss", "minimize"))
    print("CHECKPOINT", epoch * 10, ck.id, repr(loss.item()), flush=True)
experiment.stop()
`;

Deno.test("rep run + rep.init(): one experiment, each checkpoint() exactly its files, step and metrics", async () => {
  const t = await setup({ "train.py": TRAIN });
  try {
    const env = { PYTHONPATH: join(ROOT, "python"), REP_BIN: "/nonexistent/rep" };
    const r = await repRun(t, ["-p", "lr=0.1"], ["python3", "train.py"], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /records its own checkpoints/);
    const said = r.stdout.split("\n").filter(Boolean).map((l) => l.split(" "));
    const expId = said.find((l) => l[0] === "EXPERIMENT")![1]!;
    const made = said.filter((l) => l[0] === "CHECKPOINT").map((l) => ({
      step: Number(l[1]),
      id: l[2]!,
      loss: Number(l[3]),
    }));
    assert.equal(made.length, 4);
    const shas = await sideShas(t.work);
    await withExperiment(t.repo, async (exp) => {
      // The script joined rep run's experiment: the one experiment, with rep run's params.
      assert.equal(exp.id, expId);
      assert.equal(exp.record.params.lr, 0.1);
      assert.deepEqual(exp.checkpoints.map((c) => c.id), made.map((m) => m.id));
      for (const [i, ck] of exp.checkpoints.entries()) {
        assert.equal(ck.step, made[i]!.step);
        assert.deepEqual(ck.metrics, { loss: made[i]!.loss, epoch: i });
        assert.deepEqual(ck.record.primary_metric, { name: "loss", goal: "minimize" });
        assert.deepEqual(ck.record.torn, []);
        assert.deepEqual(ck.record.warnings, []);
        // Exactly the files named, at their project paths, with the bytes of their epoch.
        assert.deepEqual(await fileNames(ck), ["ckpt/epoch.txt", "ckpt/model.pth"]);
        for (const path of ["ckpt/epoch.txt", "ckpt/model.pth"]) {
          assert.equal(await ckSha(ck, path), shas.get(ck.step!)!.get(path), `${ck.step} ${path}`);
        }
      }
      const best = made.reduce((a, b) => b.loss < a.loss ? b : a);
      assert.equal(exp.best()?.id, best.id);
    });
    // The other process: torch loads the best checkpoint's weights through the Python reader.
    const load = new Deno.Command("python3", {
      args: [
        "-c",
        `import torch, rep
e = rep.Repository(${JSON.stringify(t.repo)}, cache=False).experiments.get(${
          JSON.stringify(expId.slice(0, 7))
        })
sd = torch.load(e.best().open("ckpt/model.pth"))
print(sorted(sd), tuple(sd["weight"].shape))`,
      ],
      cwd: t.dir,
      env: { PYTHONPATH: join(ROOT, "python") },
      stdout: "piped",
      stderr: "piped",
    });
    const o = await load.output();
    const dec = new TextDecoder();
    assert.ok(o.success, dec.decode(o.stderr));
    assert.equal(dec.decode(o.stdout).trim(), "['bias', 'weight'] (4, 16)");
  } finally {
    await t.cleanup();
  }
});

/**
 * The same with the TypeScript library: a Deno script under `rep run` calling `init()` and
 * `checkpoint()` joins rep run's experiment (before, it started a second experiment of its own).
 */
const TRAIN_TS = `
import { createHash } from "node:crypto";
import { init } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
const exp = await init({ path: ".", params: { lr: 0.5 } });
console.log("EXPERIMENT", exp.id, exp.status);
await Deno.mkdir("ckpt", { recursive: true });
for (let epoch = 0; epoch < 3; epoch++) {
  const weights = new Uint8Array(200_000 + epoch).map((_, i) => (i * 31 + epoch * 7 + (i >> 9)) & 255);
  await Deno.writeFile("ckpt/w.bin", weights);
  const sha = createHash("sha256").update(weights).digest("hex");
  await Deno.writeTextFile("shas.jsonl", JSON.stringify({ step: epoch, file: "ckpt/w.bin", sha }) + "\\n", { append: true });
  const ck = await exp.checkpoint({ path: "ckpt/w.bin", metrics: { loss: 1 / (epoch + 1) } });
  console.log("CHECKPOINT", ck.step, ck.id);
}
await exp.stop();
console.log("STOPPED", exp.status);
`;

Deno.test("rep run + the TypeScript init(): one experiment, each checkpoint() exactly its file and step", async () => {
  const t = await setup({ "train.ts": TRAIN_TS });
  try {
    const r = await repRun(t, ["-p", "lr=0.1"], [
      Deno.execPath(),
      "run",
      "--quiet",
      "--allow-all",
      "train.ts",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /records its own checkpoints/);
    const said = r.stdout.split("\n").filter(Boolean).map((l) => l.split(" "));
    const [, expId, status] = said.find((l) => l[0] === "EXPERIMENT")!;
    assert.equal(status, "running");
    const made = said.filter((l) => l[0] === "CHECKPOINT");
    assert.deepEqual(made.map((l) => Number(l[1])), [0, 1, 2]); // the step after the last one
    // stop() ends the session; the experiment ends with the command (rep run records that).
    assert.deepEqual(said.find((l) => l[0] === "STOPPED"), ["STOPPED", "running"]);
    const shas = await sideShas(t.work);
    await withExperiment(t.repo, async (exp) => {
      assert.equal(exp.id, expId);
      assert.equal(exp.record.params.lr, 0.1); // rep run's params, not the script's
      assert.equal(exp.status, "succeeded");
      assert.deepEqual(exp.checkpoints.map((c) => c.id), made.map((l) => l[2]));
      for (const ck of exp.checkpoints) {
        assert.deepEqual(await fileNames(ck), ["ckpt/w.bin"]);
        assert.equal(await ckSha(ck, "ckpt/w.bin"), shas.get(ck.step!)!.get("ckpt/w.bin"));
        assert.deepEqual(ck.metrics, { loss: 1 / (ck.step! + 1) });
      }
    });
  } finally {
    await t.cleanup();
  }
});
