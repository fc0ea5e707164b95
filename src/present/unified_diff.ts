/**
 * A small line diff (Myers' O(ND) algorithm) and unified-diff output, as `diff -u` prints it.
 * Past a number of edits the search stops and the differing middle is reported as replaced, so
 * huge, very different files cost bounded time and memory (the result is still a correct diff,
 * only not minimal).
 *
 * @module
 */

/** One line of an edit script: kept (`=`), deleted from a (`-`) or inserted from b (`+`). */
export interface Edit {
  op: "=" | "-" | "+";
  /** The line, with its `\n` when it has one. */
  line: string;
}

/** Options of {@link unifiedDiff}. */
export interface UnifiedDiffOptions {
  /** Name in the `---` header. @default "a" */
  aName?: string;
  /** Name in the `+++` header. @default "b" */
  bName?: string;
  /** Lines of context around changes. @default 3 */
  context?: number;
  /** Stop searching for a minimal diff after this many edits. @default 2000 */
  maxEdits?: number;
}

/** Split text into lines, each keeping its `\n` (the last may lack one). */
export function splitLines(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

/**
 * The shortest edit script turning `a` into `b` (or a correct, longer one when more than
 * `maxEdits` edits would be needed).
 *
 * @example
 * ```ts
 * import { diffLines } from "./unified_diff.ts";
 * diffLines(["x\n", "y\n"], ["x\n", "z\n"]).map((e) => e.op).join(""); // "=-+"
 * ```
 */
export function diffLines(a: string[], b: string[], maxEdits = 2000): Edit[] {
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (
    suf < a.length - pre && suf < b.length - pre &&
    a[a.length - 1 - suf] === b[b.length - 1 - suf]
  ) suf++;
  const A = a.slice(pre, a.length - suf);
  const B = b.slice(pre, b.length - suf);
  const head: Edit[] = a.slice(0, pre).map((line) => ({ op: "=", line }));
  const tail: Edit[] = a.slice(a.length - suf).map((line) => ({ op: "=", line }));
  const mid = myers(A, B, maxEdits) ?? [
    ...A.map((line): Edit => ({ op: "-", line })),
    ...B.map((line): Edit => ({ op: "+", line })),
  ];
  return [...head, ...mid, ...tail];
}

function myers(A: string[], B: string[], maxEdits: number): Edit[] | null {
  const N = A.length;
  const M = B.length;
  if (N === 0) return B.map((line) => ({ op: "+", line }));
  if (M === 0) return A.map((line) => ({ op: "-", line }));
  const max = Math.min(N + M, maxEdits);
  const off = max + 1;
  const v = new Int32Array(2 * max + 3);
  // trace[d] holds v[-d-1 .. d+1] as it was before step d.
  const trace: Int32Array[] = [];
  for (let d = 0; d <= max; d++) {
    trace.push(v.slice(off - d - 1, off + d + 2));
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[off + k - 1]! < v[off + k + 1]!)
        ? v[off + k + 1]!
        : v[off + k - 1]! + 1;
      let y = x - k;
      while (x < N && y < M && A[x] === B[y]) {
        x++;
        y++;
      }
      v[off + k] = x;
      if (x >= N && y >= M) return backtrack(A, B, trace, d);
    }
  }
  return null;
}

function backtrack(A: string[], B: string[], trace: Int32Array[], D: number): Edit[] {
  const out: Edit[] = [];
  let x = A.length;
  let y = B.length;
  for (let d = D; d >= 0; d--) {
    const t = trace[d]!;
    const at = (k: number) => t[k + d + 1]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : at(prevK);
    const prevY = d === 0 ? 0 : prevX - prevK;
    while (x > prevX && y > prevY) {
      out.push({ op: "=", line: A[x - 1]! });
      x--;
      y--;
    }
    if (d > 0) {
      if (x === prevX) out.push({ op: "+", line: B[y - 1]! });
      else out.push({ op: "-", line: A[x - 1]! });
    }
    x = prevX;
    y = prevY;
  }
  return out.reverse();
}

function range(start: number, len: number): string {
  const s = len === 0 ? start : start + 1;
  return len === 1 ? `${s}` : `${s},${len}`;
}

function emit(prefix: string, line: string): string {
  return line.endsWith("\n") ? prefix + line : `${prefix}${line}\n\\ No newline at end of file\n`;
}

/**
 * A unified diff of two texts, or `""` when they are equal.
 *
 * @example
 * ```ts
 * import { unifiedDiff } from "./unified_diff.ts";
 * unifiedDiff("a\nb\n", "a\nc\n", { aName: "a/x.py", bName: "b/x.py" });
 * // "--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
 * ```
 */
export function unifiedDiff(a: string, b: string, options: UnifiedDiffOptions = {}): string {
  if (a === b) return "";
  const context = options.context ?? 3;
  const edits = diffLines(splitLines(a), splitLines(b), options.maxEdits);
  // Positions (0-based) in a and b before each edit.
  const posA: number[] = [];
  const posB: number[] = [];
  let ia = 0;
  let ib = 0;
  for (const e of edits) {
    posA.push(ia);
    posB.push(ib);
    if (e.op !== "+") ia++;
    if (e.op !== "-") ib++;
  }
  let out = `--- ${options.aName ?? "a"}\n+++ ${options.bName ?? "b"}\n`;
  let i = 0;
  while (i < edits.length) {
    if (edits[i]!.op === "=") {
      i++;
      continue;
    }
    // A hunk: from `context` lines before this change to `context` after the last change that is
    // within 2 * context lines of the previous one.
    const start = Math.max(0, i - context);
    let end = i;
    let j = i;
    while (j < edits.length) {
      if (edits[j]!.op !== "=") {
        end = j;
        j++;
        continue;
      }
      let run = 0;
      while (j + run < edits.length && edits[j + run]!.op === "=") run++;
      if (j + run >= edits.length || run > 2 * context) break;
      j += run;
    }
    const stop = Math.min(edits.length, end + context + 1);
    let lenA = 0;
    let lenB = 0;
    let body = "";
    for (let k = start; k < stop; k++) {
      const e = edits[k]!;
      if (e.op !== "+") lenA++;
      if (e.op !== "-") lenB++;
      body += emit(e.op === "=" ? " " : e.op, e.line);
    }
    out += `@@ -${range(posA[start]!, lenA)} +${range(posB[start]!, lenB)} @@\n${body}`;
    i = stop;
  }
  return out;
}
