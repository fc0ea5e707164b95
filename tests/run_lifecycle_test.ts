/**
 * Names, resume after preemption and retention through `rep run`, end to end with a real PyTorch
 * script: a job killed after its third checkpoint and requeued with the same line continues from
 * the exact bytes of step 3; a succeeded name is not run again; two resumes of one name at once
 * run it once; `--keep-best 2 --keep-last 1` leaves exactly those checkpoints and `rep gc`
 * reclaims the rest without harming a reader of a removed one.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { openRepository } from "../mod.ts";
import { rep } from "./helpers.ts";
import {
  assertExact,
  ckSha,
  PRE,
  PY,
  type Ran,
  repRun,
  setup,
  sideShas,
  waitForFile,
} from "./run_helpers.ts";

/**
 * A training script: `train.py N [--losses a,b,…]`. Each step saves the weights of that step
 * (a deterministic function of the step) to output/model.pt, then writes its metrics line, then
 * trains for a second. On a
 * resume (REP_RESUME_STEP) it first checks that output/model.pt holds exactly the weights of that
 * step. The first time it runs with a `die` file present it is killed (SIGKILL, exit 137) right
 * after its third line, in the middle of writing step 4; with `hang` it waits to be killed there.
 * A resumed run with a `hold` file waits for a `go` file before it trains.
 */
const TRAIN = PRE + `import signal, torch
N = int(sys.argv[1])
LOSSES = [float(x) for x in sys.argv[sys.argv.index("--losses") + 1].split(",")] \\
    if "--losses" in sys.argv else None
def weights(step):
    g = torch.Generator().manual_seed(step)
    return {"w": torch.randn(256, 256, generator=g), "b": torch.randn(256, generator=g)}
P = os.path.join(OUT, "model.pt")
start = 0
info = {"pid": os.getpid(), "experiment": os.environ["REP_EXPERIMENT_ID"],
        "resumed_from": os.environ.get("REP_RESUMED_FROM"),
        "resume_step": os.environ.get("REP_RESUME_STEP")}
if info["resume_step"]:
    start = int(info["resume_step"])
    with open(P, "rb") as f:
        info["found_sha"] = hashlib.sha256(f.read()).hexdigest()
    state = torch.load(P)
    info["weights_match"] = all(torch.equal(state[k], v) for k, v in weights(start).items())
    info["others"] = sorted(os.listdir(OUT))
with open("runs.jsonl", "a") as f:
    f.write(json.dumps(info) + "\\n")
if info["resume_step"] and not info["weights_match"]:
    sys.exit(3)
if info["resume_step"] and os.path.exists("hold"):
    while not os.path.exists("go"):
        time.sleep(0.05)
for step in range(start + 1, N + 1):
    torch.save(weights(step), P)
    record("model.pt", step)
    line({"step": step, "loss": LOSSES[step - 1] if LOSSES else 1.0 / step})
    print(f"trained step {step}", flush=True)
    time.sleep(1)  # the next step's training
    if step == 3 and (os.path.exists("die") or os.path.exists("hang")):
        hang = os.path.exists("hang")
        os.remove("die" if not hang else "hang")
        with open(os.path.join(OUT, "scratch.tmp"), "w") as f:
            f.write("written after the last checkpoint")
        with open(P, "wb") as f:
            f.write(b"half of step 4")
            f.flush()
            if hang:
                open("hanging", "w").close()
                time.sleep(600)
            os.kill(os.getpid(), signal.SIGKILL)
`;

interface Run {
  pid: number;
  experiment: string;
  resumed_from: string | null;
  resume_step: string | null;
  found_sha?: string;
  weights_match?: boolean;
  others?: string[];
}

async function runs(work: string): Promise<Run[]> {
  const text = await Deno.readTextFile(join(work, "runs.jsonl")).catch(() => "");
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Run);
}

interface ShowJson {
  id: string;
  name: string | null;
  status: string;
  attempts: {
    attempt: number;
    status: string;
    exit_code: number | null;
    resumed_from: string | null;
    resume_step: number | null;
  }[];
  checkpoints: { id: string; step: number | null; attempt: number }[];
}

async function show(t: { env: Record<string, string> }, id: string): Promise<ShowJson> {
  const r = await rep(["show", id, "--json"], { env: t.env });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as ShowJson;
}

const LINE = ["--name", "job-7", "--resume", "--primary-metric", "loss:minimize"];

/** After a resume: one succeeded experiment holding steps 1..6, attempt 2 from step 3's bytes. */
async function assertContinued(
  t: Awaited<ReturnType<typeof setup>>,
  firstExit: number | null,
): Promise<void> {
  const [first, second] = await runs(t.work);
  assert.ok(first && second, "the script ran twice");
  assert.equal(second.experiment, first.experiment);
  const s = await show(t, "job-7");
  assert.equal(s.id, first.experiment);
  assert.equal(s.name, "job-7");
  assert.equal(s.status, "succeeded");
  assert.deepEqual(s.attempts.map((a) => [a.attempt, a.status]), [[
    1,
    firstExit === null ? "crashed" : "failed",
  ], [2, "succeeded"]]);
  if (firstExit !== null) assert.equal(s.attempts[0]!.exit_code, firstExit);
  const step3 = s.checkpoints.find((c) => c.step === 3)!;
  assert.equal(second.resumed_from, step3.id);
  assert.equal(second.resume_step, "3");
  assert.equal(s.attempts[1]!.resumed_from, step3.id);
  assert.equal(s.attempts[1]!.resume_step, 3);
  // The restored file is exactly the bytes the script saved at step 3, and nothing else is there.
  assert.equal(second.found_sha, (await sideShas(t.work)).get(3)!.get("output/model.pt"));
  assert.equal(second.weights_match, true);
  // rep's lock file aside, the output folder holds the checkpoint's file and the metrics file.
  assert.deepEqual(second.others!.filter((f) => !f.startsWith(".rep-")), [
    "metrics.jsonl",
    "model.pt",
  ]);
  const stepped = s.checkpoints.filter((c) => c.step !== null);
  assert.deepEqual(stepped.map((c) => [c.step, c.attempt]), [
    [1, 1],
    [2, 1],
    [3, 1],
    [4, 2],
    [5, 2],
    [6, 2],
  ]);
  const repo = await openRepository(t.repo);
  try {
    const exp = await repo.experiments.get("job-7");
    assert.equal(exp.id, first.experiment);
    const ex = { ...exp, checkpoints: exp.checkpoints.filter((c) => c.step !== null) };
    await assertExact(ex as typeof exp, t.work, [1, 2, 3, 4, 5, 6]);
  } finally {
    await repo.close();
  }
  // One row in rep ls, with its name.
  const ls = await rep(["ls", "--json"], { env: t.env });
  assert.equal(ls.code, 0, ls.stderr);
  const rows = JSON.parse(ls.stdout) as { id: string; name: string; attempt: number }[];
  assert.deepEqual(rows.map((r) => [r.id, r.name, r.attempt]), [[first.experiment, "job-7", 2]]);
  const text = await rep(["show", "job-7"], { env: { ...t.env, NO_COLOR: "1" } });
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /job-7/);
  assert.match(text.stdout, /ATTEMPT/);
}

Deno.test("rep run --name --resume: a job killed (137) after step 3 and requeued with the same line continues from step 3's bytes", async () => {
  const t = await setup({ "train.py": TRAIN });
  try {
    await Deno.writeTextFile(join(t.work, "die"), "");
    const killed = await repRun(t, LINE, [PY, "train.py", "6"]);
    assert.equal(killed.code, 137, killed.stderr);
    assert.match(killed.stderr, /job-7/);

    const again = await repRun(t, LINE, [PY, "train.py", "6"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(
      again.stderr,
      /resuming experiment \w{7} \(job-7\) as attempt 2 from checkpoint \w{7} \(step 3\)/,
    );
    await assertContinued(t, 137);
    // What the killed attempt left after its last checkpoint was moved aside, not deleted.
    assert.match(again.stderr, /moved to .*resume-backup/);

    // rep logs prints both attempts' output in turn.
    const logs = await rep(["logs", "job-7"], { env: t.env });
    assert.equal(logs.code, 0, logs.stderr);
    assert.deepEqual(
      logs.stdout.split("\n").filter((l) => l.startsWith("trained")),
      [1, 2, 3, 4, 5, 6].map((n) => `trained step ${n}`),
    );
    assert.match(logs.stderr, /rep: attempt 2/);

    // Succeeded: the same line exits 0 without running the command.
    const done = await repRun(t, LINE, [PY, "train.py", "6"]);
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stderr, /already succeeded/);
    assert.equal((await runs(t.work)).length, 2, "the command did not run again");
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run --name --resume: the whole job killed with SIGKILL (rep too) resumes from the last stored checkpoint", async () => {
  const t = await setup({ "train.py": TRAIN });
  try {
    await Deno.writeTextFile(join(t.work, "hang"), "");
    const killed = await repRun(t, LINE, [PY, "train.py", "6"], {
      during: async (child) => {
        await waitForFile(join(t.work, "hanging"), 90_000);
        // Give rep time to store step 3 (it has the line), then kill the job as a scheduler does.
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline) {
          const s = await rep(["show", "job-7", "--json"], { env: t.env });
          if (s.code === 0 && (JSON.parse(s.stdout) as ShowJson).checkpoints.length >= 3) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        const [first] = await runs(t.work);
        child.kill("SIGKILL");
        Deno.kill(first!.pid, "SIGKILL");
      },
    });
    assert.equal(killed.code, 137);
    const again = await repRun(t, LINE, [PY, "train.py", "6"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /as attempt 2 from checkpoint \w{7} \(step 3\)/);
    await assertContinued(t, null);
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run --resume: two resumes of one name at once run it once; the loser exits 75", async () => {
  const t = await setup({ "train.py": TRAIN });
  try {
    // Two machines: two project folders, one repository.
    const other = join(t.dir, "work2");
    await Deno.mkdir(other);
    await Deno.writeTextFile(join(other, "train.py"), TRAIN);
    await Deno.writeTextFile(join(t.work, "die"), "");
    const killed = await repRun(t, LINE, [PY, "train.py", "5"]);
    assert.equal(killed.code, 137, killed.stderr);
    // The winner holds before training until the loser has ended, so they surely overlap.
    for (const dir of [t.work, other]) await Deno.writeTextFile(join(dir, "hold"), "");
    const runs2 = [
      repRun(t, LINE, [PY, "train.py", "5"]),
      repRun({ ...t, work: other }, LINE, [PY, "train.py", "5"]),
    ];
    await Promise.race(runs2);
    for (const dir of [t.work, other]) await Deno.writeTextFile(join(dir, "go"), "");
    const [a, b] = (await Promise.all(runs2)) as [Ran, Ran];
    const codes = [a.code, b.code].sort();
    assert.deepEqual(codes, [0, 75], `${a.stderr}\n---\n${b.stderr}`);
    const loser = a.code === 75 ? a : b;
    assert.match(loser.stderr, /not (running it twice|resuming it)/);
    const ran = (await runs(t.work)).length + (await runs(other)).length;
    assert.equal(ran, 2, "the command ran once for the first attempt and once for the resume");
    const s = await show(t, "job-7");
    assert.equal(s.status, "succeeded");
    assert.deepEqual(s.attempts.map((x) => x.attempt), [1, 2]);
    assert.deepEqual(s.checkpoints.filter((c) => c.step !== null).map((c) => c.step), [
      1,
      2,
      3,
      4,
      5,
    ]);
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run --keep-best 2 --keep-last 1 keeps exactly those checkpoints; rep gc reclaims the rest", async () => {
  const t = await setup({ "train.py": TRAIN });
  try {
    const r = await repRun(
      t,
      ["--keep-best", "2", "--keep-last", "1", "--primary-metric", "loss:minimize"],
      [PY, "train.py", "6", "--losses", "5,1,4,2,3,6"],
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /with 6 checkpoint\(s\); 3 removed to keep best 2, last 1/);
    const repo = await openRepository(t.repo);
    try {
      const exp = (await repo.experiments.list())[0]!;
      // Best two: steps 2 (loss 1) and 4 (loss 2); the latest: step 6.
      assert.deepEqual(exp.checkpoints.map((c) => c.step), [2, 4, 6]);
      await assertExact(exp, t.work, [2, 4, 6]);
    } finally {
      await repo.close();
    }
    const packs = async () => {
      let n = 0;
      for await (const e of Deno.readDir(join(t.repo, "packs"))) if (e.isFile) n++;
      return n;
    };
    const before = await packs();
    // Default grace: only listed, nothing deleted, so a reader that resolved a removed checkpoint
    // before its removal still reads it.
    const listed = await rep(["gc"], { env: t.env });
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(await packs(), before);
    const gone = await rep(["gc", "--grace", "0"], { env: t.env });
    assert.equal(gone.code, 0, gone.stderr);
    const after = await packs();
    assert.ok(after < before, `gc deleted no pack (${before} before, ${after} after)`);
    const verify = await rep(["verify"], { env: t.env });
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    const again = await openRepository(t.repo);
    try {
      const exp = (await again.experiments.list())[0]!;
      for (const ck of exp.checkpoints) {
        assert.equal(
          await ckSha(ck, "output/model.pt"),
          (await sideShas(t.work)).get(ck.step!)!.get("output/model.pt"),
        );
      }
    } finally {
      await again.close();
    }
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep.yaml's keep_best and keep_last apply to rep run; a flag overrides its key", async () => {
  const t = await setup({
    "train.py": TRAIN,
    "rep.yaml": "run:\n  primary_metric: loss:minimize\n  keep_best: 1\n  keep_last: 1\n",
  });
  try {
    const r = await repRun(t, ["--keep-last", "2"], [
      PY,
      "train.py",
      "6",
      "--losses",
      "5,1,4,2,3,6",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /with 6 checkpoint\(s\); 3 removed to keep best 1, last 2/);
    const repo = await openRepository(t.repo);
    try {
      const exp = (await repo.experiments.list())[0]!;
      // Best one (rep.yaml): step 2 (loss 1); the last two (the flag): steps 5 and 6.
      assert.deepEqual(exp.checkpoints.map((c) => c.step), [2, 5, 6]);
      await assertExact(exp, t.work, [2, 5, 6]);
    } finally {
      await repo.close();
    }
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: a taken name names its holder; misused lifecycle flags are usage errors", async () => {
  const t = await setup({ "ok.py": "print('ok')\n" });
  try {
    const first = await repRun(t, ["--name", "bert"], [PY, "ok.py"]);
    assert.equal(first.code, 0, first.stderr);
    const id = (await show(t, "bert")).id;
    const second = await repRun(t, ["--name", "bert"], [PY, "ok.py"]);
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, new RegExp(`"bert" is taken by experiment ${id.slice(0, 7)}`));
    assert.match(second.stderr, /--resume/);
    for (
      const [opts, why] of [
        [["--resume"], /needs the experiment's name/],
        [["--keep-best", "2"], /needs a primary metric/],
        [["--rerun"], /goes with --resume/],
        [["--name", "has space"], /name/i],
        [["--keep-last", "x"], /Invalid --keep-last/],
      ] as [string[], RegExp][]
    ) {
      const r = await repRun(t, opts, [PY, "ok.py"]);
      assert.equal(r.code, 2, `${opts.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, why);
    }
    // A resume watches the folder its checkpoint's files go back to.
    const failed = await repRun(t, ["--name", "gpt"], [PY, "-c", "raise SystemExit(1)"]);
    assert.equal(failed.code, 1, failed.stderr);
    const elsewhere = await repRun(t, ["--name", "gpt", "--resume", "-o", "ckpt"], [PY, "ok.py"]);
    assert.equal(elsewhere.code, 2, elsewhere.stderr);
    assert.match(
      elsewhere.stderr,
      /recorded its output folder as output\/, but this run watches ckpt\//,
    );
    assert.match(elsewhere.stderr, /--output output/);
    const same = await repRun(t, ["--name", "gpt", "--resume", "-o", "./output/"], [PY, "ok.py"]);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stderr, /attempt 2/);
  } finally {
    await t.cleanup();
  }
});
