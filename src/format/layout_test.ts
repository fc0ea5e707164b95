import assert from "node:assert/strict";
import {
  attemptClaimScope,
  attemptKey,
  attemptLogKey,
  attemptStatusKey,
  claimKey,
  claimOfKey,
  experimentObject,
  logKey,
  nameOfScope,
  nameScope,
  statusKey,
  wonKey,
} from "./layout.ts";

const E = "0123456789abcdef0123456789abcdef";
const C = "fedcba9876543210fedcba9876543210";

Deno.test("attempt keys: attempt 1 writes at the top, attempts n >= 2 under attempts/<n>/", () => {
  assert.equal(attemptStatusKey(E, 1), statusKey(E));
  assert.equal(attemptStatusKey(E, 2), `experiments/${E}/attempts/2/status.json`);
  assert.equal(attemptKey(E, 3), `experiments/${E}/attempts/3/attempt.json`);
  assert.throws(() => attemptKey(E, 1), RangeError);
  assert.equal(attemptLogKey(E, 1, 4), logKey(E, 4));
  assert.equal(attemptLogKey(E, 2, 4), `experiments/${E}/attempts/2/logs/000004.log`);
  assert.equal(attemptClaimScope(E, 2), `experiments/${E}/attempts/2/claims/`);
});

Deno.test("experimentObject() classifies attempt objects", () => {
  const rest = (k: string) => k.slice(`experiments/${E}/`.length);
  assert.deepEqual(experimentObject(rest(attemptKey(E, 2))), { kind: "attempt", attempt: 2 });
  assert.deepEqual(experimentObject(rest(attemptStatusKey(E, 2))), {
    kind: "attempt-status",
    attempt: 2,
  });
  assert.deepEqual(experimentObject("status.json"), { kind: "status" });
  assert.deepEqual(experimentObject(rest(attemptLogKey(E, 5, 12))), {
    kind: "log",
    seq: 12,
    attempt: 5,
  });
  assert.deepEqual(experimentObject(rest(wonKey(attemptClaimScope(E, 2), C))), {
    kind: "claim",
    attempt: 2,
    name: `won-${C}.json`,
  });
  assert.equal(experimentObject("attempts/1/attempt.json").kind, "other");
  assert.equal(experimentObject("attempts/x/attempt.json").kind, "other");
});

Deno.test("claim keys round-trip and sort by time", () => {
  const scope = nameScope("baseline");
  assert.equal(nameOfScope(scope), "baseline");
  assert.equal(nameOfScope("names/a/b/"), null);
  const t1 = claimKey(scope, C, new Date("2026-01-01T00:00:00.000Z"));
  const t2 = claimKey(scope, E, new Date("2026-01-01T00:00:01.000Z"));
  assert.ok(t1 < t2);
  assert.deepEqual(claimOfKey(scope, t1), {
    kind: "claim",
    claimer: C,
    time: "20260101T000000000Z",
  });
  assert.deepEqual(claimOfKey(scope, wonKey(scope, E)), { kind: "won", claimer: E });
  assert.equal(claimOfKey(scope, `${scope}other.json`), null);
  assert.equal(claimOfKey("names/other/", t1), null);
});
