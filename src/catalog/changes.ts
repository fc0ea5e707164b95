/**
 * Change objects: what happens to experiments after they were recorded (removals, tags, notes,
 * resumes), each an immutable `changes/<time>-<rand>.json` object, so that nothing is rewritten and
 * every reader sees them by listing one small prefix. Format 1 `tombstones/` objects are read as
 * removals. See docs/format.md _Changes_.
 *
 * A repository may be hostile: objects and entries are checked here, and one that does not parse
 * is skipped (`rep verify` reports it), never trusted in part.
 *
 * @module
 */
import { isId } from "../format/ids.ts";
import { changeKey, keyRand, PREFIX } from "../format/layout.ts";
import { FORMAT_VERSION, parseJson, parseTombstone } from "../format/records.ts";
import type { Store } from "../storage/store.ts";
import { jsonBytes } from "../util.ts";

/** A removed checkpoint and its experiment (null in format 1 tombstones, which do not say). */
export interface RemovedCheckpoint {
  experiment: string | null;
  checkpoint: string;
}

/**
 * Removal of experiments and checkpoints (`rep rm`). Stored as
 * `"checkpoints": [["<experiment id>", "<checkpoint id>"], …]`.
 */
export interface RemoveEntry {
  id: string;
  created: string;
  op: "remove";
  experiments: string[];
  checkpoints: RemovedCheckpoint[];
  reason: string | null;
}

/** Tags added to and removed from an experiment (`rep tag`). */
export interface TagEntry {
  id: string;
  created: string;
  op: "tag";
  experiment: string;
  add: string[];
  remove: string[];
}

/** An experiment's note, replaced (`rep note`); `text` null clears it. */
export interface NoteEntry {
  id: string;
  created: string;
  op: "note";
  experiment: string;
  text: string | null;
}

/** A new attempt of an experiment started (a resume): readers list its folder again. */
export interface ResumeEntry {
  id: string;
  created: string;
  op: "resume";
  experiment: string;
  attempt: number;
}

/** An entry this version understands. */
export type ChangeEntry = RemoveEntry | TagEntry | NoteEntry | ResumeEntry;

/** An entry as stored (kept verbatim so compaction carries ops a newer rep wrote), and its meaning. */
export interface StoredEntry {
  raw: Record<string, unknown>;
  /** The entry, or null for an op this version does not know (ignored, but kept by compaction). */
  entry: ChangeEntry | null;
  id: string;
  created: string;
}

/** What `rep gc` dropped: removals created before `before`, by a run at `at`. */
export interface Dropped {
  /** When the last `rep gc` that dropped anything ran. */
  at: string;
  /** Every removal gc dropped was created before this time. */
  before: string;
}

/** One change object (or format 1 tombstone) as read. */
export interface ChangeObject {
  key: string;
  created: string;
  entries: StoredEntry[];
  dropped: Dropped | null;
}

/** New entry contents, before an id and time are given. */
export type NewEntry =
  | {
    op: "remove";
    experiments: string[];
    /** `[experiment id, checkpoint id]` pairs. */
    checkpoints: [string, string][];
    reason: string | null;
  }
  | Omit<TagEntry, "id" | "created">
  | Omit<NoteEntry, "id" | "created">
  | Omit<ResumeEntry, "id" | "created">;

/** Longest tag; tags are non-empty, without whitespace or commas. */
export const MAX_TAG = 100;
/** Longest note, in characters. */
export const MAX_NOTE = 10_000;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isDate(v: unknown): v is string {
  return typeof v === "string" && !Number.isNaN(Date.parse(v));
}

function ids(v: unknown): string[] | null {
  return Array.isArray(v) && v.every(isId) ? v as string[] : null;
}

function removedCheckpoints(v: unknown): RemovedCheckpoint[] | null {
  if (!Array.isArray(v)) return null;
  const out: RemovedCheckpoint[] = [];
  for (const x of v) {
    if (isId(x)) out.push({ experiment: null, checkpoint: x });
    else if (Array.isArray(x) && x.length === 2 && isId(x[0]) && isId(x[1])) {
      out.push({ experiment: x[0], checkpoint: x[1] });
    } else return null;
  }
  return out;
}

/** True for a tag rep accepts: 1–100 characters, no whitespace, no comma. */
export function isTag(v: unknown): v is string {
  return typeof v === "string" && v.length > 0 && v.length <= MAX_TAG && !/[\s,]/.test(v);
}

function tags(v: unknown): string[] | null {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) && v.every(isTag) ? v as string[] : null;
}

/** Check one stored entry; null when it is malformed (then it is ignored). */
export function parseEntry(v: unknown): StoredEntry | null {
  if (!isObj(v)) return null;
  const { id, created, op } = v;
  if (typeof id !== "string" || !/^[0-9A-Za-z_:.-]{1,100}$/.test(id)) return null;
  if (!isDate(created) || typeof op !== "string") return null;
  const base = { raw: v, id, created };
  switch (op) {
    case "remove": {
      const experiments = ids(v.experiments ?? []);
      const checkpoints = removedCheckpoints(v.checkpoints ?? []);
      if (!experiments || !checkpoints) return null;
      const reason = typeof v.reason === "string" ? v.reason : null;
      return { ...base, entry: { id, created, op, experiments, checkpoints, reason } };
    }
    case "tag": {
      const add = tags(v.add);
      const remove = tags(v.remove);
      if (!isId(v.experiment) || !add || !remove) return null;
      return { ...base, entry: { id, created, op, experiment: v.experiment, add, remove } };
    }
    case "note": {
      const text = v.text ?? null;
      if (!isId(v.experiment) || (text !== null && typeof text !== "string")) return null;
      if (typeof text === "string" && text.length > MAX_NOTE) return null;
      return { ...base, entry: { id, created, op, experiment: v.experiment, text } };
    }
    case "resume": {
      const attempt = v.attempt;
      if (!isId(v.experiment) || !Number.isSafeInteger(attempt) || (attempt as number) < 2) {
        return null;
      }
      return {
        ...base,
        entry: { id, created, op, experiment: v.experiment, attempt: attempt as number },
      };
    }
    default:
      return { ...base, entry: null };
  }
}

/**
 * Parse a `changes/` object (or a format 1 `tombstones/` object, read as one removal). Throws
 * `CorruptObjectError` when the object itself is malformed; malformed entries are left out.
 */
export function parseChangeObject(bytes: Uint8Array, key: string): ChangeObject {
  const v = parseJson(bytes, key);
  if (key.startsWith(PREFIX.tombstones)) {
    const t = parseTombstone(v, key);
    const id = key.slice(PREFIX.tombstones.length, -".json".length);
    const raw = {
      id,
      created: t.created,
      op: "remove",
      experiments: t.experiments,
      checkpoints: t.checkpoints,
    };
    return { key, created: t.created, entries: [parseEntry(raw)!], dropped: null };
  }
  if (!isObj(v) || v.type !== "changes" || !isDate(v.created) || !Array.isArray(v.entries)) {
    throw new SyntaxError(`${key} is not a changes object`);
  }
  if (typeof v.format !== "number" || v.format > FORMAT_VERSION) {
    throw new SyntaxError(`${key} has an unknown format`);
  }
  const entries = v.entries.map(parseEntry).filter((e): e is StoredEntry => e !== null);
  const d = v.dropped;
  const dropped = isObj(d) && isDate(d.at) && isDate(d.before)
    ? { at: d.at as string, before: d.before as string }
    : null;
  return { key, created: v.created, entries, dropped };
}

/** A new entry id: 16 random hex digits. */
export function entryId(): string {
  return keyRand(16);
}

/** The bytes of a change object holding `entries` (already given ids and times). */
export function changeObjectBytes(
  created: string,
  entries: Record<string, unknown>[],
  dropped: Dropped | null = null,
): Uint8Array {
  return jsonBytes({
    format: FORMAT_VERSION,
    type: "changes",
    created,
    ...(dropped ? { dropped } : {}),
    entries,
  });
}

/** Write one change object with these entries; returns its key and the entries as stored. */
export async function writeChanges(
  store: Store,
  entries: NewEntry[],
  now = new Date(),
): Promise<{ key: string; entries: StoredEntry[] }> {
  const created = now.toISOString();
  const raws = entries.map((e) => ({ id: entryId(), created, ...e }) as Record<string, unknown>);
  const key = changeKey(now);
  await store.put(key, changeObjectBytes(created, raws));
  return { key, entries: raws.map((r) => parseEntry(r)!) };
}

/** Every `changes/` and `tombstones/` key, oldest first. */
export async function listChangeKeys(store: Store): Promise<string[]> {
  const keys: string[] = [];
  for (const prefix of [PREFIX.changes, PREFIX.tombstones]) {
    for await (const info of store.list(prefix)) {
      if (info.key.endsWith(".json")) keys.push(info.key);
    }
  }
  return keys;
}
