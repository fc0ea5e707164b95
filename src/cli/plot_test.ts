import assert from "node:assert/strict";
import { renderChart, type Series } from "./plot.ts";

Deno.test("renderChart() puts the extremes on the top and bottom rows", () => {
  const s: Series = {
    id: "a".repeat(32),
    metric: "loss",
    points: [[0, 1], [1, 0.5], [2, 0.25], [3, 0]],
  };
  const lines = renderChart([s], 20, 5);
  assert.equal(lines.length, 7);
  assert.match(lines[0]!, /^ *1 │\*/); // step 0, value 1: top left
  assert.match(lines[4]!, /\*$/); // step 3, value 0: bottom right
  assert.match(lines[6]!, /step 0 +3$/);
});

Deno.test("renderChart() gives each series its own mark and survives flat or empty data", () => {
  const a: Series = { id: "a", metric: "m", points: [[0, 2], [1, 2]] };
  const b: Series = { id: "b", metric: "m", points: [[0, 1], [1, 3]] };
  const text = renderChart([a, b], 10, 4).join("\n");
  assert.ok(text.includes("*") && text.includes("o"));
  assert.deepEqual(renderChart([{ id: "c", metric: "m", points: [] }], 10, 4), [
    "(no numeric values to plot)",
  ]);
  assert.equal(renderChart([{ id: "d", metric: "m", points: [[5, 7]] }], 10, 4).length, 6);
});
