/**
 * The hashing worker behind {@link ../hashing/hasher.ts}: it is given a shared memory once, then
 * answers each request, a list of byte ranges of that memory, with the hex sha256 of each range.
 * Requests are answered one at a time, in the order they arrive. Nothing is copied or transferred:
 * the worker reads the bytes where the main thread put them.
 *
 * @module
 */
import { hash } from "node:crypto";

/** The first message: the memory that later ranges refer to. */
export interface HashSetup {
  memory: WebAssembly.Memory;
}

/** A request: hash `ranges` (start, end pairs of offsets into the memory). */
export interface HashRequest {
  ranges: number[];
}

/** An answer: one hex digest per range, or an error message. */
export interface HashAnswer {
  hashes: string[];
  error?: string;
}

/** Sent once, first, when the worker has loaded. */
const READY = "ready";

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<HashSetup | HashRequest>) => void) | null;
  postMessage(message: HashAnswer | typeof READY): void;
};

let bytes: Uint8Array | null = null;

scope.onmessage = (e: MessageEvent<HashSetup | HashRequest>) => {
  if ("memory" in e.data) {
    bytes = new Uint8Array(e.data.memory.buffer);
    return;
  }
  const { ranges } = e.data;
  const hashes: string[] = [];
  let error: string | undefined;
  try {
    if (!bytes) throw new Error("no memory was given");
    for (let i = 0; i < ranges.length; i += 2) {
      // One-shot: no Hash object per chunk for the collector to chase.
      hashes.push(hash("sha256", bytes.subarray(ranges[i]!, ranges[i + 1]!), "hex"));
    }
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
  }
  scope.postMessage(error === undefined ? { hashes } : { hashes, error });
};

scope.postMessage(READY);
