/**
 * The hashing worker behind {@link ../repo/hasher.ts}: receives a buffer (transferred, not copied)
 * with a list of byte ranges, answers with the buffer and the hex sha256 of each range. Requests
 * are answered one at a time, in the order they arrive.
 *
 * @module
 */
import { hash } from "node:crypto";

/** A request: hash `ranges` (start, end pairs) of `buf`. */
export interface HashRequest {
  buf: ArrayBuffer;
  ranges: number[];
}

/** An answer: the same buffer and one hex digest per range, or an error message. */
export interface HashAnswer {
  buf: ArrayBuffer;
  hashes: string[];
  error?: string;
}

/** Sent once, first, when the worker has loaded. */
const READY = "ready";

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<HashRequest>) => void) | null;
  postMessage(message: HashAnswer | typeof READY, transfer?: Transferable[]): void;
};

scope.onmessage = (e: MessageEvent<HashRequest>) => {
  const { buf, ranges } = e.data;
  const hashes: string[] = [];
  let error: string | undefined;
  try {
    const bytes = new Uint8Array(buf);
    for (let i = 0; i < ranges.length; i += 2) {
      // One-shot: no Hash object per chunk for the collector to chase.
      hashes.push(hash("sha256", bytes.subarray(ranges[i]!, ranges[i + 1]!), "hex"));
    }
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
  }
  scope.postMessage(error === undefined ? { buf, hashes } : { buf, hashes, error }, [buf]);
};

scope.postMessage(READY);
