/**
 * Content ids: what identifies a file's bytes in a tree (sha256 over the binary sha256s of its
 * content-defined chunks, in order). Equal content gives equal ids. See docs/format.md.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";
import { Chunker } from "./chunker.ts";

/** Content id of a file from its chunk hashes: sha256 over the binary chunk hashes in order. */
export function contentId(chunkHashes: Iterable<string>): string {
  // Decoded into one reused block (no Buffer per chunk), hashed a block at a time.
  const h = createHash("sha256");
  const block = CONTENT_BLOCK;
  let n = 0;
  for (const c of chunkHashes) {
    if (n === block.length) {
      h.update(block);
      n = 0;
    }
    if (c.length !== 64) {
      // Not a sha256: hash what Buffer.from would decode (the historic behaviour).
      if (n) h.update(block.subarray(0, n));
      n = 0;
      h.update(Buffer.from(c, "hex"));
      continue;
    }
    for (let i = 0; i < 64; i += 2) {
      block[n++] = (HEX_VALUE[c.charCodeAt(i)]! << 4) | HEX_VALUE[c.charCodeAt(i + 1)]!;
    }
  }
  if (n) h.update(block.subarray(0, n));
  return h.digest("hex");
}

/** contentId's decoding block (contentId is synchronous: one block serves every call). */
const CONTENT_BLOCK = new Uint8Array(32 * 1024);

/** Value of a hex digit by char code (0 for anything else). */
const HEX_VALUE: Uint8Array = (() => {
  const t = new Uint8Array(128);
  for (let i = 0; i < 10; i++) t[48 + i] = i;
  for (let i = 0; i < 6; i++) t[97 + i] = t[65 + i] = 10 + i;
  return t;
})();

/** Chunk and hash a stream without storing it: what {@link snapshotFiles} would record. */
export async function hashStream(
  stream: ReadableStream<Uint8Array>,
): Promise<{ size: number; hash: string }> {
  const chunker = new Chunker();
  const hashes: string[] = [];
  let size = 0;
  const take = (cs: Uint8Array[]) => {
    for (const c of cs) hashes.push(createHash("sha256").update(c).digest("hex"));
  };
  for await (const block of stream) {
    size += block.length;
    take(chunker.push(block));
  }
  take(chunker.finish());
  return { size, hash: contentId(hashes) };
}
