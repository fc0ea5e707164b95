/**
 * What `rep run` costs a training script, in one run (issue 10's bench):
 *
 * - `pause`: a Python script saves a 256 MiB `model.bin` (different bytes each step), logs a
 *   metrics line, then computes for 0.3 s of CPU time, 8 times. Each step's wall time is measured
 *   by the script itself, bare and under `rep run`; a step's pause is its time under rep minus the
 *   bare run's median (CPU-time compute, so a freeze of the command shows up, where a sleep would
 *   hide it). Baseline: `cp` of the same file in the same run. Goal: median pause ≤ 1.5× cp.
 *   Before timing anything it checks that every checkpoint holds exactly the bytes the script
 *   wrote at that step (sha256 of each version, printed by the script).
 * - `torch`: a PyTorch script that saves a 150 MB state dict per epoch (5 epochs): wall time bare
 *   versus under `rep run`. Goal: ≤ 10% added.
 *
 * Usage: deno run -A bench/run_pause.ts [--runs N] [--only pause|torch]
 * Writes bench/RESULTS_run.md.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const FLAGS = ["--allow-read", "--allow-write", "--allow-env", "--allow-net", "--allow-run"];
const MiB = 1024 * 1024;

const PAUSE_SCRIPT = `
import hashlib, json, os, sys, time
size, steps = int(sys.argv[1]), int(sys.argv[2])
os.makedirs("output", exist_ok=True)
base = bytearray(os.urandom(size))
walls, hashes = [], []
for step in range(1, steps + 1):
    base[0:8] = step.to_bytes(8, "little")
    t0 = time.monotonic()
    with open("output/model.bin", "wb") as f:
        f.write(base)
    with open("output/metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "loss": 1 / step}) + "\\n")
    c0 = time.process_time()
    x = 0
    while time.process_time() - c0 < 0.3:
        x += 1
    walls.append(time.monotonic() - t0)
    hashes.append(hashlib.sha256(base).hexdigest())
print("RESULT " + json.dumps({"walls": walls, "hashes": hashes}))
`;

const TORCH_SCRIPT = `
import json, os, sys, time, torch
torch.manual_seed(0)
epochs = int(sys.argv[1])
os.makedirs("output", exist_ok=True)
# 150 MB of float32 weights: 37.5M parameters.
model = torch.nn.Sequential(*[torch.nn.Linear(2500, 2500) for _ in range(6)])
opt = torch.optim.SGD(model.parameters(), lr=1e-4)
x = torch.randn(256, 2500)
t0 = time.monotonic()
for epoch in range(1, epochs + 1):
    for _ in range(8):
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save(model.state_dict(), "output/model.pth")
    with open("output/metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": epoch, "loss": float(loss)}) + "\\n")
print("RESULT " + json.dumps({"wall": time.monotonic() - t0}))
`;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const ms = (x: number) => `${(x * 1000).toFixed(0)} ms`;

async function exec(
  cmd: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  const p = await new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    cwd,
    env: { RUST_BACKTRACE: "0", NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: p.code, out: dec.decode(p.stdout), err: dec.decode(p.stderr) };
}

function result<T>(out: string): T {
  const line = out.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error(`no RESULT line in:\n${out}`);
  return JSON.parse(line.slice(7)) as T;
}

/** Run `script args` in a fresh project, bare or under `rep run`; return its RESULT and dir. */
async function runScript(
  script: string,
  args: string[],
  underRep: boolean,
): Promise<{ res: unknown; dir: string; env: Record<string, string> }> {
  const dir = await Deno.makeTempDir({ prefix: "rep-bench-run-" });
  await Deno.writeTextFile(join(dir, "train.py"), script);
  const env = { REP_REPOSITORY: join(dir, ".rep"), REP_CACHE_DIR: join(dir, "cache") };
  const py = ["python3", "train.py", ...args];
  const cmd = underRep
    ? [
      Deno.execPath(),
      "run",
      "--quiet",
      ...FLAGS,
      "--allow-sys",
      join(ROOT, "main.ts"),
      "run",
      "--",
      ...py,
    ]
    : py;
  const r = await exec(cmd, dir, env);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} failed (${r.code}):\n${r.err}`);
  return { res: result(r.out), dir, env };
}

async function rep(args: string[], dir: string, env: Record<string, string>): Promise<string> {
  const r = await exec(
    [Deno.execPath(), "run", "--quiet", ...FLAGS, "--allow-sys", join(ROOT, "main.ts"), ...args],
    dir,
    env,
  );
  if (r.code !== 0) throw new Error(`rep ${args.join(" ")} failed:\n${r.err}`);
  return r.out;
}

/** Check every checkpoint holds exactly the version its step wrote; returns how many do. */
async function exactCheckpoints(dir: string, env: Record<string, string>, hashes: string[]) {
  const [exp] = JSON.parse(await rep(["ls", "--json"], dir, env));
  const shown = JSON.parse(await rep(["show", exp.id, "--json"], dir, env));
  let exact = 0;
  const torn: number[] = [];
  for (const c of shown.checkpoints as { id: string; step: number; files: { path: string }[] }[]) {
    const f = c.files.find((x) => x.path.endsWith("model.bin"));
    if (!f) {
      torn.push(c.step);
      continue;
    }
    const out = join(dir, `checkout-${c.step}`);
    await rep(["checkout", c.id, "-o", out], dir, env);
    const got = await sha256File(join(out, f.path));
    await Deno.remove(out, { recursive: true });
    if (got !== hashes[c.step - 1]) throw new Error(`step ${c.step}: model.bin is not its bytes`);
    exact++;
  }
  return { count: shown.checkpoints.length as number, exact, torn };
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  const f = await Deno.open(path); // reading its stream to the end closes it
  for await (const chunk of f.readable) h.update(chunk);
  return h.digest("hex");
}

async function cpSeconds(bytes: number): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "rep-bench-cp-" });
  try {
    const buf = new Uint8Array(bytes);
    crypto.getRandomValues(buf.subarray(0, 65536));
    await Deno.writeFile(join(dir, "a"), buf);
    const t0 = performance.now();
    const r = await exec(["cp", "a", "b"], dir);
    if (r.code !== 0) throw new Error(r.err);
    return (performance.now() - t0) / 1000;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

interface PauseRun {
  walls: number[];
  hashes: string[];
}

async function pauseRow(runs: number, notes: string[]): Promise<string> {
  const size = 256 * MiB, steps = 8;
  const bare: number[] = [];
  const pauses: number[] = [];
  const cps: number[] = [];
  let exactTotal = 0, total = 0;
  const tornSteps: number[] = [];
  for (let i = 0; i < runs; i++) {
    const b = await runScript(PAUSE_SCRIPT, [String(size), String(steps)], false);
    const bw = (b.res as PauseRun).walls;
    bare.push(...bw);
    await Deno.remove(b.dir, { recursive: true });
    cps.push(await cpSeconds(size));
    const r = await runScript(PAUSE_SCRIPT, [String(size), String(steps)], true);
    const rr = r.res as PauseRun;
    if (new Set(rr.hashes).size !== steps) throw new Error("the script did not write 8 versions");
    const check = await exactCheckpoints(r.dir, r.env, rr.hashes);
    if (check.count !== steps) throw new Error(`${check.count} checkpoints, not ${steps}`);
    exactTotal += check.exact;
    total += check.count;
    tornSteps.push(...check.torn);
    const base = median(bw);
    pauses.push(...rr.walls.map((w) => Math.max(0, w - base)));
    await Deno.remove(r.dir, { recursive: true });
  }
  const cp = median(cps);
  const med = median(pauses);
  notes.push(
    `pause: ${runs} run(s) × 8 steps; bare step ${ms(median(bare))} (save + 0.3 s CPU); ` +
      `pauses ${pauses.map(ms).join(", ")}; cp runs ${cps.map(ms).join(", ")}; ` +
      `${exactTotal}/${total} checkpoints hold exactly their step's bytes` +
      (tornSteps.length ? ` (steps without model.bin, recorded as torn: ${tornSteps})` : ""),
  );
  return `| pause per checkpoint, 256 MiB model.bin saved every step (median / worst) | ${
    ms(med)
  } / ${ms(Math.max(...pauses))} | ${ms(cp)} (cp) | ${
    (med / cp).toFixed(2)
  }× | median ≤ 1.5× cp | ${med <= 1.5 * cp ? "yes" : "**no**"} |`;
}

async function torchRow(runs: number, notes: string[]): Promise<string> {
  const bare: number[] = [], under: number[] = [];
  for (let i = 0; i < runs; i++) {
    const b = await runScript(TORCH_SCRIPT, ["5"], false);
    bare.push((b.res as { wall: number }).wall);
    await Deno.remove(b.dir, { recursive: true });
    const r = await runScript(TORCH_SCRIPT, ["5"], true);
    under.push((r.res as { wall: number }).wall);
    const [exp] = JSON.parse(await rep(["ls", "--json"], r.dir, r.env));
    const shown = JSON.parse(await rep(["show", exp.id, "--json"], r.dir, r.env));
    const sizes = shown.checkpoints.map((c: { files: { size: number }[] }) =>
      c.files.reduce((s, f) => s + f.size, 0)
    );
    if (sizes.length !== 5 || sizes.some((s: number) => s < 150e6)) {
      throw new Error(`expected 5 checkpoints of ≥ 150 MB, got ${sizes}`);
    }
    await Deno.remove(r.dir, { recursive: true });
  }
  const b = median(bare), u = median(under);
  const added = (u - b) / b;
  notes.push(
    `torch: bare ${bare.map((x) => x.toFixed(2)).join(", ")} s; under rep run ${
      under.map((x) => x.toFixed(2)).join(", ")
    } s (the script's own wall time, Python start-up excluded); 5 checkpoints of ≥ 150 MB each checked`,
  );
  return `| torch script saving 150 MB per epoch (5 epochs), bare vs under \`rep run\` | ${
    u.toFixed(2)
  } s | ${b.toFixed(2)} s (bare) | +${(added * 100).toFixed(1)}% | ≤ 10% added | ${
    added <= 0.1 ? "yes" : "**no**"
  } |`;
}

async function main() {
  const { values } = parseArgs({
    args: Deno.args,
    options: { runs: { type: "string", default: "2" }, only: { type: "string" } },
  });
  const runs = Number(values.runs);
  const notes: string[] = [];
  const rows: string[] = [];
  if (!values.only || values.only === "pause") rows.push(await pauseRow(runs, notes));
  if (!values.only || values.only === "torch") rows.push(await torchRow(runs, notes));
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  const md = `# rep run overhead\n\nWritten by \`deno run -A bench/run_pause.ts\` on ${
    new Date().toISOString().slice(0, 16)
  } (load ${load}; 2 cores).\n\n| figure | rep | baseline | ratio | target | met? |\n| --- | --- | --- | --- | --- | --- |\n${
    rows.join("\n")
  }\n\n## Notes\n\n${notes.map((n) => `- ${n}`).join("\n")}\n`;
  console.log(md);
  const file = join(ROOT, "bench", "RESULTS_run.md");
  await Deno.writeTextFile(file, md);
  await exec([Deno.execPath(), "fmt", "--quiet", file], ROOT); // as deno fmt --check wants it
}

if (import.meta.main) await main();
