import assert from "node:assert/strict";
import { type ChangeObject, parseChangeObject, parseEntry } from "./changes.ts";
import { Visibility, VISIBILITY_MARGIN_MS } from "./visibility.ts";

const E1 = "1".repeat(32);
const E2 = "2".repeat(32);
const C1 = "c".repeat(32);
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

function object(key: string, entries: unknown[], dropped?: unknown): ChangeObject {
  return parseChangeObject(
    enc({ format: 2, type: "changes", created: "2024-05-01T00:00:00.000Z", entries, dropped }),
    key,
  );
}

Deno.test("parseEntry() keeps known ops, keeps unknown ops verbatim, drops malformed ones", () => {
  const t = "2024-05-01T00:00:00.000Z";
  const rm = parseEntry({
    id: "a1",
    created: t,
    op: "remove",
    experiments: [E1],
    checkpoints: [[E2, C1]],
  });
  assert.deepEqual(rm?.entry, {
    id: "a1",
    created: t,
    op: "remove",
    experiments: [E1],
    checkpoints: [{ experiment: E2, checkpoint: C1 }],
    reason: null,
  });
  const future = parseEntry({ id: "f", created: t, op: "archive", experiment: E1, x: 1 });
  assert.equal(future?.entry, null);
  assert.deepEqual(future?.raw, { id: "f", created: t, op: "archive", experiment: E1, x: 1 });
  for (
    const bad of [
      { id: "x", created: t, op: "remove", experiments: ["nope"] },
      { id: "x", created: "yesterday", op: "remove" },
      { id: "", created: t, op: "tag", experiment: E1, add: ["a"] },
      { id: "x", created: t, op: "tag", experiment: E1, add: ["has space"] },
      { id: "x", created: t, op: "note", experiment: E1, text: 3 },
      { id: "x", created: t, op: "resume", experiment: E1, attempt: 1 },
      null,
    ]
  ) assert.equal(parseEntry(bad), null, JSON.stringify(bad));
});

Deno.test("a format 1 tombstone reads as one removal", () => {
  const o = parseChangeObject(
    enc({
      format: 1,
      type: "tombstone",
      created: "2024-05-01T00:00:00.000Z",
      experiments: [E1],
      checkpoints: [C1],
    }),
    "tombstones/20240501T000000000Z-abc.json",
  );
  const v = new Visibility([o]);
  assert.ok(v.removedExperiments.has(E1));
  assert.ok(v.removedCheckpoints.has(C1));
  assert.equal(v.unattributedRemovals, true);
  assert.equal(o.entries[0]!.id, "20240501T000000000Z-abc");
});

Deno.test("Visibility applies entries in (created, id) order, each once", () => {
  const a = object("changes/a.json", [
    { id: "2", created: "2024-05-02T00:00:00.000Z", op: "tag", experiment: E1, remove: ["x"] },
    { id: "1", created: "2024-05-01T00:00:00.000Z", op: "tag", experiment: E1, add: ["x", "y"] },
    { id: "3", created: "2024-05-03T00:00:00.000Z", op: "note", experiment: E1, text: "first" },
  ]);
  // The same entries again after a compaction, plus a later note that clears the first.
  const b = object("changes/b.json", [
    ...a.entries.map((e) => e.raw),
    { id: "4", created: "2024-05-04T00:00:00.000Z", op: "note", experiment: E1, text: null },
    { id: "5", created: "2024-05-04T00:00:00.000Z", op: "resume", experiment: E2, attempt: 3 },
  ]);
  const v = new Visibility([b, a]);
  assert.equal(v.entries.length, 5);
  assert.deepEqual(v.tags(E1, ["base"]), ["base", "y"]);
  assert.equal(v.note(E1, "recorded"), null);
  assert.equal(v.note(E2, "recorded"), "recorded");
  assert.deepEqual(v.tags(E2, ["base"]), ["base"]);
  assert.equal(v.resumed.get(E2), 3);
  assert.deepEqual([...v.annotated()], [E1]);
});

Deno.test("Visibility.trusts() rebuilds only listings that may predate a dropped removal", () => {
  const before = "2024-05-01T00:00:00.000Z";
  const at = "2024-05-03T00:00:00.000Z";
  const v = new Visibility([object("changes/c.json", [], { at, before })]);
  const margin = (ms: number) =>
    new Date(Date.parse(before) + VISIBILITY_MARGIN_MS + ms).toISOString();
  assert.equal(v.trusts(null, null), false);
  assert.equal(v.trusts(margin(-1), null), false); // may not have seen the last removal dropped
  assert.equal(v.trusts(margin(0), null), true);
  assert.equal(v.trusts(margin(-1), at), true); // already checked against this drop
  assert.equal(v.trusts(margin(-1), "2024-05-02T00:00:00.000Z"), false);
  assert.equal(new Visibility([]).trusts(null, null), true);
});
