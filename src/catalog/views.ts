/**
 * What a reader sees of an experiment: its records with the changes applied (tags, notes,
 * removed checkpoints left out) and derived state (status of the newest attempt, best and latest
 * checkpoints). Views over the local index parse each column only when it is first read, so a
 * listing of many experiments touches only what it shows.
 *
 * @module
 */
import type {
  AttemptRecord,
  CheckpointRecord,
  ExperimentRecord,
  Heartbeat,
  ParamValue,
  PrimaryMetric,
  Status,
  StatusRecord,
} from "../format/records.ts";
import {
  type AttemptState,
  brief,
  type CheckpointBrief,
  type ExperimentRow,
  SAME_AS_BEST,
} from "./index_db.ts";
import { bestCheckpoint, compareCheckpoints } from "./order.ts";
import type { Visibility } from "./visibility.ts";

export { bestCheckpoint, compareCheckpoints };
export type { CheckpointBrief };

/** One attempt of an experiment: attempt 1 is the experiment's start, n ≥ 2 a resume. */
export interface AttemptView {
  attempt: number;
  created: string;
  host: string;
  user: string;
  status: Status;
  /** How it ended, or null while it runs (or when it crashed). */
  statusRecord: StatusRecord | null;
  /** The attempt record (null for attempt 1, whose record is the experiment's). */
  record: AttemptRecord | null;
}

/** An experiment as listed. */
export interface ExperimentView {
  readonly id: string;
  /** Its human name, or null. */
  readonly name: string | null;
  readonly created: string;
  readonly host: string;
  readonly user: string;
  readonly params: Record<string, ParamValue>;
  readonly primaryMetric: PrimaryMetric | null;
  /** Tags: the record's, then `rep tag` changes applied. */
  readonly tags: string[];
  /** Note: the newest `rep note`, else the record's. */
  readonly note: string | null;
  /** Status of the newest attempt. */
  readonly status: Status;
  /** How the newest attempt ended (null while it runs, or when it crashed). */
  readonly statusRecord: StatusRecord | null;
  readonly heartbeat: Heartbeat | null;
  /** Every attempt, oldest first (one unless the experiment was resumed). */
  readonly attempts: AttemptView[];
  /** Checkpoints not removed. */
  readonly numCheckpoints: number;
  readonly bestBrief: CheckpointBrief | null;
  readonly latestBrief: CheckpointBrief | null;
  /**
   * The experiment record, with `tags` and `note` as above. Listings keep it without
   * `provenance` (see {@link Catalog.withFullRecord}).
   */
  readonly record: ExperimentRecord;
  /** Best checkpoint by the primary metric; null without one. */
  readonly best: CheckpointRecord | null;
  /** The most recent checkpoint. */
  readonly latest: CheckpointRecord | null;
  /** Every checkpoint not removed, oldest first. */
  readonly checkpoints: CheckpointRecord[];
  /** Records that could not be read: key → reason. */
  readonly corrupt: Record<string, string>;
}

/** What an id prefix or name resolved to. */
export type Resolved =
  | { kind: "experiment"; experiment: ExperimentView }
  | { kind: "checkpoint"; experiment: ExperimentView; checkpoint: CheckpointRecord };

/** How stale a heartbeat may be before its attempt counts as crashed. */
export function heartbeatDeadline(hb: Heartbeat): number {
  return Date.parse(hb.updated) + (hb.interval * 3 + 30) * 1000;
}

/**
 * The status of an attempt: its status record, else running while its heartbeat is fresh (or, with
 * no heartbeat, for two minutes after it started), else crashed.
 */
export function attemptStatus(
  final: StatusRecord | null,
  heartbeat: Heartbeat | null,
  started: string,
  now: number,
): Status {
  if (final) return final.status;
  if (heartbeat) return heartbeatDeadline(heartbeat) >= now ? "running" : "crashed";
  return Date.parse(started) + 120_000 >= now ? "running" : "crashed";
}

/** Plain data to build a view from (tests, and readers that hold records in memory). */
export interface ViewData {
  record: ExperimentRecord;
  checkpoints: CheckpointRecord[];
  status?: StatusRecord | null;
  attempts?: AttemptState[];
  heartbeat?: Heartbeat | null;
  corrupt?: Record<string, string>;
}

function attemptsOf(
  record: Pick<ExperimentRecord, "created" | "host" | "user">,
  status1: StatusRecord | null,
  later: AttemptState[],
  heartbeat: Heartbeat | null,
  now: number,
): AttemptView[] {
  const newest = later.reduce((n, a) => Math.max(n, a.attempt), 1);
  const hbFor = (n: number) => heartbeat && (heartbeat.attempt ?? 1) === n ? heartbeat : null;
  const out: AttemptView[] = [{
    attempt: 1,
    created: record.created,
    host: record.host,
    user: record.user,
    // An attempt that was resumed without a status of its own was cut short: crashed.
    status: status1?.status ??
      (newest > 1 ? "crashed" : attemptStatus(null, hbFor(1), record.created, now)),
    statusRecord: status1,
    record: null,
  }];
  for (const a of [...later].sort((x, y) => x.attempt - y.attempt)) {
    const created = a.record?.created ?? record.created;
    out.push({
      attempt: a.attempt,
      created,
      host: a.record?.host ?? "",
      user: a.record?.user ?? "",
      status: a.status?.status ??
        (a.attempt < newest ? "crashed" : attemptStatus(null, hbFor(a.attempt), created, now)),
      statusRecord: a.status,
      record: a.record,
    });
  }
  return out;
}

/** A view of plain records (checkpoints removed by `visibility` are left out). */
export function makeView(
  data: ViewData,
  now = Date.now(),
  visibility: Visibility | null = null,
): ExperimentView {
  const r = data.record;
  const removed = visibility?.removedCheckpoints;
  const checkpoints = [...data.checkpoints].filter((c) => !removed?.has(c.id)).sort(
    compareCheckpoints,
  );
  const attempts = attemptsOf(
    r,
    data.status ?? null,
    data.attempts ?? [],
    data.heartbeat ?? null,
    now,
  );
  const newest = attempts[attempts.length - 1]!;
  const best = bestCheckpoint(checkpoints, r.primary_metric);
  const latest = checkpoints[checkpoints.length - 1] ?? null;
  const tags = visibility ? visibility.tags(r.id, r.tags) : r.tags;
  const note = visibility ? visibility.note(r.id, r.note) : r.note;
  return {
    id: r.id,
    name: r.name,
    created: r.created,
    host: r.host,
    user: r.user,
    params: r.params,
    primaryMetric: r.primary_metric,
    tags,
    note,
    status: newest.status,
    statusRecord: newest.statusRecord,
    heartbeat: data.heartbeat ?? null,
    attempts,
    numCheckpoints: checkpoints.length,
    bestBrief: brief(best),
    latestBrief: brief(latest),
    record: { ...r, tags, note },
    best,
    latest,
    checkpoints,
    corrupt: data.corrupt ?? {},
  };
}

/** Columns a row view reads from the index when first used, unless its row has them. */
export type LazyColumn =
  | "params"
  | "primary_metric"
  | "status"
  | "heartbeat"
  | "best_brief"
  | "latest_brief"
  | "corrupt"
  | "record"
  | "best"
  | "latest";

/** Columns every row view is made with. */
export type BaseColumn = typeof BASE_COLUMNS[number];

/** The columns a row view needs from the start (small ones). */
export const BASE_COLUMNS = [
  "id",
  "created",
  "name",
  "host",
  "user",
  "num",
  "final",
  "pending",
  "attempts",
] as const;

/** Reads what a row view needs beyond the listing's columns, from the index, when first used. */
export interface RowLoader {
  /** An experiment's checkpoint records, oldest first. */
  checkpoints(experiment: string): CheckpointRecord[];
  /** A JSON column of a row. */
  column(experiment: string, name: LazyColumn): string | null;
}

function parseOrNull<T>(text: string | null): T | null {
  return text ? JSON.parse(text) : null;
}

/** A view over one row of the local index; JSON columns are parsed when first read. */
export class RowView implements ExperimentView {
  readonly id: string;
  readonly name: string | null;
  readonly created: string;
  readonly host: string;
  readonly user: string;
  readonly numCheckpoints: number;
  readonly #row: Pick<ExperimentRow, BaseColumn> & Partial<ExperimentRow>;
  readonly #vis: Visibility;
  readonly #now: number;
  readonly #load: RowLoader;
  #params?: Record<string, ParamValue>;
  #attempts?: AttemptView[];
  #record?: ExperimentRecord;
  #best?: CheckpointRecord | null;
  #latest?: CheckpointRecord | null;
  #bestBrief?: CheckpointBrief | null;
  #latestBrief?: CheckpointBrief | null;
  #checkpoints?: CheckpointRecord[];

  constructor(
    row: Pick<ExperimentRow, BaseColumn> & Partial<ExperimentRow>,
    visibility: Visibility,
    now: number,
    load: RowLoader,
  ) {
    this.#row = row;
    this.#vis = visibility;
    this.#now = now;
    this.#load = load;
    this.id = row.id;
    this.name = row.name;
    this.created = row.created;
    this.host = row.host;
    this.user = row.user;
    this.numCheckpoints = row.num;
  }

  get params(): Record<string, ParamValue> {
    return this.#params ??= JSON.parse(this.#col("params")!);
  }
  get primaryMetric(): PrimaryMetric | null {
    const v = this.#col("primary_metric");
    return v ? JSON.parse(v) : null;
  }
  get tags(): string[] {
    return this.record.tags;
  }
  get note(): string | null {
    return this.record.note;
  }
  get attempts(): AttemptView[] {
    if (!this.#attempts) {
      const row = this.#row;
      this.#attempts = attemptsOf(
        { created: row.created, host: row.host, user: row.user },
        parseOrNull(this.#col("status")),
        row.attempts ? JSON.parse(row.attempts) : [],
        this.heartbeat,
        this.#now,
      );
    }
    return this.#attempts;
  }
  get status(): Status {
    const row = this.#row;
    // The common case without parsing anything: one attempt that ended.
    if (row.final && !row.attempts) return row.final as Status;
    return this.attempts[this.attempts.length - 1]!.status;
  }
  get statusRecord(): StatusRecord | null {
    return this.attempts[this.attempts.length - 1]!.statusRecord;
  }
  get heartbeat(): Heartbeat | null {
    const v = this.#col("heartbeat");
    return v ? JSON.parse(v) : null;
  }
  get bestBrief(): CheckpointBrief | null {
    if (this.#bestBrief === undefined) {
      const v = this.#col("best_brief");
      this.#bestBrief = v ? JSON.parse(v) : null;
    }
    return this.#bestBrief!;
  }
  get latestBrief(): CheckpointBrief | null {
    if (this.#latestBrief === undefined) {
      const v = this.#col("latest_brief");
      this.#latestBrief = v === SAME_AS_BEST ? this.bestBrief : v ? JSON.parse(v) : null;
    }
    return this.#latestBrief!;
  }
  /** A column of the row: read with the row, else from the index when first used. */
  #col(name: LazyColumn): string | null {
    const row = this.#row as Partial<Record<LazyColumn, string | null>>;
    let v = row[name];
    if (v === undefined) row[name] = v = this.#load.column(this.id, name);
    return v;
  }
  #json(name: LazyColumn): string | null {
    return this.#col(name);
  }
  get record(): ExperimentRecord {
    if (!this.#record) {
      const r = JSON.parse(this.#json("record")!) as ExperimentRecord;
      r.tags = this.#vis.tags(r.id, r.tags);
      r.note = this.#vis.note(r.id, r.note);
      this.#record = r;
    }
    return this.#record;
  }
  get best(): CheckpointRecord | null {
    if (this.#best === undefined) {
      const v = this.#col("best_brief") ? this.#json("best") : null;
      this.#best = v ? JSON.parse(v) : null;
    }
    return this.#best!;
  }
  get latest(): CheckpointRecord | null {
    if (this.#latest === undefined) {
      const brief = this.#col("latest_brief");
      if (brief === SAME_AS_BEST) return this.#latest = this.best;
      const v = brief ? this.#json("latest") : null;
      this.#latest = v ? JSON.parse(v) : null;
    }
    return this.#latest!;
  }
  get checkpoints(): CheckpointRecord[] {
    if (!this.#checkpoints) {
      if (this.#row.pending !== null) {
        throw new Error(
          `Internal error: the checkpoints of ${this.id} are not loaded (Catalog.list({ summary: true }) views do not have them)`,
        );
      }
      const removed = this.#vis.removedCheckpoints;
      this.#checkpoints = this.#load.checkpoints(this.id).filter((c) => !removed.has(c.id));
    }
    return this.#checkpoints;
  }
  get corrupt(): Record<string, string> {
    const v = this.#col("corrupt");
    return v ? JSON.parse(v) : {};
  }

  /** True when the checkpoint records are not in the local index yet (only the summary is). */
  get pending(): boolean {
    return this.#row.pending !== null;
  }

  /** For `console.log` and `JSON.stringify`: the parsed fields. */
  toJSON(): Record<string, unknown> {
    return {
      id: this.id,
      record: this.record,
      status: this.status,
      numCheckpoints: this.numCheckpoints,
      best: this.best,
      latest: this.latest,
    };
  }
}
