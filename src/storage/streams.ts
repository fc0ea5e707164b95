/**
 * Stream helpers shared by the cloud drivers: reading a stream into memory for `getBytes`, and a
 * ranged download stream that resumes where a broken connection left off.
 *
 * @module
 */

/**
 * Read a whole stream. With `expected` (the length of a ranged read) the bytes go straight into
 * one buffer of that size: a 16 MiB range costs 16 MiB, not the chunks plus a concatenated copy
 * (`Response.arrayBuffer()` holds both at its peak). A stream that turns out longer falls back to
 * growing; a shorter one returns what came.
 */
export async function readAll(
  stream: ReadableStream<Uint8Array>,
  expected?: number,
): Promise<Uint8Array> {
  if (expected === undefined) return new Uint8Array(await new Response(stream).arrayBuffer());
  let out = new Uint8Array(expected);
  let n = 0;
  for await (const c of stream) {
    if (n + c.byteLength > out.byteLength) {
      const bigger = new Uint8Array(Math.max(out.byteLength * 2, n + c.byteLength));
      bigger.set(out.subarray(0, n));
      out = bigger;
    }
    out.set(c, n);
    n += c.byteLength;
  }
  return n === out.byteLength ? out : out.slice(0, n);
}

/** A stream with no bytes. */
export function emptyStream(): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(ctl) {
      ctl.close();
    },
  });
}

/** An opened download: its reader, and the object offset of the first byte it yields. */
export interface OpenedBody {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  at: number;
}

/**
 * The bytes `[start, end)` of an object (to its end when `end` is undefined). `open(pos)` starts a
 * download at `pos` (null when `pos` is at or past the end); a server that ignores the range is
 * fine, bytes before `pos` are skipped and bytes past `end` dropped. When the connection breaks
 * mid-body, `onBreak(error)` is called (it throws to give up, or waits before the retry) and the
 * download is reopened from the first byte not yet delivered.
 */
export async function resumingStream(
  start: number,
  end: number | undefined,
  open: (pos: number) => Promise<OpenedBody | null>,
  onBreak: (error: unknown) => Promise<void>,
): Promise<ReadableStream<Uint8Array>> {
  let pos = start;
  const first = await open(pos);
  if (first === null) return emptyStream();
  let { reader, at } = first;
  return new ReadableStream<Uint8Array>({
    pull: async (ctl) => {
      for (;;) {
        if (end !== undefined && pos >= end) {
          await reader.cancel().catch(() => {});
          ctl.close();
          return;
        }
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await reader.read();
        } catch (e) {
          await onBreak(e);
          const next = await open(pos);
          if (next === null) {
            ctl.close();
            return;
          }
          ({ reader, at } = next);
          continue;
        }
        if (r.done) {
          ctl.close();
          return;
        }
        let chunk = r.value;
        const chunkStart = at;
        at += chunk.byteLength;
        if (at <= pos) continue; // before the range (the server ignored Range)
        if (chunkStart < pos) chunk = chunk.subarray(pos - chunkStart);
        if (end !== undefined && pos + chunk.byteLength > end) chunk = chunk.subarray(0, end - pos);
        pos += chunk.byteLength;
        ctl.enqueue(chunk);
        return;
      }
    },
    cancel: async (reason) => {
      await reader.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}
