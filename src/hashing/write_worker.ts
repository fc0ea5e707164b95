/**
 * The file-writing worker behind {@link ./write_thread.ts} (a node:worker_threads worker, so that
 * it can be unreferenced while idle): it opens files for direct writes,
 * writes ranges of shared memories at positions, truncates, syncs and closes, one request at a
 * time, in the order they arrive, with synchronous calls (they block this thread, not the main
 * one: in Deno, node:fs's callback writes run on the calling thread).
 *
 * @module
 */
import * as fs from "node:fs";
import { parentPort } from "node:worker_threads";

/** A request; `id` is echoed in the answer. */
export type WriteRequest =
  | { id: number; op: "open"; path: string; direct: boolean }
  | {
    id: number;
    op: "write";
    fd: number;
    memory: SharedArrayBuffer;
    at: number;
    len: number;
    pos: number;
  }
  | { id: number; op: "finish"; fd: number; size: number | null }
  | { id: number; op: "close"; fd: number };

/** An answer: the result (the descriptor for "open"), or the error's code and message. */
export interface WriteAnswer {
  id: number;
  value?: number;
  error?: { code?: string; message: string };
}

/** Sent once, first, when the worker has loaded. */
const READY = "ready";

const O_DIRECT: number = (fs.constants as Record<string, number>).O_DIRECT ?? 0;

const port = parentPort!;

function run(r: WriteRequest): number {
  switch (r.op) {
    case "open":
      return fs.openSync(r.path, fs.constants.O_WRONLY | (r.direct ? O_DIRECT : 0));
    case "write": {
      const bytes = new Uint8Array(r.memory, r.at, r.len);
      let off = 0;
      while (off < r.len) off += fs.writeSync(r.fd, bytes, off, r.len - off, r.pos + off);
      return off;
    }
    case "finish":
      if (r.size !== null) fs.ftruncateSync(r.fd, r.size);
      fs.fdatasyncSync(r.fd);
      return 0;
    case "close":
      fs.closeSync(r.fd);
      return 0;
  }
}

port.on("message", (r: WriteRequest) => {
  let answer: WriteAnswer;
  try {
    answer = { id: r.id, value: run(r) };
  } catch (err) {
    const x = err as { code?: string; message?: string };
    answer = {
      id: r.id,
      error: { ...(x.code ? { code: x.code } : {}), message: x.message ?? String(err) },
    };
  }
  port.postMessage(answer);
});

port.postMessage(READY);
