/**
 * The messages of rep's line protocol (docs/protocol.md): one JSON object per line, requests from
 * a client (the Python package), replies and events from rep. Requests are checked here, so a host
 * only ever sees well-formed ones.
 *
 * @module
 */
import { RepError, UsageError } from "../errors.ts";
import type { MetricValue, ParamValue, PrimaryMetric } from "../format/records.ts";

/** The protocol version this rep speaks. */
export const PROTOCOL_VERSION = 1;

/** `init`: start recording (or, under `rep run`, attach to its experiment). */
export interface InitRequest {
  op: "init";
  /** The project folder (absolute): checkpoint paths are relative to it. */
  project: string;
  params: Record<string, ParamValue>;
  primaryMetric: PrimaryMetric | null;
  /** Snapshot the project's code. */
  code: boolean;
  /** Paths (relative to the project) left out of the code snapshot. */
  exclude: string[];
  /** The client's argv, recorded as the command. */
  command: string[];
  /** What the client knows about its interpreter: `{version, executable, packages, …}`. */
  python: Record<string, unknown> | null;
  tags: string[];
  note: string | null;
  /** The experiment's name, unique in the repository (with `resume: true`, the one resumed). */
  name: string | null;
  /** Resume: `true` (the experiment called `name`), an experiment or checkpoint id, or null. */
  resume: boolean | string | null;
  /** With `resume`: record a new attempt even when the experiment already succeeded. */
  rerun: boolean;
  /** Retention while recording: keep the N best checkpoints and the M latest (null: no limit). */
  keepBest: number | null;
  keepLast: number | null;
}

/** `checkpoint`: store exactly these files (or none) with these metrics. */
export interface CheckpointRequest {
  op: "checkpoint";
  /** Files or folders, relative to the project (or absolute inside it). */
  paths: string[];
  step: number | null;
  metrics: Record<string, MetricValue>;
  primaryMetric: PrimaryMetric | null;
}

/** `stop`: end the experiment and wait for its uploads. */
export interface StopRequest {
  op: "stop";
  status: "succeeded" | "failed" | "stopped";
  exitCode: number | null;
}

/** A request, with the client's id for its reply. */
export type Request =
  & { id: number }
  & (InitRequest | CheckpointRequest | StopRequest | { op: "pending" } | { op: "ping" });

/** An event rep sends on its own: text for the user, or upload progress. */
export type Event =
  | { event: "message"; text: string }
  | { event: "progress"; items: number; bytes: number; error: string | null };

type Obj = Record<string, unknown>;

function bad(what: string, hint = "See docs/protocol.md"): UsageError {
  return new UsageError(`Invalid protocol request: ${what}`, hint);
}

function scalars<T>(v: unknown, field: string): Record<string, T> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw bad(`"${field}" is not an object`);
  const out: Record<string, T> = {};
  for (const [k, val] of Object.entries(v as Obj)) {
    if (k === "" || k.length > 200) throw bad(`a name in "${field}" is empty or too long`);
    if (typeof val === "number" && !Number.isFinite(val)) {
      throw bad(`${field}.${k} is not a finite number`);
    }
    if (val !== null && !["string", "number", "boolean"].includes(typeof val)) {
      throw bad(
        `${field}.${k} is not a number, string, boolean or null`,
        "Metrics and params are scalars; convert tensors with float(x)",
      );
    }
    out[k] = val as T;
  }
  return out;
}

function strings(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw bad(`"${field}" is not a list of strings`);
  }
  return v as string[];
}

function primary(v: unknown): PrimaryMetric | null {
  if (v === undefined || v === null) return null;
  const o = v as Obj;
  if (
    typeof o !== "object" || typeof o.name !== "string" || !o.name ||
    (o.goal !== "minimize" && o.goal !== "maximize")
  ) {
    throw bad(
      "primary_metric must be {name, goal} with goal minimize or maximize",
      'Example: primary_metric=("loss", "minimize")',
    );
  }
  return { name: o.name, goal: o.goal };
}

function optionalString(v: unknown, field: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== "string" || !v) throw bad(`"${field}" must be a non-empty string`);
  return v;
}

function count(v: unknown, field: string): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw bad(`"${field}" must be a whole number of checkpoints (0 or more)`);
  }
  return v;
}

/** Parse one request line; throws {@link UsageError} (with the id when it could be read). */
export function parseRequest(line: string): Request {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw bad(`not JSON (${e instanceof Error ? e.message : e})`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw bad("not a JSON object");
  const o = v as Obj;
  const id = o.id;
  if (typeof id !== "number" || !Number.isSafeInteger(id)) throw bad('"id" is not an integer');
  switch (o.op) {
    case "init": {
      if (typeof o.project !== "string" || !o.project.startsWith("/")) {
        throw bad('"project" must be an absolute path');
      }
      return {
        id,
        op: "init",
        project: o.project,
        params: scalars<ParamValue>(o.params, "params"),
        primaryMetric: primary(o.primary_metric),
        code: o.code !== false,
        exclude: strings(o.exclude, "exclude"),
        command: strings(o.command, "command"),
        python: typeof o.python === "object" && o.python !== null && !Array.isArray(o.python)
          ? o.python as Record<string, unknown>
          : null,
        tags: strings(o.tags, "tags"),
        note: typeof o.note === "string" ? o.note : null,
        name: optionalString(o.name, "name"),
        resume: o.resume === undefined || o.resume === null || o.resume === false
          ? null
          : o.resume === true
          ? true
          : optionalString(o.resume, "resume"),
        rerun: o.rerun === true,
        keepBest: count(o.keep_best, "keep_best"),
        keepLast: count(o.keep_last, "keep_last"),
      };
    }
    case "checkpoint": {
      const step = o.step;
      if (
        step !== undefined && step !== null &&
        (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0)
      ) {
        throw bad('"step" must be a non-negative integer');
      }
      return {
        id,
        op: "checkpoint",
        paths: strings(o.paths, "paths"),
        step: (step ?? null) as number | null,
        metrics: scalars<MetricValue>(o.metrics, "metrics"),
        primaryMetric: primary(o.primary_metric),
      };
    }
    case "stop": {
      const status = o.status ?? "succeeded";
      if (status !== "succeeded" && status !== "failed" && status !== "stopped") {
        throw bad('"status" must be succeeded, failed or stopped');
      }
      const code = o.exit_code;
      return {
        id,
        op: "stop",
        status,
        exitCode: typeof code === "number" && Number.isInteger(code) ? code : null,
      };
    }
    case "pending":
    case "ping":
      return { id, op: o.op };
    default:
      throw bad(`unknown op ${JSON.stringify(o.op)}`);
  }
}

/** The id of a request line that failed to parse, when it has one. */
export function requestId(line: string): number | null {
  try {
    const v = JSON.parse(line);
    return typeof v?.id === "number" ? v.id : null;
  } catch {
    return null;
  }
}

/** The wire form of an error: its class name, message and hint (and candidates when ambiguous). */
export function wireError(e: unknown): Record<string, unknown> {
  if (e instanceof RepError) {
    const out: Record<string, unknown> = { type: e.name, message: e.message, hint: e.hint ?? null };
    if ("candidates" in e) out.candidates = (e as { candidates: string[] }).candidates;
    return out;
  }
  return {
    type: "Error",
    message: e instanceof Error ? e.message : String(e),
    hint: "This is unexpected; rerun with REP_DEBUG=1 and report it",
  };
}

/** One line of the protocol. */
export function encodeLine(msg: unknown): string {
  return JSON.stringify(msg) + "\n";
}
