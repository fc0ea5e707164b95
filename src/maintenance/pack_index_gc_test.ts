import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { LocalStore } from "../storage/local.ts";
import { packIndexKey, PREFIX } from "../format/layout.ts";
import { encodePackIndex, type PackEntry, parsePackIndex } from "../format/pack_index.ts";
import { newId } from "../format/ids.ts";
import { COMPACT_CHUNKS, rewritePackIndex } from "./pack_index_gc.ts";

function pack(n = 2): PackEntry {
  const id = newId();
  return {
    id,
    size: n * 10,
    chunks: Array.from({ length: n }, (_, i) => [
      createHash("sha256").update(`${id}${i}`).digest("hex"),
      i * 10,
      10,
    ]),
  };
}

async function withStore(fn: (store: LocalStore) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rep-pack-index-gc-" });
  const store = new LocalStore(join(dir, "repo"));
  try {
    await fn(store);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** pack id → number of index objects listing it. */
async function indexed(store: LocalStore): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const info of store.list(PREFIX.packIndex)) {
    for (const p of parsePackIndex(await store.getBytes(info.key)).packs) {
      out.set(p.id, (out.get(p.id) ?? 0) + 1);
    }
  }
  return out;
}

const HOUR = 3600 * 1000;

Deno.test("rewritePackIndex() drops deleted and vanished packs and merges small objects", async () => {
  await withStore(async (store) => {
    const packs = Array.from({ length: 5 }, () => pack());
    const [a, b, c, d, e] = packs as [PackEntry, PackEntry, PackEntry, PackEntry, PackEntry];
    await store.put(packIndexKey(a.id), encodePackIndex([a]));
    await store.put(packIndexKey(b.id), encodePackIndex([b]));
    await store.put(packIndexKey(newId()), encodePackIndex([c, d]));
    await store.put(packIndexKey(e.id), encodePackIndex([e]));
    await store.put(packIndexKey(newId()), new TextEncoder().encode("damaged"));
    // b is deleted now; d's pack is gone from the store; the objects are old (now is later).
    const options = {
      deleted: new Set([b.id]),
      stored: new Set([a.id, b.id, c.id, e.id]),
      graceMs: 0,
      now: Date.now() + 2 * HOUR,
    };
    const dry = await rewritePackIndex(store, { ...options, dryRun: true });
    assert.deepEqual(dry, { objects: 5, removed: 5, written: 1, dropped: 2 });
    assert.equal((await Array.fromAsync(store.list(PREFIX.packIndex))).length, 5);
    const r = await rewritePackIndex(store, options);
    assert.deepEqual(r, dry);
    assert.deepEqual(
      [...(await indexed(store)).entries()].sort(),
      [[a.id, 1], [c.id, 1], [e.id, 1]].sort(),
    );
    assert.equal((await Array.fromAsync(store.list(PREFIX.packIndex))).length, 1);
    // Nothing to do the second time.
    const again = await rewritePackIndex(store, { ...options, deleted: new Set() });
    assert.deepEqual(again, { objects: 1, removed: 0, written: 0, dropped: 0 });
  });
});

Deno.test("rewritePackIndex() keeps young entries of packs stored after gc listed packs/", async () => {
  await withStore(async (store) => {
    const a = pack();
    const b = pack();
    await store.put(packIndexKey(a.id), encodePackIndex([a]));
    await store.put(packIndexKey(b.id), encodePackIndex([b]));
    const r = await rewritePackIndex(store, {
      deleted: new Set(),
      stored: new Set([a.id]),
      graceMs: 0,
    });
    assert.deepEqual(r, { objects: 2, removed: 2, written: 1, dropped: 0 });
    assert.deepEqual([...(await indexed(store)).keys()].sort(), [a.id, b.id].sort());
  });
});

Deno.test("rewritePackIndex() leaves large objects alone unless they list a deleted pack", async () => {
  await withStore(async (store) => {
    const big = pack(COMPACT_CHUNKS);
    const small = pack();
    const other = pack();
    await store.put(packIndexKey(newId()), encodePackIndex([big]));
    await store.put(packIndexKey(small.id), encodePackIndex([small]));
    const stored = new Set([big.id, small.id, other.id]);
    const r1 = await rewritePackIndex(store, { deleted: new Set(), stored, graceMs: 0 });
    assert.deepEqual(r1, { objects: 2, removed: 0, written: 0, dropped: 0 });
    await store.put(packIndexKey(newId()), encodePackIndex([other, big]));
    const r2 = await rewritePackIndex(store, {
      deleted: new Set([other.id]),
      stored,
      graceMs: 0,
    });
    // The object with `other` goes (big is listed by another); small ones merge only with company.
    assert.deepEqual(r2, { objects: 3, removed: 1, written: 0, dropped: 1 });
    const after = await indexed(store);
    assert.equal(after.get(other.id), undefined);
    assert.equal(after.get(big.id), 1);
    assert.equal(after.get(small.id), 1);
  });
});
