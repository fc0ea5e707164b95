import assert from "node:assert/strict";
import { UsageError } from "../errors.ts";
import type { CheckpointRecord, ExperimentRecord } from "../format/records.ts";
import { type ExperimentView, makeView } from "./views.ts";
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
  const record: ExperimentRecord = {
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
  };
  return { ...makeView({ record, checkpoints: cks }), status };
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
  const names = { params: new Map([["x", 1]]), metrics: new Map([["x", 1]]) };
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

Deno.test("compileFilters() refuses unknown operators, values of the wrong type and unknown statuses", () => {
  const bad = (text: string, message: RegExp, hint: RegExp) =>
    assert.throws(() => compileFilters([text], ALL), (e: unknown) => {
      assert.ok(e instanceof UsageError, text);
      assert.match(e.message, message, text);
      assert.match(e.hint ?? "", hint, text);
      return true;
    });
  bad("loss << 0.1", /Invalid filter "loss << 0.1": unknown operator "<<"/, /= != < <= > >= ~/);
  bad("lr => 0.1", /unknown operator "=>"/, /Operators:/);
  bad(
    "loss < abc",
    /Invalid filter "loss < abc": loss \(metric\) holds a number, and "abc" is not one of those/,
    /rep ls -f "loss < 0.5"/,
  );
  bad('lr = "0.1"', /lr \(param\) holds a number/, /Example/);
  bad(
    "status = bogus",
    /Invalid filter "status = bogus": "bogus" is not a status/,
    /running, succeeded, failed, stopped, crashed/,
  );
  bad("status > running", /status takes = != or ~/, /status = succeeded/);
  bad("step < ten", /step is a number, and "ten" is not/, /step >= 100/);
  bad("id = xyz", /not an id prefix/, /id = a1b2/);
  // What a name holds decides: text params take any value, ~ takes anything.
  assert.deepEqual(ids(["opt = 1"]), []);
  assert.deepEqual(ids(["opt < b"]), ["a1"]);
  assert.deepEqual(ids(["loss ~ 0.0"]), ["b2"]);
  assert.deepEqual(ids(["status ~ run"]), ["b2"]);
});

Deno.test("matches() reads names, tags and notes as changes made them", () => {
  const named = { ...A, name: "baseline-1", tags: ["best", "sweep"], note: "diverged at step 5" };
  const fs = (t: string) => compileFilters([t], ALL);
  assert.ok(matches(named, fs("name = baseline-1")[0]!));
  assert.ok(!matches(A, fs("name = baseline-1")[0]!));
  assert.ok(matches(named, fs("tag = sweep")[0]!));
  assert.ok(matches(named, fs("note ~ diverged")[0]!));
  assert.ok(!matches(A, fs("note ~ diverged")[0]!));
});
