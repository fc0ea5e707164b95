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
import { type ChunkLoc, Packer } from "./packer.ts";
import { Outbox, type OutboxState } from "./outbox.ts";
import type { Repository } from "../repository.ts";
import { snapshotFiles, type SnapshotResult, type StatCache } from "./snapshot.ts";
import { LocalStore } from "../storage/local.ts";
import { gcCandidates } from "../catalog/gc_listings.ts";
import { cacheDir, jsonBytes } from "../util.ts";
import { VERSION } from "../version.ts";
import {
  checkpointKey,
  experimentKey,
  heartbeatKey,
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

/** Records one experiment. Create with {@link Recorder.start}. */
export class Recorder {
  readonly repo: Repository;
  readonly record: ExperimentRecord;
  readonly outbox: Outbox;
  readonly packer: Packer;
  readonly statCache: StatCache = new Map();
  #trees = new Set<string>();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #lock: Promise<unknown> = Promise.resolve();
  #stopped = false;
  /** Checkpoints committed so far. */
  readonly checkpoints: CheckpointRecord[] = [];

  private constructor(repo: Repository, record: ExperimentRecord, outbox: Outbox, packer: Packer) {
    this.repo = repo;
    this.record = record;
    this.outbox = outbox;
    this.packer = packer;
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
    await repo.init();
    const id = options.id ?? newId();
    const outbox = await Outbox.create(
      join(Recorder.outboxRoot(repo), id),
      repo.store,
      options.onStorageError ? { onStorageError: options.onStorageError } : {},
    );
    const known = new Map<string, ChunkLoc>();
    // Packs staged for a local store stay where they are written: direct writes (no page cache).
    const packer = new Packer(outbox.tmpDir, known, async (p) => {
      await outbox.addFile(packKey(p.id), p.path, "data");
    }, { direct: repo.store instanceof LocalStore });
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
    const rec = new Recorder(repo, record, outbox, packer);
    try {
      if (options.code) {
        await rec.#seedFromPrevious(options.cwd ?? Deno.cwd());
        const snap = await snapshotFiles(options.code.root, options.code.files, packer);
        await packer.seal();
        record.code = await rec.#queueTree(snap.tree);
      }
      await rec.#writeHeartbeat();
      await outbox.addBytes(experimentKey(id), jsonBytes(record), "record");
    } catch (e) {
      await packer.abort();
      throw e;
    }
    rec.#heartbeat = setInterval(() => {
      rec.#writeHeartbeat().catch(() => {});
    }, HEARTBEAT_INTERVAL * 1000);
    Deno.unrefTimer(rec.#heartbeat as unknown as number);
    return rec;
  }

  /**
   * Reuse the chunks of the latest experiment started in the same folder, so an unchanged code
   * snapshot stores nothing new. Best effort: any failure just means no dedup.
   */
  async #seedFromPrevious(cwd: string): Promise<void> {
    try {
      const views = await this.repo.list();
      const prev = views.find((v) => v.record.cwd === cwd && v.record.code);
      if (!prev?.record.code) return;
      const tree = await this.repo.tree(prev.record.code.tree);
      // Never reuse data that `rep gc` has listed for deletion.
      const listed = await gcCandidates(this.repo.store);
      for (const f of tree.files) {
        for (const [pack, off, len, hash] of f.chunks) {
          if (!listed.has(packKey(pack))) this.packer.known.set(hash, [pack, off, len]);
        }
      }
      this.#trees.add(prev.record.code.tree);
    } catch {
      // no dedup
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
    return this.#serial(() => snapshotFiles(root, files, this.packer, this.statCache));
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
      return;
    }
    await this.outbox.drain();
    this.#stopped = true;
    await this.repo.store.delete([heartbeatKey(this.record.id)]).catch(() => {});
    await this.outbox.remove();
  }

  /** Stop the heartbeat and uploads without writing a status (the experiment will read as crashed). */
  abandon(): void {
    clearInterval(this.#heartbeat);
    this.#stopped = true;
    this.outbox.stop();
  }
}
