import assert from "node:assert/strict";
import { join } from "node:path";
import { WriteThread, WriteThreadError } from "./write_thread.ts";

/** A shared memory of `pages` 64 KiB pages with random bytes. */
function sharedMemory(pages: number): { memory: WebAssembly.Memory; bytes: Uint8Array } {
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const bytes = new Uint8Array(memory.buffer);
  for (let o = 0; o < bytes.length; o += 65536) {
    crypto.getRandomValues(bytes.subarray(o, o + 65536));
  }
  return { memory, bytes };
}

async function whenReady(t: WriteThread): Promise<void> {
  while (!t.ready) await new Promise((r) => setTimeout(r, 5));
}

/** Whether `dir` allows O_DIRECT (not tmpfs); the answer decides which writes are tested. */
async function directWorks(dir: string): Promise<boolean> {
  const t = new WriteThread();
  t.retain();
  t.start();
  await whenReady(t);
  const p = join(dir, "probe");
  await Deno.writeFile(p, new Uint8Array(0));
  try {
    await t.close(await t.open(p, true));
    return true;
  } catch (e) {
    if (e instanceof WriteThreadError && e.code === "EINVAL") return false;
    throw e;
  } finally {
    t.release();
    await Deno.remove(p);
  }
}

Deno.test("WriteThread writes ranges of shared memories at positions, truncates, syncs, closes", async () => {
  const dir = await Deno.makeTempDir();
  const t = new WriteThread();
  try {
    const direct = await directWorks(dir);
    const { memory, bytes } = sharedMemory(4); // 256 KiB
    const path = join(dir, "f");
    await Deno.writeFile(path, new Uint8Array(0));
    t.retain();
    t.start();
    assert.equal(t.running, true);
    await whenReady(t);
    const fd = await t.open(path, direct);
    // Out of order, aligned for direct I/O: [64K, 192K) of the memory at 0, [0, 64K) at 128K.
    await Promise.all([
      t.write(fd, memory, 65536, 131072, 0),
      t.write(fd, memory, 0, 65536, 131072),
    ]);
    await t.finish(fd, 150_000);
    await t.close(fd);
    const want = new Uint8Array(150_000);
    want.set(bytes.subarray(65536, 196608), 0);
    want.set(bytes.subarray(0, 150_000 - 131072), 131072);
    assert.deepEqual(await Deno.readFile(path), want);
  } finally {
    t.release();
    await Deno.remove(dir, { recursive: true });
  }
  assert.equal(t.running, false, "the worker stops with its last user");
});

Deno.test("WriteThread: errors keep their system code; the worker stops when idle", async () => {
  const dir = await Deno.makeTempDir();
  const t = new WriteThread();
  t.retain();
  try {
    t.start();
    await whenReady(t);
    await assert.rejects(
      () => t.open(join(dir, "missing", "f"), false),
      (e) => e instanceof WriteThreadError && e.code === "ENOENT",
    );
    if (await directWorks(dir)) {
      // A direct write from an unaligned offset is refused with EINVAL (Packer then writes the
      // ordinary way).
      const path = join(dir, "d");
      await Deno.writeFile(path, new Uint8Array(0));
      const fd = await t.open(path, true);
      const { memory } = sharedMemory(1);
      await assert.rejects(
        () => t.write(fd, memory, 1, 4096, 0),
        (e) => e instanceof WriteThreadError && e.code === "EINVAL",
      );
      await t.close(fd);
    }
    // A file opened without direct I/O takes any range.
    const path = join(dir, "p");
    await Deno.writeFile(path, new Uint8Array(0));
    const fd = await t.open(path, false);
    const { memory, bytes } = sharedMemory(1);
    await t.write(fd, memory, 3, 1000, 7);
    await t.finish(fd, null);
    await t.close(fd);
    const got = await Deno.readFile(path);
    assert.deepEqual(got.subarray(7), bytes.subarray(3, 1003));
    assert.equal(t.running, true, "a user is left");
  } finally {
    t.release();
    await Deno.remove(dir, { recursive: true });
  }
  assert.equal(t.running, false);
  await assert.rejects(() => t.open("/nonexistent", false), /not running/);
});
