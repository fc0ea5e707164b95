import assert from "node:assert/strict";
import { CorruptObjectError } from "../errors.ts";
import {
  checkRelPath,
  parseAttempt,
  parseCheckpoint,
  parseClaim,
  parseExperiment,
  parseHeartbeat,
  parseJson,
  parseStatus,
  parseTombstone,
  parseTree,
} from "./records.ts";

const ID = "0123456789abcdef0123456789abcdef";
const ID2 = "fedcba9876543210fedcba9876543210";
const H = "a".repeat(64);

const experiment = {
  format: 1,
  type: "experiment",
  id: ID,
  created: "2026-01-01T00:00:00.000Z",
  params: { lr: 0.1, name: "x", flag: true },
  command: ["python", "train.py"],
  cwd: "/w",
  host: "h",
  user: "u",
  platform: "linux-x86_64",
  rep_version: "0.1.0",
  git: { commit: "abc", branch: "main", dirty: false },
  code: { tree: H, files: 2, size: 10 },
  tags: ["t"],
  note: null,
  primary_metric: { name: "loss", goal: "minimize" },
  provenance: {},
};

Deno.test("parseExperiment() accepts a valid record and keeps its fields", () => {
  const r = parseExperiment(structuredClone(experiment));
  assert.equal(r.id, ID);
  assert.deepEqual(r.params, { lr: 0.1, name: "x", flag: true });
  assert.deepEqual(r.primary_metric, { name: "loss", goal: "minimize" });
  assert.equal(r.code?.tree, H);
});

Deno.test("parseExperiment() rejects wrong types, ids and newer formats", () => {
  const bad: Record<string, unknown>[] = [
    { ...experiment, id: "xyz" },
    { ...experiment, type: "checkpoint" },
    { ...experiment, format: 3 },
    { ...experiment, params: { a: { nested: 1 } } },
    { ...experiment, created: "yesterday" },
    { ...experiment, code: { tree: "short", files: 1, size: 1 } },
    { ...experiment, primary_metric: { name: "loss", goal: "sideways" } },
    { ...experiment, command: "python train.py" },
  ];
  for (const b of bad) {
    assert.throws(() => parseExperiment(b), CorruptObjectError, JSON.stringify(b));
  }
});

Deno.test("parseCheckpoint() checks step, metrics and the experiment id", () => {
  const ck = {
    format: 1,
    type: "checkpoint",
    id: ID2,
    experiment: ID,
    created: "2026-01-01T00:00:01.000Z",
    step: 3,
    metrics: { loss: 0.5, note: "ok", nan: null },
    primary_metric: null,
    files: null,
    torn: [],
  };
  assert.equal(parseCheckpoint(ck).step, 3);
  assert.throws(() => parseCheckpoint({ ...ck, step: -1 }), CorruptObjectError);
  assert.throws(() => parseCheckpoint({ ...ck, step: 1.5 }), CorruptObjectError);
  assert.throws(() => parseCheckpoint({ ...ck, experiment: "nope" }), CorruptObjectError);
  assert.throws(() => parseCheckpoint({ ...ck, metrics: { a: [1] } }), CorruptObjectError);
  assert.throws(() => parseCheckpoint({ ...ck, torn: [1] }), CorruptObjectError);
});

Deno.test("parseStatus() and parseTombstone() validate their fields", () => {
  const st = {
    format: 1,
    type: "status",
    status: "failed",
    exit_code: 3,
    signal: null,
    finished: "2026-01-01T00:00:00Z",
  };
  assert.equal(parseStatus(st).exit_code, 3);
  assert.throws(() => parseStatus({ ...st, status: "running" }), CorruptObjectError);
  const t = {
    format: 1,
    type: "tombstone",
    created: "2026-01-01T00:00:00Z",
    experiments: [ID],
    checkpoints: [],
  };
  assert.deepEqual(parseTombstone(t).experiments, [ID]);
  assert.throws(() => parseTombstone({ ...t, experiments: ["../x"] }), CorruptObjectError);
});

Deno.test("parseTree() rejects paths that leave the target and sizes that lie", () => {
  const file = (path: string, size = 3, len = 3) => ({
    path,
    size,
    hash: H,
    mode: 0o644,
    chunks: [["0".repeat(32), 0, len, H]],
  });
  assert.equal(parseTree({ format: 1, files: [file("a/b.txt")] }).files.length, 1);
  for (const p of ["../x", "/etc/passwd", "a/../../x", "a//b", "./a", "a\\b", "C:/x", "a\0b", ""]) {
    assert.throws(() => parseTree({ format: 1, files: [file(p)] }), CorruptObjectError, p);
  }
  assert.throws(() => parseTree({ format: 1, files: [file("a", 10, 20)] }), /not the sum/);
  assert.throws(() => parseTree({ format: 1, files: [file("a"), file("a")] }), /twice/);
  assert.throws(() =>
    parseTree({ format: 1, files: [{ ...file("a"), chunks: [["x", 0, 3, H]] }] })
  );
});

Deno.test("parseJson() turns bad bytes into CorruptObjectError", () => {
  assert.throws(() => parseJson(new Uint8Array([0xff, 0xfe]), "k"), CorruptObjectError);
  assert.throws(() => parseJson(new TextEncoder().encode("{"), "k"), CorruptObjectError);
  assert.deepEqual(parseJson(new TextEncoder().encode('{"a":1}'), "k"), { a: 1 });
});

Deno.test("checkRelPath() accepts plain relative paths", () => {
  checkRelPath("a/b/c.txt", "t");
  checkRelPath("weird name (1).bin", "t");
  assert.throws(() => checkRelPath("a/./b", "t"));
});

Deno.test("parseAttempt() accepts an attempt record and rejects attempt 1 and bad ids", () => {
  const attempt = {
    format: 2,
    type: "attempt",
    experiment: ID,
    attempt: 2,
    created: "2026-01-01T00:00:00.000Z",
    host: "h",
    user: "u",
    pid: 42,
    command: ["python", "train.py"],
    cwd: "/w",
    resumed_from: ID2,
    resume_step: 3,
  };
  const r = parseAttempt(structuredClone(attempt));
  assert.deepEqual(r, attempt);
  assert.equal(
    parseAttempt({ ...attempt, resumed_from: null, resume_step: null }).resume_step,
    null,
  );
  for (
    const b of [
      { ...attempt, attempt: 1 },
      { ...attempt, attempt: 0 },
      { ...attempt, resumed_from: "abc" },
      { ...attempt, experiment: "x" },
      { ...attempt, type: "status" },
      { ...attempt, resume_step: -1 },
    ]
  ) {
    assert.throws(() => parseAttempt(b), CorruptObjectError, JSON.stringify(b));
  }
});

Deno.test("parseClaim() reads claims and won markers", () => {
  const c = {
    format: 2,
    type: "won",
    claimer: ID,
    created: "2026-01-01T00:00:00.000Z",
    host: "h",
    pid: 7,
    experiment: ID2,
    attempt: 3,
  };
  assert.deepEqual(parseClaim(structuredClone(c)), c);
  assert.equal(parseClaim({ ...c, type: "claim", experiment: undefined }).experiment, null);
  assert.throws(() => parseClaim({ ...c, type: "lock" }), CorruptObjectError);
  assert.throws(() => parseClaim({ ...c, claimer: "me" }), CorruptObjectError);
  assert.throws(() => parseClaim({ ...c, experiment: "x" }), CorruptObjectError);
});

Deno.test("parseHeartbeat() reads the attempt (absent: attempt 1)", () => {
  const hb = { pid: 1, host: "h", updated: "2026-01-01T00:00:00.000Z", interval: 10 };
  assert.equal(parseHeartbeat(hb).attempt, undefined);
  assert.equal(parseHeartbeat({ ...hb, attempt: 4 }).attempt, 4);
  assert.throws(() => parseHeartbeat({ ...hb, attempt: 0 }), CorruptObjectError);
});
