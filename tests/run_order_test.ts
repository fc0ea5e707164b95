/**
 * `rep run` attribution with real Python and PyTorch: every checkpoint holds exactly the bytes the
 * script saved at that step, whether it saves then logs or logs then saves (with and without a
 * gap), at 256 MiB every half second, with DataLoader workers, with stdout metrics and Hugging
 * Face dicts; checkout writes them back at their project paths and torch.load reads them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertExact,
  ckSha,
  dec,
  PRE,
  PY,
  repRun,
  runRep,
  setup,
  sideShas,
  withExperiment,
} from "./run_helpers.ts";

const TEST_CACHE = await Deno.makeTempDir({ prefix: "rep-run-order-cache-" });
Deno.env.set("REP_CACHE_DIR", TEST_CACHE);
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(TEST_CACHE, { recursive: true });
  } catch {
    // gone
  }
});

const TORCH = PRE + `
import torch
torch.manual_seed(0)
order, gap, steps = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
model = torch.nn.Linear(64, 64)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
os.makedirs(OUT, exist_ok=True)
for step in range(1, steps + 1):
    x = torch.randn(32, 64)
    loss = ((model(x) - x) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    def save_all():
        torch.save(model.state_dict(), os.path.join(OUT, "model.pt"))
        record("model.pt", step)
    if order == "save-then-log":
        save_all()
        line({"step": step, "loss": loss.item()})
    else:
        line({"step": step, "loss": loss.item()})
        time.sleep(gap)
        save_all()
    busy(0.4)
`;

for (
  const [order, gap] of [["save-then-log", 0], ["log-then-save", 0], [
    "log-then-save",
    0.3,
  ]] as const
) {
  Deno.test(`rep run: ${order}${order === "log-then-save" ? ` (${gap} s gap)` : ""}: every checkpoint holds its step's torch weights`, async () => {
    const t = await setup({ "train.py": TORCH });
    try {
      const r = await repRun(t, ["--primary-metric", "loss:minimize"], [
        PY,
        "train.py",
        order,
        String(gap),
        "4",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stderr,
        order === "save-then-log" ? /files saved before its metrics line/ : /files saved after/,
      );
      await withExperiment(t.repo, async (exp) => {
        await assertExact(exp, t.work, [1, 2, 3, 4]);
        assert.equal(exp.checkpoints.length, 4, "no extra final checkpoint");
        // Checkout writes output/model.pt under the target; torch.load reads this step's weights.
        const best = exp.best()!;
        const dir = join(t.dir, "restored");
        const co = await runRep(["checkout", "-R", t.repo, best.id, "-o", dir], {
          cwd: t.work,
          env: t.env,
        });
        assert.equal(co.code, 0, co.stderr);
        const shas = await sideShas(t.work);
        const want = shas.get(best.step!)!.get("output/model.pt")!;
        const got = await new Deno.Command(PY, {
          args: [
            "-c",
            "import torch,sys,hashlib; torch.load(sys.argv[1]); print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())",
            join(dir, "output", "model.pt"),
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.ok(got.success, dec.decode(got.stderr));
        assert.equal(dec.decode(got.stdout).trim(), want);
        assert.ok(await Deno.stat(join(dir, "train.py")), "the code is checked out beside it");
      });
    } finally {
      await t.cleanup();
    }
  });
}

Deno.test("rep run: --order overrides the rule", async () => {
  // Logs an evaluation first, then saves right before each line: the rule reads it by timing;
  // --order says it outright.
  const t = await setup({
    "train.py": PRE + `
line({"step": 0, "loss": 9.0})
for step in range(1, 4):
    busy(0.7)
    save("w.bin", b"w%d" % step * 1000, step)
    line({"step": step, "loss": 1.0 / step})
`,
  });
  try {
    for (const opts of [[], ["--order", "save-then-log"]]) {
      const repo = join(t.dir, `repo-${opts.length}`);
      await Deno.remove(join(t.work, "shas.jsonl")).catch(() => {});
      await Deno.remove(join(t.work, "output"), { recursive: true }).catch(() => {});
      const r = await repRun({ ...t, repo }, opts, [PY, "train.py"]);
      assert.equal(r.code, 0, r.stderr);
      await withExperiment(repo, async (exp) => {
        const [first, ...rest] = exp.checkpoints;
        assert.equal(first!.step, 0);
        assert.equal(first!.record.files, null, "the evaluation line has no files");
        await assertExact({ checkpoints: rest } as never, t.work, [1, 2, 3]);
      });
    }
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: a 256 MiB file saved every 0.5 s is kept exactly at every step", async () => {
  const t = await setup({
    "train.py": PRE + `
import random
N = 256 * 1024 * 1024
block = bytearray(random.Random(1).randbytes(1 << 20))
for step in range(1, 7):
    block[0:8] = step.to_bytes(8, "little")
    with open(os.path.join(OUT, "model.bin"), "wb") as f:
        for i in range(256):
            block[8:16] = i.to_bytes(8, "little")
            f.write(block)
    record("model.bin", step)
    line({"step": step, "loss": 1.0 / step})
    busy(0.3)
`,
  });
  try {
    await Deno.mkdir(join(t.work, "output"));
    const r = await repRun(t, [], [PY, "train.py"], { timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
    await withExperiment(t.repo, async (exp) => {
      await assertExact(exp, t.work, [1, 2, 3, 4, 5, 6]);
    });
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: a torch DataLoader with workers, frozen and thawed, trains and checkpoints exactly", async () => {
  const t = await setup({
    "train.py": PRE + `
import torch
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
ds = TensorDataset(torch.randn(512, 16), torch.randn(512, 1))
dl = DataLoader(ds, batch_size=32, num_workers=2, persistent_workers=True)
model = torch.nn.Linear(16, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
os.makedirs(OUT, exist_ok=True)
for step in range(1, 4):
    for x, y in dl:
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, os.path.join(OUT, "ck.pt"))
    record("ck.pt", step)
    line({"step": step, "loss": loss.item()})
`,
  });
  try {
    const r = await repRun(t, [], [PY, "train.py"]);
    assert.equal(r.code, 0, r.stderr);
    await withExperiment(t.repo, (exp) => assertExact(exp, t.work, [1, 2, 3]));
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: --stdout-metrics lines and Hugging Face dicts are paired with their files by the same rule", async () => {
  const t = await setup({
    "train.py": PRE + `
mode = sys.argv[1]
for step in range(1, 4):
    save("adapter.bin", b"a%d" % step * 5000, step)
    if mode == "guild":
        print("step: %d" % step)
        print("loss: %s" % (1.0 / step))
        print("acc: 0.%d" % step)
    else:
        print({'loss': 1.0 / step, 'learning_rate': 5e-05, 'epoch': float(step)})
    busy(0.4)
`,
  });
  try {
    for (const mode of ["guild", "hf"]) {
      const repo = join(t.dir, `repo-${mode}`);
      await Deno.remove(join(t.work, "shas.jsonl")).catch(() => {});
      const r = await repRun({ ...t, repo }, ["--stdout-metrics"], [PY, "train.py", mode]);
      assert.equal(r.code, 0, r.stderr);
      await withExperiment(repo, async (exp) => {
        const metrics = exp.checkpoints.map((c) => c.metrics);
        if (mode === "guild") {
          assert.deepEqual(metrics, [1, 2, 3].map((s) => ({ loss: 1 / s, acc: s / 10 })));
          await assertExact(exp, t.work, [1, 2, 3]);
        } else {
          assert.deepEqual(
            metrics,
            [1, 2, 3].map((s) => ({ loss: 1 / s, learning_rate: 5e-05, epoch: s })),
          );
          // HF dicts carry no step: numbered 0, 1, 2 for the saves of steps 1, 2, 3.
          const shas = await sideShas(t.work);
          for (const [i, ck] of exp.checkpoints.entries()) {
            assert.equal(ck.step, i);
            assert.equal(
              await ckSha(ck, "output/adapter.bin"),
              shas.get(i + 1)!.get("output/adapter.bin"),
            );
          }
        }
      });
    }
  } finally {
    await t.cleanup();
  }
});
