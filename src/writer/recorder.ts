/**
 * The recorder: the one code path that writes experiments and checkpoints, shared by the library's
 * `init()`/`checkpoint()` and by `rep run`. Files are chunked into packs in a local outbox and
 * uploaded in the background; each record is queued after the data it refers to.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import { join } from "node:path";
import { newId } from "../format/ids.ts";
import {
  type CheckpointRecord,
  type ExperimentRecord,
  FORMAT_VERSION,
  type GitInfo,
  type MetricValue,
  type ParamValue,
  type PrimaryMetric,
  type StatusRecord,
  type Tree,
  type TreeRef,
} from "../format/records.ts";
import { Packer } from "./packer.ts";
import { Outbox, type OutboxState } from "./outbox.ts";
import type { Repository } from "../repository.ts";
import { snapshotFiles, type SnapshotResult, type StatCache } from "./snapshot.ts";
import { Dedup } from "./dedup.ts";
import { LocalStore } from "../storage/local.ts";
import { cacheDir, jsonBytes } from "../util.ts";
import { VERSION } from "../version.ts";
import { encodePackIndex } from "../format/pack_index.ts";
import {
  checkpointKey,
  experimentKey,
  heartbeatKey,
  packIndexKey,
  packKey,
  statusKey,
  treeKey,
} from "../format/layout.ts";

/** Seconds between heartbeats. */
export const HEARTBEAT_INTERVAL = 10;

/** What an experiment records when it starts. */
export interface StartOptions {
  /** Use this id instead of a random one. */
  id?: string;
  /** A human name, unique in the repository (the caller has claimed it). */
  name?: string | null;
  params?: Record<string, ParamValue>;
  command?: string[];
  cwd?: string;
  /** The output folder `rep run` watches, relative to `cwd`. */
  output?: string | null;
  /** Files of the code snapshot, relative to `codeRoot`; null skips the snapshot. */
  code?: { root: string; files: string[] } | null;
  git?: GitInfo | null;
  tags?: string[];
  note?: string | null;
  primaryMetric?: PrimaryMetric | null;
  provenance?: Record<string, unknown>;
  /** Called when uploads start failing (error) and when they recover (null). */
  onStorageError?: (error: Error | null) => void;
  /**
   * Reuse chunks the repository already holds, known from the local chunk cache (see
   * `src/writer/dedup.ts`); false deduplicates within this experiment only. @default true
   */
  dedup?: boolean;
}

/** A checkpoint to commit. */
export interface CommitOptions {
  tree: Tree | null;
  step?: number | null;
  metrics?: Record<string, MetricValue>;
  primaryMetric?: PrimaryMetric | null;
  torn?: string[];
  /** Why the files of this step are uncertain, in words. */
  warnings?: string[];
}

/** The user name, from the environment. */
export function currentUser(): string {
  return Deno.env.get("USER") ?? Deno.env.get("USERNAME") ?? Deno.env.get("LOGNAME") ?? "";
}

/** Serialize a tree and return its bytes and sha256. */
export function encodeTree(tree: Tree): { bytes: Uint8Array; hash: string; ref: TreeRef } {
  const bytes = jsonBytes(tree);
  const hash = createHash("sha256").update(bytes).digest("hex");
  return {
    bytes,
    hash,
    ref: { tree: hash, files: tree.files.length, size: tree.files.reduce((n, f) => n + f.size, 0) },
  };
}

/** `first` with the files of `redo` replaced by their entries in `again` (a second read). */
function mergeSnapshots(
  first: SnapshotResult,
  again: SnapshotResult,
  redo: Set<string>,
): SnapshotResult {
  const files = [...first.tree.files.filter((f) => !redo.has(f.path)), ...again.tree.files]
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return {
    tree: { ...first.tree, files },
    torn: [...first.torn.filter((p) => !redo.has(p)), ...again.torn],
    missing: [...first.missing, ...again.missing],
    bytesRead: first.bytesRead + again.bytesRead,
  };
}

/** Records one experiment. Create with {@link Recorder.start}. */
export class Recorder {
  readonly repo: Repository;
  readonly record: ExperimentRecord;
  readonly outbox: Outbox;
  readonly packer: Packer;
  /** Repository-wide dedup: the chunk cache and the checks of chunks reused from it. */
  readonly dedup: Dedup;
  readonly statCache: StatCache = new Map();
  #trees = new Set<string>();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #lock: Promise<unknown> = Promise.resolve();
  #stopped = false;
  /** Checkpoints committed so far. */
  readonly checkpoints: CheckpointRecord[] = [];

  private constructor(
    repo: Repository,
    record: ExperimentRecord,
    outbox: Outbox,
    packer: Packer,
    dedup: Dedup,
  ) {
    this.repo = repo;
    this.record = record;
    this.outbox = outbox;
    this.packer = packer;
    this.dedup = dedup;
  }

  /** Where outboxes of this repository live. */
  static outboxRoot(repo: Repository): string {
    const store = repo.store;
    if (store instanceof LocalStore) return join(store.root, "staging");
    const h = createHash("sha256").update(store.url).digest("hex").slice(0, 24);
    return join(cacheDir(), "outbox", h);
  }

  /** Start an experiment: snapshot the code, queue the experiment record, start the heartbeat. */
  static async start(repo: Repository, options: StartOptions = {}): Promise<Recorder> {
    const [, dedup] = await Promise.all([
      repo.init(),
      Dedup.open(repo.store, { cache: options.dedup ?? true }),
    ]);
    const id = options.id ?? newId();
    let outbox: Outbox;
    try {
      outbox = await Outbox.create(
        join(Recorder.outboxRoot(repo), id),
        repo.store,
        options.onStorageError ? { onStorageError: options.onStorageError } : {},
      );
    } catch (e) {
      dedup.close();
      throw e;
    }
    const packer = new Packer(outbox.tmpDir, dedup.known, async (p) => {
      await outbox.addFile(packKey(p.id), p.path, "data");
      // The pack index goes up after its pack: writers that learn of the chunks from it can rely
      // on the pack being stored.
      const key = packIndexKey(p.id);
      const entry = { id: p.id, size: p.size, chunks: p.chunks };
      await outbox.addBytes(key, encodePackIndex([entry]), "record");
      dedup.sealed(p, key);
    });
    const record: ExperimentRecord = {
      format: FORMAT_VERSION,
      type: "experiment",
      id,
      created: new Date().toISOString(),
      name: options.name ?? null,
      params: options.params ?? {},
      command: options.command ?? [],
      cwd: options.cwd ?? Deno.cwd(),
      output: options.output ?? null,
      host: hostname(),
      user: currentUser(),
      platform: `${Deno.build.os}-${Deno.build.arch}`,
      rep_version: VERSION,
      git: options.git ?? null,
      code: null,
      tags: options.tags ?? [],
      note: options.note ?? null,
      primary_metric: options.primaryMetric ?? null,
      provenance: options.provenance ?? {},
    };
    const rec = new Recorder(repo, record, outbox, packer, dedup);
    try {
      if (options.code) {
        const snap = await rec.#snapshotChecked(options.code.root, options.code.files);
        await packer.seal();
        record.code = await rec.#queueTree(snap.tree);
      }
      await rec.#writeHeartbeat();
      await outbox.addBytes(experimentKey(id), jsonBytes(record), "record");
    } catch (e) {
      await packer.abort();
      dedup.close();
      throw e;
    }
    rec.#heartbeat = setInterval(() => {
      rec.#writeHeartbeat().catch(() => {});
    }, HEARTBEAT_INTERVAL * 1000);
    Deno.unrefTimer(rec.#heartbeat as unknown as number);
    return rec;
  }

  /**
   * Snapshot `files`, then check the packs of other writers whose chunks it reused (see
   * {@link Dedup.check}); files that took chunks from a pack that failed are read again and
   * stored without it. After a few rounds (a repository where gc keeps deleting what the cache
   * offers), the cache is left out for the rest of this experiment.
   */
  async #snapshotChecked(root: string, files: string[]): Promise<SnapshotResult> {
    let result = await snapshotFiles(root, files, this.packer, this.statCache);
    for (let round = 0;; round++) {
      const bad = await this.dedup.check();
      if (!bad.size) return result;
      if (round >= 3) this.dedup.known.useCache(null);
      const redo = result.tree.files.filter((f) => f.chunks.some((c) => bad.has(c[0])))
        .map((f) => f.path);
      if (!redo.length) continue;
      for (const rel of redo) this.statCache.delete(join(root, rel));
      const again = await snapshotFiles(root, redo, this.packer, this.statCache);
      result = mergeSnapshots(result, again, new Set(redo));
    }
  }

  async #queueTree(tree: Tree): Promise<TreeRef> {
    const { bytes, hash, ref } = encodeTree(tree);
    if (!this.#trees.has(hash)) {
      this.#trees.add(hash);
      await this.outbox.addBytes(treeKey(hash), bytes, "data");
    }
    return ref;
  }

  async #writeHeartbeat(): Promise<void> {
    if (this.#stopped) return;
    const hb = {
      pid: Deno.pid,
      host: this.record.host,
      updated: new Date().toISOString(),
      interval: HEARTBEAT_INTERVAL,
      pending: this.outbox.state(),
    };
    await this.repo.store.put(heartbeatKey(this.record.id), jsonBytes(hb));
  }

  /** Serialize snapshot/commit work: one at a time. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  /** Store the current content of `files` (relative to `root`); returns their tree. */
  snapshot(root: string, files: string[]): Promise<SnapshotResult> {
    return this.#serial(() => this.#snapshotChecked(root, files));
  }

  /** Queue a checkpoint record (after sealing and queueing its data). */
  commit(options: CommitOptions): Promise<CheckpointRecord> {
    return this.#serial(async () => {
      await this.packer.seal();
      const files = options.tree ? await this.#queueTree(options.tree) : null;
      const record: CheckpointRecord = {
        format: FORMAT_VERSION,
        type: "checkpoint",
        id: newId(),
        experiment: this.record.id,
        attempt: 1,
        created: new Date().toISOString(),
        step: options.step ?? null,
        metrics: options.metrics ?? {},
        primary_metric: options.primaryMetric ?? this.record.primary_metric,
        files,
        torn: options.torn ?? [],
        warnings: options.warnings ?? [],
      };
      await this.outbox.addBytes(
        checkpointKey(this.record.id, record.id),
        jsonBytes(record),
        "record",
      );
      this.checkpoints.push(record);
      return record;
    });
  }

  /** Upload progress. */
  pending(): OutboxState {
    return this.outbox.state();
  }

  /**
   * Finish: queue the status record and wait for uploads (unless `wait` is false, in which case
   * the outbox stays on disk for a later `rep` command to finish).
   */
  async stop(
    status: StatusRecord["status"],
    options: { exitCode?: number | null; signal?: string | null; wait?: boolean } = {},
  ): Promise<void> {
    await this.#serial(async () => {
      await this.packer.seal();
      const rec: StatusRecord = {
        format: FORMAT_VERSION,
        type: "status",
        status,
        exit_code: options.exitCode ?? null,
        signal: options.signal ?? null,
        finished: new Date().toISOString(),
      };
      await this.outbox.addBytes(
        statusKey(this.record.id),
        jsonBytes(rec),
        "record",
      );
    });
    clearInterval(this.#heartbeat);
    if (options.wait === false) {
      this.outbox.stop();
      this.dedup.close();
      return;
    }
    await this.outbox.drain();
    this.#stopped = true;
    this.dedup.publish();
    this.dedup.close();
    await this.repo.store.delete([heartbeatKey(this.record.id)]).catch(() => {});
    await this.outbox.remove();
  }

  /** Stop the heartbeat and uploads without writing a status (the experiment will read as crashed). */
  abandon(): void {
    clearInterval(this.#heartbeat);
    this.#stopped = true;
    this.outbox.stop();
    this.dedup.close();
  }
}
