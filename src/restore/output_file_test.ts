import assert from "node:assert/strict";
import * as fs from "node:fs";
import { join } from "node:path";
import { OutputFile } from "./output_file.ts";

/** Ranges [start, end) of a 300,001-byte file: unaligned, tiny, inside one block, and large. */
const CUTS = [0, 5000, 70_000, 70_100, 70_101, 135_168, 139_264, 200_000, 300_001];
const SLOT = 128 * 1024;

function random(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) {
    crypto.getRandomValues(out.subarray(o, Math.min(n, o + 65536)));
  }
  return out;
}

/**
 * Write `data` as the ranges of CUTS, in shuffled order and all at once, through an OutputFile;
 * `first` ranges before the write thread has the file open.
 */
async function writeRanges(path: string, data: Uint8Array, first: number): Promise<OutputFile> {
  const n = CUTS.length - 1;
  const pages = (n * SLOT) / 65536;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const bytes = new Uint8Array(memory.buffer);
  const fd = fs.openSync(path, "w");
  const out = new OutputFile(path, fd, memory);
  const write = (i: number) => {
    const [a, b] = [CUTS[i]!, CUTS[i + 1]!];
    const at = i * SLOT + (i % 3);
    bytes.set(data.subarray(a, b), at);
    return out.write(bytes.subarray(at, at + b - a), a);
  };
  try {
    const order = [...Array(n).keys()].sort(() => Math.random() - 0.5);
    await Promise.all(order.slice(0, first).map(write));
    await out.opened();
    await Promise.all(order.slice(first).map(write));
  } finally {
    await out.close();
    fs.closeSync(fd);
  }
  return out;
}

Deno.test("OutputFile writes ranges at their positions in any order, exactly, through the write thread", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = random(CUTS.at(-1)!);
    const path = join(dir, "f");
    const out = await writeRanges(path, data, 3);
    assert.deepEqual(await Deno.readFile(path), data);
    assert.ok(out.threadBytes > 0 && out.threadBytes < data.length, `${out.threadBytes}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
