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

/** `experiments/<id>/malformed.json`: metrics lines that could not be parsed. */
export function malformedKey(experiment: string): string {
  return `${experimentPrefix(experiment)}malformed.json`;
}

/** What a key under `experiments/<id>/` is. */
export type ExperimentObject =
  | { kind: "experiment" }
  | { kind: "checkpoint"; checkpoint: string }
  | { kind: "status" }
  | { kind: "heartbeat" }
  | { kind: "log"; seq: number }
  | { kind: "log-tail" }
  | { kind: "malformed" }
  | { kind: "other"; name: string };

/** Classify a key below `experiments/<id>/` (`name` is the part after that prefix). */
export function experimentObject(name: string): ExperimentObject {
  if (name === "experiment.json") return { kind: "experiment" };
  if (name === "status.json") return { kind: "status" };
  if (name === "heartbeat.json") return { kind: "heartbeat" };
  if (name === "malformed.json") return { kind: "malformed" };
  const ck = /^checkpoints\/([0-9a-f]{32})\.json$/.exec(name);
  if (ck) return { kind: "checkpoint", checkpoint: ck[1]! };
  if (name === "logs/tail.log") return { kind: "log-tail" };
  const log = /^logs\/(\d{6,})\.log$/.exec(name);
  if (log) return { kind: "log", seq: Number(log[1]) };
  return { kind: "other", name };
}

// ---- catalog and maintenance --------------------------------------------------------------------

/** `tombstones/<time>-<rand>.json`: ids removed by `rep rm` (format 1). */
export function tombstoneKey(date: Date = new Date()): string {
  return `${PREFIX.tombstones}${keyTime(date)}-${keyRand()}.json`;
}

/** `index/<time>-<rand>.json.gz`: a shared listing segment. */
export function indexSegmentKey(date: Date = new Date()): string {
  return `${PREFIX.index}${keyTime(date)}-${keyRand()}.json.gz`;
}

/** `gc/<time>-<rand>.json`: objects `rep gc` plans to delete. */
export function gcListingKey(date: Date = new Date()): string {
  return `${PREFIX.gc}${keyTime(date)}-${keyRand()}.json`;
}
