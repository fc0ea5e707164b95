/**
 * Fuzzing of every parser that reads untrusted input (metrics files, stdout, rep.yaml, filters,
 * records of a possibly hostile repository, command arguments) with random and mutated input from a
 * seeded PRNG, and of the CLI itself with random argv. Each parser must return a result or throw
 * one of our {@link RepError}s: no other exception, no crash, no hang (every case is timed).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { RepError } from "../src/errors.ts";
import { MetricsTail } from "../src/run/metrics.ts";
import { ScalarParser } from "../src/run/scalars.ts";
import { parseConfig } from "../src/config.ts";
import { parseFilter, parseSort, parseTime, typeValue } from "../src/catalog/filter.ts";
import {
  parseCheckpoint,
  parseExperiment,
  parseHeartbeat,
  parseJson,
  parseStatus,
  parseTombstone,
  parseTree,
} from "../src/format/records.ts";
import { parseCommandParams, parseParamFlag } from "../src/run/params.ts";
import { parsePrimaryMetric, parseRunArgs } from "../src/cli/run.ts";
import { parseDuration } from "../src/cli/gc.ts";
import { makeExperiment, tempRepo } from "./helpers.ts";
import { prng, runRep } from "./fault_helpers.ts";

const SEED = Number(Deno.env.get("REP_FUZZ_SEED") ?? 424242);
/** No single case may take longer than this (a regex blow-up or a loop would). */
const CASE_MS = 500;
const enc = new TextEncoder();

type Rnd = ReturnType<typeof prng>;

/** Run `fn` on `n` inputs; it must return or throw a RepError, each within CASE_MS. */
function fuzz<T>(
  name: string,
  n: number,
  gen: (r: Rnd, i: number) => T,
  fn: (input: T) => unknown,
): { ok: number; rejected: number } {
  const r = prng(
    SEED ^ [...name].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619), 2166136261),
  );
  let ok = 0;
  let rejected = 0;
  for (let i = 0; i < n; i++) {
    const input = gen(r, i);
    const t0 = performance.now();
    try {
      fn(input);
      ok++;
    } catch (e) {
      if (!(e instanceof RepError)) {
        throw new Error(
          `${name}: case ${i} threw ${(e as Error)?.name}: ${(e as Error)?.message}\ninput: ${
            JSON.stringify(input, (_k, v) => v instanceof Uint8Array ? [...v] : v).slice(0, 500)
          }`,
        );
      }
      rejected++;
    }
    const ms = performance.now() - t0;
    assert.ok(ms < CASE_MS, `${name}: case ${i} took ${ms.toFixed(0)} ms`);
  }
  return { ok, rejected };
}

// ---- generators --------------------------------------------------------------------------------

const ATOMS = [
  "{",
  "}",
  "[",
  "]",
  '"',
  ":",
  ",",
  "\n",
  "\r\n",
  "\\",
  "\\u0000",
  "\0",
  "NaN",
  "-Infinity",
  "Infinity",
  "null",
  "true",
  "1e309",
  "-0",
  "9007199254740993",
  '"step"',
  '"path"',
  '"loss"',
  "0.5",
  "-1",
  "1.5",
  "é",
  "😀",
  "\ud800",
  "__proto__",
  "constructor",
  "a".repeat(300),
  "../..",
  "/etc/passwd",
  "step: 3",
  "loss=0.1",
  " ",
  "\t",
  "#",
  "&a",
  "*a",
  "!!js/function",
  "---",
  "- x",
  "? ",
  "|",
  ">",
  "'",
  "~",
  "=",
  "!=",
  "<=",
  ">=",
  "~",
  "--",
  "-p",
  "--lr",
  "=",
];

function junk(r: Rnd, max = 40): string {
  let s = "";
  const n = r.int(0, max);
  for (let i = 0; i < n; i++) {
    s += r.next() < 0.7 ? r.pick(ATOMS) : String.fromCharCode(r.int(0, 0x2fff));
  }
  return s;
}

/** Mutate a string: flip, insert, delete, duplicate, truncate. */
function mutate(r: Rnd, s: string): string {
  let out = s;
  const k = r.int(1, 4);
  for (let j = 0; j < k; j++) {
    const at = r.int(0, out.length);
    switch (r.int(0, 5)) {
      case 0:
        out = out.slice(0, at) + r.pick(ATOMS) + out.slice(at);
        break;
      case 1:
        out = out.slice(0, at) + out.slice(at + r.int(1, 8));
        break;
      case 2:
        out = out.slice(0, at);
        break;
      case 3:
        out = out.slice(0, at) + String.fromCharCode(r.int(0, 0xffff)) + out.slice(at + 1);
        break;
      case 4:
        out = out.slice(0, at) + out.slice(r.int(0, out.length)) + out.slice(at);
        break;
      default:
        out = out.replace(/\d/, String(r.pick([-1, 1e308, 0.5, 2 ** 53, "x"])));
    }
  }
  return out;
}

/** Mutate a JSON value structurally: change types, drop or add keys. */
function mutateValue(r: Rnd, v: unknown, depth = 0): unknown {
  if (r.next() < 0.15 || depth > 5) {
    return r.pick<unknown>([
      null,
      -1,
      1.5,
      2 ** 60,
      "",
      "x",
      "../../etc",
      true,
      [],
      {},
      [1, 2, 3],
      { a: 1 },
      "0".repeat(64),
      NaN,
    ]);
  }
  if (Array.isArray(v)) {
    return v.map((x) => mutateValue(r, x, depth + 1)).slice(0, r.int(0, v.length + 1));
  }
  if (v && typeof v === "object") {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (r.next() < 0.1) continue;
      o[k] = r.next() < 0.5 ? mutateValue(r, x, depth + 1) : x;
    }
    if (r.next() < 0.1) o[r.pick(["__proto__", "extra", "files", "format", "type"])] = {};
    return o;
  }
  return v;
}

// ---- parsers -------------------------------------------------------------------------------------

Deno.test("fuzz: MetricsTail on random bytes, mutated lines and random splits never throws", () => {
  const valid = [
    '{"step": 1, "loss": 0.5}\n',
    '{"train": {"loss": 1, "acc": {"top1": 0.9}}, "path": "a/b"}\n',
    '{"loss": NaN, "x": -Infinity}\r\n',
  ];
  const res = fuzz("MetricsTail", 3000, (r, i) => {
    if (i % 3 === 0) return r.bytes(r.int(0, 2000));
    let text = "";
    for (let k = 0; k < r.int(1, 8); k++) text += mutate(r, r.pick(valid));
    return enc.encode(text);
  }, (bytes) => {
    const tail = new MetricsTail({ maxLineBytes: 4096 });
    const r = prng(bytes.length);
    let o = 0;
    let events = 0;
    while (o < bytes.length) {
      const n = r.int(1, 64);
      events += tail.push(bytes.subarray(o, o + n)).length;
      o += n;
    }
    events += tail.flush().length;
    for (const ev of [...tail.push(bytes), ...tail.flush()]) {
      if (ev.kind === "metrics") {
        // What it accepts is storable: finite numbers or strings/booleans/null.
        for (const v of Object.values(ev.metrics)) {
          assert.ok(v === null || ["string", "boolean"].includes(typeof v) || Number.isFinite(v));
        }
        assert.ok(ev.step === undefined || Number.isSafeInteger(ev.step) && ev.step >= 0);
      }
    }
    return events;
  });
  // A pathological line: one huge line is bounded.
  const tail = new MetricsTail({ maxLineBytes: 1024 });
  const big = new Uint8Array(5 << 20).fill(0x41);
  assert.equal(tail.push(big).length, 0);
  const [ev] = tail.push(enc.encode("\n"));
  assert.equal(ev!.kind, "malformed");
  assert.ok(res.ok > 0);
});

Deno.test("fuzz: ScalarParser on random and mutated stdout never throws", () => {
  const valid = ["step: 1\nloss: 0.5\n", "epoch 3 loss=0.25 acc: 91.5%\n", "loss: nan\n"];
  fuzz(
    "ScalarParser",
    3000,
    (r, i) =>
      i % 2
        ? junk(r, 80)
        : Array.from({ length: r.int(1, 6) }, () => mutate(r, r.pick(valid))).join(""),
    (text) => {
      const p = new ScalarParser();
      const r = prng(text.length);
      let o = 0;
      while (o < text.length) {
        const n = r.int(1, 50);
        p.push(text.slice(o, o + n));
        o += n;
      }
      for (const ev of p.flush()) {
        for (const v of Object.values(ev.metrics)) assert.equal(typeof v, "number");
      }
    },
  );
});

Deno.test("fuzz: parseConfig (rep.yaml) on random and mutated YAML throws only ConfigError", () => {
  const valid = [
    "repository: s3://bucket/prefix\nrun:\n  output: out\n  metrics: out/m.jsonl\n  primary_metric: loss:min\n",
    "repository: &a x\nrun: *a\n",
    "run: {output: [1, 2]}\n",
  ];
  fuzz("parseConfig", 2500, (r, i) => i % 3 === 0 ? junk(r, 60) : mutate(r, r.pick(valid)), (t) => {
    const cfg = parseConfig(t, "rep.yaml");
    if (cfg.repository !== undefined) assert.equal(typeof cfg.repository, "string");
    for (const v of Object.values(cfg.run ?? {})) assert.equal(typeof v, "string");
  });
  // A billion laughs is refused, not expanded.
  const lol = ["a: &a [x,x,x,x,x,x,x,x,x]"];
  for (let i = 0; i < 9; i++) {
    lol.push(
      `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${
        Array(9).fill(`*${String.fromCharCode(97 + i)}`).join(",")
      }]`,
    );
  }
  const t0 = performance.now();
  assert.throws(() => parseConfig(lol.join("\n")), RepError);
  assert.ok(performance.now() - t0 < CASE_MS);
});

Deno.test("fuzz: ls filter, sort and time parsers throw only UsageError", () => {
  const valid = [
    "loss < 0.5",
    "status = succeeded",
    'tag ~ "a b"',
    "created > 2d",
    "any.acc >= 1e-3",
  ];
  fuzz("parseFilter", 3000, (r, i) => i % 2 ? junk(r, 30) : mutate(r, r.pick(valid)), (t) => {
    const f = parseFilter(t);
    typeValue(f.raw);
  });
  fuzz("parseSort", 1000, (r) => junk(r, 20), (t) => parseSort(t, []));
  fuzz(
    "parseTime",
    2000,
    (r, i) => i % 2 ? junk(r, 20) : mutate(r, r.pick(["2d", "3h", "2024-05-01", "10m"])),
    (t) => {
      const v = parseTime(t, Date.now());
      assert.ok(Number.isFinite(v), `parseTime(${JSON.stringify(t)}) = ${v}`);
    },
  );
  fuzz(
    "parseDuration",
    1000,
    (r) => mutate(r, r.pick(["30s", "10m", "24h", "7d", "0"])),
    parseDuration,
  );
  fuzz("parsePrimaryMetric", 1000, (r) => mutate(r, "loss:minimize"), parsePrimaryMetric);
});

Deno.test("fuzz: record parsers on mutated valid records and random bytes throw only CorruptObjectError", () => {
  const id = "0123456789abcdef0123456789abcdef";
  const sha = "a".repeat(64);
  const records: [string, unknown, (v: unknown) => unknown][] = [
    ["experiment", {
      format: 1,
      type: "experiment",
      id,
      created: "2024-05-01T00:00:00.000Z",
      params: { lr: 0.1, name: "x", on: true, none: null },
      command: ["python", "t.py"],
      cwd: "/w",
      host: "h",
      user: "u",
      platform: "linux-x86_64",
      rep_version: "0.1.0",
      git: { commit: "abc", branch: "main", dirty: true, remote: null },
      code: { tree: sha, files: 1, size: 3 },
      tags: ["a"],
      note: null,
      primary_metric: { name: "loss", goal: "minimize" },
      provenance: { env: {} },
    }, parseExperiment],
    ["checkpoint", {
      format: 1,
      type: "checkpoint",
      id,
      experiment: id,
      created: "2024-05-01T00:00:00.000Z",
      step: 3,
      metrics: { loss: 0.5 },
      primary_metric: null,
      files: { tree: sha, files: 1, size: 3 },
      torn: [],
    }, parseCheckpoint],
    ["tree", {
      format: 1,
      files: [{
        path: "a/model.bin",
        size: 30,
        hash: sha,
        mode: 420,
        chunks: [[id, 0, 10, sha], [id, 10, 20, sha]],
      }],
    }, parseTree],
    ["tombstone", {
      format: 1,
      type: "tombstone",
      created: "2024-05-01T00:00:00.000Z",
      experiments: [id],
      checkpoints: [],
    }, parseTombstone],
    ["status", {
      format: 1,
      type: "status",
      status: "failed",
      exit_code: 1,
      signal: null,
      finished: "2024-05-01T00:00:00.000Z",
    }, parseStatus],
    [
      "heartbeat",
      { pid: 1, host: "h", updated: "2024-05-01T00:00:00.000Z", interval: 10 },
      parseHeartbeat,
    ],
  ];
  for (const [name, valid, parse] of records) {
    parse(valid); // the valid one passes
    const text = JSON.stringify(valid);
    fuzz(`${name} (structural)`, 1500, (r) => mutateValue(r, valid), (v) => {
      const out = parse(v) as Record<string, unknown>;
      if (name === "tree") {
        for (
          const f of (out as { files: { path: string; size: number; chunks: unknown[] }[] }).files
        ) {
          assert.ok(!f.path.split("/").some((s) => s === ".." || s === "." || s === ""));
          assert.ok(!f.path.startsWith("/"));
        }
      }
    });
    fuzz(
      `${name} (bytes)`,
      1000,
      (r, i) => i % 4 === 0 ? r.bytes(r.int(0, 300)) : enc.encode(mutate(r, text)),
      (b) => parse(parseJson(b, name)),
    );
  }
});

Deno.test("fuzz: parseCommandParams and parseParamFlag on random argv", () => {
  const words = [
    "--lr",
    "0.1",
    "--lr=0.2",
    "lr=3",
    "--flag",
    "-x",
    "--",
    "train.py",
    "python",
    "-m",
    "a=b=c",
    "=",
    "--=",
    "-",
    "--no-x",
    "__proto__=1",
    "constructor",
    "--__proto__",
  ];
  fuzz(
    "parseCommandParams",
    3000,
    (r) => Array.from({ length: r.int(0, 12) }, () => r.next() < 0.7 ? r.pick(words) : junk(r, 10)),
    (argv) => {
      const p = parseCommandParams(argv);
      assert.equal(Object.getPrototypeOf(p), Object.prototype);
      const scalar = (x: unknown) => ["string", "number", "boolean"].includes(typeof x);
      for (const v of Object.values(p)) {
        assert.ok(scalar(v) || (Array.isArray(v) && v.length > 1 && v.every(scalar)), `${v}`);
      }
    },
  );
  fuzz("parseParamFlag", 3000, (r) => junk(r, 20), parseParamFlag);
  fuzz(
    "parseRunArgs",
    2000,
    (r) =>
      Array.from({ length: r.int(0, 8) }, () =>
        r.next() < 0.6
          ? r.pick([
            "-o",
            "-m",
            "-p",
            "--tag",
            "--note",
            "-R",
            "--no-code",
            "--settle",
            "--",
            "python",
            "-h",
            "--bogus",
            "--output=x",
          ])
          : junk(r, 8)),
    parseRunArgs,
  );
});

// ---- the CLI with random argv --------------------------------------------------------------------

Deno.test("fuzz: the CLI with random argv exits 0, 1 or 2 and never reports an unexpected error", async () => {
  const t = await tempRepo();
  try {
    const made = await makeExperiment(t.repo, {
      params: { lr: 0.1 },
      checkpoints: [{ step: 0, metrics: { loss: 1 }, files: { "m.bin": "x" } }],
    });
    const r = prng(SEED + 1);
    const cmds = [
      "ls",
      "ps",
      "show",
      "diff",
      "checkout",
      "rm",
      "verify",
      "gc",
      "push",
      "help",
      "bogus",
      "run",
    ];
    const args = [
      "-f",
      "-s",
      "--json",
      "-q",
      "-R",
      "--grace",
      "-n",
      "--dry-run",
      "-o",
      "--path",
      "--force",
      "--quick",
      "--help",
      "loss < 1",
      "status",
      "lr-desc",
      "xyz",
      made.id.slice(0, 7),
      made.id,
      made.checkpoints[0]!,
      "0",
      "-1",
      "1e999",
      "",
      "--",
      "=",
      "/dev/null",
      "s3://",
      "gs://x",
      "file://",
      "%",
      "\u0000x",
      "ü",
      "--grace=1x",
      "-f=a",
      join(t.dir, "out"),
    ];
    const seen: number[] = [];
    const cases: string[][] = [];
    for (let i = 0; i < 10; i++) {
      const cmd = r.pick(cmds);
      const argv = [cmd, ...Array.from({ length: r.int(0, 5) }, () => r.pick(args))];
      // `rep run` with random argv would run random programs: only its option errors.
      if (cmd === "run") argv.splice(1, 0, "--bogus");
      if (cmd === "rm") argv.push("ffffff0"); // never remove the fixture for real
      cases.push(argv.filter((a) => !a.includes("\u0000")));
    }
    const results = await Promise.all(
      cases.map((argv) => runRep(argv, { cwd: t.dir, env: t.env, timeoutMs: 30_000 })),
    );
    for (const [i, res] of results.entries()) {
      seen.push(res.code);
      assert.ok(
        [0, 1, 2].includes(res.code),
        `rep ${JSON.stringify(cases[i])} exited ${res.code}: ${res.stderr}`,
      );
      assert.equal(res.signal, null);
      assert.doesNotMatch(
        res.stderr,
        /unexpected|panicked|Uncaught/,
        `rep ${JSON.stringify(cases[i])}`,
      );
    }
    console.log(`  CLI exit codes: ${seen.join(" ")}`);
  } finally {
    await t.cleanup();
  }
});
