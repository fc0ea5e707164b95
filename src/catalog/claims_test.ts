import assert from "node:assert/strict";
import { join } from "node:path";
import { claim, winnerOf } from "./claims.ts";
import { LocalStore } from "../storage/local.ts";
import type { Store } from "../storage/store.ts";
import { claimKey, claimOfKey } from "../format/layout.ts";
import { newId } from "../format/ids.ts";
import { jsonBytes } from "../util.ts";

async function withStore(fn: (store: LocalStore, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rep-claims-" });
  try {
    await fn(new LocalStore(dir), dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function keys(store: Store, scope: string): Promise<string[]> {
  return (await Array.fromAsync(store.list(scope))).map((i) => i.key.slice(scope.length));
}

/** Leave a claim as a claimer that died after its put, `ageMs` ago by store time. */
async function leftover(store: LocalStore, scope: string, ageMs: number): Promise<string> {
  const claimer = newId();
  const created = new Date(Date.now() - ageMs);
  const key = claimKey(scope, claimer, created);
  await store.put(
    key,
    jsonBytes({
      format: 2,
      type: "claim",
      claimer,
      created: created.toISOString(),
      host: "gone",
      pid: 1,
    }),
  );
  await Deno.utime(store.path(key), created, created);
  return claimer;
}

Deno.test("claim() wins an empty scope in one round and leaves a won marker", async () => {
  await withStore(async (store) => {
    const out = await claim(store, "names/a/", { experiment: "0".repeat(32) });
    assert.ok(out.won);
    assert.deepEqual(out.rounds, 1);
    assert.deepEqual(out.claim.type, "won");
    assert.deepEqual(out.claim.experiment, "0".repeat(32));
    const names = await keys(store, "names/a/");
    assert.deepEqual(names.length, 2);
    assert.ok(names.includes(`won-${out.claim.claimer}.json`));
    assert.deepEqual((await winnerOf(store, "names/a/"))?.claimer, out.claim.claimer);
  });
});

Deno.test("claim() loses to a held scope and learns the winner", async () => {
  await withStore(async (store) => {
    const first = await claim(store, "s/", { experiment: "1".repeat(32) });
    assert.ok(first.won);
    const second = await claim(store, "s/", { experiment: "2".repeat(32) });
    assert.ok(!second.won);
    assert.deepEqual(second.winner?.claimer, first.claim.claimer);
    assert.deepEqual(second.winner?.experiment, "1".repeat(32));
    // The loser took its claim back.
    assert.deepEqual((await keys(store, "s/")).length, 2);
  });
});

Deno.test("claim() takes a scope whose won marker no longer holds", async () => {
  await withStore(async (store) => {
    const first = await claim(store, "s/", { experiment: "1".repeat(32) });
    assert.ok(first.won);
    const gone = (w: { experiment: string | null }) => w.experiment !== "1".repeat(32);
    const second = await claim(store, "s/", { experiment: "2".repeat(32), holds: gone });
    assert.ok(second.won);
    assert.deepEqual((await winnerOf(store, "s/", gone))?.claimer, second.claim.claimer);
    // Without the predicate both markers hold; the newest is reported.
    assert.deepEqual((await winnerOf(store, "s/"))?.experiment, "2".repeat(32));
  });
});

Deno.test("claim() ignores a dead claimer's claim older than the stale time", async () => {
  await withStore(async (store) => {
    await leftover(store, "s/", 5 * 60_000);
    const out = await claim(store, "s/", {});
    assert.ok(out.won);
    assert.deepEqual(out.rounds, 1);
  });
});

Deno.test("claim() does not win past a live claim, and gives up without a winner", async () => {
  await withStore(async (store) => {
    // An older live claim (its claimer is between its put and its list): we must step back.
    await leftover(store, "s/", 5_000);
    const out = await claim(store, "s/", { patienceMs: 300 });
    assert.ok(!out.won);
    assert.deepEqual(out.winner, null);
    assert.deepEqual((await keys(store, "s/")).length, 1);
  });
});

Deno.test("claim() withdraws a won marker put after its budget, then wins again", async () => {
  await withStore(async (store) => {
    let slow = 1;
    const slowWon: Store = {
      url: store.url,
      put: async (key, data) => {
        if (claimOfKey("s/", key)?.kind === "won" && slow-- > 0) {
          await new Promise((r) => setTimeout(r, 300));
        }
        return await store.put(key, data);
      },
      get: (key, range) => store.get(key, range),
      getBytes: (key, range) => store.getBytes(key, range),
      head: (key) => store.head(key),
      list: (prefix, options) => store.list(prefix, options),
      listPrefixes: (prefix) => store.listPrefixes(prefix),
      delete: (keys) => store.delete(keys),
      close: () => store.close(),
    };
    const out = await claim(slowWon, "s/", { budgetMs: 150 });
    assert.ok(out.won);
    assert.deepEqual(out.rounds, 2);
    const names = await keys(store, "s/");
    assert.deepEqual(names.filter((n) => n.startsWith("won-")).length, 1);
    assert.deepEqual(names.length, 2);
  });
});

Deno.test("claim() gives exactly one winner among many claimers in one process", async () => {
  await withStore(async (store, dir) => {
    for (let trial = 0; trial < 5; trial++) {
      const scope = `t${trial}/`;
      const outs = await Promise.all(Array.from({ length: 8 }, () => claim(store, scope)));
      const winners = outs.filter((o) => o.won);
      assert.deepEqual(winners.length, 1);
      const w = winners[0]!;
      assert.ok(w.won);
      for (const o of outs) {
        if (!o.won) assert.deepEqual(o.winner?.claimer, w.claim.claimer);
      }
      const left = await Array.fromAsync(Deno.readDir(join(dir, scope)));
      assert.deepEqual(left.length, 2, "the winner's claim and won marker");
    }
  });
});
