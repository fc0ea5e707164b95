import assert from "node:assert/strict";
import { join } from "node:path";
import { LocalStore } from "../storage/local.ts";
import type { Store } from "../storage/store.ts";
import { Catalog } from "./catalog.ts";
import { experimentSummary } from "../present/json.ts";
import { compileFilters, matches, parseSort, sortViews } from "./filter.ts";

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const PM = { name: "loss", goal: "minimize" };
const T0 = Date.parse("2024-05-01T00:00:00.000Z");

/** Experiment `i`: params and losses vary with i; some share a start time, some never finish. */
async function experiment(store: Store, i: number): Promise<string> {
  const id = i.toString(16).padStart(32, "0");
  // Pairs share a start time: ties are ordered by id, newest first.
  const created = new Date(T0 + Math.floor(i / 2) * 60_000).toISOString();
  await store.put(
    `experiments/${id}/experiment.json`,
    enc({
      format: 2,
      type: "experiment",
      id,
      created,
      name: i % 7 === 0 ? `run-${i}` : null,
      params: { lr: [0.1, 0.01, 0.001][i % 3], opt: i % 2 ? "adam" : "sgd", seed: i },
      command: ["python", "train.py", String(i)],
      host: `gpu${i % 4}`,
      user: "ada",
      tags: i % 5 === 0 ? ["base"] : [],
      primary_metric: PM,
    }),
  );
  // Experiments 3, 13, 23 have no checkpoint (no loss: they sort last).
  const losses = i % 10 === 3 ? [] : [1 / (i + 1), 0.5 / (i + 1), (i % 4) / 10];
  for (const [k, loss] of losses.entries()) {
    const cid = `${id.slice(0, 30)}c${k}`;
    await store.put(
      `experiments/${id}/checkpoints/${cid}.json`,
      enc({
        format: 2,
        type: "checkpoint",
        id: cid,
        experiment: id,
        created: new Date(Date.parse(created) + k * 1000).toISOString(),
        step: k,
        metrics: { loss },
        primary_metric: PM,
      }),
    );
  }
  // Every sixth has no status: running for two minutes after its start, then crashed.
  if (i % 6 !== 1) {
    await store.put(
      `experiments/${id}/status.json`,
      enc({
        format: 2,
        type: "status",
        status: i % 4 ? "succeeded" : "failed",
        exit_code: i % 4 ? 0 : 1,
        finished: created,
      }),
    );
  }
  return id;
}

Deno.test("Catalog.query() gives what filtering, sorting and cutting every view gives", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rep-query-" });
  const cache = Deno.env.get("REP_CACHE_DIR");
  Deno.env.set("REP_CACHE_DIR", join(dir, "cache"));
  const store = new LocalStore(join(dir, "repo"));
  try {
    for (let i = 0; i < 30; i++) await experiment(store, i);
    // "Now" is within two minutes of the last starts: the newest unfinished ones are running.
    const now = T0 + 13 * 60_000;
    const catalog = new Catalog(store);
    const all = await catalog.list({ now });
    assert.equal(all.length, 30);
    const names = await catalog.names();
    const cases: { f?: string[]; s?: string; limit?: number | null; running?: boolean }[] = [
      {},
      { limit: 5 },
      { s: "created" },
      { s: "created", limit: 4 },
      { s: "loss", limit: 7 },
      { s: "loss-desc" },
      { s: "lr-desc", limit: 10 },
      { s: "opt", limit: 3 },
      { f: ["opt = adam"], limit: 4 },
      { f: ["opt = adam", "loss < 0.05"] },
      { f: ["lr <= 0.01"], s: "loss", limit: 6 },
      { f: ["tag = base"] },
      { f: ["command ~ 1"], s: "seed-desc", limit: 5 },
      { f: ["any.loss < 0.02"], limit: 3 },
      { f: ["status = crashed"] },
      { running: true },
      { running: true, limit: 1 },
      { f: ["loss > 100"] },
    ];
    for (const c of cases) {
      const label = JSON.stringify(c);
      const filters = compileFilters(c.f ?? [], names, now);
      const sort = parseSort(c.s ?? "created-desc", names);
      const want = sortViews(
        all.filter((v) =>
          (!c.running || v.status === "running") && filters.every((f) => matches(v, f))
        ),
        sort,
      );
      const got = await catalog.query({
        filters,
        sort,
        limit: c.limit ?? null,
        running: c.running ?? false,
        now,
      });
      assert.deepEqual(
        got.views.map((v) => v.id),
        want.slice(0, c.limit ?? undefined).map((v) => v.id),
        label,
      );
      assert.equal(got.matched, want.length, label);
      assert.equal(got.total, 30, label);
      // Views of only some columns read the others when used: the same views.
      const narrow = await catalog.query({
        filters,
        sort,
        limit: c.limit ?? null,
        running: c.running ?? false,
        now,
        full: false,
      });
      assert.equal(narrow.matched, want.length, label);
      for (const views of [got.views, narrow.views]) {
        assert.equal(views.length, Math.min(want.length, c.limit ?? Infinity), label);
        for (const [k, v] of views.entries()) {
          assert.deepEqual(experimentSummary(v), experimentSummary(want[k]!), label);
          assert.equal(v.status, want[k]!.status, label);
          assert.deepEqual(v.latest, want[k]!.latest, label);
        }
      }
    }
    // The filters of those cases matched something, and the running case found some.
    assert.ok((await catalog.query({ running: true, now })).views.length >= 1);
    catalog.close();
  } finally {
    if (cache) Deno.env.set("REP_CACHE_DIR", cache);
    else Deno.env.delete("REP_CACHE_DIR");
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});
