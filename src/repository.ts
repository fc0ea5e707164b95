/**
 * A repository opened from a URL: the catalog (what exists and is visible) and restore (trees,
 * file streams, checkout) over one {@link Store}. Writing goes through the writer
 * (`src/writer/recorder.ts`); maintenance (`src/maintenance/`) asks the catalog what is live.
 * See docs/format.md for the layout.
 *
 * @module
 */
import type { CheckpointRecord, ExperimentRecord, FileEntry, Tree } from "./format/records.ts";
import type { Store } from "./storage/store.ts";
import { openStore } from "./storage/open.ts";
import { Catalog, type CheckpointRef, type ListOptions } from "./catalog/catalog.ts";
import type { ExperimentView, Resolved } from "./catalog/views.ts";
import { TreeReader } from "./restore/trees.ts";
import { fileStream, type FileStreamOptions } from "./restore/file_stream.ts";
import { checkout, type CheckoutOptions, type CheckoutResult } from "./restore/checkout.ts";
import { presentCheckpointFiles } from "./restore/checkpoint_files.ts";
import { experimentKey } from "./format/layout.ts";
import { parseExperiment, parseJson } from "./format/records.ts";

export type {
  CheckoutOptions,
  CheckoutResult,
  CheckpointRef,
  ExperimentView,
  ListOptions,
  Resolved,
};
export { bestCheckpoint, heartbeatDeadline, makeView } from "./catalog/views.ts";
export { safeDestination } from "./restore/checkout.ts";

/** A repository opened from a URL. */
export class Repository {
  readonly store: Store;
  readonly catalog: Catalog;
  readonly #trees: TreeReader;

  /**
   * @param options.cache false keeps the listing index in memory instead of the per-user cache
   */
  constructor(store: Store, options: { cache?: boolean } = {}) {
    this.store = store;
    this.catalog = new Catalog(store, options);
    this.#trees = new TreeReader(store);
  }

  /** Open the repository at `url` (a path, `file://`, `s3://` or `gs://` URL). */
  static async open(
    url: string,
    options: { cache?: boolean; base?: string } = {},
  ): Promise<Repository> {
    return new Repository(await openStore(url, options.base), options);
  }

  /** The repository URL. */
  get url(): string {
    return this.store.url;
  }

  /** See {@link Catalog.checkFormat}. */
  checkFormat(): Promise<number | null> {
    return this.catalog.checkFormat();
  }

  /** See {@link Catalog.init}. */
  init(): Promise<void> {
    return this.catalog.init();
  }

  /** See {@link Catalog.list}. */
  list(options: ListOptions = {}): Promise<ExperimentView[]> {
    return this.catalog.list(options);
  }

  /** See {@link Catalog.resolve}. */
  resolve(ref: string, views?: ExperimentView[]): Promise<Resolved> {
    return this.catalog.resolve(ref, views);
  }

  /** See {@link Catalog.withFullRecord}. */
  withFullRecord(view: ExperimentView): Promise<ExperimentView> {
    return this.catalog.withFullRecord(view);
  }

  /** See {@link Catalog.remove}. */
  remove(experiments: string[], checkpoints: (string | CheckpointRef)[]): Promise<void> {
    return this.catalog.remove(experiments, checkpoints);
  }

  /** Read and verify a tree by its sha256. */
  tree(hash: string): Promise<Tree> {
    return this.#trees.get(hash);
  }

  /**
   * The files of a checkpoint of `experiment`, with paths relative to the project folder (format 1
   * `rep run` paths are presented under their output folder).
   */
  async checkpointFiles(
    experiment: ExperimentRecord,
    checkpoint: Pick<CheckpointRecord, "files">,
  ): Promise<FileEntry[]> {
    if (!checkpoint.files) return [];
    const files = (await this.tree(checkpoint.files.tree)).files;
    // Listings keep records without provenance, where format 1 kept the output folder.
    if (experiment.format === 1 && !("output" in experiment.provenance)) {
      const key = experimentKey(experiment.id);
      experiment = parseExperiment(parseJson(await this.store.getBytes(key), key), key);
    }
    return presentCheckpointFiles(experiment, files);
  }

  /**
   * Stream one file's bytes, fetching its chunks by ranged reads a few at a time and checking each
   * chunk's hash. Memory stays bounded whatever the file size.
   */
  fileStream(entry: FileEntry, options: FileStreamOptions = {}): ReadableStream<Uint8Array> {
    return fileStream(this.store, entry, options);
  }

  /**
   * Write `files` into `dir`. Paths are checked to stay inside `dir` (no symlinked parents are
   * followed); files that exist with different content are refused unless `force`.
   */
  checkout(
    files: FileEntry[],
    dir: string,
    options: CheckoutOptions = {},
  ): Promise<CheckoutResult> {
    return checkout(this.store, files, dir, options);
  }

  /** Release the store and the listing index. */
  async close(): Promise<void> {
    this.catalog.close();
    await this.store.close();
  }
}
