import assert from "node:assert/strict";
import { join } from "node:path";
import { hostname } from "node:os";
import { LocalStore } from "../storage/local.ts";
import { newId } from "../format/ids.ts";
import {
  attemptClaimScope,
  attemptKey,
  attemptStatusKey,
  heartbeatKey,
  wonKey,
} from "../format/layout.ts";
import { jsonBytes } from "../util.ts";
import { readAttemptState } from "./attempts.ts";

const NOW = Date.parse("2026-06-01T12:00:00.000Z");
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();

Deno.test("readAttemptState() derives the newest attempt's state from status, heartbeat and claims", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rep-attempts-" });
  const store = new LocalStore(join(dir, "repo"));
  try {
    const id = newId();
    const hb = (updated: string, attempt?: number) =>
      store.put(
        heartbeatKey(id),
        jsonBytes({ pid: 5, host: "n1", updated, interval: 10, ...(attempt ? { attempt } : {}) }),
      );
    const status = (attempt: number, s: string) =>
      store.put(
        attemptStatusKey(id, attempt),
        jsonBytes({ format: 2, type: "status", status: s, exit_code: 1, finished: ago(1) }),
      );
    const state = () => readAttemptState(store, id, ago(3600), NOW);

    // Attempt 1 without anything: crashed (started an hour ago); just started: running.
    assert.equal((await state()).state, "crashed");
    assert.equal((await readAttemptState(store, id, ago(10), NOW)).state, "running");
    await hb(ago(5));
    assert.deepEqual(
      [(await state()).attempt, (await state()).state, (await state()).host],
      [1, "running", "n1"],
    );
    await hb(ago(3600));
    assert.equal((await state()).state, "crashed");
    await status(1, "failed");
    assert.equal((await state()).state, "ended");
    assert.equal((await state()).status?.status, "failed");

    // A resume won attempt 2 and has not written anything else yet: it is starting.
    const scope = attemptClaimScope(id, 2);
    const claimer = newId();
    await store.put(
      wonKey(scope, claimer),
      jsonBytes({
        format: 2,
        type: "won",
        claimer,
        created: ago(2),
        host: "n2",
        pid: 77,
        experiment: id,
        attempt: 2,
      }),
    );
    const fresh = await readAttemptState(store, id, ago(3600), Date.now());
    assert.deepEqual([fresh.attempt, fresh.state, fresh.host, fresh.pid], [2, "running", "n2", 77]);
    // ...long ago, with no heartbeat of its own: crashed while starting.
    assert.equal(
      (await readAttemptState(store, id, ago(3600), Date.now() + 600_000)).state,
      "crashed",
    );
    // Its heartbeat and record, then its status.
    await hb(new Date().toISOString(), 2);
    await store.put(attemptKey(id, 2), jsonBytes({ format: 2, type: "attempt", attempt: 2 }));
    assert.equal((await readAttemptState(store, id, ago(3600), Date.now())).state, "running");
    await status(2, "succeeded");
    const done = await readAttemptState(store, id, ago(3600), Date.now());
    assert.deepEqual([done.attempt, done.state, done.status?.status], [2, "ended", "succeeded"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readAttemptState() sees at once that a heartbeat's writer on this machine is gone", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rep-attempts-" });
  const store = new LocalStore(join(dir, "repo"));
  try {
    const id = newId();
    const gone = new Deno.Command("true").spawn();
    await gone.status;
    const beat = (pid: number) =>
      store.put(
        heartbeatKey(id),
        jsonBytes({ pid, host: hostname(), updated: new Date().toISOString(), interval: 10 }),
      );
    await beat(gone.pid);
    assert.equal((await readAttemptState(store, id, ago(3600))).state, "crashed");
    await beat(Deno.pid);
    assert.equal((await readAttemptState(store, id, ago(3600))).state, "running");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
