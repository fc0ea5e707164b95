/**
 * Reading a stream into memory for the cloud drivers' `getBytes`.
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
