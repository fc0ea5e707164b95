/**
 * Scalars printed to stdout, Guild AI's convention: a training script that prints `loss: 0.25`
 * gets a `loss` metric without writing a metrics file.
 *
 * Lines (ended by `\n`, `\r\n` or a lone `\r`; surrounding whitespace trimmed) are read as:
 * - `step: N` where N is a non-negative integer: a step line.
 * - `key: value` or `key: value (step N)`: a scalar. The key matches `[_a-zA-Z]\S*` and ends right
 *   before the colon; the value is a signed decimal float (`1`, `-0.5`, `.5`, `1e-3`) or `nan`,
 *   `inf`, `infinity` in any case with an optional sign. One or more spaces/tabs follow the colon.
 * - Anything else (including `step: 1.5` and `step: -1`) is ignored.
 *
 * Scalars accumulate in a pending group, which has an optional step. The group is emitted as one
 * {@link ScalarEvent} (only if it holds at least one scalar) exactly when:
 * 1. a step line arrives: the pending group is emitted, and a new group with that step starts;
 * 2. a scalar with `(step N)` arrives and N differs from the pending group's step: the pending group
 *    is emitted, and a new group with step N starts (holding this scalar). When the pending group
 *    is empty it just takes step N;
 * 3. a scalar whose key is already in the pending group arrives: the pending group is emitted, and a
 *    new group starts holding this scalar. Its step is N for `(step N)`, else undefined: the parser
 *    does not invent steps, the caller numbers step-less events;
 * 4. {@link ScalarParser.flush} is called: a buffered partial line is taken as a line, the pending
 *    group is emitted, and the parser starts over with no step.
 *
 * `nan` and `inf` values are the JavaScript numbers `NaN` and `±Infinity` (note `JSON.stringify`
 * writes them as `null`). A partial line longer than 64 KiB is dropped (no scalar line is that long).
 *
 * @module
 */

/** One group of scalars. */
export interface ScalarEvent {
  /** The group's step, when the output gave one. */
  step?: number;
  /** Scalars by key, in first-seen order. */
  metrics: Record<string, number>;
  /** Number (1-based) of the output line that completed the group: its last scalar line. */
  line: number;
}

const STEP_RE = /^step:[ \t]+([0-9]+)$/;
const SCALAR_RE =
  /^([_a-zA-Z][^\s:]*(?::[^\s:]+)*):[ \t]+([+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity))(?:[ \t]+\(step[ \t]+([0-9]+)\))?$/i;
/** Longest partial line kept while waiting for its end. */
const MAX_PARTIAL = 64 * 1024;

/** Incremental parser of scalars printed to stdout. See the module documentation for the rules. */
export class ScalarParser {
  #partial = "";
  #dropping = false;
  #step: number | undefined = undefined;
  #metrics = new Map<string, number>();
  #lineNo = 0;
  #groupLine = 0;

  /** Parse more stdout text; returns the events completed by it. */
  push(text: string): ScalarEvent[] {
    const events: ScalarEvent[] = [];
    let start = 0;
    const re = /\r\n|\r|\n/g;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const piece = text.slice(start, m.index);
      start = m.index + m[0].length;
      this.#lineNo++;
      if (this.#dropping) {
        this.#dropping = false;
        this.#partial = "";
        continue;
      }
      const line = this.#partial + piece;
      this.#partial = "";
      this.#line(line, events);
    }
    if (start < text.length && !this.#dropping) {
      this.#partial += text.slice(start);
      if (this.#partial.length > MAX_PARTIAL) {
        this.#partial = "";
        this.#dropping = true;
      }
    }
    return events;
  }

  /** End of output: parse a final unterminated line and emit the pending group. */
  flush(): ScalarEvent[] {
    const events: ScalarEvent[] = [];
    if (!this.#dropping && this.#partial !== "") {
      this.#lineNo++;
      this.#line(this.#partial, events);
    }
    this.#partial = "";
    this.#dropping = false;
    this.#emit(events);
    this.#step = undefined;
    return events;
  }

  #line(raw: string, events: ScalarEvent[]): void {
    const line = raw.trim();
    if (line.startsWith("{") && line.endsWith("}")) {
      const dict = parsePythonDict(line);
      if (dict) {
        this.#emit(events);
        const { step, ...metrics } = dict;
        const ev: ScalarEvent = { metrics, line: this.#lineNo };
        if (step !== undefined && Number.isSafeInteger(step) && step >= 0) ev.step = step;
        else if (step !== undefined) ev.metrics.step = step;
        events.push(ev);
        return;
      }
    }
    const step = STEP_RE.exec(line);
    if (step) {
      const n = Number(step[1]);
      if (!Number.isSafeInteger(n)) return;
      this.#emit(events);
      this.#step = n;
      return;
    }
    const m = SCALAR_RE.exec(line);
    if (!m) return;
    const key = m[1]!;
    const value = parseScalarValue(m[2]!);
    let lineStep: number | undefined;
    if (m[3] !== undefined) {
      lineStep = Number(m[3]);
      if (!Number.isSafeInteger(lineStep)) return;
    }
    if (key === "step") return; // `step: 1.5` or `step: x (step n)`: not a valid step line.
    if (lineStep !== undefined && lineStep !== this.#step) {
      this.#emit(events);
      this.#step = lineStep;
    } else if (this.#metrics.has(key)) {
      this.#emit(events);
      this.#step = lineStep;
    }
    this.#metrics.set(key, value);
    this.#groupLine = this.#lineNo;
  }

  #emit(events: ScalarEvent[]): void {
    if (this.#metrics.size === 0) return;
    const event: ScalarEvent = {
      metrics: Object.fromEntries(this.#metrics),
      line: this.#groupLine,
    };
    if (this.#step !== undefined) event.step = this.#step;
    events.push(event);
    this.#metrics = new Map();
  }
}

const DICT_ITEM_RE =
  /^\s*(['"])([^'"\\]+)\1\s*:\s*([+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity))\s*$/i;

/**
 * A logged dict as Hugging Face's Trainer prints it (Python literal syntax):
 * `{'loss': 0.69, 'learning_rate': 5e-05, 'epoch': 1.0}`. Keys are quoted strings, values
 * numbers (`nan`, `inf` too); anything else (nested values, strings, booleans) makes it not a
 * metrics dict. Null when it is not one.
 */
export function parsePythonDict(text: string): Record<string, number> | null {
  const body = text.trim().slice(1, -1);
  if (!body.trim()) return null;
  const out: Record<string, number> = {};
  for (const item of body.split(",")) {
    const m = DICT_ITEM_RE.exec(item);
    if (!m) return null;
    out[m[2]!] = parseScalarValue(m[3]!);
  }
  return out;
}

function parseScalarValue(text: string): number {
  const lower = text.toLowerCase();
  const sign = lower.startsWith("-") ? -1 : 1;
  const body = lower.replace(/^[+-]/, "");
  if (body === "nan") return NaN;
  if (body === "inf" || body === "infinity") return sign * Infinity;
  return Number(text);
}
