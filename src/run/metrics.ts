/**
 * An incremental parser for a JSONL metrics file that the training script is appending to. The
 * caller reads new bytes from the file however it likes and hands them to {@link MetricsTail.push};
 * this module does no I/O.
 *
 * Rules, per line (a line ends with `\n`; a `\r` before it is dropped):
 * - Lines are numbered from 1 as they appear in the file, counting blank and malformed lines.
 * - Blank lines (only whitespace) are ignored.
 * - A line must be a JSON object, else it is malformed. Python's `json.dumps` spellings `NaN`,
 *   `Infinity` and `-Infinity` are accepted and become the strings `"NaN"`, `"Infinity"` and
 *   `"-Infinity"` (metrics are stored as JSON, which has no non-finite numbers).
 * - Values must be numbers, strings, booleans or `null`. Nested objects are flattened with `/`:
 *   `{"train": {"loss": 1}}` gives the metric `train/loss`. An array anywhere makes the line
 *   malformed.
 * - The top-level key `step` is taken out of the metrics: it must be a non-negative safe integer
 *   (`3` or `3.0`, not `"3"`, `-1`, `1.5` or `null`), else the line is malformed.
 * - The top-level key `path` is taken out of the metrics (it names a file the script just wrote,
 *   e.g. a checkpoint): it must be a non-empty string, else the line is malformed.
 * - A line may have no metrics left (e.g. `{"step": 5, "path": "model.bin"}`).
 * - A line longer than {@link MAX_LINE_BYTES} bytes (without its line ending) is malformed; only its
 *   first 256 bytes are kept while the rest is skipped, so memory stays bounded.
 * - Invalid UTF-8 makes the line malformed. UTF-8 characters split across pushes are fine, since
 *   lines are split on bytes before decoding.
 * - A partial last line is buffered until its `\n` arrives. {@link MetricsTail.flush} parses it at
 *   the end of the run: a final unterminated line IS taken as a line then.
 *
 * @module
 */

/** Longest accepted line, in bytes without the line ending: 1 MiB. */
export const MAX_LINE_BYTES = 1 << 20;

/** How much of an over-long line is kept for {@link MalformedLine.text}. */
const KEPT_PREFIX_BYTES = 256;

/** A metric value. */
export type MetricValue = number | string | boolean | null;

/** A well-formed metrics line. */
export interface MetricsLine {
  /** Discriminant. */
  kind: "metrics";
  /** 1-based line number in the file. */
  line: number;
  /** The line's `step`, when it has one. */
  step?: number;
  /** Every other key (flattened), without `step` and `path`. */
  metrics: Record<string, MetricValue>;
  /** The line's `path`, when it has one. */
  path?: string;
}

/** A line that could not be used. */
export interface MalformedLine {
  /** Discriminant. */
  kind: "malformed";
  /** 1-based line number in the file. */
  line: number;
  /** The line's text (decoded leniently; only the start of an over-long line). */
  text: string;
  /** Why the line was rejected. */
  reason: string;
}

/** What {@link MetricsTail} reports per non-blank line. */
export type MetricsEvent = MetricsLine | MalformedLine;

/** Options for {@link MetricsTail}. */
export interface MetricsTailOptions {
  /** Longest accepted line in bytes; default {@link MAX_LINE_BYTES}. */
  maxLineBytes?: number;
}

const NEWLINE = 0x0a;
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const lenientDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Incremental JSONL metrics parser. Push the bytes appended to the file, get the events for every
 * line completed by them. See the module documentation for the rules.
 */
export class MetricsTail {
  readonly #maxLineBytes: number;
  /** Chunks of the current partial line (bounded by maxLineBytes + 1 chunk). */
  #chunks: Uint8Array[] = [];
  #length = 0;
  /** The current line exceeded the limit: its remainder is being skipped. */
  #overlong = false;
  #overlongPrefix: Uint8Array = new Uint8Array(0);
  #line = 0;
  #offset = 0;

  /** A parser at offset 0, line 1. */
  constructor(options: MetricsTailOptions = {}) {
    this.#maxLineBytes = options.maxLineBytes ?? MAX_LINE_BYTES;
  }

  /** Bytes pushed since construction or the last {@link reset}: the file offset to read from next. */
  get offset(): number {
    return this.#offset;
  }

  /** Number of lines completed so far (the last line number reported or skipped). */
  get lines(): number {
    return this.#line;
  }

  /** Parse `bytes` appended to the file; returns the events of the lines they complete. */
  push(bytes: Uint8Array): MetricsEvent[] {
    this.#offset += bytes.length;
    const events: MetricsEvent[] = [];
    let start = 0;
    while (start < bytes.length) {
      const nl = bytes.indexOf(NEWLINE, start);
      const end = nl < 0 ? bytes.length : nl;
      this.#append(bytes.subarray(start, end));
      if (nl < 0) break;
      this.#endLine(events);
      start = nl + 1;
    }
    return events;
  }

  /**
   * End of the run: parse a final line that has no `\n` (it IS taken as a complete line). Later
   * pushes continue with the next line number.
   */
  flush(): MetricsEvent[] {
    const events: MetricsEvent[] = [];
    if (this.#length > 0 || this.#overlong) this.#endLine(events);
    return events;
  }

  /**
   * The file was truncated or replaced (rotation): drop the buffered partial line and start again
   * at offset 0 and line 1.
   */
  reset(): void {
    this.#clearLine();
    this.#line = 0;
    this.#offset = 0;
  }

  #append(part: Uint8Array): void {
    if (part.length === 0) return;
    if (this.#overlong) return;
    // Allow one extra byte for a trailing `\r`, which does not count towards the limit.
    if (this.#length + part.length > this.#maxLineBytes + 1) {
      const all = this.#take();
      const prefix = new Uint8Array(Math.min(KEPT_PREFIX_BYTES, all.length + part.length));
      prefix.set(all.subarray(0, prefix.length));
      if (all.length < prefix.length) {
        prefix.set(part.subarray(0, prefix.length - all.length), all.length);
      }
      this.#overlong = true;
      this.#overlongPrefix = prefix;
      return;
    }
    // Copy: the caller may reuse its buffer.
    this.#chunks.push(part.slice());
    this.#length += part.length;
  }

  #take(): Uint8Array {
    const out = this.#chunks.length === 1 ? this.#chunks[0]! : new Uint8Array(this.#length);
    if (this.#chunks.length > 1) {
      let at = 0;
      for (const c of this.#chunks) {
        out.set(c, at);
        at += c.length;
      }
    }
    this.#chunks = [];
    this.#length = 0;
    return out;
  }

  #clearLine(): void {
    this.#chunks = [];
    this.#length = 0;
    this.#overlong = false;
    this.#overlongPrefix = new Uint8Array(0);
  }

  #endLine(events: MetricsEvent[]): void {
    this.#line++;
    const line = this.#line;
    if (this.#overlong) {
      const text = lenientDecoder.decode(this.#overlongPrefix);
      this.#clearLine();
      events.push({
        kind: "malformed",
        line,
        text,
        reason: `line is longer than ${this.#maxLineBytes} bytes`,
      });
      return;
    }
    let bytes = this.#take();
    if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, -1);
    if (bytes.length > this.#maxLineBytes) {
      events.push({
        kind: "malformed",
        line,
        text: lenientDecoder.decode(bytes.subarray(0, KEPT_PREFIX_BYTES)),
        reason: `line is longer than ${this.#maxLineBytes} bytes`,
      });
      return;
    }
    const event = parseMetricsLine(bytes, line);
    if (event) events.push(event);
  }
}

/**
 * Parse one line (without its line ending) per the module rules; `undefined` for a blank line.
 * Exported for callers that already have whole lines.
 */
export function parseMetricsLine(bytes: Uint8Array, line: number): MetricsEvent | undefined {
  let text: string;
  try {
    text = strictDecoder.decode(bytes);
  } catch {
    return malformed(line, lenientDecoder.decode(bytes), "line is not valid UTF-8");
  }
  if (text.startsWith("\uFEFF")) text = text.slice(1);
  if (text.trim() === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const patched = quoteNonFinite(text);
    try {
      if (patched === undefined) throw e;
      value = JSON.parse(patched);
    } catch {
      return malformed(line, text, `invalid JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return malformed(line, text, `expected a JSON object, got ${describe(value)}`);
  }
  const record = value as Record<string, unknown>;
  const event: MetricsLine = { kind: "metrics", line, metrics: {} };
  const entries: [string, MetricValue][] = [];
  for (const [key, v] of Object.entries(record)) {
    if (key === "step") {
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
        return malformed(line, text, `"step" must be a non-negative integer, got ${describe(v)}`);
      }
      event.step = v;
    } else if (key === "path") {
      if (typeof v !== "string" || v === "") {
        return malformed(line, text, `"path" must be a non-empty string, got ${describe(v)}`);
      }
      event.path = v;
    } else {
      const problem = flatten(key, v, entries);
      if (problem) return malformed(line, text, problem);
    }
  }
  // fromEntries defines own properties, so a "__proto__" metric stays a plain key.
  event.metrics = Object.fromEntries(entries);
  return event;
}

function flatten(key: string, v: unknown, out: [string, MetricValue][]): string | undefined {
  if (v === null || typeof v === "number" || typeof v === "string" || typeof v === "boolean") {
    // A literal too large for a double (1e999) parses as Infinity: keep it as the string.
    out.push([key, typeof v === "number" && !Number.isFinite(v) ? String(v) : v]);
    return undefined;
  }
  if (Array.isArray(v)) {
    return `the value of ${
      JSON.stringify(key)
    } is an array; metric values must be numbers, strings, booleans or null`;
  }
  for (const [k, inner] of Object.entries(v as Record<string, unknown>)) {
    const problem = flatten(`${key}/${k}`, inner, out);
    if (problem) return problem;
  }
  return undefined;
}

function malformed(line: number, text: string, reason: string): MalformedLine {
  return { kind: "malformed", line, text, reason };
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") {
    return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  }
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return `a value of type ${typeof v}`;
}

/**
 * Replace the bare tokens `NaN`, `Infinity` and `-Infinity` outside strings by JSON strings.
 * `undefined` when there are none (the text stays invalid JSON).
 */
function quoteNonFinite(text: string): string | undefined {
  let out = "";
  let last = 0;
  let inString = false;
  let found = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      continue;
    }
    for (const token of ["NaN", "-Infinity", "Infinity"]) {
      if (text.startsWith(token, i) && !/[A-Za-z0-9_]/.test(text[i + token.length] ?? "")) {
        out += text.slice(last, i) + `"${token}"`;
        i += token.length - 1;
        last = i + 1;
        found = true;
        break;
      }
    }
  }
  return found ? out + text.slice(last) : undefined;
}
