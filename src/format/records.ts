/**
 * The JSON records stored in a repository, and strict parsers for them: a repository written by
 * someone else may be hostile, so every field read from the store is checked before use.
 * See docs/format.md.
 *
 * @module
 */
import { CorruptObjectError } from "../errors.ts";
import { isId } from "./ids.ts";
import { MAX_CHUNK } from "./chunker.ts";

/** The repository format this version writes; it reads this one and every older one. */
export const FORMAT_VERSION = 2;

/** The format of trees: their shape has not changed since format 1 (content-addressed). */
export const TREE_FORMAT = 1;

/** A param value: what `--lr 0.01` or `-p lr=0.01` becomes. */
export type ParamValue = string | number | boolean | null;
/** A metric value; numbers are the usual case. */
export type MetricValue = number | string | boolean | null;

/** Which way a metric gets better. */
export type Goal = "minimize" | "maximize";

/** The metric that decides which checkpoint is best. */
export interface PrimaryMetric {
  /** The metric's name, as in the checkpoints' `metrics`. */
  name: string;
  /** Whether lower or higher values are better. */
  goal: Goal;
}

/** A reference to a file tree (a code snapshot or a checkpoint's files). */
export interface TreeRef {
  /** sha256 of the tree object. */
  tree: string;
  /** Number of files. */
  files: number;
  /** Total bytes of the files. */
  size: number;
}

/** Experiment status. `running` and `crashed` are derived from the heartbeat. */
export type Status = "running" | "succeeded" | "failed" | "stopped" | "crashed";

/** Git state of the working directory at start. */
export interface GitInfo {
  /** `HEAD`'s commit id, or null before the first commit. */
  commit: string | null;
  /** The checked-out branch, or null when `HEAD` is detached. */
  branch: string | null;
  /** True when the work tree differed from `commit` (changes or untracked files). */
  dirty: boolean;
  /** `origin`'s URL with any password redacted, or null. */
  remote?: string | null;
}

/** `experiments/<id>/experiment.json`: written once when the experiment starts. */
export interface ExperimentRecord {
  /** The repository format that wrote it. */
  format: number;
  /** Always `"experiment"`. */
  type: "experiment";
  /** 32 lowercase hex characters. */
  id: string;
  /** When it started (ISO 8601, UTC). */
  created: string;
  /** A human name, unique in the repository (format 2), or null. */
  name: string | null;
  /** Hyperparameters: `-p`, the command's own arguments, or `init({ params })`. */
  params: Record<string, ParamValue>;
  /** The command `rep run` ran (argv); empty for library experiments. */
  command: string[];
  /** The working directory. */
  cwd: string;
  /**
   * The output folder `rep run` watched, relative to `cwd` (format 2), or null. Checkpoint paths of
   * format 2 are relative to `cwd`; those of format 1 `rep run` experiments to this folder.
   */
  output: string | null;
  /** The host name. */
  host: string;
  /** The user name (`$USER`, else the account name). */
  user: string;
  /** `os-arch`, e.g. `linux-x86_64`. */
  platform: string;
  /** The version of rep that recorded it. */
  rep_version: string;
  /** Git state at start, or null outside a git work tree. */
  git: GitInfo | null;
  /** The code snapshot, or null when none was taken. */
  code: TreeRef | null;
  /** Tags given at start. */
  tags: string[];
  /** A note given at start, or null. */
  note: string | null;
  /** The metric that decides the best checkpoint, or null. */
  primary_metric: PrimaryMetric | null;
  /** Everything else collected at start: python, packages, cpu, gpu, env (redacted), … */
  provenance: Record<string, unknown>;
}

/** `experiments/<eid>/checkpoints/<cid>.json`: written once its files are stored. */
export interface CheckpointRecord {
  /** The repository format that wrote it. */
  format: number;
  /** Always `"checkpoint"`. */
  type: "checkpoint";
  /** 32 lowercase hex characters. */
  id: string;
  /** The id of its experiment. */
  experiment: string;
  /** The attempt that made it (1 unless the experiment was resumed). */
  attempt: number;
  /** When it was recorded (ISO 8601, UTC). */
  created: string;
  /** The training step, or null when unknown. */
  step: number | null;
  /** Metrics at this step. */
  metrics: Record<string, MetricValue>;
  /** The metric that decides the best checkpoint, or null. */
  primary_metric: PrimaryMetric | null;
  /** The files stored, or null when none were. */
  files: TreeRef | null;
  /** Files whose version for this step could not be stored; left out of `files`. */
  torn: string[];
  /** Why rep could not tell which version of a file belongs to this step, in words. */
  warnings: string[];
}

/** `experiments/<id>/status.json`: written once when the experiment ends. */
export interface StatusRecord {
  format: number;
  type: "status";
  status: Exclude<Status, "running">;
  exit_code: number | null;
  signal: string | null;
  finished: string;
}

/** `experiments/<id>/heartbeat.json`: rewritten while the experiment runs. */
export interface Heartbeat {
  pid: number;
  host: string;
  updated: string;
  /** Seconds between heartbeats; a heartbeat older than 3 intervals + 30 s means crashed. */
  interval: number;
  /** The attempt that writes it (1 when absent). */
  attempt?: number;
}

/**
 * `experiments/<id>/attempts/<n>/attempt.json`: written once when attempt n ≥ 2 (a resume) starts.
 * Attempt 1 is the experiment record itself.
 */
export interface AttemptRecord {
  format: number;
  type: "attempt";
  /** The experiment resumed. */
  experiment: string;
  /** n ≥ 2. */
  attempt: number;
  created: string;
  host: string;
  user: string;
  pid: number | null;
  command: string[];
  cwd: string;
  /** The checkpoint whose files were restored before the command started, or null. */
  resumed_from: string | null;
  /** That checkpoint's step, or null. */
  resume_step: number | null;
}

/**
 * A claim (`<scope><time>-<claimer>.json`) or won marker (`<scope>won-<claimer>.json`) of the claim
 * protocol (src/catalog/claims.ts). `experiment` and `attempt` say what the claimer would do with
 * the scope once won.
 */
export interface ClaimRecord {
  format: number;
  type: "claim" | "won";
  /** The claimer's random id (32 hex digits). */
  claimer: string;
  created: string;
  host: string;
  pid: number;
  /** The experiment the claimer starts or resumes, or null. */
  experiment: string | null;
  /** The attempt the claimer would run, or null. */
  attempt: number | null;
}

/** `tombstones/<time>-<rand>.json`: ids removed by `rep rm`. */
export interface TombstoneRecord {
  format: number;
  type: "tombstone";
  created: string;
  experiments: string[];
  checkpoints: string[];
}

/** One file in a tree. `chunks` are `[pack id, offset, length, chunk sha256]`. */
export interface FileEntry {
  path: string;
  size: number;
  /** Content id: sha256 over the concatenated binary sha256s of the file's chunks. */
  hash: string;
  /** POSIX permission bits (0o644, 0o755). */
  mode: number;
  chunks: ChunkRef[];
}

/** Where a chunk lives: pack id, offset in the pack, length, sha256 of the chunk. */
export type ChunkRef = [pack: string, offset: number, length: number, hash: string];

/** `trees/<sha256>.json`: the manifest of a set of files, content-addressed. */
export interface Tree {
  format: number;
  files: FileEntry[];
}

// ---- validation -------------------------------------------------------------------------------

type Obj = Record<string, unknown>;

function fail(what: string, why: string): never {
  throw new CorruptObjectError(
    `Corrupt ${what}: ${why}`,
    "Run `rep verify` to find damaged objects; the repository may have been written by a broken or hostile client",
  );
}

function obj(v: unknown, what: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(what, "not a JSON object");
  return v as Obj;
}

function str(o: Obj, k: string, what: string): string {
  const v = o[k];
  if (typeof v !== "string") fail(what, `field "${k}" is not a string`);
  return v;
}

function optStr(o: Obj, k: string, what: string): string | null {
  const v = o[k];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") fail(what, `field "${k}" is not a string`);
  return v;
}

function nonNegInt(v: unknown, k: string, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    fail(what, `field "${k}" is not a non-negative integer`);
  }
  return v;
}

function positiveInt(v: unknown, k: string, what: string): number {
  const n = nonNegInt(v, k, what);
  if (n < 1) fail(what, `field "${k}" is not a positive integer`);
  return n;
}

function date(o: Obj, k: string, what: string): string {
  const v = str(o, k, what);
  if (Number.isNaN(Date.parse(v))) fail(what, `field "${k}" is not a date`);
  return v;
}

function idField(o: Obj, k: string, what: string): string {
  const v = o[k];
  if (!isId(v)) fail(what, `field "${k}" is not an id`);
  return v;
}

function format(o: Obj, what: string): number {
  const v = nonNegInt(o.format, "format", what);
  if (v > FORMAT_VERSION) {
    fail(what, `written by a newer format (${v}) than this rep understands (${FORMAT_VERSION})`);
  }
  return v;
}

function scalars<T>(v: unknown, k: string, what: string): Record<string, T> {
  if (v === undefined || v === null) return {};
  const o = obj(v, `${what} ${k}`);
  const out: Record<string, T> = {};
  for (const [name, val] of Object.entries(o)) {
    if (val !== null && !["string", "number", "boolean"].includes(typeof val)) {
      fail(what, `${k}.${name} is not a scalar`);
    }
    out[name] = val as T;
  }
  return out;
}

function primary(v: unknown, what: string): PrimaryMetric | null {
  if (v === undefined || v === null) return null;
  const o = obj(v, what);
  const name = str(o, "name", what);
  if (o.goal !== "minimize" && o.goal !== "maximize") fail(what, "primary_metric.goal is invalid");
  return { name, goal: o.goal };
}

function treeRef(v: unknown, what: string): TreeRef | null {
  if (v === undefined || v === null) return null;
  const o = obj(v, what);
  const tree = str(o, "tree", what);
  if (!/^[0-9a-f]{64}$/.test(tree)) fail(what, "tree reference is not a sha256");
  return { tree, files: nonNegInt(o.files, "files", what), size: nonNegInt(o.size, "size", what) };
}

function strings(v: unknown, k: string, what: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    fail(what, `field "${k}" is not a list of strings`);
  }
  return v as string[];
}

/** Parse JSON bytes, failing with {@link CorruptObjectError}. */
export function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    fail(what, e instanceof Error ? e.message : String(e));
  }
}

/** Validate an experiment record. */
export function parseExperiment(v: unknown, what = "experiment record"): ExperimentRecord {
  const o = obj(v, what);
  if (o.type !== "experiment") fail(what, `type is ${JSON.stringify(o.type)}, not "experiment"`);
  const gitRaw = o.git;
  let git: GitInfo | null = null;
  if (gitRaw !== undefined && gitRaw !== null) {
    const g = obj(gitRaw, what);
    git = {
      commit: optStr(g, "commit", what),
      branch: optStr(g, "branch", what),
      dirty: g.dirty === true,
      remote: optStr(g, "remote", what),
    };
  }
  const command = strings(o.command, "command", what);
  return {
    format: format(o, what),
    type: "experiment",
    id: idField(o, "id", what),
    created: date(o, "created", what),
    name: optStr(o, "name", what),
    params: scalars<ParamValue>(o.params, "params", what),
    command,
    cwd: optStr(o, "cwd", what) ?? "",
    output: optStr(o, "output", what),
    host: optStr(o, "host", what) ?? "",
    user: optStr(o, "user", what) ?? "",
    platform: optStr(o, "platform", what) ?? "",
    rep_version: optStr(o, "rep_version", what) ?? "",
    git,
    code: treeRef(o.code, what),
    tags: strings(o.tags, "tags", what),
    note: optStr(o, "note", what),
    primary_metric: primary(o.primary_metric, what),
    provenance: o.provenance && typeof o.provenance === "object" && !Array.isArray(o.provenance)
      ? o.provenance as Record<string, unknown>
      : {},
  };
}

/** Validate a checkpoint record. */
export function parseCheckpoint(v: unknown, what = "checkpoint record"): CheckpointRecord {
  const o = obj(v, what);
  if (o.type !== "checkpoint") fail(what, `type is ${JSON.stringify(o.type)}, not "checkpoint"`);
  const step = o.step === undefined || o.step === null ? null : nonNegInt(o.step, "step", what);
  return {
    format: format(o, what),
    type: "checkpoint",
    id: idField(o, "id", what),
    experiment: idField(o, "experiment", what),
    attempt: o.attempt === undefined || o.attempt === null
      ? 1
      : positiveInt(o.attempt, "attempt", what),
    created: date(o, "created", what),
    step,
    metrics: scalars<MetricValue>(o.metrics, "metrics", what),
    primary_metric: primary(o.primary_metric, what),
    files: treeRef(o.files, what),
    torn: strings(o.torn, "torn", what),
    warnings: strings(o.warnings, "warnings", what),
  };
}

const END_STATES = ["succeeded", "failed", "stopped", "crashed"];

/** Validate a status record. */
export function parseStatus(v: unknown, what = "status record"): StatusRecord {
  const o = obj(v, what);
  if (o.type !== "status") fail(what, `type is ${JSON.stringify(o.type)}, not "status"`);
  if (typeof o.status !== "string" || !END_STATES.includes(o.status)) fail(what, "bad status");
  const code = o.exit_code;
  if (code !== null && code !== undefined && !Number.isInteger(code)) fail(what, "bad exit_code");
  return {
    format: format(o, what),
    type: "status",
    status: o.status as StatusRecord["status"],
    exit_code: (code ?? null) as number | null,
    signal: optStr(o, "signal", what),
    finished: date(o, "finished", what),
  };
}

/** Validate a heartbeat. */
export function parseHeartbeat(v: unknown, what = "heartbeat"): Heartbeat {
  const o = obj(v, what);
  const interval = o.interval;
  if (typeof interval !== "number" || !(interval > 0)) fail(what, "bad interval");
  return {
    pid: nonNegInt(o.pid, "pid", what),
    host: optStr(o, "host", what) ?? "",
    updated: date(o, "updated", what),
    interval,
    ...(o.attempt === undefined || o.attempt === null
      ? {}
      : { attempt: positiveInt(o.attempt, "attempt", what) }),
  };
}

/** Validate an attempt record. */
export function parseAttempt(v: unknown, what = "attempt record"): AttemptRecord {
  const o = obj(v, what);
  if (o.type !== "attempt") fail(what, `type is ${JSON.stringify(o.type)}, not "attempt"`);
  const attempt = positiveInt(o.attempt, "attempt", what);
  if (attempt < 2) fail(what, "attempt 1 has no attempt record");
  const from = o.resumed_from;
  if (from !== undefined && from !== null && !isId(from)) fail(what, "resumed_from is not an id");
  return {
    format: format(o, what),
    type: "attempt",
    experiment: idField(o, "experiment", what),
    attempt,
    created: date(o, "created", what),
    host: optStr(o, "host", what) ?? "",
    user: optStr(o, "user", what) ?? "",
    pid: o.pid === undefined || o.pid === null ? null : nonNegInt(o.pid, "pid", what),
    command: strings(o.command, "command", what),
    cwd: optStr(o, "cwd", what) ?? "",
    resumed_from: (from ?? null) as string | null,
    resume_step: o.resume_step === undefined || o.resume_step === null
      ? null
      : nonNegInt(o.resume_step, "resume_step", what),
  };
}

/** Validate a claim or won marker. */
export function parseClaim(v: unknown, what = "claim"): ClaimRecord {
  const o = obj(v, what);
  if (o.type !== "claim" && o.type !== "won") {
    fail(what, `type is ${JSON.stringify(o.type)}, not "claim" or "won"`);
  }
  const exp = o.experiment;
  if (exp !== undefined && exp !== null && !isId(exp)) fail(what, "experiment is not an id");
  return {
    format: format(o, what),
    type: o.type,
    claimer: idField(o, "claimer", what),
    created: date(o, "created", what),
    host: optStr(o, "host", what) ?? "",
    pid: o.pid === undefined || o.pid === null ? 0 : nonNegInt(o.pid, "pid", what),
    experiment: (exp ?? null) as string | null,
    attempt: o.attempt === undefined || o.attempt === null
      ? null
      : positiveInt(o.attempt, "attempt", what),
  };
}

/** Validate a tombstone. */
export function parseTombstone(v: unknown, what = "tombstone"): TombstoneRecord {
  const o = obj(v, what);
  if (o.type !== "tombstone") fail(what, "type is not tombstone");
  const ids = (k: string) => {
    const list = strings(o[k], k, what);
    if (!list.every(isId)) fail(what, `${k} holds something that is not an id`);
    return list;
  };
  return {
    format: format(o, what),
    type: "tombstone",
    created: date(o, "created", what),
    experiments: ids("experiments"),
    checkpoints: ids("checkpoints"),
  };
}

/**
 * Validate a tree. Paths must be relative POSIX paths with no `.`/`..`/empty segments (a hostile
 * tree could otherwise make checkout write outside its target), sizes must equal the chunk lengths.
 */
export function parseTree(v: unknown, what = "tree"): Tree {
  const o = obj(v, what);
  const fmt = format(o, what);
  if (!Array.isArray(o.files)) fail(what, "files is not a list");
  const seen = new Set<string>();
  const files: FileEntry[] = o.files.map((f: unknown, i: number) => {
    const e = obj(f, `${what} file ${i}`);
    const path = str(e, "path", what);
    checkRelPath(path, what);
    if (seen.has(path)) fail(what, `path ${JSON.stringify(path)} appears twice`);
    seen.add(path);
    const size = nonNegInt(e.size, "size", what);
    const hash = str(e, "hash", what);
    if (!/^[0-9a-f]{64}$/.test(hash)) fail(what, `hash of ${path} is not a sha256`);
    const mode = nonNegInt(e.mode, "mode", what) & 0o777;
    if (!Array.isArray(e.chunks)) fail(what, `chunks of ${path} is not a list`);
    let total = 0;
    const chunks = e.chunks.map((c: unknown): ChunkRef => {
      if (!Array.isArray(c) || c.length !== 4) fail(what, `a chunk of ${path} is malformed`);
      const [pack, off, len, h] = c;
      if (typeof pack !== "string" || !/^[0-9a-f]{32}$/.test(pack)) fail(what, "bad pack id");
      if (typeof h !== "string" || !/^[0-9a-f]{64}$/.test(h)) fail(what, "bad chunk hash");
      // The format's largest chunk: a hostile length must not make a reader allocate it.
      if (nonNegInt(len, "length", what) > MAX_CHUNK) fail(what, `a chunk of ${path} is too long`);
      total += len as number;
      return [pack, nonNegInt(off, "offset", what), len as number, h];
    });
    if (total !== size) {
      fail(what, `size of ${path} (${size}) is not the sum of its chunks (${total})`);
    }
    return { path, size, hash, mode, chunks };
  });
  return { format: fmt, files };
}

/** Throw unless `path` is a clean relative POSIX path. */
export function checkRelPath(path: string, what: string): void {
  if (
    path.length === 0 || path.length > 4096 || path.startsWith("/") || path.includes("\\") ||
    path.includes("\0") || /^[a-zA-Z]:/.test(path) ||
    path.split("/").some((s) => s === "" || s === "." || s === "..")
  ) {
    fail(what, `path ${JSON.stringify(path)} is not a clean relative path`);
  }
}
