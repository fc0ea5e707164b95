import assert from "node:assert/strict";
import { join } from "node:path";
import { LocalStore } from "../storage/local.ts";
import { newId } from "../format/ids.ts";
import { experimentKey, heartbeatKey, nameScope } from "../format/layout.ts";
import { jsonBytes } from "../util.ts";
import { nameHolder, NameTakenError, takeName } from "./names.ts";
import { UsageError } from "../errors.ts";

async function withStore(fn: (store: LocalStore) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rep-names-" });
  try {
    await fn(new LocalStore(join(dir, "repo")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const record = (store: LocalStore, id: string) =>
  store.put(experimentKey(id), jsonBytes({ format: 2, type: "experiment", id }));

Deno.test("takeName() gives a name to one experiment and names the holder to the next", async () => {
  await withStore(async (store) => {
    const a = newId();
    await takeName(store, "baseline", a, () => false);
    await record(store, a);
    try {
      await takeName(store, "baseline", newId(), () => false);
      assert.fail("taken twice");
    } catch (e) {
      assert.ok(e instanceof NameTakenError);
      assert.equal(e.holder.experiment, a);
      assert.equal(e.holder.recorded, true);
      assert.match(
        e.message,
        new RegExp(`Name "baseline" is taken by experiment ${a.slice(0, 7)}$`),
      );
    }
    assert.equal((await nameHolder(store, "baseline", () => false))?.experiment, a);
    // Other names are unaffected.
    await takeName(store, "baseline-2", newId(), () => false);
    await assert.rejects(() => takeName(store, "cafe", newId(), () => false), UsageError);
  });
});

Deno.test("takeName() takes back the name of a removed experiment", async () => {
  await withStore(async (store) => {
    const a = newId();
    await takeName(store, "run", a, () => false);
    await record(store, a);
    const removed = new Set([a]);
    const b = newId();
    await takeName(store, "run", b, (id) => removed.has(id));
    assert.equal((await nameHolder(store, "run", (id) => removed.has(id)))?.experiment, b);
  });
});

Deno.test("takeName() frees a name whose experiment died before recording anything", async () => {
  await withStore(async (store) => {
    // Starting: fresh heartbeat, no record yet: still held.
    const a = newId();
    await takeName(store, "job", a, () => false);
    await store.put(
      heartbeatKey(a),
      jsonBytes({ pid: 9, host: "node7", updated: new Date().toISOString(), interval: 10 }),
    );
    try {
      await takeName(store, "job", newId(), () => false);
      assert.fail("taken while starting");
    } catch (e) {
      assert.ok(e instanceof NameTakenError);
      assert.equal(e.holder.recorded, false);
      assert.match(e.message, /starting on .*, or it stopped before recording anything/);
    }
    // Its heartbeat went stale without a record: the name is free.
    await store.put(
      heartbeatKey(a),
      jsonBytes({ pid: 9, host: "node7", updated: "2026-01-01T00:00:00.000Z", interval: 10 }),
    );
    const b = newId();
    await takeName(store, "job", b, () => false);

    // No heartbeat at all, marker older than the start grace: free as well.
    await record(store, b);
    const c = newId();
    const d = newId();
    await takeName(store, "other", c, () => false);
    const marker = (await Array.fromAsync(store.list(nameScope("other")))).find((i) =>
      i.key.includes("/won-")
    )!;
    const old = new Date(Date.now() - 10 * 60_000);
    await Deno.utime(store.path(marker.key), old, old);
    await takeName(store, "other", d, () => false);
    assert.equal((await nameHolder(store, "other", () => false))?.experiment, d);
  });
});
