/**
 * The local listing index: a SQLite database (`node:sqlite`, built into the runtime) in the
 * per-user cache, one per repository URL. It holds every visible experiment's records, with what
 * a listing shows in columns of its own (params, best and latest checkpoint summaries), so that a
 * listing of 100k experiments reads one row each and never the checkpoint lists, and id prefixes
 * and names resolve by indexed queries.
 *
 * It is only a cache: deleting it loses nothing, and a database that cannot be opened, is corrupt
 * or has another schema is replaced. Records are written once in the repository, so a finished
 * experiment is never read again; `refresh.ts` decides what to read.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import type {
  AttemptRecord,
  CheckpointRecord,
  ExperimentRecord,
  Heartbeat,
  StatusRecord,
} from "../format/records.ts";
import { bestCheckpoint, compareCheckpoints } from "./order.ts";

/** Bump when the schema changes: an index of another version is rebuilt from the repository. */
export const SCHEMA_VERSION = 4;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY NOT NULL, v TEXT);
CREATE TABLE IF NOT EXISTS experiments (
  id TEXT PRIMARY KEY NOT NULL,
  created TEXT NOT NULL,
  name TEXT,
  host TEXT NOT NULL,
  user TEXT NOT NULL,
  params TEXT NOT NULL,
  primary_metric TEXT,
  record TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  attempts TEXT,
  status TEXT,
  final TEXT,
  heartbeat TEXT,
  finished INTEGER NOT NULL,
  pending TEXT,
  num INTEGER NOT NULL,
  best TEXT,
  latest TEXT,
  best_brief TEXT,
  latest_brief TEXT,
  keys TEXT,
  corrupt TEXT
);
CREATE INDEX IF NOT EXISTS experiments_by_created ON experiments
  (created, id, name, host, user, num, final, pending, attempts);
CREATE INDEX IF NOT EXISTS experiments_by_name ON experiments (name);
CREATE INDEX IF NOT EXISTS experiments_unfinished ON experiments (id) WHERE finished = 0;
CREATE TABLE IF NOT EXISTS checkpoints (
  id TEXT PRIMARY KEY NOT NULL,
  experiment TEXT NOT NULL,
  record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_by_experiment ON checkpoints (experiment);
CREATE TABLE IF NOT EXISTS folders (id TEXT PRIMARY KEY NOT NULL, keys TEXT, corrupt TEXT);
CREATE TABLE IF NOT EXISTS names (
  kind TEXT NOT NULL, name TEXT NOT NULL, types INTEGER NOT NULL, PRIMARY KEY (kind, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (key TEXT PRIMARY KEY NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS segments (key TEXT PRIMARY KEY NOT NULL);
`;

const TABLES = ["experiments", "checkpoints", "folders", "names", "changes", "segments", "meta"];

/** An attempt n ≥ 2: its record and the status it ended with (null while it has none). */
export interface AttemptState {
  attempt: number;
  record: AttemptRecord | null;
  status: StatusRecord | null;
}

/** Everything read about one experiment. */
export interface ExperimentState {
  record: ExperimentRecord;
  checkpoints: CheckpointRecord[];
  /** The status of attempt 1 (`status.json`). */
  status: StatusRecord | null;
  attempts: AttemptState[];
  heartbeat: Heartbeat | null;
  /** Keys already read, with their sizes (kept only while the experiment is unfinished). */
  keys: Record<string, number>;
  /** Records that failed to parse: key → reason. */
  corrupt: Record<string, string>;
}

/** What a listing shows of a checkpoint. */
export interface CheckpointBrief {
  id: string;
  step: number | null;
  created: string;
  metrics: CheckpointRecord["metrics"];
  primary_metric: CheckpointRecord["primary_metric"];
  /** Files left out of it (torn or lost) plus its other warnings; 0 for a clean checkpoint. */
  warnings?: number;
}

/** A row of the experiments table, as stored (JSON columns unparsed). */
export interface ExperimentRow {
  id: string;
  created: string;
  name: string | null;
  host: string;
  user: string;
  params: string;
  primary_metric: string | null;
  record: string;
  attempt: number;
  attempts: string | null;
  status: string | null;
  final: string | null;
  heartbeat: string | null;
  finished: number;
  pending: string | null;
  num: number;
  best: string | null;
  latest: string | null;
  best_brief: string | null;
  latest_brief: string | null;
  keys: string | null;
  corrupt: string | null;
}

/**
 * The `latest` and `latest_brief` of a row whose latest checkpoint is its best one (read them from
 * `best` and `best_brief`).
 */
export const SAME_AS_BEST = "=";

/** The columns of a row a listing reads. */
export const LISTING_COLUMNS = [
  "id",
  "created",
  "name",
  "host",
  "user",
  "params",
  "primary_metric",
  "attempt",
  "attempts",
  "status",
  "final",
  "heartbeat",
  "pending",
  "num",
  "best_brief",
  "latest_brief",
  "corrupt",
] as const;

const ROW_COLUMNS = new Set<string>([
  ...LISTING_COLUMNS,
  "record",
  "finished",
  "best",
  "latest",
  "keys",
]);

/** A row as a listing reads it. */
export type ListingRow = Pick<ExperimentRow, typeof LISTING_COLUMNS[number]>;

/** How many things a checkpoint warns about: files left out, and warnings not about one of them. */
export function checkpointWarnings(c: Pick<CheckpointRecord, "torn" | "warnings">): number {
  const torn = c.torn ?? [];
  const other = (c.warnings ?? []).filter((w) => !torn.some((t) => w.startsWith(`${t}: `)));
  return torn.length + other.length;
}

/** A checkpoint summary as the listing shows it. */
export function brief(c: CheckpointRecord | null): CheckpointBrief | null {
  return c
    ? {
      id: c.id,
      step: c.step,
      created: c.created,
      metrics: c.metrics,
      primary_metric: c.primary_metric,
      warnings: checkpointWarnings(c),
    }
    : null;
}

/** The newest attempt's number and status record. */
export function newestAttempt(s: Pick<ExperimentState, "status" | "attempts">): {
  attempt: number;
  status: StatusRecord | null;
} {
  let attempt = 1;
  let status = s.status;
  for (const a of s.attempts) {
    if (a.attempt > attempt) {
      attempt = a.attempt;
      status = a.status;
    }
  }
  return { attempt, status };
}

const TYPE_BITS: Record<string, number> = { number: 1, string: 2, boolean: 4 };

/** The value types of params (a list param holds its items' types). */
export function paramTypes(params: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(params)) {
    const items: unknown[] = Array.isArray(v) ? v : [v];
    out[k] = items.reduce((b: number, x) => b | (TYPE_BITS[typeof x] ?? 0), 0);
  }
  return out;
}

/** Path of the index database of a repository URL under the cache root. */
export function indexDbPath(cacheRoot: string, url: string): string {
  const h = createHash("sha256").update(url).digest("hex").slice(0, 24);
  return join(cacheRoot, "index", `${h}.sqlite`);
}

/** SQLite's words for a file that is not a usable database (as opposed to a busy one). */
const UNUSABLE = /not a database|malformed|corrupt/i;

function openDb(path: string): DatabaseSync {
  const db = new DatabaseSync(path);
  try {
    // Other rep processes may use the same index at once: wait for their writes.
    db.exec("PRAGMA busy_timeout = 15000");
    // Rows of ~2 KB: larger pages waste less (a new database only; set before anything else).
    db.exec("PRAGMA page_size = 16384");
    if (path !== ":memory:") db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL");
    db.exec(SCHEMA);
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}

/** The local index of one repository. */
export class IndexDb {
  readonly db: DatabaseSync;
  readonly path: string;
  readonly #stmts = new Map<string, StatementSync>();

  private constructor(db: DatabaseSync, path: string) {
    this.db = db;
    this.path = path;
  }

  /**
   * Open (or create) the index at `path` for `url`; `null` keeps it in memory. An index that
   * cannot be used (corrupt, another schema, another URL) is replaced by an empty one, and one
   * that cannot be written (a read-only cache folder) by one in memory.
   */
  static open(path: string | null, url: string): IndexDb {
    if (path === null) return IndexDb.#fresh(openDb(":memory:"), ":memory:", url);
    let db: DatabaseSync;
    try {
      Deno.mkdirSync(join(path, ".."), { recursive: true });
      try {
        db = openDb(path);
      } catch (e) {
        // Only a file that is not a database is replaced; a busy one is never deleted under the
        // process using it.
        if (!(e instanceof Error && UNUSABLE.test(e.message))) throw e;
        for (const p of [path, `${path}-wal`, `${path}-shm`]) {
          try {
            Deno.removeSync(p);
          } catch { /* absent */ }
        }
        db = openDb(path);
      }
    } catch {
      return IndexDb.#fresh(openDb(":memory:"), ":memory:", url);
    }
    const index = new IndexDb(db, path);
    try {
      // Checked and cleared in one transaction: two processes opening a new index clear it once.
      index.transaction(() => {
        if (index.meta("version") !== String(SCHEMA_VERSION) || index.meta("url") !== url) {
          index.#clearAll(url);
        }
      });
    } catch {
      index.close();
      return IndexDb.#fresh(openDb(":memory:"), ":memory:", url);
    }
    return index;
  }

  static #fresh(db: DatabaseSync, path: string, url: string): IndexDb {
    const index = new IndexDb(db, path);
    index.#clear(url);
    return index;
  }

  #clear(url: string): void {
    this.transaction(() => this.#clearAll(url));
  }

  #clearAll(url: string): void {
    for (const t of TABLES) this.db.exec(`DELETE FROM ${t}`);
    this.setMeta("version", String(SCHEMA_VERSION));
    this.setMeta("url", url);
  }

  /** A prepared statement, cached. */
  stmt(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) this.#stmts.set(sql, s = this.db.prepare(sql));
    return s;
  }

  /** Run `fn` in one write transaction (all or nothing). */
  transaction<T>(fn: () => T): T {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const r = fn();
      this.db.exec("COMMIT");
      return r;
    } catch (e) {
      this.db.exec("ROLLBACK");
      throw e;
    }
  }

  /** A value of the meta table. */
  meta(k: string): string | null {
    const row = this.stmt("SELECT v FROM meta WHERE k = ?").get(k) as
      | { v: string | null }
      | undefined;
    return row?.v ?? null;
  }

  /** Set a value of the meta table. */
  setMeta(k: string, v: string | null): void {
    this.stmt("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)").run(k, v);
  }

  /** Forget every experiment (keeps the change objects read): the next refresh reads them again. */
  forgetExperiments(): void {
    this.transaction(() => {
      for (const t of ["experiments", "checkpoints", "folders", "names", "segments"]) {
        this.db.exec(`DELETE FROM ${t}`);
      }
      this.setMeta("folders_mark", null);
    });
  }

  // ---- experiments ------------------------------------------------------------------------------

  /** Every experiment id in the index, sorted (one query, whatever the count). */
  ids(): string[] {
    const r = this.stmt(
      "SELECT group_concat(id, ',') AS ids FROM (SELECT id FROM experiments ORDER BY id)",
    ).get() as { ids: string | null };
    return r.ids ? r.ids.split(",") : [];
  }

  /** The experiments still to be read again (not finished): id → newest attempt. */
  unfinished(): Map<string, number> {
    const rows = this.stmt("SELECT id, attempt FROM experiments WHERE finished = 0").all() as {
      id: string;
      attempt: number;
    }[];
    return new Map(rows.map((r) => [r.id, r.attempt]));
  }

  /** Whether an experiment is finished, its newest attempt, whether only its summary is here. */
  stateOf(id: string): { finished: boolean; attempt: number; pending: boolean } | null {
    const r = this.stmt(
      "SELECT finished, attempt, pending IS NOT NULL AS p FROM experiments WHERE id = ?",
    ).get(id) as { finished: number; attempt: number; p: number } | undefined;
    return r ? { finished: r.finished === 1, attempt: r.attempt, pending: r.p === 1 } : null;
  }

  /** Folders under `experiments/` that hold no readable experiment record (yet), with their keys. */
  folders(): Map<string, { keys: Record<string, number>; corrupt: Record<string, string> }> {
    const out = new Map<
      string,
      { keys: Record<string, number>; corrupt: Record<string, string> }
    >();
    for (
      const r of this.stmt("SELECT id, keys, corrupt FROM folders").all() as unknown as FolderRow[]
    ) {
      out.set(r.id, { keys: JSON.parse(r.keys ?? "{}"), corrupt: JSON.parse(r.corrupt ?? "{}") });
    }
    return out;
  }

  /** Remember a folder without a readable experiment record. */
  putFolder(id: string, keys: Record<string, number>, corrupt: Record<string, string>): void {
    this.stmt("INSERT OR REPLACE INTO folders (id, keys, corrupt) VALUES (?, ?, ?)").run(
      id,
      JSON.stringify(keys),
      Object.keys(corrupt).length ? JSON.stringify(corrupt) : null,
    );
  }

  /** Forget folders (gone from the store, or now holding an experiment). */
  deleteFolders(ids: Iterable<string>): void {
    const s = this.stmt("DELETE FROM folders WHERE id = ?");
    for (const id of ids) s.run(id);
  }

  /** The stored state of an experiment (to continue reading an unfinished one), or null. */
  state(id: string): ExperimentState | null {
    const row = this.row(id);
    if (!row) return null;
    return {
      record: JSON.parse(row.record),
      checkpoints: this.checkpointsOf(id),
      status: row.status ? JSON.parse(row.status) : null,
      attempts: row.attempts ? JSON.parse(row.attempts) : [],
      heartbeat: row.heartbeat ? JSON.parse(row.heartbeat) : null,
      keys: row.keys ? JSON.parse(row.keys) : {},
      corrupt: row.corrupt ? JSON.parse(row.corrupt) : {},
    };
  }

  /** One row, or null. */
  row(id: string): ExperimentRow | null {
    return (this.stmt("SELECT * FROM experiments WHERE id = ?").get(id) as
      | ExperimentRow
      | undefined) ?? null;
  }

  /**
   * Store what was read of an experiment: its row (with the summary of its checkpoints) and its
   * checkpoint records. `pending` names the segment whose checkpoints file holds them instead (then
   * `checkpoints` is empty and `summary` gives count, best and latest).
   */
  putExperiment(
    s: ExperimentState,
    finished: boolean,
    options: {
      pending?: string;
      summary?: { count: number; best: CheckpointRecord | null; latest: CheckpointRecord | null };
      metricTypes?: Record<string, number>;
      /** false: the caller records the param and metric names ({@link addNames}). */
      names?: boolean;
    } = {},
  ): void {
    const r = s.record;
    const { attempt, status } = newestAttempt(s);
    let summary = options.summary;
    if (!summary) {
      const list = [...s.checkpoints].sort(compareCheckpoints);
      summary = {
        count: list.length,
        best: bestCheckpoint(list, r.primary_metric),
        latest: list[list.length - 1] ?? null,
      };
    }
    // Often the latest checkpoint is the best: stored once (rows stay small at 100k).
    const sameAsBest = summary.latest !== null && summary.latest.id === summary.best?.id;
    this.stmt(
      `INSERT OR REPLACE INTO experiments (id, created, name, host, user, params, primary_metric,
        record, attempt, attempts, status, final, heartbeat, finished, pending, num, best, latest,
        best_brief, latest_brief, keys, corrupt)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      r.id,
      r.created,
      r.name,
      r.host,
      r.user,
      JSON.stringify(r.params),
      r.primary_metric ? JSON.stringify(r.primary_metric) : null,
      JSON.stringify(r),
      attempt,
      s.attempts.length ? JSON.stringify(s.attempts) : null,
      s.status ? JSON.stringify(s.status) : null,
      status?.status ?? null,
      s.heartbeat && !status ? JSON.stringify(s.heartbeat) : null,
      finished ? 1 : 0,
      options.pending ?? null,
      summary.count,
      summary.best ? JSON.stringify(summary.best) : null,
      sameAsBest ? SAME_AS_BEST : summary.latest ? JSON.stringify(summary.latest) : null,
      summary.best ? JSON.stringify(brief(summary.best)) : null,
      sameAsBest ? SAME_AS_BEST : summary.latest ? JSON.stringify(brief(summary.latest)) : null,
      finished || !Object.keys(s.keys).length ? null : JSON.stringify(s.keys),
      Object.keys(s.corrupt).length ? JSON.stringify(s.corrupt) : null,
    );
    if (!options.pending) this.#putCheckpoints(r.id, s.checkpoints);
    if (options.names === false) return;
    this.addNames("param", paramTypes(r.params));
    const metrics: Record<string, number> = { ...options.metricTypes };
    for (const c of s.checkpoints) {
      for (const [k, v] of Object.entries(c.metrics)) {
        metrics[k] = (metrics[k] ?? 0) | (TYPE_BITS[typeof v] ?? 0);
      }
    }
    this.addNames("metric", metrics);
  }

  /** Remember param or metric names with the value types seen (bits as {@link names}). */
  addNames(kind: "param" | "metric", types: Map<string, number> | Record<string, number>): void {
    const names = this.stmt(
      "INSERT INTO names (kind, name, types) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET types = types | excluded.types",
    );
    const entries = types instanceof Map ? types.entries() : Object.entries(types);
    for (const [k, bits] of entries) names.run(kind, k, bits);
  }

  #putCheckpoints(experiment: string, list: CheckpointRecord[]): void {
    const have = new Set(
      (this.stmt("SELECT id FROM checkpoints WHERE experiment = ?").all(experiment) as {
        id: string;
      }[]).map((r) => r.id),
    );
    const ins = this.stmt(
      "INSERT OR REPLACE INTO checkpoints (id, experiment, record) VALUES (?, ?, ?)",
    );
    for (const c of list) {
      if (!have.delete(c.id)) ins.run(c.id, experiment, JSON.stringify(c));
    }
    const del = this.stmt("DELETE FROM checkpoints WHERE id = ?");
    for (const id of have) del.run(id);
  }

  /** Store the checkpoints of an experiment that was pending, and mark it loaded. */
  loadPending(experiment: string, list: CheckpointRecord[]): void {
    this.#putCheckpoints(experiment, list);
    this.stmt("UPDATE experiments SET pending = NULL WHERE id = ?").run(experiment);
  }

  /** Forget experiments (removed, or gone from the store). */
  deleteExperiments(ids: Iterable<string>): void {
    const e = this.stmt("DELETE FROM experiments WHERE id = ?");
    const c = this.stmt("DELETE FROM checkpoints WHERE experiment = ?");
    for (const id of ids) {
      e.run(id);
      c.run(id);
    }
  }

  /** The experiments holding these checkpoints (among those whose checkpoints are loaded). */
  experimentsOfCheckpoints(ids: Iterable<string>): Map<string, string> {
    const out = new Map<string, string>();
    const s = this.stmt("SELECT experiment FROM checkpoints WHERE id = ?");
    for (const id of ids) {
      const r = s.get(id) as { experiment: string } | undefined;
      if (r) out.set(id, r.experiment);
    }
    return out;
  }

  /** An experiment's checkpoint records, oldest first. */
  checkpointsOf(experiment: string): CheckpointRecord[] {
    const rows = this.stmt("SELECT record FROM checkpoints WHERE experiment = ?").all(
      experiment,
    ) as { record: string }[];
    return rows.map((r) => JSON.parse(r.record) as CheckpointRecord).sort(compareCheckpoints);
  }

  /** Whether some experiment's checkpoints are still to be loaded from a segment. */
  hasPending(): boolean {
    return this.stmt("SELECT 1 FROM experiments WHERE pending IS NOT NULL LIMIT 1").get() !==
      undefined;
  }

  /** Segment names whose checkpoints are still to be loaded, with their experiments. */
  pending(ids?: Iterable<string>): Map<string, string[]> {
    const out = new Map<string, string[]>();
    const add = (r: { id: string; pending: string }) => {
      const list = out.get(r.pending) ?? [];
      list.push(r.id);
      out.set(r.pending, list);
    };
    if (ids) {
      const s = this.stmt(
        "SELECT id, pending FROM experiments WHERE id = ? AND pending IS NOT NULL",
      );
      for (const id of ids) {
        const r = s.get(id) as { id: string; pending: string } | undefined;
        if (r) add(r);
      }
    } else {
      const rows = this.stmt("SELECT id, pending FROM experiments WHERE pending IS NOT NULL")
        .all() as { id: string; pending: string }[];
      for (const r of rows) add(r);
    }
    return out;
  }

  // ---- queries ----------------------------------------------------------------------------------

  /**
   * Every row, newest first, with the columns a listing shows ({@link LISTING_COLUMNS}); the
   * others (the record, full best and latest checkpoints) are read with {@link column} when used.
   */
  rows(): ListingRow[] {
    return this.stmt(
      `SELECT ${LISTING_COLUMNS.join(", ")} FROM experiments ORDER BY created DESC, id DESC`,
    ).all() as unknown as ListingRow[];
  }

  /**
   * Rows in listing order, streamed: newest first (`oldest`: oldest first, ties still by id
   * descending), only unfinished ones with `unfinished`, at most `limit`. The listing order's
   * index holds the small columns (`BASE_COLUMNS` of views.ts): reading only those reads no row.
   */
  listingRows<C extends keyof ExperimentRow = typeof LISTING_COLUMNS[number]>(
    options: {
      oldest?: boolean;
      unfinished?: boolean;
      limit?: number | null;
      /** In storage order (a full scan reads the table in order instead of row by row). */
      unordered?: boolean;
      /** The columns to read. @default LISTING_COLUMNS */
      columns?: readonly C[];
    } = {},
  ): IterableIterator<Pick<ExperimentRow, C>> {
    const columns = options.columns ?? LISTING_COLUMNS;
    for (const c of columns) {
      if (!ROW_COLUMNS.has(c)) throw new RangeError(`No column ${c} in the index`);
    }
    // A running experiment is never finished: its few rows by their own index, then sorted.
    const from = options.unfinished
      ? "experiments INDEXED BY experiments_unfinished WHERE finished = 0"
      : "experiments";
    const order = options.unordered
      ? ""
      : options.oldest
      ? "ORDER BY created ASC, id DESC"
      : "ORDER BY created DESC, id DESC";
    return this.stmt(
      `SELECT ${columns.join(", ")} FROM ${from} ${order} LIMIT ?`,
    ).iterate(options.limit ?? -1) as unknown as IterableIterator<Pick<ExperimentRow, C>>;
  }

  /** One row with the listing's columns, or null. */
  listingRow(id: string): ListingRow | null {
    return (this.stmt(`SELECT ${LISTING_COLUMNS.join(", ")} FROM experiments WHERE id = ?`)
      .get(id) as unknown as ListingRow | undefined) ?? null;
  }

  /** The number of experiments in the index. */
  count(): number {
    return (this.stmt("SELECT count(*) AS n FROM experiments").get() as { n: number }).n;
  }

  /** One column of one row (JSON text or null). */
  column(id: string, name: keyof ExperimentRow): string | null {
    if (!ROW_COLUMNS.has(name)) throw new RangeError(`No column ${name} in the index`);
    const r = this.stmt(`SELECT ${name} AS v FROM experiments WHERE id = ?`).get(id) as
      | { v: string | null }
      | undefined;
    return r?.v ?? null;
  }

  /** Experiment ids starting with `prefix` (at most `limit`). */
  experimentsByPrefix(prefix: string, limit = 20): string[] {
    const rows = this.stmt(
      "SELECT id FROM experiments WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
    ).all(prefix, prefixEnd(prefix), limit) as { id: string }[];
    return rows.map((r) => r.id);
  }

  /** Checkpoints whose id starts with `prefix` (at most `limit`), with their experiments. */
  checkpointsByPrefix(prefix: string, limit = 20): { id: string; experiment: string }[] {
    return this.stmt(
      "SELECT id, experiment FROM checkpoints WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
    ).all(prefix, prefixEnd(prefix), limit) as { id: string; experiment: string }[];
  }

  /** Experiments with this name. */
  experimentsByName(name: string): string[] {
    return (this.stmt("SELECT id FROM experiments WHERE name = ?").all(name) as { id: string }[])
      .map((r) => r.id);
  }

  /** Param or metric names with the value types seen (bits: 1 number, 2 string, 4 boolean). */
  names(kind: "param" | "metric"): Map<string, number> {
    const rows = this.stmt("SELECT name, types FROM names WHERE kind = ?").all(kind) as {
      name: string;
      types: number;
    }[];
    return new Map(rows.map((r) => [r.name, r.types]));
  }

  // ---- change objects and segments --------------------------------------------------------------

  /** Change objects read so far: key → bytes. */
  changes(): Map<string, Uint8Array> {
    const rows = this.stmt("SELECT key, body FROM changes").all() as {
      key: string;
      body: Uint8Array;
    }[];
    return new Map(rows.map((r) => [r.key, r.body]));
  }

  /** Remember a change object's bytes. */
  putChange(key: string, body: Uint8Array): void {
    this.stmt("INSERT OR REPLACE INTO changes (key, body) VALUES (?, ?)").run(key, body);
  }

  /** Forget change objects that are gone from the store. */
  deleteChanges(keys: Iterable<string>): void {
    const s = this.stmt("DELETE FROM changes WHERE key = ?");
    for (const k of keys) s.run(k);
  }

  /** Segments already merged in. */
  segments(): Set<string> {
    return new Set(
      (this.stmt("SELECT key FROM segments").all() as { key: string }[]).map((r) => r.key),
    );
  }

  /** Remember that a segment was merged in. */
  addSegment(key: string): void {
    this.stmt("INSERT OR IGNORE INTO segments (key) VALUES (?)").run(key);
  }

  /** Close the database. */
  close(): void {
    this.#stmts.clear();
    try {
      this.db.close();
    } catch { /* already closed */ }
  }
}

interface FolderRow {
  id: string;
  keys: string | null;
  corrupt: string | null;
}

/** The smallest string greater than every string starting with `prefix` (hex prefixes). */
function prefixEnd(prefix: string): string {
  return prefix + "\uffff";
}
