/**
 * Where and how a run happened: host, platform, hardware, git state, Python environment and the
 * (redacted) environment variables. Collection never throws because a tool is missing or slow:
 * each probe runs as a subprocess with a timeout, in parallel, and a probe that fails yields `null`
 * plus a line in {@link Provenance.warnings}.
 *
 * **Git** ({@link gitInfo}), when `cwd` is inside a git work tree:
 * - `commit`: `HEAD`'s id (`null` before the first commit); `branch`: the current branch (`null`
 *   when detached); `remote`: `origin`'s URL with any password redacted (`null` when none).
 * - `diff`: `git diff HEAD --binary` (staged and unstaged changes of tracked files against `HEAD`,
 *   or against the empty tree before the first commit), ready for `git apply`. Capped at
 *   {@link MAX_DIFF_BYTES}; a longer diff is cut at a line end and `diffTruncated` is set.
 * - `untracked`: untracked files that `.gitignore` does not exclude, relative to the repository
 *   root (`git ls-files --others --exclude-standard`), capped at {@link MAX_UNTRACKED} entries
 *   (`untrackedTruncated`).
 * - `dirty`: `true` when the diff is non-empty or there are untracked files; the work tree then
 *   differs from `commit`, and the diff plus untracked files are what a code snapshot needs.
 *
 * **Python** is probed when the basename of `command[0]` is `python`, `python3`, `python3.11`, …
 * (`python[0-9.]*`, optional `.exe`); wrappers such as `uv run python` are not followed. The same
 * interpreter (resolved against `cwd` when it is a relative path) reports its version, executable and
 * installed distributions (`importlib.metadata`, as `name==version`, sorted case-insensitively),
 * within {@link PYTHON_TIMEOUT_MS}.
 *
 * **Environment variables** are redacted by {@link redactEnv}; see its documentation.
 *
 * @module
 */
import * as os from "node:os";
import { isAbsolute, join } from "node:path";

/** Largest recorded diff, in bytes: 5 MiB. */
export const MAX_DIFF_BYTES = 5 << 20;
/** Most untracked files listed. */
export const MAX_UNTRACKED = 10_000;
/** Timeout of the Python probe. */
export const PYTHON_TIMEOUT_MS = 10_000;
/** Timeout of each git and nvidia-smi call. */
export const TOOL_TIMEOUT_MS = 10_000;
/** What a redacted value (or part of a value) is replaced with. */
export const REDACTED = "[REDACTED]";

/** One GPU, as reported by `nvidia-smi`. */
export interface GpuInfo {
  /** The product name, e.g. `NVIDIA A100-SXM4-80GB`. */
  name: string;
  /** Total memory in MiB, `null` when not reported as a number. */
  memoryMiB: number | null;
  /** The driver version. */
  driver: string;
}

/** The state of the git work tree containing the run's working directory. */
export interface GitInfo {
  /** Absolute path of the work tree's top directory. */
  root: string;
  /** `HEAD`'s commit id, `null` before the first commit. */
  commit: string | null;
  /** The checked-out branch, `null` when `HEAD` is detached. */
  branch: string | null;
  /** `origin`'s URL with any password redacted, `null` when there is no `origin`. */
  remote: string | null;
  /** The work tree differs from `commit`: tracked changes or untracked files. */
  dirty: boolean;
  /** `git diff HEAD --binary`: tracked changes (staged and unstaged) against `commit`. */
  diff: string;
  /** `diff` was cut at {@link MAX_DIFF_BYTES} and cannot be applied. */
  diffTruncated: boolean;
  /** Untracked, not ignored files, relative to `root`, sorted. */
  untracked: string[];
  /** `untracked` was cut at {@link MAX_UNTRACKED} entries. */
  untrackedTruncated: boolean;
}

/** The Python interpreter of a Python command. */
export interface PythonInfo {
  /** The interpreter as given in the command (`command[0]`). */
  interpreter: string;
  /** `sys.executable`, `null` when the probe failed. */
  executable: string | null;
  /** E.g. `"3.11.7"`, `null` when the probe failed. */
  version: string | null;
  /** E.g. `"CPython"`, `null` when the probe failed. */
  implementation: string | null;
  /** Installed distributions as `name==version`, `null` when the probe failed. */
  packages: string[] | null;
}

/** Everything {@link collectProvenance} records. */
export interface Provenance {
  /** The host name. */
  host: string;
  /** The user name, `null` when unknown. */
  user: string | null;
  /** The operating system. */
  platform: {
    /** `Deno.build.os`: `linux`, `darwin`, `windows`, … */
    os: string;
    /** `Deno.build.arch`: `x86_64`, `aarch64`. */
    arch: string;
    /** The kernel / OS release, `""` when unknown. */
    release: string;
  };
  /** The processor. */
  cpu: {
    /** The first CPU's model name, `null` when unknown. */
    model: string | null;
    /** Logical CPUs. */
    count: number;
  };
  /** Total memory in bytes, `null` when unknown. */
  memoryBytes: number | null;
  /** GPUs from `nvidia-smi`; `null` when it is missing or fails (so: no NVIDIA GPU known). */
  gpu: GpuInfo[] | null;
  /** `null` when `cwd` is not in a git work tree (or git is missing). */
  git: GitInfo | null;
  /** `null` unless the command is a Python command. */
  python: PythonInfo | null;
  /** Environment variables, redacted by {@link redactEnv}. */
  env: Record<string, string>;
  /** Why a probe yielded nothing (missing tool, timeout, error), for the run's log. */
  warnings: string[];
}

/** Options of {@link collectProvenance}. */
export interface ProvenanceOptions {
  /** The run's working directory. */
  cwd: string;
  /** The wrapped command, `command[0]` being the program. */
  command: string[];
  /** The run's environment; default: this process's. Probes run with it too. */
  env?: Record<string, string>;
}

/** Gather the run's provenance. Never throws because a tool is missing, slow or failing. */
export async function collectProvenance(opts: ProvenanceOptions): Promise<Provenance> {
  const warnings: string[] = [];
  let env: Record<string, string> = {};
  try {
    env = opts.env ?? Deno.env.toObject();
  } catch (e) {
    warnings.push(`environment variables not recorded: ${message(e)}`);
  }
  const toolEnv = opts.env;
  const [gpu, git, python] = await Promise.all([
    gpuInfo(warnings, toolEnv),
    gitInfo(opts.cwd, { env: toolEnv, warnings }),
    isPythonCommand(opts.command)
      ? pythonInfo(opts.command[0]!, opts.cwd, warnings, toolEnv)
      : Promise.resolve(null),
  ]);
  const cpus = attempt(() => os.cpus(), []);
  return {
    host: attempt(() => os.hostname(), "") || (env.HOSTNAME ?? ""),
    user: attempt(() => os.userInfo().username, null) || env.USER || env.USERNAME || null,
    platform: {
      os: Deno.build.os,
      arch: Deno.build.arch,
      release: attempt(() => os.release(), ""),
    },
    cpu: {
      model: cpus[0]?.model?.trim() || null,
      count: cpus.length || (globalThis.navigator?.hardwareConcurrency ?? 0),
    },
    memoryBytes: attempt(() => os.totalmem(), null) || null,
    gpu,
    git,
    python,
    env: redactEnv(env),
    warnings,
  };
}

function attempt<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// ---------------------------------------------------------------------------------------------
// Subprocesses

/** The outcome of {@link captureCommand}. */
export interface CaptureResult {
  /** Exit code; `null` when killed (timeout or output cap). */
  code: number | null;
  /** Standard output, at most `maxBytes`. */
  stdout: Uint8Array;
  /** Standard output went over `maxBytes`; the process was killed. */
  truncated: boolean;
  /** The first 64 KiB of standard error, decoded. */
  stderr: string;
  /** The process ran longer than `timeoutMs` and was killed. */
  timedOut: boolean;
}

/** Options of {@link captureCommand}. */
export interface CaptureOptions {
  /** Working directory; default: this process's. */
  cwd?: string;
  /** Extra or replacement environment variables (merged over this process's). */
  env?: Record<string, string> | undefined;
  /** Kill the process after this long; default {@link TOOL_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Keep at most this much standard output; default 16 MiB. */
  maxBytes?: number;
}

/**
 * Run `program args…` with stdin closed and capture its output, with a timeout and an output cap
 * (the process is killed when either is hit). Resolves `null` when the program cannot be started
 * (not installed, not permitted); never rejects for a failing program.
 */
export async function captureCommand(
  program: string,
  args: string[],
  opts: CaptureOptions = {},
): Promise<CaptureResult | null> {
  const maxBytes = opts.maxBytes ?? 16 << 20;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, {
      args,
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      ...(opts.env !== undefined ? { env: opts.env } : {}),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch {
    return null;
  }
  let killed = false;
  const kill = () => {
    if (killed) return;
    killed = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  };
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, opts.timeoutMs ?? TOOL_TIMEOUT_MS);
  try {
    const [out, err] = await Promise.all([
      readCapped(child.stdout, maxBytes, true, kill),
      readCapped(child.stderr, 64 * 1024, false, kill),
    ]);
    const status = await child.status;
    return {
      code: killed ? null : status.code,
      stdout: out.bytes,
      truncated: out.truncated,
      stderr: new TextDecoder().decode(err.bytes),
      timedOut,
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Read a stream up to `max` bytes. Past it: with `stop`, kill the process and stop reading; else
 * keep draining (so the child never blocks on a full pipe) and discard.
 */
async function readCapped(
  stream: ReadableStream<Uint8Array>,
  max: number,
  stop: boolean,
  kill: () => void,
): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  let truncated = false;
  const reader = stream.getReader();
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (truncated) continue;
      if (length + value.length > max) {
        chunks.push(value.subarray(0, max - length));
        length = max;
        truncated = true;
        if (stop) {
          kill();
          await reader.cancel().catch(() => {});
          break;
        }
        continue;
      }
      chunks.push(value);
      length += value.length;
    }
  } catch {
    // The stream errored (process killed): keep what was read.
  } finally {
    reader.releaseLock();
  }
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return { bytes, truncated };
}

// ---------------------------------------------------------------------------------------------
// GPU

async function gpuInfo(
  warnings: string[],
  env: Record<string, string> | undefined,
): Promise<GpuInfo[] | null> {
  const r = await captureCommand(
    "nvidia-smi",
    ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
    { env, maxBytes: 1 << 20 },
  );
  if (r === null) return null; // Not installed: the normal case without NVIDIA GPUs.
  if (r.code !== 0) {
    warnings.push(
      `nvidia-smi ${r.timedOut ? "timed out" : `failed (exit ${r.code})`}: ${firstLine(r.stderr)}`,
    );
    return null;
  }
  return parseNvidiaSmiCsv(new TextDecoder().decode(r.stdout));
}

/**
 * Parse `nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader` output,
 * e.g. `NVIDIA A100-SXM4-80GB, 81920 MiB, 535.104.05`, one GPU per line.
 */
export function parseNvidiaSmiCsv(text: string): GpuInfo[] {
  const gpus: GpuInfo[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === "") continue;
    // The name may contain commas; memory and driver never do.
    const parts = line.split(",").map((s) => s.trim());
    if (parts.length < 3) continue;
    const driver = parts.pop()!;
    const memory = parts.pop()!;
    const mib = /^([0-9]+(?:\.[0-9]+)?)\s*MiB$/i.exec(memory);
    gpus.push({ name: parts.join(", "), memoryMiB: mib ? Number(mib[1]) : null, driver });
  }
  return gpus;
}

function firstLine(text: string): string {
  return text.trim().split(/\r?\n/)[0]?.slice(0, 200) || "no error output";
}

// ---------------------------------------------------------------------------------------------
// Git

/** Options of {@link gitInfo}. */
export interface GitInfoOptions {
  /** Environment for the git processes (merged over this process's). */
  env?: Record<string, string> | undefined;
  /** Largest diff kept; default {@link MAX_DIFF_BYTES}. */
  maxDiffBytes?: number;
  /** Timeout of each git call; default {@link TOOL_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Receives why git info is missing or partial (git failed, timed out). */
  warnings?: string[];
}

/**
 * The git state of the work tree containing `cwd`; `null` when `cwd` is not in a work tree or git
 * is missing. See the module documentation for the exact fields. Never throws.
 */
export async function gitInfo(cwd: string, opts: GitInfoOptions = {}): Promise<GitInfo | null> {
  const warnings = opts.warnings ?? [];
  const timeoutMs = opts.timeoutMs ?? TOOL_TIMEOUT_MS;
  // Fixed output formats whatever the user's git config says.
  const base = ["-c", "core.quotepath=off", "-c", "color.ui=never"];
  const git = (dir: string, args: string[], maxBytes?: number) =>
    captureCommand("git", [...base, "-C", dir, ...args], {
      env: opts.env,
      timeoutMs,
      ...(maxBytes !== undefined ? { maxBytes } : {}),
    });
  const top = await git(cwd, ["rev-parse", "--show-toplevel"]);
  if (top === null || top.code !== 0) {
    if (top?.timedOut) warnings.push("git rev-parse timed out: git info not recorded");
    return null; // git missing, or not a work tree (the normal case outside git).
  }
  const root = text(top.stdout).trim();
  if (root === "") return null;

  const [head, branch, remote, untracked] = await Promise.all([
    git(root, ["rev-parse", "--verify", "-q", "HEAD^{commit}"]),
    git(root, ["symbolic-ref", "-q", "--short", "HEAD"]),
    git(root, ["config", "--get", "remote.origin.url"]),
    git(root, ["ls-files", "-z", "--others", "--exclude-standard", "--full-name"]),
  ]);
  const commit = head?.code === 0 ? text(head.stdout).trim() || null : null;
  let diffBase = commit;
  if (diffBase === null) {
    // Before the first commit: diff against the empty tree.
    const empty = await git(root, ["hash-object", "-t", "tree", "--stdin"]);
    diffBase = empty?.code === 0 ? text(empty.stdout).trim() : null;
  }
  const maxDiff = opts.maxDiffBytes ?? MAX_DIFF_BYTES;
  const diffResult = diffBase === null ? null : await git(
    root,
    [
      "diff",
      "--binary",
      "--no-color",
      "--no-ext-diff",
      "--no-textconv",
      "--src-prefix=a/",
      "--dst-prefix=b/",
      diffBase,
      "--",
    ],
    maxDiff,
  );
  let diff = "";
  let diffTruncated = false;
  if (diffResult === null || (diffResult.code !== 0 && !diffResult.truncated)) {
    warnings.push(`git diff failed: ${diffResult ? firstLine(diffResult.stderr) : "not run"}`);
  } else {
    let bytes = diffResult.stdout;
    if (diffResult.truncated) {
      diffTruncated = true;
      const nl = bytes.lastIndexOf(0x0a);
      bytes = bytes.subarray(0, nl + 1);
      warnings.push(`git diff is larger than ${maxDiff} bytes: recorded truncated`);
    }
    diff = text(bytes);
  }

  let files: string[] = [];
  let untrackedTruncated = false;
  if (untracked?.code === 0) {
    files = text(untracked.stdout).split("\0").filter((f) => f !== "").sort();
    if (files.length > MAX_UNTRACKED) {
      files = files.slice(0, MAX_UNTRACKED);
      untrackedTruncated = true;
      warnings.push(`more than ${MAX_UNTRACKED} untracked files: list truncated`);
    }
  } else {
    warnings.push(
      `git ls-files failed: ${untracked ? firstLine(untracked.stderr) : "not run"}`,
    );
  }
  const remoteUrl = remote?.code === 0 ? text(remote.stdout).trim() : "";
  return {
    root,
    commit,
    branch: branch?.code === 0 ? text(branch.stdout).trim() || null : null,
    remote: remoteUrl === "" ? null : redactValue(remoteUrl),
    dirty: diff !== "" || diffTruncated || files.length > 0,
    diff,
    diffTruncated,
    untracked: files,
    untrackedTruncated,
  };
}

function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

// ---------------------------------------------------------------------------------------------
// Python

const PYTHON_NAME_RE = /^python[0-9.]*(?:\.exe)?$/i;

/** True when `command[0]`'s basename is `python`, `python3`, `python3.11`, … */
export function isPythonCommand(command: string[]): boolean {
  const program = command[0];
  if (program === undefined) return false;
  const name = program.split(/[\\/]/).pop() ?? "";
  return PYTHON_NAME_RE.test(name);
}

const PYTHON_PROBE = `
import json, platform, sys
try:
    import importlib.metadata as md
    dists = [(d.metadata["Name"], d.version) for d in md.distributions()]
except ImportError:
    import pkg_resources
    dists = [(d.project_name, d.version) for d in pkg_resources.working_set]
pkgs = sorted({"%s==%s" % (n, v) for n, v in dists if n}, key=str.lower)
print(json.dumps({"version": platform.python_version(), "executable": sys.executable,
                  "implementation": platform.python_implementation(), "packages": pkgs}))
`;

async function pythonInfo(
  interpreter: string,
  cwd: string,
  warnings: string[],
  env: Record<string, string> | undefined,
): Promise<PythonInfo> {
  const info: PythonInfo = {
    interpreter,
    executable: null,
    version: null,
    implementation: null,
    packages: null,
  };
  const program = /[\\/]/.test(interpreter) && !isAbsolute(interpreter)
    ? join(cwd, interpreter)
    : interpreter;
  const r = await captureCommand(program, ["-c", PYTHON_PROBE], {
    cwd,
    env,
    timeoutMs: PYTHON_TIMEOUT_MS,
  });
  if (r === null) {
    warnings.push(`python probe: cannot run ${interpreter} (not found or not permitted)`);
    return info;
  }
  if (r.code !== 0) {
    warnings.push(
      `python probe ${r.timedOut ? "timed out" : `failed (exit ${r.code})`}: ${
        firstLine(r.stderr)
      }`,
    );
    return info;
  }
  try {
    const out = JSON.parse(text(r.stdout).trim().split("\n").pop() ?? "") as Record<
      string,
      unknown
    >;
    if (typeof out.version === "string") info.version = out.version;
    if (typeof out.executable === "string" && out.executable) info.executable = out.executable;
    if (typeof out.implementation === "string") info.implementation = out.implementation;
    if (Array.isArray(out.packages)) {
      info.packages = out.packages.filter((p): p is string => typeof p === "string");
    }
  } catch (e) {
    warnings.push(`python probe printed unexpected output: ${message(e)}`);
  }
  return info;
}

// ---------------------------------------------------------------------------------------------
// Redaction

/** Substrings (upper case) of variable names whose values are secrets. */
const SECRET_NAME_PARTS = [
  "KEY",
  "SECRET",
  "TOKEN",
  "PASSWORD",
  "PASSWD",
  "CREDENTIAL",
  "AUTH",
  "PRIVATE",
  "SESSION",
  "COOKIE",
];

/**
 * True when a variable's name marks its value as secret: the name, upper-cased, contains `KEY`,
 * `SECRET`, `TOKEN`, `PASSWORD`, `PASSWD`, `CREDENTIAL`, `AUTH`, `PRIVATE`, `SESSION` or `COOKIE`
 * anywhere (so also `MONKEY` or `AUTHOR`: over-redacting is the safe side), or ends in `_PWD` or
 * `_PASS` (`MYSQL_PWD`; but not `PWD`/`OLDPWD`, the working directories).
 */
export function isSecretName(name: string): boolean {
  const upper = name.toUpperCase();
  return SECRET_NAME_PARTS.some((p) => upper.includes(p)) || /_(?:PWD|PASS)$/.test(upper);
}

/** Credential formats found inside values; each match is replaced by {@link REDACTED}. */
const SECRET_VALUE_PATTERNS: RegExp[] = [
  // AWS access key ids.
  /\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b/g,
  // GitHub tokens (classic and fine-grained).
  /\bgh[pousr]_[A-Za-z0-9]{30,}\b/g,
  /\bgithub_pat_[A-Za-z0-9_]{20,}\b/g,
  // GitLab personal access tokens.
  /\bglpat-[A-Za-z0-9_-]{20,}\b/g,
  // Slack tokens.
  /\bxox[abposr]-[A-Za-z0-9-]{10,}\b/g,
  // OpenAI / Anthropic style keys (sk-…, sk-proj-…, sk-ant-…) and Stripe secret keys.
  /\bsk-[A-Za-z0-9_-]{20,}/g,
  /\b[sr]k_(?:live|test)_[A-Za-z0-9]{10,}\b/g,
  // Hugging Face tokens.
  /\bhf_[A-Za-z0-9]{30,}\b/g,
  // Google API keys.
  /\bAIza[0-9A-Za-z_-]{35}\b/g,
  // JSON Web Tokens.
  /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g,
];

const URL_PASSWORD_RE = /\b([a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/\s:@]*):([^/\s@]+)@/g;
const PRIVATE_KEY_RE = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/**
 * Redact the credentials inside a value, keeping the rest:
 * - a PEM private key (`-----BEGIN … PRIVATE KEY-----`) anywhere: the whole value is redacted;
 * - the password of a URL's `user:password@`: `https://u:[REDACTED]@host/…`;
 * - tokens of known formats: AWS access key ids (`AKIA…`, `ASIA…`, …), GitHub (`ghp_…`, `gho_…`,
 *   `ghu_…`, `ghs_…`, `ghr_…`, `github_pat_…`), GitLab (`glpat-…`), Slack (`xox?-…`), `sk-…` API
 *   keys (OpenAI, Anthropic), Stripe `sk_live_…`/`rk_live_…`, Hugging Face (`hf_…`), Google API
 *   keys (`AIza…`) and JSON Web Tokens (`eyJ….eyJ….…`).
 */
export function redactValue(value: string): string {
  if (PRIVATE_KEY_RE.test(value)) return REDACTED;
  let out = value.replace(URL_PASSWORD_RE, `$1:${REDACTED}@`);
  for (const re of SECRET_VALUE_PATTERNS) out = out.replace(re, REDACTED);
  return out;
}

/**
 * Redact a param: a string (or each string of a list) under a name {@link isSecretName} becomes
 * {@link REDACTED} (empty strings stay empty); every other string goes through {@link redactValue}.
 */
export function redactParam<T>(name: string, value: T): T {
  if (Array.isArray(value)) return value.map((x) => redactParam(name, x)) as T;
  if (typeof value !== "string") return value;
  return (isSecretName(name) && value !== "" ? REDACTED : redactValue(value)) as T;
}

/**
 * Redact environment variables: a variable whose name {@link isSecretName} gets the value
 * {@link REDACTED} (empty values stay empty, so "set but empty" remains visible); every other value
 * goes through {@link redactValue}. Returns a new object with the keys sorted.
 */
export function redactEnv(env: Record<string, string>): Record<string, string> {
  const entries = Object.entries(env)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]): [string, string] => [
      name,
      isSecretName(name) ? (value === "" ? "" : REDACTED) : redactValue(value),
    ]);
  return Object.fromEntries(entries);
}
