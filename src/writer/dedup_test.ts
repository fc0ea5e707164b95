import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { Repository } from "../repository.ts";
import { LocalStore } from "../storage/local.ts";
import type { ObjectInfo, Store } from "../storage/store.ts";
import { gcListingKey, packIndexOfKey, packKey, PREFIX } from "../format/layout.ts";
import { parsePackIndex } from "../format/pack_index.ts";
import type { Tree } from "../format/records.ts";
import { jsonBytes } from "../util.ts";
import { Recorder } from "./recorder.ts";
import { Dedup, dedupFromEnv } from "./dedup.ts";
import { UsageError } from "../errors.ts";

const MiB = 1024 * 1024;

/** Deterministic incompressible bytes. */
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

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

interface Env {
  dir: string;
  repoDir: string;
  /** A folder with the files to snapshot. */
  work: string;
}

async function withEnv(fn: (env: Env) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rep-dedup-" });
  const before = Deno.env.get("REP_CACHE_DIR");
  try {
    await Deno.mkdir(join(dir, "work"));
    await fn({ dir, repoDir: join(dir, "repo"), work: join(dir, "work") });
  } finally {
    if (before === undefined) Deno.env.delete("REP_CACHE_DIR");
    else Deno.env.set("REP_CACHE_DIR", before);
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Record one experiment with one checkpoint of `files` (written into `work` first), using the
 * chunk cache of `machine` (a cache folder per machine). Returns the tree and the bytes written.
 */
async function experiment(
  env: Env,
  machine: string,
  files: Record<string, Uint8Array>,
  store?: Store,
  started?: () => void,
): Promise<{ tree: Tree; written: number; deduped: number; rec: Recorder }> {
  Deno.env.set("REP_CACHE_DIR", join(env.dir, `cache-${machine}`));
  for (const [p, b] of Object.entries(files)) await Deno.writeFile(join(env.work, p), b);
  const repo = store ? new Repository(store) : await Repository.open(env.repoDir);
  const rec = await Recorder.start(repo, { code: null });
  started?.();
  const snap = await rec.snapshot(env.work, Object.keys(files));
  await rec.commit({ tree: snap.tree });
  await rec.stop("succeeded");
  if (!store) await repo.close();
  return { tree: snap.tree, written: rec.packer.written, deduped: rec.packer.deduped, rec };
}

/** Check out `tree` and compare every file with `files`. */
async function assertCheckout(env: Env, tree: Tree, files: Record<string, Uint8Array>) {
  const repo = await Repository.open(env.repoDir);
  const out = await Deno.makeTempDir({ dir: env.dir });
  try {
    await repo.checkout(tree.files, out);
    for (const [p, b] of Object.entries(files)) {
      assert.equal(sha(await Deno.readFile(join(out, p))), sha(b), p);
    }
  } finally {
    await repo.close();
  }
}

const packsOf = (tree: Tree) => new Set(tree.files.flatMap((f) => f.chunks.map((c) => c[0])));

async function listKeys(store: Store, prefix: string): Promise<string[]> {
  return (await Array.fromAsync(store.list(prefix))).map((i) => i.key);
}

Deno.test("a second experiment, on this machine or another, stores no chunk of the same file again", async () => {
  await withEnv(async (env) => {
    const files = { "model.bin": bytes(3 * MiB, 1), "b.txt": new TextEncoder().encode("b\n") };
    const a = await experiment(env, "one", files);
    assert.equal(a.written, 3 * MiB + 2);
    const b = await experiment(env, "one", files);
    assert.equal(b.written, 0);
    assert.equal(b.deduped, 3 * MiB + 2);
    assert.deepEqual(b.tree, a.tree);
    // Another machine: an empty cache, filled from the pack indexes.
    const c = await experiment(env, "two", files);
    assert.equal(c.written, 0);
    assert.equal(c.rec.dedup.refreshed?.full, true);
    assert.deepEqual(c.tree, a.tree);
    await assertCheckout(env, c.tree, files);
  });
});

Deno.test("every stored pack has a pack index listing exactly its chunks", async () => {
  await withEnv(async (env) => {
    const files = { "a.bin": bytes(2 * MiB, 2), "b.bin": bytes(100_000, 3) };
    const a = await experiment(env, "one", files);
    const store = new LocalStore(env.repoDir);
    try {
      const keys = await listKeys(store, PREFIX.packIndex);
      const packs = await listKeys(store, PREFIX.packs);
      assert.equal(keys.length, packs.length);
      assert.deepEqual([...packsOf(a.tree)].map(packKey).sort(), packs);
      for (const key of keys) {
        const index = parsePackIndex(await store.getBytes(key), key);
        assert.equal(index.packs.length, 1);
        const entry = index.packs[0]!;
        assert.equal(packIndexOfKey(key)?.id, entry.id);
        const data = await store.getBytes(packKey(entry.id));
        assert.equal(entry.size, data.length);
        for (const [h, off, len] of entry.chunks) {
          assert.equal(sha(data.subarray(off, off + len)), h);
        }
      }
    } finally {
      await store.close();
    }
  });
});

Deno.test("a pack listed for deletion in gc/ is not reused", async () => {
  await withEnv(async (env) => {
    const files = { "model.bin": bytes(MiB, 4) };
    const a = await experiment(env, "one", files);
    const store = new LocalStore(env.repoDir);
    const listed = [...packsOf(a.tree)];
    await store.put(
      gcListingKey(),
      jsonBytes({
        format: 2,
        type: "gc",
        created: new Date().toISOString(),
        keys: listed.map(packKey),
      }),
    );
    await store.close();
    const b = await experiment(env, "one", files);
    assert.equal(b.written, MiB);
    for (const p of listed) assert.ok(!packsOf(b.tree).has(p));
    await assertCheckout(env, b.tree, files);
  });
});

Deno.test("a pack deleted behind a stale cache is checked, found missing and not referenced", async () => {
  await withEnv(async (env) => {
    const base = bytes(2 * MiB, 5);
    const other = bytes(1.5 * MiB, 6);
    const a = await experiment(env, "one", { "model.bin": base });
    // The cache of machine two learns of A's pack.
    await experiment(env, "two", { "other.bin": other });
    // Then gc deletes the pack and its index (and, later, its listing): nothing tells the cache.
    const store = new LocalStore(env.repoDir);
    const gone = [...packsOf(a.tree)];
    const indexes = [];
    for (const key of await listKeys(store, PREFIX.packIndex)) {
      const index = parsePackIndex(await store.getBytes(key));
      if (index.packs.some((p) => gone.includes(p.id))) indexes.push(key);
    }
    await store.delete([...gone.map(packKey), ...indexes]);
    await store.close();
    // Two files: one all from the deleted pack, one new; both are stored right.
    const files = { "model.bin": base, "new.bin": bytes(200_000, 7), "other.bin": other };
    const c = await experiment(env, "two", files);
    for (const p of gone) assert.ok(!packsOf(c.tree).has(p), "deleted pack referenced");
    assert.equal(c.written, 2 * MiB + 200_000);
    // The first read took model.bin from the deleted pack; the second stored it.
    assert.equal(c.deduped, 2 * MiB + 1.5 * MiB);
    assert.deepEqual(c.tree.files.map((f) => f.path), ["model.bin", "new.bin", "other.bin"]);
    await assertCheckout(env, c.tree, files);
    // The cache remembers: the next experiment does not even try the deleted pack.
    const d = await experiment(env, "two", { "model.bin": base });
    assert.equal(d.written, 0);
    assert.deepEqual(d.tree.files[0], c.tree.files[0]);
  });
});

/** A local store whose `head` fails (storage going away between listing and checking). */
class FailingHead extends LocalStore {
  override head(_key: string): Promise<ObjectInfo | null> {
    return Promise.reject(new Error("connection reset"));
  }
}

Deno.test("a reused pack that cannot be checked is not referenced", async () => {
  await withEnv(async (env) => {
    const files = { "model.bin": bytes(MiB, 8) };
    const a = await experiment(env, "one", files);
    const store = new FailingHead(env.repoDir);
    const b = await experiment(env, "one", files, store);
    await store.close();
    assert.equal(b.written, MiB);
    for (const p of packsOf(a.tree)) assert.ok(!packsOf(b.tree).has(p));
    await assertCheckout(env, b.tree, files);
  });
});

Deno.test("a pack whose size differs from its index is not reused", async () => {
  await withEnv(async (env) => {
    const files = { "model.bin": bytes(MiB, 9) };
    const a = await experiment(env, "one", files);
    const [pack] = [...packsOf(a.tree)];
    const path = join(env.repoDir, packKey(pack!));
    await Deno.truncate(path, MiB - 1);
    const b = await experiment(env, "one", files);
    assert.equal(b.written, MiB);
    assert.ok(!packsOf(b.tree).has(pack!));
    await assertCheckout(env, b.tree, files);
  });
});

Deno.test("Recorder.start({ dedup: false }) neither reads nor fills the chunk cache", async () => {
  await withEnv(async (env) => {
    const files = { "model.bin": bytes(MiB, 10) };
    await experiment(env, "one", files);
    Deno.env.set("REP_CACHE_DIR", join(env.dir, "cache-one"));
    const repo = await Repository.open(env.repoDir);
    const rec = await Recorder.start(repo, { code: null, dedup: false });
    const snap = await rec.snapshot(env.work, ["model.bin"]);
    await rec.commit({ tree: snap.tree });
    await rec.stop("succeeded");
    await repo.close();
    assert.equal(rec.dedup.cache, null);
    assert.equal(rec.packer.written, MiB);
  });
});

Deno.test("REP_DEDUP=off: a writer neither reads nor fills the chunk cache; a bad value says so", async () => {
  await withEnv(async (env) => {
    const files = { "model.bin": bytes(MiB, 11) };
    await experiment(env, "one", files);
    Deno.env.set("REP_CACHE_DIR", join(env.dir, "cache-off"));
    Deno.env.set("REP_DEDUP", "off");
    try {
      const repo = await Repository.open(env.repoDir);
      const rec = await Recorder.start(repo, { code: null });
      const snap = await rec.snapshot(env.work, ["model.bin"]);
      await rec.commit({ tree: snap.tree });
      await rec.stop("succeeded");
      await repo.close();
      assert.equal(rec.dedup.cache, null);
      assert.equal(rec.packer.written, MiB);
      assert.equal(await Deno.stat(join(env.dir, "cache-off", "chunks")).catch(() => null), null);
    } finally {
      Deno.env.delete("REP_DEDUP");
    }
  });
  const env = (v: string) => ({ get: (k: string) => (k === "REP_DEDUP" ? v : undefined) });
  assert.equal(dedupFromEnv(env("on")), true);
  assert.equal(dedupFromEnv(env("")), true);
  assert.equal(dedupFromEnv(env("OFF")), false);
  assert.equal(dedupFromEnv(env("0")), false);
  assert.throws(() => dedupFromEnv(env("no")), (e: Error) => {
    assert.ok(e instanceof UsageError);
    assert.equal(e.message, 'REP_DEDUP is "no"');
    return true;
  });
});

/** A local store whose listings wait until `open()` is called. */
class GatedStore extends LocalStore {
  #gate = Promise.withResolvers<void>();
  open(): void {
    this.#gate.resolve();
  }
  override async *list(prefix: string): AsyncIterable<ObjectInfo> {
    await this.#gate.promise;
    yield* super.list(prefix);
  }
}

Deno.test("Dedup.open() waits only so long for the refresh; close() stops it", async () => {
  await withEnv(async (env) => {
    await experiment(env, "one", { "model.bin": bytes(100_000, 11) });
    const slow = new GatedStore(env.repoDir);
    const cachePath = join(env.dir, "fresh.sqlite");
    try {
      const d = await Dedup.open(slow, { cachePath, wait: 10 });
      assert.equal(d.refreshed === null, true, "still refreshing");
      slow.open();
      await d.ready;
      assert.equal(d.refreshed?.complete, true);
      assert.equal(d.refreshed?.packs, 1);
      d.close();
    } finally {
      await slow.close();
    }
    // Closed while listing: nothing read, and the next refresh reads it all.
    const gated = new GatedStore(env.repoDir);
    const other = join(env.dir, "other.sqlite");
    try {
      const e = await Dedup.open(gated, { cachePath: other, wait: 10 });
      e.close();
      gated.open();
      await e.ready;
      assert.equal(e.refreshed?.complete, false);
      const f = await Dedup.open(gated, { cachePath: other });
      await f.ready;
      assert.equal(f.refreshed?.complete, true);
      assert.equal(f.refreshed?.packs, 1);
      f.close();
    } finally {
      await gated.close();
    }
  });
});

/** A local store that counts the pack index objects read from it. */
class CountingStore extends GatedStore {
  indexReads = 0;
  override getBytes(key: string): Promise<Uint8Array> {
    if (key.startsWith(PREFIX.packIndex)) this.indexReads++;
    return super.getBytes(key);
  }
}

Deno.test("Dedup.open() returns before the refresh; refreshWait() waits for it", async () => {
  await withEnv(async (env) => {
    await experiment(env, "one", { "model.bin": bytes(100_000, 14) });
    const store = new LocalStore(env.repoDir);
    try {
      const d = await Dedup.open(store, { cachePath: join(env.dir, "fresh.sqlite") });
      // Nothing listed yet (before, open() waited up to 1 s, long enough for this repository).
      assert.equal(d.refreshed === null, true, "not refreshed yet");
      await d.refreshWait();
      assert.equal(d.refreshed?.complete, true);
      assert.equal(d.refreshed?.packs, 1);
      d.close();
    } finally {
      await store.close();
    }
  });
});

Deno.test("a snapshot right after Recorder.start() waits for the chunk cache's refresh", async () => {
  await withEnv(async (env) => {
    const files = { "model.bin": bytes(300_000, 15) };
    const a = await experiment(env, "one", files);
    // Another machine (an empty cache), its listings held until Recorder.start() has returned.
    const store = new CountingStore(env.repoDir);
    try {
      const b = await experiment(env, "two", files, store, () => store.open());
      assert.equal(b.written, 0);
      assert.equal(b.deduped, 300_000);
      assert.deepEqual(b.tree, a.tree);
      assert.equal(store.indexReads, 1);
    } finally {
      await store.close();
    }
  });
});

Deno.test("a writer that never snapshots reads no pack index and leaves the rest for later", async () => {
  await withEnv(async (env) => {
    await experiment(env, "one", { "model.bin": bytes(100_000, 16) });
    Deno.env.set("REP_CACHE_DIR", join(env.dir, "cache-two"));
    const store = new CountingStore(env.repoDir);
    try {
      const rec = await Recorder.start(new Repository(store), { code: null });
      await rec.stop("succeeded");
      store.open();
      await rec.dedup.ready;
      assert.equal(store.indexReads, 0);
      assert.equal(rec.dedup.refreshed?.complete, false);
      // The next writer's refresh reads the index.
      const d = await Dedup.open(store);
      await d.ready;
      assert.equal(d.refreshed?.packs, 1);
      assert.equal(store.indexReads, 1);
      d.close();
    } finally {
      await store.close();
    }
  });
});

/** A local store whose `head` never answers (an endpoint that accepts and then hangs). */
class HangingHead extends LocalStore {
  override head(_key: string): Promise<ObjectInfo | null> {
    return new Promise(() => {});
  }
}

Deno.test("Dedup.check() gives up on storage that does not answer, and pauses the cache", async () => {
  await withEnv(async (env) => {
    const a = await experiment(env, "one", { "model.bin": bytes(200_000, 12) });
    const b = await experiment(env, "one", { "other.bin": bytes(200_000, 13) });
    const store = new HangingHead(env.repoDir);
    const d = await Dedup.open(store, { cachePath: join(env.dir, "h.sqlite"), checkTimeout: 50 });
    try {
      await d.ready;
      const chunk = a.tree.files[0]!.chunks[0]!;
      assert.ok(d.known.get(chunk[3]), "the cache offers the chunk");
      const t0 = performance.now();
      const bad = await d.check();
      assert.ok(performance.now() - t0 < 2000);
      assert.deepEqual([...bad], [chunk[0]]);
      // Paused: nothing more is offered (so nothing more waits on storage), not even chunks of
      // packs never checked.
      const other = b.tree.files[0]!.chunks[0]!;
      assert.notEqual(other[0], chunk[0]);
      assert.equal(d.known.get(other[3]), undefined);
      assert.deepEqual([...await d.check()], []);
    } finally {
      d.close();
      await store.close();
    }
  });
});
