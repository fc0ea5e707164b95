/**
 * End-to-end tests of `rep run`: spawn main.ts with the compiled binary's permissions around real
 * Python scripts, then read the results back through the library (mod.ts) and the repository's
 * files.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { type Checkpoint, type Experiment, openRepository, type Repo } from "../mod.ts";
import { PERMISSIONS, ROOT, tempRepo } from "./helpers.ts";

// The library side of these tests keeps its index cache in a temp dir, never in the user's home.
const TEST_CACHE = await Deno.makeTempDir({ prefix: "rep-run-test-cache-" });
Deno.env.set("REP_CACHE_DIR", TEST_CACHE);
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(TEST_CACHE, { recursive: true });
  } catch {
    // gone
  }
});

const PY = "python3";
const dec = new TextDecoder();
const enc = new TextEncoder();

// ---- helpers -------------------------------------------------------------------------------------

/** A test folder: `work` (the command's cwd, holding the scripts), `repo`, and a cache dir. */
async function setup(scripts: Record<string, string> = {}) {
  const t = await tempRepo();
  const work = join(t.dir, "work");
  await Deno.mkdir(work);
  for (const [name, text] of Object.entries(scripts)) {
    await Deno.writeTextFile(join(work, name), text);
  }
  return { ...t, work };
}

/** The result of one `rep run`. */
interface Ran {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  /** Bytes read from rep's stdout (also counted when not kept). */
  stdoutBytes: number;
  stderr: string;
  /** Highest VmHWM (kB) sampled from /proc while rep ran, when sampling was asked for. */
  peakKb: number;
}

interface RunOpts {
  cwd: string;
  env: Record<string, string>;
  /** Written to rep's stdin, which is then closed (else stdin is /dev/null). */
  stdin?: string;
  /** Count stdout bytes without keeping them. */
  discardStdout?: boolean;
  /** Sample /proc/<pid>/status VmHWM while running. */
  sampleMemory?: boolean;
  /** Called once rep is running (e.g. to send it a signal). */
  during?: (child: Deno.ChildProcess) => Promise<void>;
  timeoutMs?: number;
}

/** Spawn `rep ARGS` exactly as the compiled binary would run. */
async function runRep(args: string[], o: RunOpts): Promise<Ran> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...PERMISSIONS, join(ROOT, "main.ts"), ...args],
    cwd: o.cwd,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...o.env },
    stdin: o.stdin !== undefined ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const killer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
  }, o.timeoutMs ?? 60_000);
  let stdoutBytes = 0;
  const outParts: Uint8Array[] = [];
  const readOut = (async () => {
    for await (const b of child.stdout) {
      stdoutBytes += b.length;
      if (!o.discardStdout) outParts.push(b);
    }
  })();
  const readErr = new Response(child.stderr).arrayBuffer();
  if (o.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(enc.encode(o.stdin));
    await w.close();
  }
  // Deno denies reading /proc/<pid> without --allow-all: a shell loop samples it instead.
  const sampler = o.sampleMemory
    ? new Deno.Command("sh", {
      args: [
        "-c",
        `while kill -0 ${child.pid} 2>/dev/null; do grep VmHWM /proc/${child.pid}/status; sleep 0.05; done`,
      ],
      stdout: "piped",
      stderr: "null",
    }).output()
    : null;
  try {
    if (o.during) await o.during(child);
    const st = await child.status;
    await readOut;
    let peakKb = 0;
    for (const m of dec.decode((await sampler)?.stdout).matchAll(/VmHWM:\s+(\d+)/g)) {
      peakKb = Math.max(peakKb, Number(m[1]));
    }
    const stdout = dec.decode(concat(outParts));
    return {
      code: st.code,
      signal: st.signal,
      stdout,
      stdoutBytes,
      stderr: dec.decode(await readErr),
      peakKb,
    };
  } finally {
    clearTimeout(killer);
  }
}

/** `rep run -R REPO ARGS… -- COMMAND…` in the test folder. */
function repRun(
  t: { repo: string; work: string; env: Record<string, string> },
  opts: string[],
  command: string[],
  extra: Partial<RunOpts> = {},
): Promise<Ran> {
  return runRep(["run", "-R", t.repo, ...opts, "--", ...command], {
    ...extra,
    cwd: t.work,
    env: { ...t.env, ...extra.env },
  });
}

/** Open the repository, get its only experiment, run `fn`, close. */
async function withExperiment<T>(
  repoDir: string,
  fn: (exp: Experiment, repo: Repo) => Promise<T> | T,
): Promise<T> {
  const repo = await openRepository(repoDir);
  try {
    const list = await repo.experiments.list();
    assert.equal(list.length, 1, `expected one experiment, got ${list.length}`);
    return await fn(list[0]!, repo);
  } finally {
    await repo.close();
  }
}

// Checkpoint paths are relative to the project folder: the output folder's files are under
// "output/" (see tests/run_order_test.ts for exact paths); these tests name them without it.
async function readCk(ck: Checkpoint, path: string): Promise<Uint8Array> {
  return new Uint8Array(await new Response(await ck.open(`output/${path}`)).arrayBuffer());
}

async function fileNames(ck: Checkpoint): Promise<string[]> {
  return (await ck.files()).map((f) => f.path.replace(/^output\//, "")).sort();
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Every file under `dir`, recursively, as absolute paths. */
async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...await allFiles(p));
    else if (e.isFile) out.push(p);
  }
  return out;
}

/** True when `needle` occurs in any file under `dir`. */
async function dirContains(dir: string, needle: string): Promise<string | null> {
  const n = enc.encode(needle);
  for (const f of await allFiles(dir)) {
    const b = await Deno.readFile(f);
    outer: for (let i = 0; i + n.length <= b.length; i++) {
      if (b[i] !== n[0]) continue;
      for (let j = 1; j < n.length; j++) if (b[i + j] !== n[j]) continue outer;
      return f;
    }
  }
  return null;
}

/** The concatenated log segments of an experiment, read from the repository folder. */
async function storedLog(repoDir: string, id: string): Promise<Uint8Array> {
  const dir = join(repoDir, "experiments", id, "logs");
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  names.sort();
  const parts: Uint8Array[] = [];
  for (const n of names) parts.push(await Deno.readFile(join(dir, n)));
  return concat(parts);
}

async function waitForFile(path: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await Deno.stat(path).then(() => true, () => false)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${path}`);
}

/** Python preamble: OUT, MET and `line(obj)` appending one metrics line. */
const PRE = `import json, os, sys, time
OUT = os.environ["REP_OUTPUT_DIR"]
MET = os.environ["REP_METRICS_FILE"]
def line(obj):
    with open(MET, "a") as f:
        f.write(json.dumps(obj) + "\\n")
def put(rel, data):
    p = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
`;

// ---- 1. checkpoints, metrics, params, secrets ----------------------------------------------------

const SECRET_ARG = "sk-abcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_ENV = "tok-9f8e7d6c5b4a-not-a-pattern";
const SECRET_P = "hunter2-pw-value-7731";
const SECRET_PW_ARG = "plainpw-4471-qwerty";
const SECRET_EQ_ARG = "eqtok-5521-zxcvb";
const SECRET_BARE_ARG = "bare-8813-asdfg";
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

Deno.test("rep run: one checkpoint per metrics line, params typed from argv and -p, secrets never stored", async () => {
  const t = await setup({
    "train.py": PRE + `
# the secrets do reach the command (compared by hash: the script itself is in the code snapshot)
import hashlib
h = lambda s: hashlib.sha256(s.encode()).hexdigest()
assert h(os.environ["MY_TOKEN"]) == "${sha256(SECRET_ENV)}"
assert "${sha256(SECRET_ARG)}" in [h(a) for a in sys.argv]
for step in range(1, 4):
    put("w%d.bin" % step, b"weights %d" % step)  # never rewritten
    line({"step": step, "loss": 1.0 / step, "accuracy": step / 10, "train": {"lr": 0.01}})
    time.sleep(0.05)
`,
  });
  try {
    const r = await repRun(
      t,
      ["-p", "epochs=3", "-p", "extra=bar", "-p", `db_password=${SECRET_P}`],
      [
        PY,
        "train.py",
        "--lr",
        "0.01",
        "--epochs=3",
        "name=foo",
        "--flag",
        "--api-key",
        SECRET_ARG,
        "--password",
        SECRET_PW_ARG,
        `--hf_token=${SECRET_EQ_ARG}`,
        `wandb_api_key=${SECRET_BARE_ARG}`,
      ],
      { env: { MY_TOKEN: SECRET_ENV } },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /succeeded with 3 checkpoint\(s\)/);
    await withExperiment(t.repo, async (exp) => {
      assert.equal(exp.status, "succeeded");
      assert.equal(exp.exitCode, 0);
      const p = exp.params;
      assert.equal(p.lr, 0.01);
      assert.equal(p.epochs, 3, "-p agrees with the command's --epochs=3");
      assert.equal(p.name, "foo");
      assert.equal(p.flag, true);
      assert.equal(p.extra, "bar");
      assert.notEqual(p["api-key"], SECRET_ARG);
      assert.notEqual(p.db_password, SECRET_P);
      assert.notEqual(p.password, SECRET_PW_ARG);
      assert.ok("hf_token" in p && "wandb_api_key" in p);
      const prov = await exp.provenance();
      const env = (prov as { env?: Record<string, string> }).env ?? {};
      assert.ok("MY_TOKEN" in env, "the env is recorded");
      assert.notEqual(env.MY_TOKEN, SECRET_ENV);

      assert.equal(exp.checkpoints.length, 3);
      for (const [i, ck] of exp.checkpoints.entries()) {
        const step = i + 1;
        assert.equal(ck.step, step);
        assert.deepEqual(ck.metrics, { loss: 1 / step, accuracy: step / 10, "train/lr": 0.01 });
        // The files written before the line; one created after it can only be listed as torn.
        const before = Array.from({ length: step }, (_, j) => `w${j + 1}.bin`);
        assert.deepEqual(await fileNames(ck), before);
        assert.deepEqual(ck.record.torn, [], "nothing torn");
        assert.equal(dec.decode(await readCk(ck, `w${step}.bin`)), `weights ${step}`);
      }
    });
    const secrets = [
      SECRET_ARG,
      SECRET_ENV,
      SECRET_P,
      SECRET_PW_ARG,
      SECRET_EQ_ARG,
      SECRET_BARE_ARG,
    ];
    for (const secret of secrets) {
      const hit = await dirContains(t.repo, secret);
      assert.equal(hit, null, `secret ${secret} stored in ${hit}`);
      const cacheHit = await dirContains(t.dir + "/cache", secret).catch(() => null);
      assert.equal(cacheHit, null, `secret ${secret} stored in ${cacheHit}`);
    }
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: examples/train.py gets one exact checkpoint per epoch", async () => {
  const t = await setup();
  try {
    const r = await repRun(t, ["--primary-metric", "loss:minimize"], [
      PY,
      join(ROOT, "examples", "train.py"),
      "--epochs",
      "4",
      "--samples",
      "200",
      "--sleep",
      "0.02",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split("\n").length, 4, r.stdout);
    await withExperiment(t.repo, async (exp) => {
      assert.equal(exp.params.epochs, 4);
      assert.equal(exp.params.samples, 200);
      assert.deepEqual(exp.checkpoints.map((c) => c.step), [1, 2, 3, 4]);
      for (const ck of exp.checkpoints) {
        if (ck.record.torn.includes("output/model.bin")) continue;
        const b = await readCk(ck, "model.bin");
        assert.equal(dec.decode(b.subarray(0, 8)), "REPLR001");
        // The model file records the epoch it was written at: it must be this step's.
        assert.equal(new DataView(b.buffer, b.byteOffset).getUint32(8, true), ck.step);
      }
      const last = exp.checkpoints[3]!;
      assert.deepEqual(last.record.torn, []);
      const losses = exp.checkpoints.map((c) => c.metrics.loss as number);
      const best = exp.best()!;
      assert.equal(best.metrics.loss, Math.min(...losses));
    });
  } finally {
    await t.cleanup();
  }
});

// ---- 2. exactness ------------------------------------------------------------------------------

const SIZE = 300_000;
const EXACT_SCRIPT = PRE + `
mode = sys.argv[1]
steps = int(sys.argv[2])
for step in range(1, steps + 1):
    put("model.pth", bytes([step]) * ${SIZE})
    line({"step": step, "loss": 1.0 / step})
    if mode == "burst":
        pass  # the next step follows at once: rep sees several lines per read
    elif mode == "adversarial":
        # rewrite immediately with bytes no checkpoint may ever hold
        put("model.pth", bytes([100 + step]) * ${SIZE})
        time.sleep(0.03)
    else:
        t0 = time.time()
        x = 0
        while time.time() - t0 < 0.2:
            x += 1
`;

/** Each metrics checkpoint holds exactly its step's model.pth or lists it as torn. */
async function assertExactOrTorn(exp: Experiment, steps: number): Promise<number> {
  const metricCks = exp.checkpoints.filter((c) => c.step !== null && "loss" in c.metrics);
  assert.deepEqual(
    metricCks.map((c) => c.step),
    Array.from({ length: steps }, (_, i) => i + 1),
  );
  let exact = 0;
  for (const ck of metricCks) {
    const names = await fileNames(ck);
    if (ck.record.torn.includes("output/model.pth")) {
      assert.ok(!names.includes("model.pth"), `step ${ck.step}: torn file also stored`);
      continue;
    }
    assert.deepEqual(names, ["model.pth"], `step ${ck.step}`);
    const b = await readCk(ck, "model.pth");
    assert.equal(b.length, SIZE, `step ${ck.step}: size ${b.length}, first byte ${b[0]}`);
    const wrong = b.findIndex((x) => x !== ck.step);
    assert.equal(wrong, -1, `step ${ck.step}: byte ${wrong} is ${b[wrong]}, not ${ck.step}`);
    exact++;
  }
  return exact;
}

Deno.test("rep run: every checkpoint holds its step's bytes or lists the file as torn", async () => {
  const t = await setup({ "train.py": EXACT_SCRIPT });
  try {
    const r = await repRun(t, [], [PY, "train.py", "calm", "5"]);
    assert.equal(r.code, 0, r.stderr);
    await withExperiment(t.repo, async (exp) => {
      await assertExactOrTorn(exp, 5);
      const last = exp.checkpoints.findLast((c) => c.step === 5)!;
      assert.deepEqual(last.record.torn, [], "the last step's file is never rewritten");
      assert.equal((await readCk(last, "model.pth"))[0], 5);
      // Nothing changed after the last line: no extra final checkpoint.
      assert.equal(exp.checkpoints.length, 5);
    });
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: a file rewritten right after its metrics line is never stored with the wrong bytes", async () => {
  const t = await setup({ "train.py": EXACT_SCRIPT });
  try {
    const r = await repRun(t, [], [PY, "train.py", "adversarial", "6"]);
    assert.equal(r.code, 0, r.stderr);
    await withExperiment(t.repo, async (exp) => {
      const exact = await assertExactOrTorn(exp, 6);
      if (exact < 6) assert.match(r.stderr, /model\.pth: left out because it was rewritten/);
      // The final checkpoint holds the output as the command left it (the last rewrite).
      const final = exp.latest()!;
      assert.equal(final.step, null);
      const b = await readCk(final, "model.pth");
      assert.equal(b.length, SIZE);
      assert.ok(b.every((x) => x === 106));
    });
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: lines written in a burst (several per read) are still exact or torn", async () => {
  const t = await setup({ "train.py": EXACT_SCRIPT });
  try {
    const r = await repRun(t, [], [PY, "train.py", "burst", "12"]);
    assert.equal(r.code, 0, r.stderr);
    await withExperiment(t.repo, async (exp) => {
      await assertExactOrTorn(exp, 12);
      const last = exp.checkpoints.findLast((c) => c.step === 12)!;
      assert.deepEqual(last.record.torn, [], "the last step's file is never rewritten");
    });
  } finally {
    await t.cleanup();
  }
});

// ---- 3. best checkpoint -------------------------------------------------------------------------

const BEST_SCRIPT = PRE + `
nan = float("nan")
rows = [
    {"step": 1, "loss": 0.5, "accuracy": 0.6},
    {"step": 2, "loss": nan, "accuracy": nan},
    {"step": 3, "accuracy": 0.9},
    {"step": 4, "loss": 0.3, "accuracy": 0.7},
    {"step": 5, "loss": 0.4, "accuracy": None},
    {"step": 6, "loss": float("-inf"), "accuracy": float("inf")},
    {"step": 7, "loss": "low", "accuracy": "high"},
]
for r in rows:
    put("m%d.txt" % r["step"], "weights of step %d" % r["step"])  # never rewritten
    line(r)
    time.sleep(0.02)
`;

Deno.test("rep run: best() follows --primary-metric, ignoring NaN, missing and non-numeric values", async () => {
  for (const [pm, bestStep] of [["loss:minimize", 4], ["accuracy:maximize", 3]] as const) {
    const t = await setup({ "train.py": BEST_SCRIPT });
    try {
      const r = await repRun(t, ["--primary-metric", pm], [PY, "train.py"]);
      assert.equal(r.code, 0, r.stderr);
      await withExperiment(t.repo, async (exp) => {
        assert.equal(exp.checkpoints.length, 7);
        assert.equal(exp.record.primary_metric?.name, pm.split(":")[0]);
        const best = exp.best();
        assert.ok(best, pm);
        assert.equal(best.step, bestStep, pm);
        assert.equal(
          dec.decode(await readCk(best, `m${bestStep}.txt`)),
          `weights of step ${bestStep}`,
        );
      });
    } finally {
      await t.cleanup();
    }
  }
});

// ---- 4. exit codes and signals ------------------------------------------------------------------

Deno.test("rep run: exit codes and status follow the command", async () => {
  const t = await setup({
    "exit3.py": PRE + `line({"step": 1, "loss": 1.0})\nsys.exit(3)\n`,
    "ok.py": "print('fine')\n",
    "killed.py": PRE +
      `import signal\nline({"step": 1, "loss": 1.0})\nos.kill(os.getpid(), signal.SIGKILL)\n`,
  });
  try {
    const cases: [string, number, string, number][] = [
      ["exit3.py", 3, "failed", 1],
      ["ok.py", 0, "succeeded", 0],
      ["killed.py", 137, "failed", 1],
    ];
    for (const [script, code, status, cks] of cases) {
      const repo = join(t.dir, `repo-${script}`);
      const r = await repRun({ ...t, repo }, [], [PY, script]);
      assert.equal(r.code, code, `${script}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${status} with ${cks} checkpoint`));
      await withExperiment(repo, (exp) => {
        assert.equal(exp.status, status, script);
        assert.equal(exp.exitCode, code, script);
        assert.equal(exp.checkpoints.length, cks, script);
      });
    }
  } finally {
    await t.cleanup();
  }
});

const SIGNAL_SCRIPT = PRE + `
import signal
mode = sys.argv[1]
mark = os.path.join(os.getcwd(), "marks")
os.makedirs(mark, exist_ok=True)
def on_term(sig, frame):
    open(os.path.join(mark, "handled"), "w").write(str(sig))
    sys.exit(0)
if mode == "handler":
    signal.signal(signal.SIGTERM, on_term)
put("model.pth", b"weights-1")
line({"step": 1, "loss": 0.5})
time.sleep(0.3)
try:
    # Inside the try: a SIGINT right after "ready" must land in the handler below.
    open(os.path.join(mark, "ready"), "w").write("1")
    while True:
        time.sleep(0.02)
except KeyboardInterrupt:
    open(os.path.join(mark, "interrupted"), "w").write("1")
    raise
`;

Deno.test("rep run: SIGTERM/SIGINT to rep are forwarded; the run is recorded as stopped", async () => {
  const cases: {
    name: string;
    mode: string;
    sig: Deno.Signal;
    code: number;
    mark: string | null;
  }[] = [
    // The script's handler runs and exits 0 (a graceful stop still is a stop).
    { name: "SIGTERM, handled", mode: "handler", sig: "SIGTERM", code: 0, mark: "handled" },
    // Python's default: killed by SIGTERM.
    { name: "SIGTERM, default", mode: "plain", sig: "SIGTERM", code: 143, mark: null },
    // Python's default: KeyboardInterrupt, and an uncaught one exits by SIGINT.
    { name: "SIGINT", mode: "plain", sig: "SIGINT", code: 130, mark: "interrupted" },
  ];
  for (const c of cases) {
    const t = await setup({ "train.py": SIGNAL_SCRIPT });
    try {
      const r = await repRun(t, [], [PY, "train.py", c.mode], {
        during: async (child) => {
          await waitForFile(join(t.work, "marks", "ready"));
          child.kill(c.sig);
        },
      });
      assert.equal(r.code, c.code, `${c.name}: ${r.stderr}`);
      assert.equal(r.signal, null, `${c.name}: rep itself is not killed by the signal`);
      if (c.mark) {
        assert.ok(
          await Deno.stat(join(t.work, "marks", c.mark)).then(() => true, () => false),
          `${c.name}: the script saw the signal`,
        );
      }
      if (c.mark === "handled") {
        assert.equal(await Deno.readTextFile(join(t.work, "marks", "handled")), "15");
      }
      await withExperiment(t.repo, async (exp) => {
        assert.equal(exp.status, "stopped", c.name);
        assert.equal(exp.exitCode, c.code, c.name);
        const ck = exp.checkpoints.find((k) => k.step === 1);
        assert.ok(ck, `${c.name}: the checkpoint before the signal is kept`);
        assert.equal(dec.decode(await readCk(ck, "model.pth")), "weights-1");
      });
    } finally {
      await t.cleanup();
    }
  }
});

// ---- 5. malformed and partial lines -------------------------------------------------------------

Deno.test("rep run: malformed lines are reported once, recorded, and never fatal", async () => {
  const t = await setup({
    "train.py": PRE + `
with open(MET, "a") as f:
    f.write('{"step": 1, "loss": 0.9}\\n')
    f.write('not json at all\\n')
    f.write('{"step": 2, "loss": 0.8}\\n')
    f.write('[1, 2, 3]\\n')
    f.write('{"step": -4, "loss": 0.1}\\n')
    f.write('\\n')
    f.write('{"step": 3, "loss": 0.7}\\n')
time.sleep(0.8)
`,
  });
  try {
    const r = await repRun(t, [], [PY, "train.py"]);
    assert.equal(r.code, 0, r.stderr);
    for (const n of [2, 4, 5]) {
      const hits = r.stderr.match(new RegExp(`line ${n} ignored`, "g")) ?? [];
      assert.equal(hits.length, 1, `line ${n} reported once:\n${r.stderr}`);
    }
    assert.doesNotMatch(r.stderr, /line [1367] ignored/);
    await withExperiment(t.repo, async (exp) => {
      assert.equal(exp.status, "succeeded");
      assert.deepEqual(exp.checkpoints.map((c) => [c.step, c.metrics.loss]), [
        [1, 0.9],
        [2, 0.8],
        [3, 0.7],
      ]);
      const bad = JSON.parse(
        await Deno.readTextFile(join(t.repo, "experiments", exp.id, "malformed.json")),
      ) as { line: number; text: string; reason: string }[];
      assert.deepEqual(bad.map((b) => b.line), [2, 4, 5]);
      assert.equal(bad[0]!.text, "not json at all");
      for (const b of bad) assert.ok(b.reason.length > 0);
    });
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: a line written in two pieces makes one checkpoint; an unterminated last line counts", async () => {
  const t = await setup({
    "train.py": PRE + `
with open(MET, "a") as f:
    f.write('{"step": 1, "lo')
    f.flush()
    time.sleep(1.2)
    f.write('ss": 0.25, "acc": 0.5}\\n')
    f.flush()
    time.sleep(0.6)
    f.write('{"step": 7, "loss": 0.125}')
    f.flush()
`,
  });
  try {
    const r = await repRun(t, [], [PY, "train.py"]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /ignored/);
    await withExperiment(t.repo, async (exp) => {
      assert.deepEqual(exp.checkpoints.map((c) => [c.step, c.metrics]), [
        [1, { loss: 0.25, acc: 0.5 }],
        [7, { loss: 0.125 }],
      ]);
      assert.equal(
        await Deno.stat(join(t.repo, "experiments", exp.id, "malformed.json")).then(
          () => true,
          () => false,
        ),
        false,
      );
    });
  } finally {
    await t.cleanup();
  }
});

// ---- 6. no metrics, nothing, crash ----------------------------------------------------------------

Deno.test("rep run: files without metrics lines are checkpointed after settling and at exit", async () => {
  const t = await setup({
    "train.py": PRE + `
put("a.txt", "A")
time.sleep(3)
put("b.txt", "B")
`,
  });
  try {
    const r = await repRun(t, ["--settle", "0.3"], [PY, "train.py"]);
    assert.equal(r.code, 0, r.stderr);
    await withExperiment(t.repo, async (exp) => {
      const cks = exp.checkpoints;
      for (const ck of cks) {
        assert.equal(ck.step, null);
        assert.deepEqual(ck.metrics, {});
      }
      // a.txt stayed unchanged for 3 s, 10 times the settle time: it was checkpointed alone.
      const settled = [];
      for (const ck of cks) if ((await fileNames(ck)).join() === "a.txt") settled.push(ck);
      assert.equal(settled.length, 1, "one settle checkpoint of a.txt");
      const last = exp.latest()!;
      assert.deepEqual(await fileNames(last), ["a.txt", "b.txt"]);
      assert.equal(dec.decode(await readCk(last, "b.txt")), "B");
      assert.equal(cks.length, 2);
    });
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: after metrics lines, unlined changes wait for the long settle time (final checkpoint takes them)", async () => {
  const t = await setup({
    "train.py": PRE + `
put("m.bin", "M1")
line({"step": 1, "loss": 1.0})
time.sleep(0.2)
put("extra.txt", "E")
time.sleep(2)
`,
  });
  try {
    const r = await repRun(t, ["--settle", "0.3"], [PY, "train.py"]);
    assert.equal(r.code, 0, r.stderr);
    await withExperiment(t.repo, async (exp) => {
      assert.equal(exp.checkpoints.length, 2);
      const [first, final] = exp.checkpoints as [Checkpoint, Checkpoint];
      assert.equal(first.step, 1);
      assert.deepEqual(await fileNames(first), ["m.bin"]);
      assert.equal(final.step, null);
      assert.deepEqual(await fileNames(final), ["extra.txt", "m.bin"]);
    });
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: a command that writes nothing makes no checkpoint", async () => {
  const t = await setup({ "train.py": "print('nothing to see')\n" });
  try {
    const r = await repRun(t, [], [PY, "train.py"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "nothing to see\n");
    await withExperiment(t.repo, (exp) => {
      assert.equal(exp.status, "succeeded");
      assert.equal(exp.checkpoints.length, 0);
    });
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run: a Python traceback fails the run, keeps its log and earlier checkpoints", async () => {
  const t = await setup({
    "train.py": PRE + `
put("model.pth", b"good")
line({"step": 1, "loss": 0.5})
time.sleep(0.1)
print("about to fail", flush=True)
def inner():
    raise ValueError("boom-4242")
inner()
`,
  });
  try {
    const r = await repRun(t, [], [PY, "train.py"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ValueError: boom-4242/, "stderr passed through");
    assert.equal(r.stdout, "about to fail\n");
    await withExperiment(t.repo, async (exp) => {
      assert.equal(exp.status, "failed");
      assert.equal(exp.exitCode, 1);
      const ck = exp.checkpoints.find((c) => c.step === 1);
      assert.ok(ck);
      assert.equal(dec.decode(await readCk(ck, "model.pth")), "good");
      const log = dec.decode(await storedLog(t.repo, exp.id));
      assert.match(log, /about to fail/);
      assert.match(log, /Traceback \(most recent call last\):/);
      assert.match(log, /in inner/);
      assert.match(log, /ValueError: boom-4242/);
    });
  } finally {
    await t.cleanup();
  }
});

// ---- 7. large output ---------------------------------------------------------------------------

Deno.test("rep run: 300 MB of stdout is passed through and stored with bounded memory", async () => {
  const MB = 300;
  const t = await setup({
    "big.py": `import sys
piece = (b"x" * 1023 + b"\\n") * 1024
for i in range(${MB}):
    sys.stdout.buffer.write(piece)
sys.stdout.buffer.flush()
`,
  });
  try {
    const r = await repRun(t, [], [PY, "big.py"], { discardStdout: true, sampleMemory: true });
    assert.equal(r.code, 0, r.stderr);
    const total = MB * 1024 * 1024;
    assert.equal(r.stdoutBytes, total, "every byte passed through");
    await withExperiment(t.repo, async (exp) => {
      const log = await storedLog(t.repo, exp.id);
      assert.equal(log.length, total, "every byte stored in the log");
      assert.ok(log.every((b, i) => b === ((i & 1023) === 1023 ? 10 : 120)), "log bytes in order");
    });
    // rep must not hold the whole output: its peak resident memory stays well under it.
    assert.ok(r.peakKb > 0, "memory was sampled");
    assert.ok(r.peakKb < MB * 1024, `peak RSS ${r.peakKb} kB for ${MB} MB of output`);
  } finally {
    await t.cleanup();
  }
});

// ---- 8. stdout metrics ---------------------------------------------------------------------------

Deno.test("rep run: --stdout-metrics turns key: value lines into checkpoints", async () => {
  const t = await setup({
    "train.py": `import time
print("step: 1")
print("loss: 0.5")
print("acc: 0.6")
print("not a metric line")
time.sleep(0.3)
print("step: 2")
print("loss: 0.25")
print("acc: 0.7")
time.sleep(0.3)
print("loss: 0.125 (step 5)")
`,
  });
  try {
    const r = await repRun(t, ["--stdout-metrics", "--primary-metric", "loss:min"], [
      PY,
      "train.py",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /not a metric line/);
    await withExperiment(t.repo, (exp) => {
      assert.deepEqual(exp.checkpoints.map((c) => [c.step, c.metrics]), [
        [1, { loss: 0.5, acc: 0.6 }],
        [2, { loss: 0.25, acc: 0.7 }],
        [5, { loss: 0.125 }],
      ]);
      assert.equal(exp.best()?.step, 5);
    });
    // Without the flag, the same output makes no checkpoint.
    const repo2 = join(t.dir, "repo2");
    const r2 = await repRun({ ...t, repo: repo2 }, [], [PY, "train.py"]);
    assert.equal(r2.code, 0, r2.stderr);
    await withExperiment(repo2, (exp) => assert.equal(exp.checkpoints.length, 0));
  } finally {
    await t.cleanup();
  }
});

// ---- 9. environment and stdin --------------------------------------------------------------------

Deno.test("rep run: the command sees REP_* variables and rep's stdin", async () => {
  const t = await setup({
    "train.py": `import json, os, sys
data = sys.stdin.read()
print(json.dumps({k: os.environ.get(k) for k in
    ["REP_EXPERIMENT_ID", "REP_OUTPUT_DIR", "REP_METRICS_FILE"]}))
print("ECHO:" + data.upper(), end="")
with open(os.environ["REP_METRICS_FILE"], "a") as f:
    f.write(json.dumps({"step": 1, "n": len(data)}) + "\\n")
`,
  });
  try {
    const input = "hello through stdin\nsecond line\n";
    const r = await repRun(t, ["-o", "out", "-m", "logs/m.jsonl"], [PY, "train.py"], {
      stdin: input,
    });
    assert.equal(r.code, 0, r.stderr);
    const [first, ...rest] = r.stdout.split("\n");
    const env = JSON.parse(first!) as Record<string, string>;
    assert.equal(rest.join("\n"), "ECHO:" + input.toUpperCase());
    assert.equal(env.REP_OUTPUT_DIR, join(t.work, "out"));
    assert.equal(env.REP_METRICS_FILE, join(t.work, "logs", "m.jsonl"));
    await withExperiment(t.repo, (exp) => {
      assert.equal(env.REP_EXPERIMENT_ID, exp.id);
      assert.deepEqual(exp.checkpoints.map((c) => [c.step, c.metrics.n]), [[1, input.length]]);
    });
  } finally {
    await t.cleanup();
  }
});

// ---- 10. code snapshot and git -------------------------------------------------------------------

async function git(cwd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("git", {
    args: ["-c", "user.name=rep-test", "-c", "user.email=rep@test", ...args],
    cwd,
    env: { GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, dec.decode(out.stderr));
  return dec.decode(out.stdout).trim();
}

Deno.test("rep run: code snapshot (without the output folder), --no-code, and git state", async () => {
  const t = await setup({ "train.py": PRE + `put("model.pth", b"w")\nline({"step": 1})\n` });
  try {
    await Deno.mkdir(join(t.work, "lib"));
    await Deno.writeTextFile(join(t.work, "lib", "util.py"), "X = 1\n");
    await git(t.work, "init", "-q", "-b", "exp-branch");
    await git(t.work, "add", "train.py", "lib/util.py");
    await git(t.work, "commit", "-q", "-m", "initial");
    const head = await git(t.work, "rev-parse", "HEAD");
    // Dirty: an edit after the commit, an untracked file, and stale output from an earlier run.
    await Deno.writeTextFile(join(t.work, "train.py"), "# edited\n", { append: true });
    await Deno.writeTextFile(join(t.work, "notes.txt"), "untracked\n");
    await Deno.mkdir(join(t.work, "output"));
    await Deno.writeTextFile(join(t.work, "output", "old.bin"), "stale");

    const r = await repRun(t, [], [PY, "train.py"]);
    assert.equal(r.code, 0, r.stderr);
    const edited = await Deno.readTextFile(join(t.work, "train.py"));
    await withExperiment(t.repo, async (exp, repo) => {
      assert.deepEqual(
        { commit: exp.git?.commit, branch: exp.git?.branch, dirty: exp.git?.dirty },
        { commit: head, branch: "exp-branch", dirty: true },
      );
      assert.ok(exp.record.code, "code snapshot taken");
      const tree = await repo.inner.tree(exp.record.code.tree);
      const paths = tree.files.map((f) => f.path).sort();
      assert.deepEqual(paths, ["lib/util.py", "notes.txt", "train.py"]);
      const entry = tree.files.find((f) => f.path === "train.py")!;
      const text = await new Response(repo.inner.fileStream(entry)).text();
      assert.equal(text, edited, "the snapshot holds the working copy, edits included");
      // The checkpoint has the files the run wrote (not the stale one) instead.
      assert.deepEqual(await fileNames(exp.checkpoints[0]!), ["model.pth"]);
    });

    const repo2 = join(t.dir, "repo2");
    const r2 = await repRun({ ...t, repo: repo2 }, ["--no-code"], [PY, "train.py"]);
    assert.equal(r2.code, 0, r2.stderr);
    await withExperiment(repo2, (exp) => {
      assert.equal(exp.record.code, null);
      assert.equal(exp.git?.commit, head);
    });
  } finally {
    await t.cleanup();
  }
});

// ---- 11. command not found -----------------------------------------------------------------------

Deno.test("rep run: a command that cannot be found is a usage error and records nothing", async () => {
  const t = await setup();
  try {
    const r = await repRun(t, [], ["no-such-command-rep-test", "--lr", "1"]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /Cannot run "no-such-command-rep-test": command not found/);
    assert.equal(await Deno.stat(join(t.repo, "experiments")).then(() => true, () => false), false);
    const r1 = await repRun(t, [], ["./missing.py"]);
    assert.equal(r1.code, 2, r1.stderr);
    assert.match(r1.stderr, /Cannot run "\.\/missing\.py"/);
    // Usage errors of rep itself record nothing either.
    const repo2 = join(t.dir, "repo2");
    const r2 = await runRep(["run", "-R", repo2, "--settle", "soon", "--", PY, "-V"], {
      cwd: t.work,
      env: t.env,
    });
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /Invalid --settle/);
    const r3 = await runRep(["run", "-R", repo2], { cwd: t.work, env: t.env });
    assert.equal(r3.code, 2);
    assert.match(r3.stderr, /needs a command/);
    const exists = await Deno.stat(join(repo2, "experiments")).then(() => true, () => false);
    assert.equal(exists, false);
  } finally {
    await t.cleanup();
  }
});

// ---- 12. metrics path --------------------------------------------------------------------------

Deno.test("rep run: a metrics line's path limits its checkpoint to that part of the output", async () => {
  const t = await setup({
    "train.py": PRE + `
put("a/model.bin", "A1")
put("a/opt.bin", "O1")
put("b/other.bin", "B1")
put("top.txt", "T")
line({"step": 1, "path": "a", "loss": 1.0})
line({"step": 2, "path": "b/other.bin", "loss": 2.0})
line({"step": 3, "path": "./a/", "loss": 3.0})
`,
  });
  try {
    const r = await repRun(t, [], [PY, "train.py"]);
    assert.equal(r.code, 0, r.stderr);
    await withExperiment(t.repo, async (exp) => {
      const byStep = new Map(exp.checkpoints.map((c) => [c.step, c]));
      assert.deepEqual(await fileNames(byStep.get(1)!), ["a/model.bin", "a/opt.bin"]);
      assert.deepEqual(byStep.get(1)!.metrics, { loss: 1 });
      assert.deepEqual(await fileNames(byStep.get(2)!), ["b/other.bin"]);
      assert.equal(dec.decode(await readCk(byStep.get(2)!, "b/other.bin")), "B1");
      assert.deepEqual(await fileNames(byStep.get(3)!), ["a/model.bin", "a/opt.bin"]);
      // At exit, the whole output folder (never checkpointed whole) gets a final checkpoint.
      const final = exp.latest()!;
      assert.equal(final.step, null);
      assert.deepEqual(await fileNames(final), [
        "a/model.bin",
        "a/opt.bin",
        "b/other.bin",
        "top.txt",
      ]);
      assert.equal(exp.checkpoints.length, 4);
    });
  } finally {
    await t.cleanup();
  }
});
