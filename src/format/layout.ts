/**
 * The repository layout: the one module that builds and parses object keys (as restic's
 * `backend/layout` does). Every other module asks here for a key instead of writing one; a change
 * to the layout is a change to this file and to docs/format.md, nothing else.
 *
 * Keys are POSIX strings relative to the repository root. See docs/format.md for what each object
 * holds and who writes it.
 *
 * @module
 */
import { isId } from "./ids.ts";

/** `repository.json`: the format marker. */
export const REPOSITORY_KEY = "repository.json";

/** Prefixes of the top-level object kinds (each ends with `/`). */
export const PREFIX = {
  experiments: "experiments/",
  packs: "packs/",
  trees: "trees/",
  tombstones: "tombstones/",
  changes: "changes/",
  names: "names/",
  packIndex: "pack-index/",
  index: "index/",
  gc: "gc/",
} as const;

/** A compact UTC timestamp for keys that sort by time: `20261201T194210123Z`. */
export function keyTime(date: Date = new Date()): string {
  return date.toISOString().replace(/[-:.]/g, "");
}

/** Random lowercase hex digits for key suffixes. */
export function keyRand(digits = 12): string {
  const b = new Uint8Array(Math.ceil(digits / 2));
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("").slice(0, digits);
}

// ---- data ---------------------------------------------------------------------------------------

/** `packs/<id>`: chunk data. */
export function packKey(pack: string): string {
  return `${PREFIX.packs}${pack}`;
}

/** The pack id of a `packs/<id>` key, or null for any other key. */
export function packOfKey(key: string): string | null {
  if (!key.startsWith(PREFIX.packs)) return null;
  const id = key.slice(PREFIX.packs.length);
  return isId(id) ? id : null;
}

/** `trees/<sha256>.json`: a file list. */
export function treeKey(hash: string): string {
  return `${PREFIX.trees}${hash}.json`;
}

/** The sha256 of a `trees/<sha256>.json` key, or null for any other key. */
export function treeOfKey(key: string): string | null {
  const m = /^trees\/([0-9a-f]{64})\.json$/.exec(key);
  return m ? m[1]! : null;
}

/**
 * `pack-index/<time>-<id>.json`: the chunks of packs (see docs/format.md, _Pack index_). A writer
 * names it after the one pack it describes; `rep gc` names a compacted index by a random id.
 * `<time>` is when the index was written, so keys sort by time.
 */
export function packIndexKey(id: string, date: Date = new Date()): string {
  return `${PREFIX.packIndex}${keyTime(date)}-${id}.json`;
}

/** The time and id of a `pack-index/<time>-<id>.json` key, or null for any other key. */
export function packIndexOfKey(key: string): { time: Date; id: string } | null {
  const m = /^pack-index\/(\d{8}T\d{9}Z)-([0-9a-f]{32})\.json$/.exec(key);
  if (!m) return null;
  const time = parseKeyTime(m[1]!);
  return time ? { time, id: m[2]! } : null;
}

/** The key to list after (`startAfter`) to see every pack index written at `date` or later. */
export function packIndexListStart(date: Date): string {
  return `${PREFIX.packIndex}${keyTime(date)}`;
}

/** The date of a {@link keyTime} string, or null when it is not one. */
export function parseKeyTime(s: string): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/.exec(s);
  if (!m) return null;
  const d = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`);
  return Number.isNaN(d.getTime()) ? null : d;
}

// ---- experiments --------------------------------------------------------------------------------

/** `experiments/<id>/`: everything of one experiment. */
export function experimentPrefix(id: string): string {
  return `${PREFIX.experiments}${id}/`;
}

/** The experiment id of an `experiments/<id>/` prefix (as listed), or null. */
export function experimentOfPrefix(prefix: string): string | null {
  if (!prefix.startsWith(PREFIX.experiments) || !prefix.endsWith("/")) return null;
  const id = prefix.slice(PREFIX.experiments.length, -1);
  return isId(id) ? id : null;
}

/** `experiments/<id>/experiment.json`: the experiment record. */
export function experimentKey(id: string): string {
  return `${experimentPrefix(id)}experiment.json`;
}

/** `experiments/<id>/checkpoints/<cid>.json`: a checkpoint record. */
export function checkpointKey(experiment: string, checkpoint: string): string {
  return `${experimentPrefix(experiment)}checkpoints/${checkpoint}.json`;
}

/** `experiments/<id>/status.json`: the end of the experiment's first attempt. */
export function statusKey(experiment: string): string {
  return `${experimentPrefix(experiment)}status.json`;
}

/** `experiments/<id>/heartbeat.json`: liveness, rewritten while running. */
export function heartbeatKey(experiment: string): string {
  return `${experimentPrefix(experiment)}heartbeat.json`;
}

/** `experiments/<id>/logs/`: the command's output, in numbered segments. */
export function logPrefix(experiment: string): string {
  return `${experimentPrefix(experiment)}logs/`;
}

/** `experiments/<id>/logs/<nnnnnn>.log`: one segment of the command's output. */
export function logKey(experiment: string, seq: number): string {
  return `${logPrefix(experiment)}${String(seq).padStart(6, "0")}.log`;
}

/** `experiments/<id>/logs/tail.log`: the output since the last segment, rewritten while running. */
export function logTailKey(experiment: string): string {
  return `${logPrefix(experiment)}tail.log`;
}

/**
 * `experiments/<id>/attempts/<n>/`: what attempt n ≥ 2 (a resume) adds to the experiment. Attempt 1
 * is the experiment record itself and writes at the experiment's top level.
 */
export function attemptPrefix(experiment: string, attempt: number): string {
  return `${experimentPrefix(experiment)}attempts/${attemptNumber(attempt)}/`;
}

/** `experiments/<id>/attempts/<n>/attempt.json`: the record of attempt n ≥ 2. */
export function attemptKey(experiment: string, attempt: number): string {
  if (attempt < 2) {
    throw new RangeError("Attempt 1 is the experiment record; it has no attempt.json");
  }
  return `${attemptPrefix(experiment, attempt)}attempt.json`;
}

/** The status record of attempt n: `status.json` for attempt 1, `attempts/<n>/status.json` after. */
export function attemptStatusKey(experiment: string, attempt: number): string {
  return attempt <= 1 ? statusKey(experiment) : `${attemptPrefix(experiment, attempt)}status.json`;
}

/** The log folder of attempt n: `logs/` for attempt 1, `attempts/<n>/logs/` after. */
export function attemptLogPrefix(experiment: string, attempt: number): string {
  return attempt <= 1 ? logPrefix(experiment) : `${attemptPrefix(experiment, attempt)}logs/`;
}

/** One log segment of attempt n (see {@link logKey} for attempt 1). */
export function attemptLogKey(experiment: string, attempt: number, seq: number): string {
  return `${attemptLogPrefix(experiment, attempt)}${String(seq).padStart(6, "0")}.log`;
}

/** The log tail of attempt n: `logs/tail.log` for attempt 1, `attempts/<n>/logs/tail.log` after. */
export function attemptLogTailKey(experiment: string, attempt: number): string {
  return `${attemptLogPrefix(experiment, attempt)}tail.log`;
}

/** Unparsable metrics lines of attempt n: `malformed.json`, `attempts/<n>/malformed.json` after. */
export function attemptMalformedKey(experiment: string, attempt: number): string {
  return attempt <= 1
    ? malformedKey(experiment)
    : `${attemptPrefix(experiment, attempt)}malformed.json`;
}

/** `experiments/<id>/attempts/<n>/claims/`: the claim scope that decides who runs attempt n. */
export function attemptClaimScope(experiment: string, attempt: number): string {
  return `${attemptPrefix(experiment, attempt)}claims/`;
}

function attemptNumber(n: number): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`Invalid attempt number ${n}`);
  return n;
}

/** `experiments/<id>/malformed.json`: metrics lines that could not be parsed. */
export function malformedKey(experiment: string): string {
  return `${experimentPrefix(experiment)}malformed.json`;
}

/** What a key under `experiments/<id>/` is. */
export type ExperimentObject =
  | { kind: "experiment" }
  | { kind: "checkpoint"; checkpoint: string }
  /** The status record of attempt 1. */
  | { kind: "status" }
  | { kind: "heartbeat" }
  /** A log segment of an attempt (1: `logs/`). */
  | { kind: "log"; seq: number; attempt: number }
  /** The log tail of a running attempt (1: `logs/tail.log`). */
  | { kind: "log-tail"; attempt: number }
  | { kind: "malformed" }
  /** The record of attempt n ≥ 2. */
  | { kind: "attempt"; attempt: number }
  /** The status record of attempt n ≥ 2. */
  | { kind: "attempt-status"; attempt: number }
  /** A claim or won marker in the claim scope of attempt n ≥ 2. */
  | { kind: "claim"; attempt: number; name: string }
  | { kind: "other"; name: string };

/** Classify a key below `experiments/<id>/` (`name` is the part after that prefix). */
export function experimentObject(name: string): ExperimentObject {
  if (name === "experiment.json") return { kind: "experiment" };
  if (name === "status.json") return { kind: "status" };
  if (name === "heartbeat.json") return { kind: "heartbeat" };
  if (name === "malformed.json") return { kind: "malformed" };
  const ck = /^checkpoints\/([0-9a-f]{32})\.json$/.exec(name);
  if (ck) return { kind: "checkpoint", checkpoint: ck[1]! };
  if (name === "logs/tail.log") return { kind: "log-tail", attempt: 1 };
  const log = /^logs\/(\d{6,})\.log$/.exec(name);
  if (log) return { kind: "log", seq: Number(log[1]), attempt: 1 };
  const at = /^attempts\/([1-9]\d{0,8})\/(.+)$/.exec(name);
  if (at) {
    const attempt = Number(at[1]);
    const rest = at[2]!;
    if (attempt >= 2) {
      if (rest === "attempt.json") return { kind: "attempt", attempt };
      if (rest === "status.json") return { kind: "attempt-status", attempt };
      if (rest === "logs/tail.log") return { kind: "log-tail", attempt };
      const alog = /^logs\/(\d{6,})\.log$/.exec(rest);
      if (alog) return { kind: "log", seq: Number(alog[1]), attempt };
      const claim = /^claims\/([^/]+\.json)$/.exec(rest);
      if (claim) return { kind: "claim", attempt, name: claim[1]! };
    }
  }
  return { kind: "other", name };
}

// ---- catalog and maintenance --------------------------------------------------------------------

/** `tombstones/<time>-<rand>.json`: ids removed by `rep rm` (format 1; read, never written). */
export function tombstoneKey(date: Date = new Date()): string {
  return `${PREFIX.tombstones}${keyTime(date)}-${keyRand()}.json`;
}

/** `changes/<time>-<rand>.json`: removals, tags, notes and resumes (see docs/format.md _Changes_). */
export function changeKey(date: Date = new Date()): string {
  return `${PREFIX.changes}${keyTime(date)}-${keyRand()}.json`;
}

/** `index/<name>.json.gz`: a shared listing segment (summaries of finished experiments). */
export function segmentKey(name: string): string {
  return `${PREFIX.index}${name}.json.gz`;
}

/** `index/<name>.checkpoints.json.gz`: the checkpoint records of the segment `<name>`. */
export function segmentCheckpointsKey(name: string): string {
  return `${PREFIX.index}${name}.checkpoints.json.gz`;
}

/**
 * `index/<name>.ids.json`: the checkpoint ids of the segment `<name>`, by experiment (read to
 * resolve an id prefix without reading every checkpoint record; not gzipped: random hex digits
 * compress to half at best, and inflating them costs more than reading them).
 */
export function segmentIdsKey(name: string): string {
  return `${PREFIX.index}${name}.ids.json`;
}

/** What a key under `index/` is: a segment's summaries, checkpoints or ids, by segment name. */
export function segmentOfKey(
  key: string,
): { name: string; part: "summary" | "checkpoints" | "ids" } | null {
  const m = /^index\/([0-9a-f]{32})(?:(\.checkpoints)?\.json\.gz|(\.ids)\.json)$/.exec(key);
  if (!m) return null;
  return { name: m[1]!, part: m[2] ? "checkpoints" : m[3] ? "ids" : "summary" };
}

// ---- names and claims ---------------------------------------------------------------------------

/** `names/<name>/`: the claim scope of one experiment name (see src/format/names.ts). */
export function nameScope(name: string): string {
  return `${PREFIX.names}${name}/`;
}

/** The name of a `names/<name>/` prefix (as listed), or null. */
export function nameOfScope(prefix: string): string | null {
  if (!prefix.startsWith(PREFIX.names) || !prefix.endsWith("/")) return null;
  const name = prefix.slice(PREFIX.names.length, -1);
  return name && !name.includes("/") ? name : null;
}

/** `<scope><time>-<claimer>.json`: one contender's claim in a claim scope (ends with `/`). */
export function claimKey(scope: string, claimer: string, date: Date = new Date()): string {
  return `${scope}${keyTime(date)}-${claimer}.json`;
}

/** `<scope>won-<claimer>.json`: the marker a claimer puts once it has won the scope. */
export function wonKey(scope: string, claimer: string): string {
  return `${scope}won-${claimer}.json`;
}

/** What a key in a claim scope is: a claim (with its key time) or a won marker, else null. */
export function claimOfKey(
  scope: string,
  key: string,
): { kind: "claim"; claimer: string; time: string } | { kind: "won"; claimer: string } | null {
  if (!key.startsWith(scope)) return null;
  const name = key.slice(scope.length);
  const won = /^won-([0-9a-f]{32})\.json$/.exec(name);
  if (won) return { kind: "won", claimer: won[1]! };
  const claim = /^(\d{8}T\d{9}Z)-([0-9a-f]{32})\.json$/.exec(name);
  if (claim) return { kind: "claim", claimer: claim[2]!, time: claim[1]! };
  return null;
}

/** `gc/<time>-<rand>.json`: objects `rep gc` plans to delete. */
export function gcListingKey(date: Date = new Date()): string {
  return `${PREFIX.gc}${keyTime(date)}-${keyRand()}.json`;
}
