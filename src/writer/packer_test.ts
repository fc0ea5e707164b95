import assert from "node:assert/strict";
import { join } from "node:path";
import { type ChunkLoc, PACK_TARGET, Packer, type SealedPack, sha256hex } from "./packer.ts";
import { snapshotFiles } from "./snapshot.ts";
import { WriteThread } from "../hashing/write_thread.ts";
import { Repository } from "../repository.ts";
import { CorruptObjectError } from "../errors.ts";
import type { ChunkRef } from "../format/records.ts";

function bytes(n: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(n / 4));
  let x = Math.imul(seed, 0x9e3779b1) || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, n);
}

/** Temporary folders to write packs in: the default one, and tmpfs (no direct I/O) if present. */
async function packDirs(): Promise<string[]> {
  const dirs = [await Deno.makeTempDir()];
  const shm = await Deno.stat("/dev/shm").then((s) => s.isDirectory, () => false);
  if (shm) dirs.push(await Deno.makeTempDir({ dir: "/dev/shm" }));
  return dirs;
}

for (const direct of [false, true]) {
  Deno.test(`Packer copies chunks at add(), rolls packs over and seals them all (direct: ${direct})`, async () => {
    for (const dir of await packDirs()) {
      try {
        const sealed: SealedPack[] = [];
        const known = new Map<string, ChunkLoc>();
        const packer = new Packer(dir, known, (p) => {
          sealed.push(p);
        }, { direct });
        // Odd sizes: packs end mid-block, so a direct write is padded and the pack cut back.
        const sizes = [256 * 1024, 65_537, 200_003, 17, 131_072];
        const total = PACK_TARGET + 3 * 1024 * 1024 + 12345;
        const originals: Uint8Array[] = [];
        const refs: ChunkRef[] = [];
        const scratch = new Uint8Array(256 * 1024);
        for (let i = 0, sum = 0; sum < total; i++) {
          const c = bytes(sizes[i % sizes.length]!, i + 1);
          sum += c.length;
          originals.push(c);
          scratch.set(c);
          const p = packer.add(scratch.subarray(0, c.length));
          scratch.fill(0); // the caller may reuse its buffer once add() returned
          refs.push(await p);
        }
        // A repeated chunk is deduplicated.
        const again = await packer.add(originals[3]!);
        assert.deepEqual(again, refs[3]);
        assert.equal(packer.deduped, originals[3]!.length);
        await packer.seal();
        assert.equal(sealed.length, 2);
        const files = new Map<string, Uint8Array>();
        for (const s of sealed) files.set(s.id, await Deno.readFile(s.path));
        for (const s of sealed) assert.equal(files.get(s.id)!.length, s.size, "no padding left");
        assert.equal(sealed[0]!.size + sealed[1]!.size, packer.written);
        let inPacks = 0;
        for (let i = 0; i < originals.length; i++) {
          const [pack, off, len, hash] = refs[i]!;
          assert.equal(hash, sha256hex(originals[i]!));
          assert.deepEqual(files.get(pack)!.subarray(off, off + len), originals[i]);
          inPacks += len;
        }
        assert.equal(inPacks, packer.written);
        // Sealing again with nothing new is a no-op.
        await packer.seal();
        assert.equal(sealed.length, 2);
        // A small pack: a single write, shorter than a block.
        const small = await packer.add(bytes(100, 4242));
        await packer.seal();
        assert.equal(sealed.length, 3);
        assert.deepEqual(await Deno.readFile(sealed[2]!.path), bytes(100, 4242));
        assert.deepEqual(small.slice(0, 3), [sealed[2]!.id, 0, 100]);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }
  });
}

Deno.test("Packer's direct writes go through the write thread once it has loaded", async () => {
  const dir = await Deno.makeTempDir();
  const thread = WriteThread.shared();
  try {
    const packer = new Packer(dir, new Map(), () => {}, { direct: true });
    // The first write of a pack (4 MiB) is in-thread; the second starts the thread (and is
    // in-thread too while it loads). Wait until it has loaded.
    const first = bytes(9 * 1024 * 1024, 1);
    await packer.add(first);
    while (!thread.ready) await new Promise((r) => setTimeout(r, 5));
    const before = thread.bytesWritten;
    const rest = Array.from({ length: 12 }, (_, i) => bytes(1024 * 1024 + i, i + 2));
    for (const c of rest) await packer.add(c);
    const sealed: string[] = [];
    await packer.seal();
    for await (const e of Deno.readDir(dir)) sealed.push(e.name);
    assert.equal(sealed.length, 1);
    const got = await Deno.readFile(join(dir, sealed[0]!));
    const want = new Uint8Array(got.length);
    let o = 0;
    for (const c of [first, ...rest]) want.set(c, (o += c.length) - c.length);
    assert.equal(o, got.length);
    assert.deepEqual(got, want);
    // 9 MiB + 12 MiB: after the two in-thread writes, three 4 MiB writes and the last by the thread
    // (unless this filesystem has no direct I/O, as tmpfs: then ordinary writes in-thread).
    const noDirect = (await Deno.stat(dir)).dev === (await Deno.stat("/dev/shm").catch(() =>
      null
    ))?.dev;
    if (!noDirect) assert.ok(thread.bytesWritten - before >= 13 * 1024 * 1024);
    assert.equal(thread.running, false, "the thread stops once no pack is open");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Packer.abort removes the partial pack and forgets its chunks", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const known = new Map<string, ChunkLoc>();
    const packer = new Packer(dir, known, () => {});
    await packer.add(bytes(1000, 9));
    await packer.abort();
    assert.equal(known.size, 0);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("snapshot then local checkout round-trips and detects a corrupt pack", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const src = join(tmp, "src");
    await Deno.mkdir(src);
    const data = bytes(20 * 1024 * 1024 + 12345, 77);
    await Deno.writeFile(join(src, "w.bin"), data);
    await Deno.writeFile(join(src, "empty.bin"), new Uint8Array(0));
    const store = join(tmp, "store");
    await Deno.mkdir(join(store, "packs"), { recursive: true });
    const packer = new Packer(join(tmp, "staging"), new Map(), async (p) => {
      await Deno.rename(p.path, join(store, "packs", p.id));
    });
    const snap = await snapshotFiles(src, ["w.bin", "empty.bin"], packer);
    await packer.seal();
    assert.equal(snap.bytesRead, data.length);
    const repo = await Repository.open(store, { cache: false });
    const res = await repo.checkout(snap.tree.files, join(tmp, "out"));
    assert.deepEqual(res.written, ["empty.bin", "w.bin"]);
    assert.deepEqual(await Deno.readFile(join(tmp, "out", "w.bin")), data);
    assert.equal((await Deno.stat(join(tmp, "out", "empty.bin"))).size, 0);
    // The streaming path gives the same bytes.
    const entry = snap.tree.files.find((f) => f.path === "w.bin")!;
    assert.deepEqual(
      new Uint8Array(await new Response(repo.fileStream(entry)).arrayBuffer()),
      data,
    );
    // Flip one byte in the middle of the pack: checkout must refuse.
    const [pack, off, len] = entry.chunks[Math.floor(entry.chunks.length / 2)]!;
    const packPath = join(store, "packs", pack);
    const packBytes = await Deno.readFile(packPath);
    packBytes[off + (len >> 1)]! ^= 1;
    await Deno.writeFile(packPath, packBytes);
    await assert.rejects(repo.checkout([entry], join(tmp, "out2")), CorruptObjectError);
    // No partial file is left behind.
    assert.deepEqual(await Array.fromAsync(Deno.readDir(join(tmp, "out2"))), []);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
