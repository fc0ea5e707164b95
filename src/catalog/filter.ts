/**
 * Filters and sort keys of `rep ls` and the viewer's search: `-f "name op value"` and
 * `-s key[-desc|-asc]`.
 *
 * A name is a field (`status`, `created`, `user`, `host`, `command`, `tag`, `step`, `exit_code`,
 * `id`), a param, or a metric. A plain metric name reads the best checkpoint (the latest when there
 * is no primary metric); `latest.NAME` reads the latest checkpoint, `any.NAME` matches when any
 * checkpoint matches. `params.NAME` and `best.NAME` pick the param or the metric when both exist.
 * Names are checked against the listed experiments so a typo is an error, not an empty list.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { CheckpointRecord } from "../format/records.ts";
import type { ExperimentView } from "./views.ts";

/** Comparison operators. `~` means "contains" (strings). */
export type Op = "=" | "!=" | "<" | "<=" | ">" | ">=" | "~";

/** A typed filter value: int → float → bool → string. */
export type Value = number | boolean | string;

/** Fields every experiment has. */
export const FIELDS = [
  "status",
  "created",
  "user",
  "host",
  "command",
  "tag",
  "step",
  "exit_code",
  "id",
] as const;
/** A field name. */
export type Field = typeof FIELDS[number];

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
}

/** A filter ready to test experiments. */
export interface Filter extends ParsedFilter {
  key: Key;
  /** For `created`: the time the value stands for (ms since the epoch). */
  time?: number;
}

/** Param and metric names present in a list of experiments. */
export interface Names {
  params: Set<string>;
  metrics: Set<string>;
}

const OP_RE = /^\s*([^\s=!<>~]+)\s*(!=|<=|>=|==|=|<|>|~)\s*(.*?)\s*$/s;

/** Type a value as int → float → bool → string (quotes force a string). */
export function typeValue(raw: string): { raw: string; value: Value } {
  const q = raw.match(/^"(.*)"$|^'(.*)'$/s);
  if (q) {
    const s = q[1] ?? q[2] ?? "";
    return { raw: s, value: s };
  }
  if (/^[-+]?\d+$/.test(raw)) return { raw, value: Number(raw) };
  if (/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(raw)) return { raw, value: Number(raw) };
  if (raw === "true" || raw === "false") return { raw, value: raw === "true" };
  return { raw, value: raw };
}

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
      `Invalid filter "${text}": expected "name op value" with op one of = != < <= > >= ~`,
      'Example: rep ls -f "accuracy > 0.9" -f "status = succeeded"',
    );
  }
  const op = (m[2] === "==" ? "=" : m[2]) as Op;
  return { text, name: m[1]!, op, ...typeValue(m[3]!) };
}

/** The param and metric names of `views` (metrics of every checkpoint). */
export function namesOf(views: ExperimentView[]): Names {
  const params = new Set<string>();
  const metrics = new Set<string>();
  for (const v of views) {
    for (const k of Object.keys(v.record.params)) params.add(k);
    for (const c of v.checkpoints) for (const k of Object.keys(c.metrics)) metrics.add(k);
  }
  return { params, metrics };
}

/** The "valid names are …" text of an unknown-name error. */
export function validNames(names: Names): string {
  const list = (s: Set<string>) => s.size ? [...s].sort().join(", ") : "(none)";
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

/** Resolve parsed filters against the names present in `views`. */
export function compileFilters(
  texts: string[],
  views: ExperimentView[],
  now = Date.now(),
): Filter[] {
  const names = views.length && texts.length ? namesOf(views) : null;
  return texts.map((t) => {
    const p = parseFilter(t);
    const key = resolveKey(p.name, names);
    const f: Filter = { ...p, key };
    if (key.kind === "field" && key.name === "created") f.time = parseTime(p.raw, now);
    return f;
  });
}

function metricOf(c: CheckpointRecord | null, name: string): unknown {
  if (!c) return undefined;
  if (name === "step" && !("step" in c.metrics)) return c.step ?? undefined;
  return c.metrics[name];
}

/** The value a key has for an experiment (`undefined` when it has none). `any` reads the best. */
export function valueOf(view: ExperimentView, key: Key): unknown {
  switch (key.kind) {
    case "param":
      return view.record.params[key.name];
    case "metric":
      return metricOf(key.scope === "latest" ? view.latest : view.best ?? view.latest, key.name);
    case "field":
      switch (key.name) {
        case "status":
          return view.status;
        case "created":
          return Date.parse(view.record.created);
        case "user":
          return view.record.user;
        case "host":
          return view.record.host;
        case "command":
          return view.record.command.join(" ");
        case "tag":
          return view.record.tags.join(",");
        case "step":
          return view.latest?.step ?? undefined;
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

/** True when `view` passes `filter`. */
export function matches(view: ExperimentView, f: Filter): boolean {
  const key = f.key;
  if (key.kind === "metric" && key.scope === "any") {
    return view.checkpoints.some((c) => compare(metricOf(c, key.name), f.op, f.value, f.raw));
  }
  if (key.kind === "field") {
    if (key.name === "tag") {
      const tags = view.record.tags;
      if (f.op === "=") return tags.includes(f.raw);
      if (f.op === "!=") return !tags.includes(f.raw);
      if (f.op === "~") return tags.some((t) => t.includes(f.raw));
      return tags.some((t) => compare(t, f.op, f.value, f.raw));
    }
    if (key.name === "created") {
      const created = view.record.created;
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
  return compare(valueOf(view, key), f.op, f.value, f.raw);
}

/** A parsed `-s` option. */
export interface Sort {
  key: Key;
  desc: boolean;
}

/** Parse `key[-desc|-asc]` (default: ascending). */
export function parseSort(spec: string, views: ExperimentView[]): Sort {
  const m = spec.match(/^(.*?)(?:-(desc|asc))?$/s)!;
  const name = m[1]!;
  if (name === "") {
    throw new UsageError(`Invalid sort "${spec}": no key`, "Example: rep ls -s accuracy-desc");
  }
  // Plain fields need no scan of every param and metric name (that costs at 10k experiments).
  const isField = (FIELDS as readonly string[]).includes(name);
  const key = resolveKey(name, views.length && !isField ? namesOf(views) : null, "sort");
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

/** Sort views in place; experiments without a value go last whatever the direction. */
export function sortViews(views: ExperimentView[], sort: Sort): ExperimentView[] {
  const vals = new Map(views.map((v) => [v, valueOf(v, sort.key)]));
  return views.sort((x, y) => {
    const a = vals.get(x);
    const b = vals.get(y);
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
    return sort.desc ? -c : c;
  });
}
