import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { diffLines, splitLines, unifiedDiff } from "./unified_diff.ts";

/** Apply a unified diff to `a` (a strict patcher: context must match). */
function applyPatch(a: string, patch: string): string {
  if (patch === "") return a;
  const src = splitLines(a);
  const lines = patch.split("\n");
  lines.pop(); // trailing ""
  let i = 2; // skip --- and +++
  const out: string[] = [];
  let pos = 0;
  while (i < lines.length) {
    const m = lines[i]!.match(/^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@$/);
    if (!m) throw new Error(`bad hunk header ${lines[i]}`);
    const startA = Number(m[1]);
    const lenA = m[2] === undefined ? 1 : Number(m[2]);
    const first = lenA === 0 ? startA : startA - 1;
    while (pos < first) out.push(src[pos++]!);
    i++;
    while (i < lines.length && !lines[i]!.startsWith("@@")) {
      const l = lines[i]!;
      const noNl = lines[i + 1] === "\\ No newline at end of file";
      const text = l.slice(1) + (noNl ? "" : "\n");
      if (l[0] === " " || l[0] === "-") {
        if (src[pos] !== text) {
          throw new Error(`context mismatch at ${pos}: ${src[pos]} vs ${text}`);
        }
        pos++;
      }
      if (l[0] === " " || l[0] === "+") out.push(text);
      i += noNl ? 2 : 1;
    }
  }
  while (pos < src.length) out.push(src[pos++]!);
  return out.join("");
}

function lcs(a: string[], b: string[]): number {
  const dp = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      dp[i]![j] = a[i - 1] === b[j - 1]
        ? dp[i - 1]![j - 1]! + 1
        : Math.max(dp[i - 1]![j]!, dp[i]![j - 1]!);
    }
  }
  return dp[a.length]![b.length]!;
}

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff;
  };
}

function randomText(r: () => number): string {
  const n = Math.floor(r() * 12);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push("abcd"[Math.floor(r() * 4)]!);
  return lines.join("\n") + (r() < 0.7 && n ? "\n" : "");
}

Deno.test("unifiedDiff() prints the diff -u format", () => {
  assertEquals(
    unifiedDiff("a\nb\nc\n", "a\nB\nc\n", { aName: "a/f", bName: "b/f" }),
    "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n",
  );
});

Deno.test("unifiedDiff() returns an empty string for equal texts", () => {
  assertEquals(unifiedDiff("x\n", "x\n"), "");
});

Deno.test("unifiedDiff() marks a missing final newline", () => {
  assertEquals(
    unifiedDiff("a\nb", "a\nb\n"),
    "--- a\n+++ b\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n",
  );
});

Deno.test("unifiedDiff() diffs against an empty file with a 0,0 range", () => {
  assertEquals(unifiedDiff("", "x\ny\n"), "--- a\n+++ b\n@@ -0,0 +1,2 @@\n+x\n+y\n");
  assertEquals(unifiedDiff("x\n", ""), "--- a\n+++ b\n@@ -1 +0,0 @@\n-x\n");
});

Deno.test("unifiedDiff() splits far-apart changes into hunks with 3 lines of context", () => {
  const a = Array.from({ length: 20 }, (_, i) => `l${i}\n`).join("");
  const b = a.replace("l1\n", "L1\n").replace("l18\n", "L18\n");
  const d = unifiedDiff(a, b);
  assertEquals(d.match(/^@@/gm)?.length, 2);
  assertEquals(d.split("\n")[2], "@@ -1,5 +1,5 @@");
  assertEquals(d.split("\n").find((l) => l.startsWith("@@ -16")), "@@ -16,5 +16,5 @@");
  assertEquals(applyPatch(a, d), b);
});

Deno.test("diffLines() finds a minimal edit script (random texts, checked against LCS)", () => {
  const r = rng(42);
  for (let t = 0; t < 500; t++) {
    const a = splitLines(randomText(r));
    const b = splitLines(randomText(r));
    const edits = diffLines(a, b);
    const kept = edits.filter((e) => e.op === "=").length;
    assertEquals(kept, lcs(a, b), `${JSON.stringify(a)} → ${JSON.stringify(b)}`);
    assertEquals(edits.filter((e) => e.op !== "+").map((e) => e.line), a);
    assertEquals(edits.filter((e) => e.op !== "-").map((e) => e.line), b);
  }
});

Deno.test("unifiedDiff() output patches a into b (random texts)", () => {
  const r = rng(7);
  for (let t = 0; t < 500; t++) {
    const a = randomText(r);
    const b = randomText(r);
    const context = Math.floor(r() * 4);
    assertEquals(applyPatch(a, unifiedDiff(a, b, { context })), b, JSON.stringify([a, b, context]));
  }
});

Deno.test("diffLines() stays correct past maxEdits (falls back to replacing the middle)", () => {
  const a = Array.from({ length: 3000 }, (_, i) => `${i}\n`);
  const b = Array.from({ length: 3000 }, (_, i) => `${i % 2 ? i : -i}\n`);
  const edits = diffLines(a, b, 50);
  assertEquals(edits.filter((e) => e.op !== "+").map((e) => e.line), a);
  assertEquals(edits.filter((e) => e.op !== "-").map((e) => e.line), b);
  const text = unifiedDiff(a.join(""), b.join(""), { maxEdits: 50 });
  assertEquals(applyPatch(a.join(""), text), b.join(""));
});
