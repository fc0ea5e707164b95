/**
 * Helpers for the `rep run` end-to-end tests: a test folder with scripts, `rep run` spawned as the
 * compiled binary would run, and the checkpoints read back through the library.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { type Checkpoint, type Experiment, openRepository, type Repo } from "../mod.ts";
import { PERMISSIONS, ROOT, tempRepo } from "./helpers.ts";

export const PY = "python3";
export const dec = new TextDecoder();

/** A test folder: `work` (the command's cwd, holding the scripts), `repo`, and a cache dir. */
export async function setup(scripts: Record<string, string> = {}) {
  const t = await tempRepo();
  const work = join(t.dir, "work");
  await Deno.mkdir(work);
  for (const [name, text] of Object.entries(scripts)) {
    await Deno.writeTextFile(join(work, name), text);
  }
  return { ...t, work };
}

/** The result of one `rep run`. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link runRep}. */
export interface RunOpts {
  cwd: string;
  env: Record<string, string>;
  /** Called once rep is running (e.g. to send it a signal). */
  during?: (child: Deno.ChildProcess) => Promise<void>;
  timeoutMs?: number;
}

/** Spawn `rep ARGS` exactly as the compiled binary would run. */
export async function runRep(args: string[], o: RunOpts): Promise<Ran> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...PERMISSIONS, join(ROOT, "main.ts"), ...args],
    cwd: o.cwd,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...o.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const killer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
  }, o.timeoutMs ?? 120_000);
  const out = new Response(child.stdout).arrayBuffer();
  const err = new Response(child.stderr).arrayBuffer();
  try {
    if (o.during) await o.during(child);
    const st = await child.status;
    return { code: st.code, stdout: dec.decode(await out), stderr: dec.decode(await err) };
  } finally {
    clearTimeout(killer);
  }
}

/** `rep run -R REPO OPTS… -- COMMAND…` in the test folder. */
export function repRun(
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

/** Open the repository, get its only (or its newest) experiment, run `fn`, close. */
export async function withExperiment<T>(
  repoDir: string,
  fn: (exp: Experiment, repo: Repo) => Promise<T> | T,
  options: { only?: boolean } = {},
): Promise<T> {
  const repo = await openRepository(repoDir);
  try {
    const list = await repo.experiments.list();
    if (options.only ?? true) {
      assert.equal(list.length, 1, `expected one experiment, got ${list.length}`);
    }
    return await fn(list[0]!, repo);
  } finally {
    await repo.close();
  }
}

/** sha256 (hex) of one file of a checkpoint, streamed. */
export async function ckSha(ck: Checkpoint, path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const b of await ck.open(path)) h.update(b);
  return h.digest("hex");
}

/** The paths of a checkpoint's files, sorted. */
export async function fileNames(ck: Checkpoint): Promise<string[]> {
  return (await ck.files()).map((f) => f.path).sort();
}

/** The side file a script writes: one `{step, file, sha}` per saved version. */
export async function sideShas(work: string): Promise<Map<number, Map<string, string>>> {
  const out = new Map<number, Map<string, string>>();
  const text = await Deno.readTextFile(join(work, "shas.jsonl")).catch(() => "");
  for (const line of text.split("\n").filter(Boolean)) {
    const r = JSON.parse(line) as { step: number; file: string; sha: string };
    if (!out.has(r.step)) out.set(r.step, new Map());
    out.get(r.step)!.set(r.file, r.sha);
  }
  return out;
}

/**
 * Every checkpoint with a step holds, for each file, exactly the bytes the script saved at that
 * step (per the side file), and nothing else: no torn files, no warnings.
 */
export async function assertExact(exp: Experiment, work: string, steps: number[]): Promise<void> {
  const shas = await sideShas(work);
  const cks = exp.checkpoints.filter((c) => c.step !== null);
  assert.deepEqual(cks.map((c) => c.step), steps, "one checkpoint per metrics line");
  for (const ck of cks) {
    const want = shas.get(ck.step!);
    assert.ok(want, `the script saved nothing at step ${ck.step}`);
    assert.deepEqual(ck.record.torn, [], `step ${ck.step}: ${ck.record.warnings.join("; ")}`);
    assert.deepEqual(ck.record.warnings, [], `step ${ck.step}: warnings`);
    assert.deepEqual(await fileNames(ck), [...want.keys()].sort(), `step ${ck.step}: files`);
    for (const [file, sha] of want) {
      assert.equal(
        await ckSha(ck, file),
        sha,
        `step ${ck.step}: ${file} holds another step's bytes`,
      );
    }
  }
}

/**
 * Python preamble: OUT, MET, `line(obj)` appending a metrics line, `save(rel, data, step)` writing
 * a file of the output folder and recording its sha256 in ../shas.jsonl (outside the output).
 */
export const PRE = `import hashlib, json, os, sys, time
OUT = os.environ["REP_OUTPUT_DIR"]
MET = os.environ["REP_METRICS_FILE"]
REL = os.path.relpath(OUT, os.getcwd())
def line(obj):
    with open(MET, "a") as f:
        f.write(json.dumps(obj) + "\\n")
def record(rel, step):
    with open(os.path.join(OUT, rel), "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    with open("shas.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "file": REL + "/" + rel, "sha": sha}) + "\\n")
def save(rel, data, step):
    p = os.path.join(OUT, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    record(rel, step)
def busy(seconds):
    t0 = time.time()
    while time.time() - t0 < seconds:
        pass
`;

/** Wait until `path` exists. */
export async function waitForFile(path: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await Deno.stat(path).then(() => true, () => false)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${path}`);
}
