/**
 * How a file's chunks are fetched: neighbouring chunks of one pack merged into ranges of up to
 * {@link MAX_RANGE} bytes, each verified chunk by chunk.
 *
 * @module
 */
import { CorruptObjectError } from "../errors.ts";
import type { FileEntry } from "../format/records.ts";
import { packKey } from "../format/layout.ts";

/** A run of contiguous chunks of one pack. */
export interface Range {
  pack: string;
  offset: number;
  length: number;
  /** Length and sha256 of each chunk, in order. */
  chunks: [number, string][];
}

/** Largest range read at once. */
export const MAX_RANGE = 8 * 1024 * 1024;

/** The ranges to read for `entry`, in file order. */
export function groupRanges(entry: FileEntry): Range[] {
  const out: Range[] = [];
  for (const [pack, offset, length, hash] of entry.chunks) {
    const last = out[out.length - 1];
    if (
      last && last.pack === pack && last.offset + last.length === offset &&
      last.length + length <= MAX_RANGE
    ) {
      last.length += length;
      last.chunks.push([length, hash]);
    } else {
      out.push({ pack, offset, length, chunks: [[length, hash]] });
    }
  }
  return out;
}

/** The error for a chunk of `entry` in range `r` that does not match its hash. */
export function corruptChunk(r: Range, entry: FileEntry): CorruptObjectError {
  return new CorruptObjectError(
    `Corrupt data in ${packKey(r.pack)}: a chunk of ${entry.path} does not match its hash`,
    "Run `rep verify` to list what is damaged",
  );
}

/** The error for a pack that holds data of `entry` and is missing. */
export function missingPack(pack: string, entry: FileEntry): CorruptObjectError {
  return new CorruptObjectError(
    `Missing object ${packKey(pack)}: it holds data of ${entry.path}`,
    "Run `rep verify` to list what is damaged",
  );
}

/** The error for a pack that is shorter than `entry` needs. */
export function shortPack(pack: string, entry: FileEntry): CorruptObjectError {
  return new CorruptObjectError(
    `Corrupt object ${packKey(pack)}: it is shorter than ${entry.path} needs`,
    "Run `rep verify` to list what is damaged",
  );
}
