import assert from "node:assert/strict";
import { join } from "node:path";
import { OutputFile } from "./output_file.ts";

/** Ranges [start, end) of a 300,001-byte file: tiny, inside one block, and large. */
const CUTS = [0, 5000, 70_000, 70_100, 70_101, 135_168, 139_264, 200_000, 300_001];
const SLOT = 128 * 1024;

function random(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) {
    crypto.getRandomValues(out.subarray(o, Math.min(n, o + 65536)));
  }
  return out;
}

Deno.test("OutputFile writes ranges of a shared memory at their positions in any order, exactly", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = random(CUTS.at(-1)!);
    const path = join(dir, "f");
    await Deno.writeFile(path, new Uint8Array(0));
    const n = CUTS.length - 1;
    const pages = (n * SLOT) / 65536;
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const bytes = new Uint8Array(memory.buffer);
    const out = new OutputFile(path);
    try {
      const order = [...Array(n).keys()].sort(() => Math.random() - 0.5);
      await Promise.all(order.map((i) => {
        const [a, b] = [CUTS[i]!, CUTS[i + 1]!];
        const at = i * SLOT + (i % 3);
        bytes.set(data.subarray(a, b), at);
        return out.write(bytes.subarray(at, at + b - a), a);
      }));
    } finally {
      await out.close();
    }
    assert.deepEqual(await Deno.readFile(path), data);
    await assert.rejects(out.write(bytes.subarray(0, 1), 0), /closed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
