import assert from "node:assert/strict";
import { join } from "node:path";
import { type ChunkLoc, PACK_TARGET, Packer, type SealedPack, sha256hex } from "./packer.ts";
import { snapshotFiles } from "./snapshot.ts";
import { Repository } from "../repository.ts";
import { CorruptObjectError } from "../errors.ts";
import type { ChunkRef } from "../format/records.ts";

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = Math.imul(seed, 0x9e3779b1) || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x >>> 24;
  }
  return out;
}

Deno.test("Packer copies chunks at add(), rolls packs over and seals them all", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const sealed: SealedPack[] = [];
    const known = new Map<string, ChunkLoc>();
    const packer = new Packer(dir, known, (p) => {
      sealed.push(p);
    });
    const chunkSize = 256 * 1024;
    const count = Math.ceil((PACK_TARGET + 3 * 1024 * 1024) / chunkSize);
    const originals: Uint8Array[] = [];
    const refs: ChunkRef[] = [];
    const scratch = new Uint8Array(chunkSize);
    for (let i = 0; i < count; i++) {
      const c = bytes(chunkSize, i + 1);
      originals.push(c);
      scratch.set(c);
      const p = packer.add(scratch);
      scratch.fill(0); // the caller may reuse its buffer once add() returned
      refs.push(await p);
    }
    // A repeated chunk is deduplicated.
    const again = await packer.add(originals[3]!);
    assert.deepEqual(again, refs[3]);
    assert.equal(packer.deduped, chunkSize);
    await packer.seal();
    assert.equal(sealed.length, 2);
    for (const s of sealed) assert.equal((await Deno.stat(s.path)).size, s.size);
    const files = new Map<string, Uint8Array>();
    for (const s of sealed) files.set(s.id, await Deno.readFile(s.path));
    for (let i = 0; i < count; i++) {
      const [pack, off, len, hash] = refs[i]!;
      assert.equal(hash, sha256hex(originals[i]!));
      assert.deepEqual(files.get(pack)!.subarray(off, off + len), originals[i]);
    }
    // Sealing again with nothing new is a no-op.
    await packer.seal();
    assert.equal(sealed.length, 2);
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
