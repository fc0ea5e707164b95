import assert from "node:assert/strict";
import type { CheckpointRecord, ExperimentRecord } from "../format/records.ts";
import { type ExperimentView, makeView } from "../repository.ts";
import type { Io } from "./common.ts";
import { renderTable } from "./ls.ts";

const io: Io = { out: () => {}, err: () => {}, isTty: true, errTty: false, color: true };

function view(n: number): ExperimentView {
  const id = String(n).repeat(32);
  const ck: CheckpointRecord = {
    format: 1,
    type: "checkpoint",
    attempt: 1,
    id: "c".repeat(31) + n,
    experiment: id,
    created: "2024-05-01T00:00:00Z",
    step: 10 * n,
    metrics: { loss: 0.1 * n, accuracy: 0.9 - 0.1 * n, f1: 0.5 },
    primary_metric: { name: "loss", goal: "minimize" },
    files: null,
    torn: [],
    warnings: [],
  };
  const record: ExperimentRecord = {
    format: 1,
    type: "experiment",
    id,
    name: null,
    output: null,
    created: "2024-05-01T00:00:00Z",
    params: {
      learning_rate: 0.1 * n,
      optimizer: `opt-${n}-with-a-very-long-name-that-goes-on`,
      seed: n,
    },
    command: [],
    cwd: "/",
    host: `host${n}`,
    user: "ada",
    platform: "",
    rep_version: "",
    git: null,
    code: null,
    tags: [],
    note: null,
    primary_metric: { name: "loss", goal: "minimize" },
    provenance: {},
  };
  return { ...makeView({ record, checkpoints: [ck] }), status: n === 1 ? "running" : "succeeded" };
}

// deno-lint-ignore no-control-regex
const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "");

Deno.test("renderTable() shows every column when there is no width limit", () => {
  const out = plain(renderTable([view(1), view(2)], { all: false, width: null, io }));
  const head = out.split("\n")[0]!;
  assert.match(
    head,
    /^ID\s+CREATED\s+STATUS\s+HOST\s+learning_rate\s+optimizer\s+seed\s+BEST\s+loss\s+accuracy\s+f1\s+LATEST/,
  );
  assert.match(out, /opt-1-with-a-very-long-name-that-goes-on/);
});

Deno.test("renderTable() fits a narrow terminal by hiding the least useful columns", () => {
  const out = renderTable([view(1), view(2)], { all: false, width: 70, io });
  const lines = plain(out).trimEnd().split("\n");
  for (const l of lines.slice(0, -1)) assert.ok(l.length <= 70, `too wide: ${l}`);
  assert.match(lines[0]!, /^ID\s+CREATED\s+STATUS/);
  assert.match(lines[0]!, /BEST\s+loss/);
  assert.match(lines.at(-1)!, /column\(s\) hidden to fit the terminal: .*LATEST/);
  assert.ok(out.includes("\x1b["), "colour is kept");
});

Deno.test("renderTable() cuts lines that still do not fit, with an ellipsis", () => {
  const lines = plain(renderTable([view(1)], { all: true, width: 12, io })).trimEnd().split("\n");
  for (const l of lines.slice(0, 2)) {
    assert.ok(l.length <= 12, l);
    assert.ok(l.endsWith("…"), l);
  }
});
