import assert from "node:assert/strict";
import { UsageError } from "../errors.ts";
import type { CheckpointRecord, ExperimentRecord } from "../format/records.ts";
import type { ExperimentView } from "./views.ts";
import {
  compileFilters,
  matches,
  parseFilter,
  parseSort,
  parseTime,
  resolveKey,
  sortViews,
  typeValue,
} from "./filter.ts";

function ck(id: string, step: number, metrics: Record<string, number>): CheckpointRecord {
  return {
    format: 1,
    type: "checkpoint",
    attempt: 1,
    id: id.padEnd(32, "0"),
    experiment: "e".repeat(32),
    created: `2024-05-01T00:00:0${step}Z`,
    step,
    metrics,
    primary_metric: { name: "loss", goal: "minimize" },
    files: null,
    torn: [],
    warnings: [],
  };
}

function view(
  id: string,
  params: ExperimentRecord["params"],
  cks: CheckpointRecord[],
  extra: Partial<ExperimentRecord> = {},
  status: ExperimentView["status"] = "succeeded",
): ExperimentView {
  const best = cks.reduce<CheckpointRecord | null>(
    (b, c) => (b === null || (c.metrics.loss ?? Infinity) < (b.metrics.loss ?? Infinity) ? c : b),
    null,
  );
  return {
    id: id.padEnd(32, "0"),
    record: {
      format: 1,
      type: "experiment",
      id: id.padEnd(32, "0"),
      name: null,
      output: null,
      created: "2024-05-01T00:00:00Z",
      params,
      command: ["python", "train.py", "--lr", String(params.lr)],
      cwd: "/w",
      host: "gpu1",
      user: "ada",
      platform: "linux-x86_64",
      rep_version: "0.1.0",
      git: null,
      code: null,
      tags: [],
      note: null,
      primary_metric: { name: "loss", goal: "minimize" },
      provenance: {},
      ...extra,
    },
    checkpoints: cks,
    numCheckpoints: cks.length,
    status,
    statusRecord: null,
    heartbeat: null,
    best,
    latest: cks[cks.length - 1] ?? null,
    corrupt: {},
  };
}

const A = view("a1", { lr: 0.1, opt: "adam" }, [
  ck("c1", 0, { loss: 0.5 }),
  ck("c2", 1, { loss: 0.3 }),
  ck("c3", 2, { loss: 0.4 }),
], {
  tags: ["best"],
  created: "2024-05-01T10:00:00Z",
});
const B = view("b2", { lr: 0.01, opt: "sgd" }, [
  ck("d1", 0, { loss: 0.05 }),
  ck("d2", 5, { loss: 0.2 }),
], {
  created: "2024-05-03T10:00:00Z",
}, "running");
const C = view("c3", { lr: 0.001 }, [], { created: "2024-04-01T00:00:00Z" }, "failed");
const ALL = [A, B, C];

function ids(texts: string[]): string[] {
  const fs = compileFilters(texts, ALL, Date.parse("2024-05-04T00:00:00Z"));
  return ALL.filter((v) => fs.every((f) => matches(v, f))).map((v) => v.id.slice(0, 2));
}

Deno.test("typeValue() types int → float → bool → string, quotes force a string", () => {
  assert.equal(typeValue("3").value, 3);
  assert.equal(typeValue("-1.5e-3").value, -0.0015);
  assert.equal(typeValue("true").value, true);
  assert.equal(typeValue("adam").value, "adam");
  assert.equal(typeValue('"10"').value, "10");
});

Deno.test("parseFilter() reads name, operator and value", () => {
  const f = parseFilter("lr>=0.01");
  assert.equal(f.name, "lr");
  assert.equal(f.op, ">=");
  assert.equal(f.value, 0.01);
  assert.equal(parseFilter("status == running").op, "=");
  assert.equal(parseFilter("command ~ train.py --lr").raw, "train.py --lr");
  assert.throws(() => parseFilter("lr"), UsageError);
  assert.throws(() => parseFilter("lr <"), UsageError);
});

Deno.test("matches() filters on params, metrics of the best checkpoint, and fields", () => {
  assert.deepEqual(ids(["lr < 0.05"]), ["b2", "c3"]);
  assert.deepEqual(ids(["opt = adam"]), ["a1"]);
  assert.deepEqual(ids(["opt != adam"]), ["b2"]); // missing values never match
  assert.deepEqual(ids(["loss <= 0.3"]), ["a1", "b2"]);
  assert.deepEqual(ids(["loss < 0.1"]), ["b2"]);
  assert.deepEqual(ids(["status = running"]), ["b2"]);
  assert.deepEqual(ids(["status != running", "lr >= 0.01"]), ["a1"]);
  assert.deepEqual(ids(["tag = best"]), ["a1"]);
  assert.deepEqual(ids(["tag != best"]), ["b2", "c3"]);
  assert.deepEqual(ids(["step >= 5"]), ["b2"]);
  assert.deepEqual(ids(["command ~ --lr 0.1"]), ["a1"]);
  assert.deepEqual(ids(["user = ada", "host = gpu1", "id = a1"]), ["a1"]);
});

Deno.test("matches() reads latest.NAME and any.NAME from other checkpoints", () => {
  assert.deepEqual(ids(["latest.loss > 0.3"]), ["a1"]);
  assert.deepEqual(ids(["any.loss >= 0.5"]), ["a1"]);
  assert.deepEqual(ids(["loss >= 0.5"]), []);
  assert.deepEqual(ids(["any.step = 5"]), ["b2"]);
});

Deno.test("matches() compares created with dates and ages", () => {
  assert.deepEqual(ids(["created > 2d"]), ["b2"]);
  assert.deepEqual(ids(["created < 2024-05-01"]), ["c3"]);
  assert.deepEqual(ids(["created = 2024-05-03"]), ["b2"]);
  assert.throws(() => parseTime("yesterday", 0), UsageError);
});

Deno.test("compileFilters() rejects unknown names, listing the valid ones", () => {
  assert.throws(() => compileFilters(["acc > 0.5"], ALL), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /Unknown filter name "acc"/);
    assert.match(e.hint ?? "", /params: lr, opt; metrics: loss/);
    return true;
  });
  assert.throws(() => compileFilters(["any.lr > 1"], ALL), UsageError);
  // An empty repository has no names to check against.
  assert.deepEqual(compileFilters(["acc > 0.5"], []).length, 1);
});

Deno.test("resolveKey() prefers params for plain names, prefixes pick either", () => {
  const names = { params: new Set(["x"]), metrics: new Set(["x"]) };
  assert.deepEqual(resolveKey("x", names), { kind: "param", name: "x" });
  assert.deepEqual(resolveKey("best.x", names), { kind: "metric", name: "x", scope: "best" });
  assert.deepEqual(resolveKey("params.x", names), { kind: "param", name: "x" });
  assert.deepEqual(resolveKey("status", names), { kind: "field", name: "status" });
});

Deno.test("sortViews() sorts by key and direction, missing values last", () => {
  const order = (spec: string) =>
    sortViews([...ALL], parseSort(spec, ALL)).map((v) => v.id.slice(0, 2));
  assert.deepEqual(order("lr"), ["c3", "b2", "a1"]);
  assert.deepEqual(order("lr-desc"), ["a1", "b2", "c3"]);
  assert.deepEqual(order("loss-asc"), ["b2", "a1", "c3"]);
  assert.deepEqual(order("loss-desc"), ["a1", "b2", "c3"]);
  assert.deepEqual(order("created-desc"), ["b2", "a1", "c3"]);
  assert.throws(() => parseSort("nope-desc", ALL), UsageError);
  assert.throws(() => parseSort("any.loss", ALL), UsageError);
});
