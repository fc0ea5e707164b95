/**
 * Filters and sort keys of `rep ls` and the viewer's search: `-f "name op value"` and
 * `-s key[-desc|-asc]`.
 *
 * A name is a field (`status`, `created`, `user`, `host`, `command`, `name`, `tag`, `note`,
 * `step`, `exit_code`, `id`), a param, or a metric. A plain metric name reads the best checkpoint
 * (the latest when there is no primary metric); `latest.NAME` reads the latest checkpoint,
 * `any.NAME` matches when any checkpoint matches. `params.NAME` and `best.NAME` pick the param or
 * the metric when both exist. Names are checked against the repository's params and metrics, and
 * values against what the name holds (numbers, text, true/false, statuses), so a typo is an error
 * that lists what is valid, not an empty list.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { CheckpointRecord } from "../format/records.ts";
import type { CheckpointBrief, ExperimentView } from "./views.ts";

/** Comparison operators. `~` means "contains" (strings). */
export type Op = "=" | "!=" | "<" | "<=" | ">" | ">=" | "~";

/** The operators, as listed in errors and help. */
export const OPS: readonly Op[] = ["=", "!=", "<", "<=", ">", ">=", "~"];

/** A typed filter value: int → float → bool → string. */
export type Value = number | boolean | string;

/** Fields every experiment has. */
export const FIELDS = [
  "status",
  "created",
  "user",
  "host",
  "command",
  "name",
  "tag",
  "note",
  "step",
  "exit_code",
  "id",
] as const;
/** A field name. */
export type Field = typeof FIELDS[number];

/** The statuses an experiment can have. */
export const STATUSES = ["running", "succeeded", "failed", "stopped", "crashed"] as const;

/** Which checkpoint a metric is read from. */
export type Scope = "best" | "latest" | "any";

/** What a name refers to. */
export type Key =
  | { kind: "field"; name: Field }
  | { kind: "param"; name: string }
  | { kind: "metric"; name: string; scope: Scope };

/** A parsed, not yet resolved, filter. */
export interface ParsedFilter {
  /** The filter as typed. */
  text: string;
  name: string;
  op: Op;
  /** The value text, quotes removed. */
  raw: string;
  value: Value;
  /** True when the value was quoted (a string, whatever it looks like). */
  quoted?: boolean;
}

/** A filter ready to test experiments. */
export interface Filter extends ParsedFilter {
  key: Key;
  /** For `created`: the time the value stands for (ms since the epoch). */
  time?: number;
}

/** Value types seen for a param or metric name: bits 1 number, 2 string, 4 boolean. */
export const TYPE_NUMBER = 1;
/** See {@link TYPE_NUMBER}. */
export const TYPE_STRING = 2;
/** See {@link TYPE_NUMBER}. */
export const TYPE_BOOLEAN = 4;

/** Param and metric names present in a repository, with the value types seen for each. */
export interface Names {
  params: Map<string, number>;
  metrics: Map<string, number>;
}

const OP_RE = /^\s*([^\s=!<>~]+)\s*(!=|<=|>=|==|=|<|>|~)\s*(.*?)\s*$/s;
const OP_CHARS = /^[=!<>~]+/;

/** Type a value as int → float → bool → string (quotes force a string). */
export function typeValue(raw: string): { raw: string; value: Value; quoted?: boolean } {
  const q = raw.match(/^"(.*)"$|^'(.*)'$/s);
  if (q) {
    const s = q[1] ?? q[2] ?? "";
    return { raw: s, value: s, quoted: true };
  }
  if (/^[-+]?\d+$/.test(raw)) return { raw, value: Number(raw) };
  if (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(raw)) return { raw, value: Number(raw) };
  if (raw === "true" || raw === "false") return { raw, value: raw === "true" };
  return { raw, value: raw };
}

const OPS_HINT = `Operators: ${OPS.join(" ")} (~ means contains). ` +
  'Example: rep ls -f "accuracy > 0.9" -f "status = succeeded"';

/**
 * Parse `"name op value"`.
 *
 * @example
 * ```ts
 * import { parseFilter } from "./filter.ts";
 * parseFilter("lr >= 0.01"); // { name: "lr", op: ">=", value: 0.01, … }
 * ```
 */
export function parseFilter(text: string): ParsedFilter {
  const m = text.match(OP_RE);
  if (!m || m[3] === "") {
    throw new UsageError(
      `Invalid filter "${text}": expected "name op value" with op one of ${OPS.join(" ")}`,
      OPS_HINT,
    );
  }
  // `loss << 0.1`, `lr => 1`: the operator runs on into the value.
  const more = m[3]!.match(OP_CHARS);
  if (more) {
    throw new UsageError(
      `Invalid filter "${text}": unknown operator "${m[2]}${more[0]}"`,
      OPS_HINT,
    );
  }
  const op = (m[2] === "==" ? "=" : m[2]) as Op;
  return { text, name: m[1]!, op, ...typeValue(m[3]!) };
}

const TYPE_BITS: Record<string, number> = {
  number: TYPE_NUMBER,
  string: TYPE_STRING,
  boolean: TYPE_BOOLEAN,
};

/** The param and metric names of `views`, with types (metrics of every checkpoint). */
export function namesOf(views: ExperimentView[]): Names {
  const params = new Map<string, number>();
  const metrics = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, v: unknown) => {
    const items = Array.isArray(v) ? v : [v]; // a list param holds its items' types
    for (const x of items) m.set(k, (m.get(k) ?? 0) | (TYPE_BITS[typeof x] ?? 0));
  };
  for (const v of views) {
    for (const [k, x] of Object.entries(v.params)) add(params, k, x);
    for (const c of v.checkpoints) {
      for (const [k, x] of Object.entries(c.metrics)) add(metrics, k, x);
    }
  }
  return { params, metrics };
}

/** The "valid names are …" text of an unknown-name error. */
export function validNames(names: Names): string {
  const list = (s: Map<string, number>) => s.size ? [...s.keys()].sort().join(", ") : "(none)";
  return `Valid names: ${FIELDS.join(", ")}; params: ${list(names.params)}; metrics: ${
    list(names.metrics)
  } (best checkpoint; prefix latest. or any. for the latest or any checkpoint, ` +
    "params. or best. to pick a param or a metric of the same name)";
}

/**
 * Resolve a name to a field, param or metric. `names` null skips the check that the param or
 * metric exists (an empty repository).
 */
export function resolveKey(name: string, names: Names | null, what = "filter"): Key {
  if ((FIELDS as readonly string[]).includes(name)) return { kind: "field", name: name as Field };
  const unknown = (): never => {
    throw new UsageError(
      `Unknown ${what} name "${name}": no field, param or metric has that name`,
      names ? validNames(names) : `Valid fields: ${FIELDS.join(", ")}`,
    );
  };
  const dot = name.indexOf(".");
  const prefix = dot > 0 ? name.slice(0, dot) : "";
  const rest = name.slice(dot + 1);
  if (prefix === "params" || prefix === "param") {
    if (names && !names.params.has(rest)) unknown();
    return { kind: "param", name: rest };
  }
  if (prefix === "best" || prefix === "latest" || prefix === "any" || prefix === "metrics") {
    // `latest.step` is the checkpoint's step, unless a metric is called "step".
    if (names && !names.metrics.has(rest) && rest !== "step") unknown();
    return { kind: "metric", name: rest, scope: prefix === "metrics" ? "best" : prefix };
  }
  if (!names || names.params.has(name)) return { kind: "param", name };
  if (names.metrics.has(name)) return { kind: "metric", name, scope: "best" };
  return unknown();
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400 };

/** Parse a `created` value: an ISO date/time, or an age such as `30m`, `12h`, `7d`, `2w`. */
export function parseTime(raw: string, now: number): number {
  const rel = raw.match(/^(\d+(?:\.\d+)?)\s*([smhdw])$/);
  if (rel) return now - Number(rel[1]) * UNITS[rel[2]!]! * 1000;
  const t = /^\d{4}-\d{2}-\d{2}$/.test(raw) ? Date.parse(raw + "T00:00:00Z") : Date.parse(raw);
  if (Number.isNaN(t)) {
    throw new UsageError(
      `Invalid time "${raw}": expected an ISO date such as 2024-05-01, or an age such as 7d`,
      'Example: rep ls -f "created > 7d" (started in the last 7 days)',
    );
  }
  return t;
}

function typeNames(bits: number): string {
  const out: string[] = [];
  if (bits & TYPE_NUMBER) out.push("a number");
  if (bits & TYPE_STRING) out.push("text");
  if (bits & TYPE_BOOLEAN) out.push("true/false");
  return out.join(" or ") || "no value";
}

/** Check that a filter's operator and value fit what its name holds; throws a UsageError. */
function checkTypes(f: Filter, names: Names | null): void {
  const fail = (why: string, hint: string): never => {
    throw new UsageError(`Invalid filter "${f.text}": ${why}`, hint);
  };
  const key = f.key;
  const ordering = f.op !== "=" && f.op !== "!=" && f.op !== "~";
  if (key.kind === "field") {
    switch (key.name) {
      case "status":
        if (ordering) fail("status takes = != or ~", `Example: rep ls -f "status = succeeded"`);
        if (f.op !== "~" && !(STATUSES as readonly string[]).includes(f.raw)) {
          fail(`"${f.raw}" is not a status`, `Statuses: ${STATUSES.join(", ")}`);
        }
        return;
      case "step":
      case "exit_code":
        if (f.op !== "~" && (typeof f.value !== "number" || f.quoted)) {
          fail(
            `${key.name} is a number, and "${f.raw}" is not`,
            `Example: rep ls -f "${key.name} >= 100"`,
          );
        }
        return;
      case "id":
        if (!/^[0-9a-fA-F]+$/.test(f.raw)) {
          fail(
            `"${f.raw}" is not an id prefix (ids are hexadecimal)`,
            'Example: rep ls -f "id = a1b2"',
          );
        }
        return;
      default:
        return;
    }
  }
  if (!names || f.op === "~") return;
  const bits = key.kind === "param"
    ? names.params.get(key.name)
    : key.name === "step" && !names.metrics.has("step")
    ? TYPE_NUMBER
    : names.metrics.get(key.name);
  if (!bits) return; // only null values seen: anything may match nothing
  const what = `${key.name} (${key.kind === "param" ? "param" : "metric"}) holds ${
    typeNames(bits)
  }`;
  const v = f.quoted ? f.raw : f.value;
  const fits = (typeof v === "number" && bits & TYPE_NUMBER) ||
    (typeof v === "boolean" && bits & TYPE_BOOLEAN) ||
    (bits & TYPE_STRING) !== 0;
  if (!fits) {
    const example = bits & TYPE_NUMBER ? `${key.name} < 0.5` : `${key.name} = true`;
    fail(`${what}, and "${f.raw}" is not one of those`, `Example: rep ls -f "${example}"`);
  }
  if (ordering && typeof v === "boolean") {
    fail(`${f.op} does not apply to true/false`, `Use = or !=: rep ls -f "${key.name} = ${f.raw}"`);
  }
}

/**
 * Resolve parsed filters against the repository's names (or those of `views`); `null` (an empty
 * repository) checks nothing.
 */
export function compileFilters(
  texts: string[],
  names: Names | ExperimentView[] | null,
  now: number = Date.now(),
): Filter[] {
  const known = Array.isArray(names)
    ? (names.length && texts.length ? namesOf(names) : null)
    : names;
  return texts.map((t) => {
    const p = parseFilter(t);
    const key = resolveKey(p.name, known);
    const f: Filter = { ...p, key };
    if (key.kind === "field" && key.name === "created") f.time = parseTime(p.raw, now);
    checkTypes(f, known);
    return f;
  });
}

/** True when a filter needs every checkpoint of the experiments (`any.NAME`). */
export function needsCheckpoints(filters: Filter[]): boolean {
  return filters.some((f) => f.key.kind === "metric" && f.key.scope === "any");
}

function metricOf(c: CheckpointBrief | CheckpointRecord | null, name: string): unknown {
  if (!c) return undefined;
  if (name === "step" && !("step" in c.metrics)) return c.step ?? undefined;
  return c.metrics[name];
}

/** The value a key has for an experiment (`undefined` when it has none). `any` reads the best. */
export function valueOf(view: ExperimentView, key: Key): unknown {
  switch (key.kind) {
    case "param":
      return view.params[key.name];
    case "metric":
      return metricOf(
        key.scope === "latest" ? view.latestBrief : view.bestBrief ?? view.latestBrief,
        key.name,
      );
    case "field":
      switch (key.name) {
        case "status":
          return view.status;
        case "created":
          return Date.parse(view.created);
        case "user":
          return view.user;
        case "host":
          return view.host;
        case "command":
          return view.record.command.join(" ");
        case "name":
          return view.name ?? undefined;
        case "tag":
          return view.tags.join(",");
        case "note":
          return view.note ?? undefined;
        case "step":
          return view.latestBrief?.step ?? undefined;
        case "exit_code":
          return view.statusRecord?.exit_code ?? undefined;
        case "id":
          return view.id;
      }
  }
}

/** Compare an actual value with a filter's value. Missing values never match. */
export function compare(actual: unknown, op: Op, value: Value, raw: string): boolean {
  if (actual === undefined || actual === null) return false;
  if (Array.isArray(actual)) return compareList(actual, op, value, raw);
  if (op === "~") return String(actual).includes(raw);
  if (op === "=" || op === "!=") {
    const eq = typeof actual === "string" ? actual === raw : actual === value;
    return op === "=" ? eq : !eq;
  }
  let a: number | string;
  let b: number | string;
  if (typeof actual === "number" && typeof value === "number") [a, b] = [actual, value];
  else if (typeof actual === "string" && typeof value !== "boolean") [a, b] = [actual, raw];
  else return false;
  if (typeof a === "number" && Number.isNaN(a)) return false;
  switch (op) {
    case "<":
      return a < b;
    case "<=":
      return a <= b;
    case ">":
      return a > b;
    case ">=":
      return a >= b;
  }
}

/**
 * A list param (`--layers 64 128`) matches `=` when it holds the value, `!=` when it does not,
 * `~` when its items joined by commas contain the text, and `<`… when any item does.
 */
function compareList(items: unknown[], op: Op, value: Value, raw: string): boolean {
  if (op === "~") return items.join(",").includes(raw);
  if (op === "!=") return !items.some((x) => compare(x, "=", value, raw));
  return items.some((x) => compare(x, op, value, raw));
}

/** True when `view` passes `filter`. */
export function matches(view: ExperimentView, f: Filter): boolean {
  const key = f.key;
  const value = f.quoted ? f.raw : f.value;
  if (key.kind === "metric" && key.scope === "any") {
    return view.checkpoints.some((c) => compare(metricOf(c, key.name), f.op, value, f.raw));
  }
  if (key.kind === "field") {
    if (key.name === "tag") {
      const tags = view.tags;
      if (f.op === "=") return tags.includes(f.raw);
      if (f.op === "!=") return !tags.includes(f.raw);
      if (f.op === "~") return tags.some((t) => t.includes(f.raw));
      return tags.some((t) => compare(t, f.op, value, f.raw));
    }
    if (key.name === "created") {
      const created = view.created;
      if (/^\d{4}-\d{2}-\d{2}$/.test(f.raw) && (f.op === "=" || f.op === "!=")) {
        return (created.slice(0, 10) === f.raw) === (f.op === "=");
      }
      if (f.op === "~") return created.includes(f.raw);
      return compare(Date.parse(created), f.op, f.time!, f.raw);
    }
    if (key.name === "id" && (f.op === "=" || f.op === "!=")) {
      return view.id.startsWith(f.raw.toLowerCase()) === (f.op === "=");
    }
  }
  return compare(valueOf(view, key), f.op, value, f.raw);
}

/** A parsed `-s` option. */
export interface Sort {
  key: Key;
  desc: boolean;
}

/** Parse `key[-desc|-asc]` (default: ascending), names checked against `names` (or `views`). */
export function parseSort(spec: string, names: Names | ExperimentView[] | null): Sort {
  const m = spec.match(/^(.*?)(?:-(desc|asc))?$/s)!;
  const name = m[1]!;
  if (name === "") {
    throw new UsageError(`Invalid sort "${spec}": no key`, "Example: rep ls -s accuracy-desc");
  }
  // Plain fields need no names (scanning them costs at 100k experiments).
  const isField = (FIELDS as readonly string[]).includes(name);
  const known = isField
    ? null
    : Array.isArray(names)
    ? (names.length ? namesOf(names) : null)
    : names;
  const key = resolveKey(name, known, "sort");
  if (key.kind === "metric" && key.scope === "any") {
    throw new UsageError(
      `Cannot sort by "${name}": any. only applies to filters`,
      `Sort by best.${key.name} or latest.${key.name}`,
    );
  }
  return { key, desc: m[2] === "desc" };
}

function rank(v: unknown): number {
  if (typeof v === "number" && !Number.isNaN(v)) return 0;
  if (typeof v === "boolean") return 1;
  if (typeof v === "string") return 2;
  return 3;
}

/**
 * Compare two sort values: numbers, then booleans, then strings; a missing value (or NaN) goes
 * last whatever the direction.
 */
export function compareSortValues(a: unknown, b: unknown, desc: boolean): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb || ra === 3) return ra - rb;
  const c = ra === 0
    ? (a as number) - (b as number)
    : String(a) < String(b)
    ? -1
    : String(a) > String(b)
    ? 1
    : 0;
  return desc ? -c : c;
}

/** True when `sort` is by creation time (the order the index lists in). */
export function isCreatedSort(sort: Sort): boolean {
  return sort.key.kind === "field" && sort.key.name === "created";
}

/** Sort views in place; experiments without a value go last whatever the direction. */
export function sortViews(views: ExperimentView[], sort: Sort): ExperimentView[] {
  // created-desc is the listing's own order: nothing to do when they are in it already.
  if (isCreatedSort(sort) && sort.desc) {
    let sorted = true;
    for (let i = 1; i < views.length && sorted; i++) {
      sorted = views[i - 1]!.created >= views[i]!.created;
    }
    if (sorted) return views;
  }
  const vals = new Map(views.map((v) => [v, valueOf(v, sort.key)]));
  return views.sort((x, y) => compareSortValues(vals.get(x), vals.get(y), sort.desc));
}
