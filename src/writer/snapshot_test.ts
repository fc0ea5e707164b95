import assert from "node:assert/strict";
import * as fs from "node:fs";
import { join } from "node:path";
import { Chunker, MAX_CHUNK } from "../format/chunker.ts";
import { CorruptObjectError } from "../errors.ts";
import type { FileEntry } from "../format/records.ts";
import { Packer, sha256hex } from "./packer.ts";
import { Repository } from "../repository.ts";
import { RestorePipe, writeFromLocalPacks } from "../restore/local_packs.ts";
import { contentId, snapshotFiles, WORKER_MIN_SIZE } from "./snapshot.ts";
import { LocalStore } from "../storage/local.ts";

const MiB = 1024 * 1024;

/** Random bytes with long runs of zeros (forced MAX_CHUNK cuts, tails across read blocks). */
function data(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) crypto.getRandomValues(out.subarray(o, o + 65536));
  let x = seed | 1;
  for (let k = 0; k < 12; k++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const at = x % n;
    out.fill(0, at, Math.min(n, at + MAX_CHUNK + (x % (3 * MAX_CHUNK))));
  }
  return out;
}

/** What the format says: Chunker over the whole file, sha256 of each chunk. */
function reference(bytes: Uint8Array): { lengths: number[]; hashes: string[]; hash: string } {
  const ch = new Chunker();
  const chunks = [...ch.push(bytes), ...ch.finish()];
  const hashes = chunks.map(sha256hex);
  return { lengths: chunks.map((c) => c.length), hashes, hash: contentId(hashes) };
}

async function withTmp(fn: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = await Deno.makeTempDir();
  try {
    await fn(tmp);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

// Sizes around the pipeline's edges: exactly a multiple of the 4 MiB read size (the last read is
// empty), one byte over, and one byte under the worker threshold (the in-thread Chunker path).
const SIZES = [
  WORKER_MIN_SIZE,
  WORKER_MIN_SIZE + 1,
  WORKER_MIN_SIZE + 3 * MiB + 777,
  WORKER_MIN_SIZE - 1,
];

Deno.test("large-file pipeline gives the format's chunks and hashes, with and without the worker", async () => {
  await withTmp(async (tmp) => {
    const names = SIZES.map((_, i) => `f${i}.bin`);
    const refs = [];
    for (let i = 0; i < SIZES.length; i++) {
      const bytes = data(SIZES[i]!, i + 1);
      await Deno.writeFile(join(tmp, names[i]!), bytes);
      refs.push(reference(bytes));
    }
    {
      for (const worker of [false, true]) {
        const packer = new Packer(join(tmp, `staging-${String(worker)}`), new Map(), () => {});
        const snap = await snapshotFiles(tmp, names, packer, undefined, {
          worker,
          awaitWorker: true,
        });
        await packer.seal();
        assert.deepEqual(snap.torn, []);
        for (let i = 0; i < names.length; i++) {
          const f = snap.tree.files.find((e) => e.path === names[i])!;
          assert.equal(f.size, SIZES[i]);
          assert.deepEqual(f.chunks.map((c) => c[2]), refs[i]!.lengths, `${names[i]} boundaries`);
          assert.deepEqual(f.chunks.map((c) => c[3]), refs[i]!.hashes, `${names[i]} hashes`);
          assert.equal(f.hash, refs[i]!.hash);
        }
      }
    }
  });
});

Deno.test("large-file pipeline deduplicates against known chunks and within the file", async () => {
  await withTmp(async (tmp) => {
    const half = data(WORKER_MIN_SIZE, 9);
    const bytes = new Uint8Array(2 * half.length);
    bytes.set(half);
    bytes.set(half, half.length);
    await Deno.writeFile(join(tmp, "twice.bin"), bytes);
    const known = new Map();
    const packer = new Packer(join(tmp, "staging"), known, () => {});
    await snapshotFiles(tmp, ["twice.bin"], packer);
    await packer.seal();
    // The second half repeats the first (after the first cut past the seam).
    assert.ok(packer.deduped >= half.length - 2 * MAX_CHUNK, `deduped ${packer.deduped}`);
    assert.equal(packer.written + packer.deduped, bytes.length);
    const again = new Packer(join(tmp, "staging2"), known, () => {});
    await snapshotFiles(tmp, ["twice.bin"], again);
    await again.seal();
    assert.equal(again.written, 0);
    assert.equal(again.deduped, bytes.length);
  });
});

Deno.test("checkout verifies chunks in the worker and refuses a corrupt one", async () => {
  await withTmp(async (tmp) => {
    const bytes = data(WORKER_MIN_SIZE + 5 * MiB + 3, 5);
    await Deno.writeFile(join(tmp, "w.bin"), bytes);
    const store = new LocalStore(join(tmp, "store"));
    await Deno.mkdir(join(tmp, "store", "packs"), { recursive: true });
    const packer = new Packer(join(tmp, "staging"), new Map(), async (p) => {
      await Deno.rename(p.path, store.path(`packs/${p.id}`));
    });
    const snap = await snapshotFiles(tmp, ["w.bin"], packer, undefined, { worker: false });
    await packer.seal();
    const entry: FileEntry = snap.tree.files[0]!;
    for (
      const pipe of [new RestorePipe({ worker: true }), new RestorePipe({ worker: false }), null]
    ) {
      try {
        await pipe?.hasher()?.whenReady();
        const write = async (name: string) => {
          const fd = fs.openSync(join(tmp, name), "wx");
          try {
            await writeFromLocalPacks(store, entry, fd, join(tmp, name), pipe);
          } finally {
            fs.closeSync(fd);
          }
        };
        const tag = pipe ? `pipe-${!!pipe.hasher()}` : "in-thread";
        await write(`a-${tag}.bin`);
        assert.deepEqual(await Deno.readFile(join(tmp, `a-${tag}.bin`)), bytes, tag);
      } finally {
        pipe?.close();
      }
    }
    // Repository.checkout with its own worker, and without one.
    const repo = new Repository(store, { cache: false });
    for (const worker of [true, false]) {
      const res = await repo.checkout([entry], join(tmp, `co-${worker}`), { worker });
      assert.deepEqual(res.written, ["w.bin"]);
      assert.deepEqual(await Deno.readFile(join(tmp, `co-${worker}`, "w.bin")), bytes);
    }
    const [pack, off, len] = entry.chunks[entry.chunks.length - 7]!;
    {
      using f = await Deno.open(store.path(`packs/${pack}`), { read: true, write: true });
      await f.seek(off + (len >> 1), Deno.SeekMode.Start);
      const one = new Uint8Array(1);
      await f.read(one);
      one[0]! ^= 0x40;
      await f.seek(off + (len >> 1), Deno.SeekMode.Start);
      await f.write(one);
    }
    for (const worker of [true, false]) {
      const pipe = new RestorePipe({ worker });
      try {
        const path = join(tmp, `b-${worker}.bin`);
        const fd = fs.openSync(path, "wx");
        try {
          await assert.rejects(
            writeFromLocalPacks(store, entry, fd, path, pipe),
            CorruptObjectError,
          );
        } finally {
          fs.closeSync(fd);
        }
      } finally {
        pipe.close();
      }
      await assert.rejects(
        repo.checkout([entry], join(tmp, `bad-${worker}`), { worker }),
        CorruptObjectError,
      );
      assert.deepEqual(await Array.fromAsync(Deno.readDir(join(tmp, `bad-${worker}`))), []);
    }
  });
});

Deno.test("contentId() is sha256 over the binary chunk hashes, whatever their count", async () => {
  const { createHash } = await import("node:crypto");
  const ref = (hs: string[]) => {
    const h = createHash("sha256");
    for (const c of hs) h.update(Buffer.from(c, "hex"));
    return h.digest("hex");
  };
  for (const n of [0, 1, 1023, 1024, 1025, 3000]) {
    const hs = Array.from({ length: n }, (_, i) => sha256hex(new TextEncoder().encode(`${i}`)));
    if (n === 3000) hs[17] = hs[17]!.toUpperCase();
    assert.equal(contentId(hs), ref(hs), `${n} hashes`);
  }
});
