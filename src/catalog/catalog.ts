/**
 * The catalog: what a repository holds and what a reader sees of it. Listing (through the local
 * index), resolving ids and names, the format check, and recording changes (removals, tags,
 * notes) all go through here, and visibility is decided by one module (`visibility.ts`) that the
 * index, the shared segments, `rep gc` and `rep verify` all use.
 *
 * @module
 */
import {
  AmbiguousIdError,
  CorruptObjectError,
  FormatVersionError,
  NotFoundError,
  UsageError,
} from "../errors.ts";
import { shortId } from "../format/ids.ts";
import { experimentKey, REPOSITORY_KEY } from "../format/layout.ts";
import {
  type CheckpointRecord,
  FORMAT_VERSION,
  parseExperiment,
  parseJson,
} from "../format/records.ts";
import type { Store } from "../storage/store.ts";
import { cacheDir, jsonBytes } from "../util.ts";
import { isTag, MAX_NOTE, type NewEntry, writeChanges } from "./changes.ts";
import { IndexDb, indexDbPath } from "./index_db.ts";
import { loadCheckpoints, type Progress, refresh, type RefreshResult } from "./refresh.ts";
import { pendingHolding } from "./segment_lookup.ts";
import { type ExperimentView, type Resolved, type RowLoader, RowView } from "./views.ts";
import { needsCheckpoints } from "./filter.ts";
import { type QueryOptions, type QueryResult, runQuery } from "./query.ts";
import type { Visibility } from "./visibility.ts";

/** What a name can be (docs/format.md _Names_; a name that is all hexadecimal reads as an id). */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** How long a finished refresh is reused by later reads of the same catalog (ms). */
export const REUSE_MS = 1000;

/** Options of {@link Catalog.list}. */
export interface ListOptions {
  progress?: Progress;
  /** The time status is derived at (ms since the epoch). @default Date.now() */
  now?: number;
  /**
   * Views for a listing only: their `checkpoints` may not be available (an index made from
   * shared segments has only each experiment's summary until its checkpoints are needed).
   */
  summary?: boolean;
}

/** The catalog of one repository. */
export class Catalog {
  readonly store: Store;
  readonly #cachePath: string | null;
  #db: IndexDb | null = null;
  #formatChecked = false;
  #refreshed: Promise<RefreshResult> | null = null;
  #result: RefreshResult | null = null;
  #refreshedAt = 0;
  readonly #segments: boolean;

  /**
   * @param options.cache false keeps the index in memory (nothing read before is trusted)
   * @param options.segments false reads every record instead of shared segments (verify)
   */
  constructor(store: Store, options: { cache?: boolean; segments?: boolean } = {}) {
    this.store = store;
    this.#cachePath = options.cache === false ? null : indexDbPath(cacheDir(), store.url);
    this.#segments = options.segments !== false;
  }

  /** The repository URL. */
  get url(): string {
    return this.store.url;
  }

  /** The local index (opened on first use). */
  get db(): IndexDb {
    return this.#db ??= IndexDb.open(this.#cachePath, this.store.url);
  }

  /**
   * Check `repository.json`: a repository of a newer format is refused. Returns the format, or
   * null when the repository has not been written yet.
   */
  async checkFormat(): Promise<number | null> {
    let bytes: Uint8Array;
    try {
      bytes = await this.store.getBytes(REPOSITORY_KEY);
    } catch (e) {
      if (e instanceof NotFoundError) return null;
      throw e;
    }
    const v = parseJson(bytes, REPOSITORY_KEY) as { format?: unknown };
    const format = typeof v === "object" && v ? v.format : undefined;
    if (typeof format !== "number" || !Number.isInteger(format) || format < 1) {
      throw new CorruptObjectError(
        "Corrupt repository.json: it has no valid format number",
        `Check that ${this.url} is a rep repository`,
      );
    }
    if (format > FORMAT_VERSION) {
      throw new FormatVersionError(
        `Cannot use repository ${this.url}: it has format ${format}, and this rep reads up to ${FORMAT_VERSION}`,
        "Upgrade rep to a newer version",
      );
    }
    this.#formatChecked = true;
    return format;
  }

  /**
   * Create `repository.json` when missing, or upgrade an older format's marker (writers call this
   * before their first object: what they write may be read only by this format's readers).
   */
  async init(): Promise<void> {
    const format = await this.checkFormat();
    if (format === null || format < FORMAT_VERSION) {
      await this.store.put(REPOSITORY_KEY, jsonBytes({ format: FORMAT_VERSION }));
    }
  }

  /**
   * Bring the local index up to date with the repository. Calls while a refresh runs, or within
   * {@link REUSE_MS} after one ended, share it (a command resolving many ids refreshes once), unless
   * `force`.
   */
  refresh(options: { progress?: Progress; force?: boolean } = {}): Promise<RefreshResult> {
    const stale = this.#result !== null && this.#refreshedAt !== 0 &&
      Date.now() - this.#refreshedAt > REUSE_MS;
    if (!this.#refreshed || options.force || stale) {
      const run = async () => {
        if (!this.#formatChecked) await this.checkFormat();
        const r = await refresh(this.store, this.db, {
          segments: this.#segments,
          ...(options.progress ? { progress: options.progress } : {}),
        });
        this.#result = r;
        this.#refreshedAt = Date.now();
        return r;
      };
      const p = run();
      this.#refreshed = p;
      p.catch(() => {
        if (this.#refreshed === p) this.#refreshed = null;
      });
    }
    return this.#refreshed!;
  }

  /** What the latest refresh found (null before the first). */
  get lastRefresh(): RefreshResult | null {
    return this.#result;
  }

  /** The visibility of the change objects, as of the last refresh. */
  async visibility(): Promise<Visibility> {
    return (await this.refresh()).visibility;
  }

  /** Every experiment not removed, newest first. */
  async list(options: ListOptions = {}): Promise<ExperimentView[]> {
    const { visibility } = await this.refresh(
      options.progress ? { progress: options.progress } : {},
    );
    if (!options.summary) await loadCheckpoints(this.store, this.db, visibility);
    return this.#views(visibility, options.now ?? Date.now());
  }

  /**
   * A listing query: the experiments that match `filters` (and, with `running`, are running), in
   * `sort` order, at most `limit` of them, with how many matched. Only the rows it returns (and,
   * with filters or another sort, one row at a time) are read from the index, so a listing of a
   * few experiments out of 100k costs little beyond the refresh.
   */
  async query(options: QueryOptions & { progress?: Progress; now?: number } = {}): Promise<
    QueryResult
  > {
    const { visibility } = await this.refresh(
      options.progress ? { progress: options.progress } : {},
    );
    // any.NAME filters need every checkpoint.
    if (needsCheckpoints(options.filters ?? [])) {
      await loadCheckpoints(this.store, this.db, visibility);
    }
    return runQuery(this.db, visibility, options.now ?? Date.now(), this.#loader(), options);
  }

  #loader(): RowLoader {
    const db = this.db;
    return { checkpoints: (id) => db.checkpointsOf(id), column: (id, name) => db.column(id, name) };
  }

  #views(vis: Visibility, now: number): ExperimentView[] {
    const load = this.#loader();
    return this.db.rows().map((r) => new RowView(r, vis, now, load));
  }

  /** One experiment's view by full id, or null (its checkpoints loaded). */
  async get(id: string, now: number = Date.now()): Promise<ExperimentView | null> {
    const { visibility } = await this.refresh();
    await loadCheckpoints(this.store, this.db, visibility, [id]);
    const row = this.db.row(id);
    return row ? new RowView(row, visibility, now, this.#loader()) : null;
  }

  /**
   * Resolve an experiment's name, or an unambiguous prefix of an experiment or checkpoint id. An
   * exact name wins over an id prefix. `views` is accepted for compatibility and not needed: ids
   * resolve by indexed queries.
   */
  async resolve(ref: string, _views?: ExperimentView[]): Promise<Resolved> {
    const { visibility } = await this.refresh();
    const db = this.db;
    const named = db.experimentsByName(ref);
    if (named.length === 1) return { kind: "experiment", experiment: (await this.get(named[0]!))! };
    const p = ref.trim().toLowerCase();
    if (!/^[0-9a-f]{1,32}$/.test(p)) {
      if (named.length > 1) {
        throw new AmbiguousIdError(
          `Ambiguous name "${ref}": ${named.length} experiments have it`,
          named,
          'Use an experiment id instead (rep ls -f "name = …" shows them)',
        );
      }
      if (!NAME_RE.test(ref)) {
        throw new UsageError(
          `Invalid id or name "${ref}": ids are hexadecimal, names are letters, digits, . _ -`,
          "Use an id or prefix shown by `rep ls` or `rep show`, or an experiment's name",
        );
      }
      throw new NotFoundError(
        `No experiment is named "${ref}", and it is not an id (ids are hexadecimal)`,
        "Use an id or prefix shown by `rep ls` or `rep show`, or an experiment's name",
      );
    }
    let exps = db.experimentsByPrefix(p);
    // A checkpoint id could be among those only summarized so far: load those that hold one.
    if (!(p.length === 32 && exps.length === 1) && db.hasPending()) {
      const holding = await pendingHolding(this.store, db, { prefix: p });
      // 20 candidates are enough to list as ambiguous.
      if (holding.length) await loadCheckpoints(this.store, db, visibility, holding.slice(0, 20));
      exps = db.experimentsByPrefix(p);
    }
    const cks = db.checkpointsByPrefix(p).filter((c) => !visibility.removedCheckpoints.has(c.id));
    const total = exps.length + cks.length;
    if (total === 0) {
      throw new NotFoundError(
        `No experiment or checkpoint matches "${ref}" in ${this.url}`,
        "Run `rep ls` to see experiment ids, `rep show ID` for checkpoint ids",
      );
    }
    if (total > 1) {
      const lines = [
        ...exps.map((id) => `  experiment ${id}`),
        ...cks.map((c) => `  checkpoint ${c.id} (experiment ${shortId(c.experiment)})`),
      ];
      throw new AmbiguousIdError(
        `Ambiguous id "${ref}": it matches ${total >= 20 ? "20 or more" : total} ids:\n${
          lines.join("\n")
        }`,
        [...exps, ...cks.map((c) => c.id)],
        "Type more characters of the id",
      );
    }
    if (exps.length) return { kind: "experiment", experiment: (await this.get(exps[0]!))! };
    const experiment = (await this.get(cks[0]!.experiment))!;
    const checkpoint = experiment.checkpoints.find((c) => c.id === cks[0]!.id)!;
    return { kind: "checkpoint", experiment, checkpoint };
  }

  /**
   * The view with its complete experiment record (listings keep records without provenance);
   * tags and note stay as changes made them.
   */
  async withFullRecord(view: ExperimentView): Promise<ExperimentView> {
    const key = experimentKey(view.id);
    const record = parseExperiment(parseJson(await this.store.getBytes(key), key), key);
    const full = { ...record, tags: view.tags, note: view.note };
    return new Proxy(view, {
      get: (target, prop) => prop === "record" ? full : Reflect.get(target, prop, target),
    });
  }

  /**
   * Record that experiments and checkpoints are removed: one small object, whatever the count.
   * Checkpoints are given by id (their experiments are looked up in the index) or as
   * `{experiment, checkpoint}`.
   */
  async remove(
    experiments: string[],
    checkpoints: (string | CheckpointRef)[],
    reason: string | null = null,
  ): Promise<void> {
    if (!experiments.length && !checkpoints.length) return;
    const ids = checkpoints.filter((c): c is string => typeof c === "string");
    let of = new Map<string, string>();
    if (ids.length) {
      const { visibility } = await this.refresh();
      of = this.db.experimentsOfCheckpoints(ids);
      if (of.size < ids.length && this.db.hasPending()) {
        const wanted = new Set(ids.filter((c) => !of.has(c)));
        const holding = await pendingHolding(this.store, this.db, { ids: wanted });
        if (holding.length) await loadCheckpoints(this.store, this.db, visibility, holding);
        of = this.db.experimentsOfCheckpoints(ids);
      }
    }
    const pairs = checkpoints.map((c): [string, string] => {
      if (typeof c !== "string") return [c.experiment, c.checkpoint];
      const e = of.get(c);
      if (!e) throw new NotFoundError(`No checkpoint ${c} in ${this.url}`);
      return [e, c];
    });
    await this.#write([{ op: "remove", experiments, checkpoints: pairs, reason }]);
  }

  /** Add and remove tags of an experiment (one change object). */
  async tag(experiment: string, add: string[], remove: string[] = []): Promise<void> {
    for (const t of [...add, ...remove]) {
      if (!isTag(t)) {
        throw new UsageError(
          `Invalid tag ${JSON.stringify(t)}: tags are 1–100 characters without spaces or commas`,
          "Example: rep tag a1b2c3d baseline best-so-far",
        );
      }
    }
    await this.#write([{ op: "tag", experiment, add, remove }]);
  }

  /** Set (or, with null, clear) an experiment's note (one change object). */
  async note(experiment: string, text: string | null): Promise<void> {
    if (text !== null && text.length > MAX_NOTE) {
      throw new UsageError(
        `Note too long: ${text.length} characters, at most ${MAX_NOTE}`,
        "Keep notes short; longer text belongs in a file of the experiment's code",
      );
    }
    await this.#write([{ op: "note", experiment, text }]);
  }

  /**
   * Record that attempt `attempt` (≥ 2) of an experiment started, so that every reader lists its
   * folder again (a finished experiment is otherwise never read again). Writers of a resume call
   * this once the attempt record is stored.
   */
  async resumed(experiment: string, attempt: number): Promise<void> {
    if (!Number.isSafeInteger(attempt) || attempt < 2) {
      throw new RangeError(`A resume is attempt 2 or later, not ${attempt}`);
    }
    await this.#write([{ op: "resume", experiment, attempt }]);
  }

  async #write(entries: NewEntry[]): Promise<void> {
    await writeChanges(this.store, entries);
    this.#refreshed = null; // the next read sees it
  }

  /** The number of experiments listed (not removed). */
  async count(options: { progress?: Progress } = {}): Promise<number> {
    await this.refresh(options);
    return this.db.count();
  }

  /** Param and metric names in the index, with the value types seen (1 number, 2 string, 4 boolean). */
  async names(): Promise<{ params: Map<string, number>; metrics: Map<string, number> }> {
    await this.refresh();
    return { params: this.db.names("param"), metrics: this.db.names("metric") };
  }

  /** Folders under `experiments/` without a readable experiment record: id → keys, corrupt keys. */
  async folders(): Promise<
    Map<string, { keys: Record<string, number>; corrupt: Record<string, string> }>
  > {
    await this.refresh();
    return this.db.folders();
  }

  /** Release the local index. */
  close(): void {
    this.#db?.close();
    this.#db = null;
    this.#refreshed = null;
  }
}

/** A checkpoint with its experiment. */
export interface CheckpointRef {
  experiment: string;
  checkpoint: string;
}

export type { CheckpointRecord };
