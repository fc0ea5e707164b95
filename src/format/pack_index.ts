/**
 * Pack index objects (`pack-index/<time>-<id>.json`): which chunks each pack holds, so that a
 * writer learns what the repository already stores without reading trees. See docs/format.md,
 * _Pack index_. A repository written by someone else may be hostile, so {@link parsePackIndex}
 * checks every field.
 *
 * @module
 */
import { CorruptObjectError } from "../errors.ts";
import { isId } from "./ids.ts";
import { MAX_CHUNK } from "./chunker.ts";
import { FORMAT_VERSION } from "./records.ts";

/** One chunk of a pack: its sha256, offset in the pack and length. */
export type PackChunk = [hash: string, offset: number, length: number];

/** The chunks of one pack, in offset order, covering the pack from byte 0 to `size`. */
export interface PackEntry {
  /** The pack id (`packs/<id>`). */
  id: string;
  /** The pack's size in bytes: the sum of its chunks' lengths. */
  size: number;
  chunks: PackChunk[];
}

/** A pack index object. */
export interface PackIndex {
  format: number;
  type: "pack-index";
  /** When the index was written (ISO 8601 UTC). */
  created: string;
  packs: PackEntry[];
}

/** Bytes of a pack index object for `packs`. */
export function encodePackIndex(packs: PackEntry[], created: Date = new Date()): Uint8Array {
  const index: PackIndex = {
    format: FORMAT_VERSION,
    type: "pack-index",
    created: created.toISOString(),
    packs,
  };
  return new TextEncoder().encode(JSON.stringify(index));
}

const SHA256 = /^[0-9a-f]{64}$/;

function fail(what: string, why: string): never {
  throw new CorruptObjectError(
    `Cannot read ${what}: ${why}`,
    "The object is damaged or was not written by rep; `rep gc` rewrites pack indexes",
  );
}

/**
 * Validate a pack index object. Each pack's chunks must be in offset order, contiguous from 0, no
 * longer than the format's largest chunk, and add up to the pack's size.
 */
export function parsePackIndex(bytes: Uint8Array, what = "pack index"): PackIndex {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    fail(what, e instanceof Error ? e.message : String(e));
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(what, "not a JSON object");
  const o = v as Record<string, unknown>;
  if (o.type !== "pack-index") fail(what, `type is ${JSON.stringify(o.type)}, not "pack-index"`);
  if (typeof o.format !== "number" || o.format < 2 || o.format > FORMAT_VERSION) {
    fail(what, `format ${JSON.stringify(o.format)} is not one this version reads`);
  }
  if (typeof o.created !== "string" || Number.isNaN(Date.parse(o.created))) {
    fail(what, "created is not a time");
  }
  if (!Array.isArray(o.packs)) fail(what, "packs is not a list");
  const packs = o.packs.map((p: unknown, i: number): PackEntry => {
    if (typeof p !== "object" || p === null) fail(what, `pack ${i} is not an object`);
    const e = p as Record<string, unknown>;
    if (!isId(e.id)) fail(what, `pack ${i} has no valid id`);
    if (!Array.isArray(e.chunks)) fail(what, `chunks of pack ${e.id} is not a list`);
    let offset = 0;
    const chunks = e.chunks.map((c: unknown): PackChunk => {
      if (!Array.isArray(c) || c.length !== 3) fail(what, `a chunk of pack ${e.id} is malformed`);
      const [h, off, len] = c;
      if (typeof h !== "string" || !SHA256.test(h)) fail(what, `bad chunk hash in pack ${e.id}`);
      if (off !== offset) fail(what, `chunks of pack ${e.id} are not contiguous at ${offset}`);
      if (!Number.isSafeInteger(len) || len < 1 || len > MAX_CHUNK) {
        fail(what, `bad chunk length in pack ${e.id}`);
      }
      offset += len as number;
      return [h, off as number, len as number];
    });
    if (e.size !== offset) fail(what, `size of pack ${e.id} is not the sum of its chunks`);
    return { id: e.id, size: offset, chunks };
  });
  return { format: o.format, type: "pack-index", created: o.created, packs };
}
