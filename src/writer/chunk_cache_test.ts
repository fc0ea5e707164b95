import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { LocalStore } from "../storage/local.ts";
import { gcListingKey, packIndexKey, packKey } from "../format/layout.ts";
import { encodePackIndex, type PackEntry } from "../format/pack_index.ts";
import { newId } from "../format/ids.ts";
import { jsonBytes } from "../util.ts";
import { ChunkCache, REFRESH_WINDOW_MS } from "./chunk_cache.ts";

const hex = (n: number, tag: string) => createHash("sha256").update(`${tag}${n}`).digest("hex");
/** A pack of `n` chunks of 1000 bytes with hashes distinct per `tag`. */
function pack(tag: string, n = 3): PackEntry {
  return {
    id: newId(),
    size: n * 1000,
    chunks: Array.from({ length: n }, (_, i) => [hex(i, tag), i * 1000, 1000]),
  };
}

async function withStore(fn: (store: LocalStore, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rep-chunk-cache-" });
  const store = new LocalStore(join(dir, "repo"));
  try {
    await fn(store, dir);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function open(store: LocalStore, dir: string, name = "cache"): ChunkCache {
  const c = ChunkCache.open(store.url, join(dir, `${name}.sqlite`));
  assert.ok(c, "cache opens");
  return c;
}

Deno.test("ChunkCache.refresh() reads each index object once and finds its chunks", async () => {
  await withStore(async (store, dir) => {
    const a = pack("a");
    const b = pack("b", 2);
    await store.put(packIndexKey(a.id), encodePackIndex([a]));
    const cache = open(store, dir);
    try {
      assert.equal(cache.lookup(a.chunks[1]![0]), undefined);
      const r1 = await cache.refresh(store);
      assert.deepEqual([r1.listed, r1.read, r1.packs, r1.chunks, r1.full], [1, 1, 1, 3, true]);
      assert.deepEqual(cache.lookup(a.chunks[1]![0]), [a.id, 1000, 1000]);
      assert.equal(cache.packSize(a.id), 3000);
      await store.put(packIndexKey(b.id), encodePackIndex([b]));
      const r2 = await cache.refresh(store);
      assert.deepEqual([r2.listed, r2.read, r2.packs, r2.chunks, r2.full], [2, 1, 1, 2, false]);
      assert.deepEqual(cache.lookup(b.chunks[0]![0]), [b.id, 0, 1000]);
      const r3 = await cache.refresh(store);
      assert.deepEqual([r3.listed, r3.read], [2, 0]);
      // Same first 16 bytes, different rest: not the same chunk (both kept).
      const h = a.chunks[0]![0];
      const near = h.slice(0, 32) + (h[32] === "f" ? "e" : "f") + h.slice(33);
      assert.equal(cache.lookup(near), undefined);
      const twin: PackEntry = { id: newId(), size: 1000, chunks: [[near, 0, 1000]] };
      cache.add([twin]);
      assert.deepEqual(cache.lookup(near), [twin.id, 0, 1000]);
      assert.deepEqual(cache.lookup(h), [a.id, 0, 1000]);
    } finally {
      cache.close();
    }
    // A second process (or a later run) sees the same cache.
    const again = open(store, dir);
    try {
      assert.deepEqual(again.lookup(a.chunks[2]![0]), [a.id, 2000, 1000]);
      assert.equal((await again.refresh(store)).read, 0);
    } finally {
      again.close();
    }
  });
});

Deno.test("ChunkCache.refresh() lists from the newest key less the window", async () => {
  await withStore(async (store, dir) => {
    const now = Date.now();
    const newest = pack("c");
    await store.put(packIndexKey(newest.id, new Date(now)), encodePackIndex([newest]));
    const cache = open(store, dir);
    try {
      await cache.refresh(store);
      // Uploaded late: sealed inside the window (read), and before it (not listed: only dedup
      // is lost, and gc's compaction publishes it again under a new time).
      const late = pack("d");
      const tooLate = pack("e");
      await store.put(
        packIndexKey(late.id, new Date(now - REFRESH_WINDOW_MS + 60_000)),
        encodePackIndex([late]),
      );
      await store.put(
        packIndexKey(tooLate.id, new Date(now - REFRESH_WINDOW_MS - 60_000)),
        encodePackIndex([tooLate]),
      );
      const r = await cache.refresh(store);
      assert.deepEqual([r.listed, r.read], [2, 1]);
      assert.ok(cache.lookup(late.chunks[0]![0]));
      assert.equal(cache.lookup(tooLate.chunks[0]![0]), undefined);
      // A gc compaction under a new time brings it in.
      await store.put(packIndexKey(newId(), new Date(now + 1000)), encodePackIndex([tooLate]));
      assert.equal((await cache.refresh(store)).packs, 1);
      assert.ok(cache.lookup(tooLate.chunks[0]![0]));
    } finally {
      cache.close();
    }
  });
});

Deno.test("ChunkCache.refresh() does not list a local pack-index/ folder unchanged since its last listing", async () => {
  await withStore(async (store, dir) => {
    const a = pack("m");
    await store.put(packIndexKey(a.id, new Date()), encodePackIndex([a]));
    const folder = join(store.root, "pack-index");
    // A folder last changed an hour ago (a change seconds ago may not show in its time yet).
    const settle = () => Deno.utime(folder, new Date(), new Date(Date.now() - 3600_000));
    await settle();
    const cache = open(store, dir);
    try {
      assert.deepEqual([(await cache.refresh(store)).listed, cache.lookup(a.chunks[0]![0])?.[0]], [
        1,
        a.id,
      ]);
      // Unchanged: not listed (before, the key within the window was listed again).
      const again = await cache.refresh(store);
      assert.deepEqual([again.listed, again.read, again.complete], [0, 0, true]);
      // A new index changes the folder: listed and read, whether its time is settled or not.
      const b = pack("n");
      await store.put(packIndexKey(b.id, new Date()), encodePackIndex([b]));
      assert.deepEqual([(await cache.refresh(store)).read, cache.lookup(b.chunks[0]![0])?.[0]], [
        1,
        b.id,
      ]);
      const c = pack("o");
      await store.put(packIndexKey(c.id, new Date()), encodePackIndex([c]));
      await settle();
      assert.deepEqual([(await cache.refresh(store)).read, cache.lookup(c.chunks[0]![0])?.[0]], [
        1,
        c.id,
      ]);
      assert.equal((await cache.refresh(store)).listed, 0);
    } finally {
      cache.close();
    }
  });
});

Deno.test("ChunkCache never hands out chunks of packs listed in gc/ or marked dead", async () => {
  await withStore(async (store, dir) => {
    const a = pack("1");
    const b = pack("2");
    const c = pack("3");
    await store.put(packIndexKey(newId()), encodePackIndex([a, b, c]));
    await store.put(
      gcListingKey(),
      jsonBytes({
        format: 2,
        type: "gc",
        created: new Date().toISOString(),
        keys: [packKey(a.id), "trees/" + "0".repeat(64) + ".json"],
      }),
    );
    const cache = open(store, dir);
    try {
      const r = await cache.refresh(store);
      assert.deepEqual([...r.gcPacks], [a.id]);
      assert.equal(cache.lookup(a.chunks[0]![0]), undefined);
      assert.ok(cache.lookup(b.chunks[0]![0]));
      cache.markDead([b.id]);
      assert.equal(cache.lookup(b.chunks[0]![0]), undefined);
      // A dead pack stays dead when an index lists it again.
      await store.put(packIndexKey(newId()), encodePackIndex([b]));
      assert.equal((await cache.refresh(store)).packs, 0);
      assert.equal(cache.lookup(b.chunks[0]![0]), undefined);
      assert.ok(cache.lookup(c.chunks[0]![0]));
      // Dead before it was ever seen.
      const d = pack("4");
      cache.markDead([d.id]);
      cache.add([d]);
      assert.equal(cache.lookup(d.chunks[0]![0]), undefined);
    } finally {
      cache.close();
    }
  });
});

Deno.test("ChunkCache skips a damaged index object once, and rebuilds a damaged cache", async () => {
  await withStore(async (store, dir) => {
    await store.put(packIndexKey(newId()), new TextEncoder().encode("{not json"));
    const a = pack("5");
    await store.put(packIndexKey(a.id), encodePackIndex([a]));
    const cache = open(store, dir);
    try {
      const r1 = await cache.refresh(store);
      assert.deepEqual([r1.listed, r1.read, r1.packs], [2, 2, 1]);
      assert.equal((await cache.refresh(store)).read, 0);
    } finally {
      cache.close();
    }
    const path = join(dir, "cache.sqlite");
    await Deno.writeTextFile(path, "this is not a database ".repeat(200));
    const rebuilt = open(store, dir);
    try {
      assert.equal(rebuilt.lookup(a.chunks[0]![0]), undefined);
      assert.equal((await rebuilt.refresh(store)).packs, 1);
      assert.ok(rebuilt.lookup(a.chunks[0]![0]));
    } finally {
      rebuilt.close();
    }
    // A cache of another version is rebuilt too.
    const db = new DatabaseSync(path);
    db.exec("UPDATE meta SET v = '0' WHERE k = 'schema'");
    db.close();
    const other = open(store, dir);
    try {
      assert.equal(other.lookup(a.chunks[0]![0]), undefined);
    } finally {
      other.close();
    }
    // No cache at all where none can be written.
    await Deno.writeTextFile(join(dir, "file"), "");
    assert.equal(ChunkCache.open(store.url, join(dir, "file", "x.sqlite")), null);
  });
});

Deno.test("ChunkCache.refresh() stopped midway keeps what it read and resumes later", async () => {
  await withStore(async (store, dir) => {
    const packs = Array.from({ length: 30 }, (_, i) => pack(`s${i}`));
    // All but the last long before the window: the next refresh does not list them again.
    const old = Date.now() - 3 * REFRESH_WINDOW_MS;
    for (const [i, p] of packs.entries()) {
      const t = i === 29 ? Date.now() : old + i;
      await store.put(packIndexKey(p.id, new Date(t)), encodePackIndex([p]));
    }
    const cache = open(store, dir);
    try {
      let calls = 0;
      const r1 = await cache.refresh(store, { stopped: () => ++calls > 12 });
      assert.equal(r1.complete, false);
      assert.equal(r1.listed, 30);
      assert.ok(r1.read > 0 && r1.read < 30, `read ${r1.read}`);
      // Newest first: the last pack written is known already.
      assert.ok(cache.lookup(packs[29]!.chunks[0]![0]));
      const r2 = await cache.refresh(store);
      assert.equal(r2.complete, true);
      assert.equal(r2.listed, 1);
      assert.equal(r1.read + r2.read, 30);
      for (const p of packs) assert.ok(cache.lookup(p.chunks[0]![0]));
      const r3 = await cache.refresh(store);
      assert.deepEqual([r3.listed, r3.read, r3.complete], [1, 0, true]);
    } finally {
      cache.close();
    }
  });
});

Deno.test("ChunkCache.open() deletes cache files unused for 30 days, never its own", async () => {
  await withStore(async (store, dir) => {
    const old = join(dir, "old.sqlite");
    const recent = join(dir, "recent.sqlite");
    for (const p of [old, `${old}-wal`, recent]) await Deno.writeTextFile(p, "");
    const longAgo = new Date(Date.now() - 31 * 86400_000);
    await Deno.utime(old, longAgo, longAgo);
    // Our own file, unused for as long: kept (and used).
    const mine = join(dir, "cache.sqlite");
    open(store, dir).close();
    await Deno.utime(mine, longAgo, longAgo);
    const cache = open(store, dir);
    cache.close();
    const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
    assert.ok(!names.includes("old.sqlite") && !names.includes("old.sqlite-wal"), names.join());
    assert.ok(names.includes("recent.sqlite") && names.includes("cache.sqlite"), names.join());
  });
});
