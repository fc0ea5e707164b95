import assert from "node:assert/strict";
import { LineSource } from "./lines.ts";

Deno.test("LineSource.place() puts lines at their runs, one per run when the counts match", () => {
  const s = new LineSource("m", "/nonexistent");
  s.noteAppend(2, 20, 1); // run A after version 1
  s.noteAppend(3, 21, 1); // same run
  s.noteAppend(5, 50, 4); // run B after version 4
  const pos = s.place(2, 6, 60);
  assert.deepEqual(pos.map((p) => [p.seq, p.uncertain === undefined]), [[2, true], [5, true]]);
  // A later read of the same run (no version since) stays at that run.
  s.noteAppend(7, 70, 4);
  assert.deepEqual(s.place(1, 8, 80).map((p) => p.seq), [5]);
});

Deno.test("LineSource.place() says when it cannot tell", () => {
  const s = new LineSource("m", "/nonexistent");
  s.noteAppend(2, 20, 1);
  s.noteAppend(5, 50, 4);
  const pos = s.place(3, 6, 60);
  assert.deepEqual(pos.map((p) => p.seq), [2, 2, 5]);
  assert.ok(pos.every((p) => p.uncertain?.includes("could not tell")));
});
