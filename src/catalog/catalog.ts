/**
 * The catalog: what a repository holds and what a reader sees of it. Listing (through the index
 * cache), id resolution, the format check, and recording removals all go through here, so that
 * every reader, `rep gc` and `rep verify` agree on what is visible.
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
import { FORMAT_VERSION, parseExperiment, parseJson } from "../format/records.ts";
import { experimentKey, REPOSITORY_KEY, tombstoneKey } from "../format/layout.ts";
import type { Store } from "../storage/store.ts";
import { cacheDir, jsonBytes } from "../util.ts";
import { type IndexData, indexPath, type Progress, refreshIndex } from "./index_cache.ts";
import { type ExperimentView, type Resolved, viewsOf } from "./views.ts";

/** The catalog of one repository. */
export class Catalog {
  readonly store: Store;
  readonly #cacheFile: string | null;
  #formatChecked = false;
  #index: IndexData | null = null;

  constructor(store: Store, options: { cache?: boolean } = {}) {
    this.store = store;
    this.#cacheFile = options.cache === false ? null : indexPath(cacheDir(), store.url);
  }

  /** The repository URL. */
  get url(): string {
    return this.store.url;
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

  /** Refresh and return the index. */
  async index(options: { full?: boolean; progress?: Progress } = {}): Promise<IndexData> {
    if (!this.#formatChecked) await this.checkFormat();
    this.#index = await refreshIndex(this.store, this.#cacheFile, options);
    return this.#index;
  }

  /** Every experiment not removed, newest first. */
  async list(options: { progress?: Progress; now?: number } = {}): Promise<ExperimentView[]> {
    const index = await this.index(options.progress ? { progress: options.progress } : {});
    return viewsOf(index, options.now ?? Date.now());
  }

  /**
   * Resolve an experiment or checkpoint id, or an unambiguous prefix of one. Pass `views` (from
   * {@link list}) to resolve many ids against one listing instead of refreshing it for each.
   */
  async resolve(prefix: string, views?: ExperimentView[]): Promise<Resolved> {
    const p = prefix.trim().toLowerCase();
    if (!/^[0-9a-f]{1,32}$/.test(p)) {
      throw new UsageError(
        `Invalid id "${prefix}": ids are hexadecimal`,
        "Use an id or prefix shown by `rep ls` or `rep show`",
      );
    }
    views ??= await this.list();
    const hits: Resolved[] = [];
    for (const e of views) {
      if (e.id.startsWith(p)) hits.push({ kind: "experiment", experiment: e });
      for (const c of e.checkpoints) {
        if (c.id.startsWith(p)) hits.push({ kind: "checkpoint", experiment: e, checkpoint: c });
      }
    }
    if (hits.length === 0) {
      throw new NotFoundError(
        `No experiment or checkpoint matches "${prefix}" in ${this.url}`,
        "Run `rep ls` to see experiment ids, `rep show ID` for checkpoint ids",
      );
    }
    if (hits.length > 1) {
      const ids = hits.map((h) => h.kind === "experiment" ? h.experiment.id : h.checkpoint.id);
      const lines = hits.map((h) =>
        h.kind === "experiment"
          ? `  experiment ${h.experiment.id}`
          : `  checkpoint ${h.checkpoint.id} (experiment ${shortId(h.experiment.id)})`
      );
      throw new AmbiguousIdError(
        `Ambiguous id "${prefix}": it matches ${hits.length} ids:\n${lines.join("\n")}`,
        ids,
        "Type more characters of the id",
      );
    }
    return hits[0]!;
  }

  /**
   * The view with its complete experiment record (listings keep records without provenance).
   */
  async withFullRecord(view: ExperimentView): Promise<ExperimentView> {
    const key = experimentKey(view.id);
    const record = parseExperiment(parseJson(await this.store.getBytes(key), key), key);
    return { ...view, record };
  }

  /** Record that experiments and checkpoints are removed (one small object, whatever the count). */
  async remove(experiments: string[], checkpoints: string[]): Promise<void> {
    if (!experiments.length && !checkpoints.length) return;
    const created = new Date().toISOString();
    const key = tombstoneKey(new Date(created));
    await this.store.put(
      key,
      jsonBytes({ format: FORMAT_VERSION, type: "tombstone", created, experiments, checkpoints }),
    );
    this.#index = null;
  }
}
