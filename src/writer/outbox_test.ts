import assert from "node:assert/strict";
import { join } from "node:path";
import { LocalStore } from "../storage/local.ts";
import type { ByteRange, ObjectInfo, Store } from "../storage/store.ts";
import { Outbox } from "./outbox.ts";

/** A real local store that records the order of writes and can be made to fail. */
class RecordingStore implements Store {
  readonly inner: LocalStore;
  readonly order: string[] = [];
  failing = false;
  constructor(root: string) {
    this.inner = new LocalStore(root);
  }
  get url() {
    return this.inner.url;
  }
  async put(key: string, data: Uint8Array | ReadableStream<Uint8Array>) {
    if (this.failing) {
      if (data instanceof ReadableStream) await data.cancel();
      throw new Error("storage is down");
    }
    // Data objects take a while, so a record queued behind them would overtake them if allowed.
    if (key.startsWith("packs/")) await new Promise((r) => setTimeout(r, 30));
    await this.inner.put(key, data);
    this.order.push(key);
  }
  get(key: string, range?: ByteRange) {
    return this.inner.get(key, range);
  }
  getBytes(key: string, range?: ByteRange) {
    return this.inner.getBytes(key, range);
  }
  head(key: string): Promise<ObjectInfo | null> {
    return this.inner.head(key);
  }
  list(prefix: string) {
    return this.inner.list(prefix);
  }
  listPrefixes(prefix: string) {
    return this.inner.listPrefixes(prefix);
  }
  delete(keys: string[]) {
    return this.inner.delete(keys);
  }
  close() {
    return this.inner.close();
  }
}

const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("Outbox uploads a record only after everything queued before it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new RecordingStore(join(dir, "store"));
    const box = await Outbox.create(join(dir, "box"), store);
    await box.addBytes("packs/a", bytes("A"), "data");
    await box.addBytes("packs/b", bytes("B"), "data");
    await box.addBytes("r/1", bytes("1"), "record");
    await box.addBytes("packs/c", bytes("C"), "data");
    await box.addBytes("r/2", bytes("2"), "record");
    await box.drain();
    const at = (k: string) => store.order.indexOf(k);
    assert.ok(at("r/1") > at("packs/a") && at("r/1") > at("packs/b"), store.order.join());
    assert.ok(at("r/2") > at("packs/c") && at("r/2") > at("r/1"), store.order.join());
    assert.equal(box.state().items, 0);
    assert.equal(new TextDecoder().decode(await store.getBytes("r/2")), "2");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Outbox keeps objects on disk while storage fails and uploads them when it returns", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new RecordingStore(join(dir, "store"));
    store.failing = true;
    const errors: (string | null)[] = [];
    const box = await Outbox.create(join(dir, "box"), store, {
      onStorageError: (e) => errors.push(e ? e.message : null),
    });
    await box.addBytes("packs/a", bytes("A"), "data");
    await box.addBytes("r/1", bytes("1"), "record");
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(box.state().items, 2);
    assert.match(box.state().error ?? "", /down/);
    store.failing = false;
    await box.drain(); // the retry timer fires within a few seconds
    assert.deepEqual(store.order, ["packs/a", "r/1"]);
    assert.deepEqual(errors, ["storage is down", null]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Outbox.recover() finishes a dead writer's queue in order and removes it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new RecordingStore(join(dir, "store"));
    store.failing = true;
    const box = await Outbox.create(join(dir, "box"), store);
    await box.addBytes("r/0", bytes("0"), "record");
    await box.addBytes("packs/a", bytes("A"), "data");
    await box.addBytes("r/1", bytes("1"), "record");
    while (!box.state().error) await new Promise((r) => setTimeout(r, 5));
    box.stop();
    // Uploads started before stop() (opening their file) must meet the failing store, not the
    // recovered one: let them finish first.
    await box.idle();
    store.failing = false;
    const n = await Outbox.recover(join(dir, "box"), store);
    assert.equal(n, 3);
    assert.deepEqual(store.order, ["packs/a", "r/0", "r/1"]);
    await assert.rejects(() => Deno.stat(join(dir, "box")), Deno.errors.NotFound);
    assert.deepEqual(await Outbox.owner(join(dir, "none")), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Outbox uploads an index after the data before it, without waiting for records", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new RecordingStore(join(dir, "store"));
    const box = await Outbox.create(join(dir, "box"), store);
    await box.addBytes("packs/a", bytes("A"), "data");
    await box.addBytes("pack-index/a", bytes("a"), "index");
    await box.addBytes("r/1", bytes("1"), "record");
    await box.addBytes("packs/b", bytes("B"), "data");
    await box.addBytes("pack-index/b", bytes("b"), "index");
    await box.drain();
    const at = (k: string) => store.order.indexOf(k);
    assert.ok(at("pack-index/a") > at("packs/a"), store.order.join());
    assert.ok(at("pack-index/b") > at("packs/b"), store.order.join());
    assert.ok(at("r/1") > at("pack-index/a"), store.order.join());
    // Recovery keeps the order too: data, then indexes, then records (a queue that never
    // uploaded anything: its writer was stopped at once).
    const dead = await Outbox.create(join(dir, "dead"), store);
    dead.stop();
    await dead.addBytes("r/2", bytes("2"), "record");
    await dead.addBytes("pack-index/c", bytes("c"), "index");
    await dead.addBytes("packs/c", bytes("C"), "data");
    store.order.length = 0;
    assert.equal(await Outbox.recover(join(dir, "dead"), store), 3);
    assert.deepEqual(store.order, ["packs/c", "pack-index/c", "r/2"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
