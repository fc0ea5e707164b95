/**
 * The public library: {@link Repo}, {@link Experiment}, {@link Checkpoint} and `init()`.
 *
 * @module
 */
import { basename, dirname, isAbsolute, relative, resolve } from "node:path";
import { NotFoundError, UsageError } from "./errors.ts";
import type {
  CheckpointRecord,
  ExperimentRecord,
  FileEntry,
  GitInfo,
  MetricValue,
  ParamValue,
  PrimaryMetric,
  Status,
} from "./format/records.ts";
import { bestCheckpoint, type ExperimentView, Repository } from "./repository.ts";
import type { Recorder, StartOptions } from "./writer/recorder.ts";
import { guard, release } from "./api_exit.ts";
import { begin, planBegin, resumeMessage } from "./lifecycle/begin.ts";
import { Retainer } from "./lifecycle/retainer.ts";
import { keepsAll, type RetentionPolicy } from "./catalog/retention.ts";
import { resolveRepository } from "./config.ts";
import { listCodeFiles } from "./code.ts";
import { LocalStore } from "./storage/local.ts";
import { ControlClient } from "./protocol/client.ts";
import { CONTROL_ENV } from "./protocol/socket.ts";

/** A file stored in a checkpoint. */
export interface FileInfo {
  /** POSIX path relative to the checkpoint's root. */
  path: string;
  /** Size in bytes. */
  size: number;
  /** Content id (see docs/format.md). */
  hash: string;
  /** POSIX permission bits, e.g. `0o644`. */
  mode: number;
}

/** What a checkout wrote. */
export interface CheckoutResult {
  /** Files written, relative to the target folder. */
  written: string[];
  /** Files that were already there with the right content. */
  unchanged: string[];
  /** Bytes written. */
  bytes: number;
}

/** Options of `checkout()`. */
export interface CheckoutOptions {
  /** Overwrite files that exist with different content. @default false */
  force?: boolean;
  /** Only these files or folders. */
  paths?: string[];
}

/** One checkpoint: the files and metrics of an experiment at one step. */
export class Checkpoint {
  readonly #repo: Repository;
  /** The stored record. */
  readonly record: CheckpointRecord;
  readonly #experiment: ExperimentRecord | null;

  /** @internal */
  constructor(repo: Repository, record: CheckpointRecord, experiment?: ExperimentRecord) {
    this.#repo = repo;
    this.record = record;
    this.#experiment = experiment ?? null;
  }

  /** Full checkpoint id. */
  get id(): string {
    return this.record.id;
  }
  /** Id of the experiment this checkpoint belongs to. */
  get experimentId(): string {
    return this.record.experiment;
  }
  /** When it was created. */
  get created(): Date {
    return new Date(this.record.created);
  }
  /** Training step, when known. */
  get step(): number | null {
    return this.record.step;
  }
  /** Metrics recorded with it. */
  get metrics(): Record<string, MetricValue> {
    return this.record.metrics;
  }
  /** The metric that decides the best checkpoint. */
  get primaryMetric(): PrimaryMetric | null {
    return this.record.primary_metric;
  }

  async #entries(): Promise<FileEntry[]> {
    if (!this.record.files) return [];
    if (this.#experiment) return await this.#repo.checkpointFiles(this.#experiment, this.record);
    return (await this.#repo.tree(this.record.files.tree)).files;
  }

  /** The files stored in this checkpoint. */
  async files(): Promise<FileInfo[]> {
    return (await this.#entries()).map(({ path, size, hash, mode }) => ({
      path,
      size,
      hash,
      mode,
    }));
  }

  /**
   * Stream one file of this checkpoint. Only that file's data is fetched, by ranged reads, with
   * bounded memory.
   *
   * @example Read a weights file
   * ```ts ignore
   * import { experiments } from "./mod.ts";
   * const exp = await experiments.get("a1b2c3d");
   * const stream = await exp.best()!.open("model.pth");
   * const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
   * ```
   */
  async open(path: string): Promise<ReadableStream<Uint8Array>> {
    const clean = path.replace(/^\.\/+/, "");
    const entry = (await this.#entries()).find((f) => f.path === clean);
    if (!entry) {
      throw new NotFoundError(
        `No file "${path}" in checkpoint ${this.id.slice(0, 7)}`,
        "List its files with `rep show` or `checkpoint.files()`",
      );
    }
    return this.#repo.fileStream(entry);
  }

  /** Write this checkpoint's files into `dir`. */
  async checkout(dir: string, options: CheckoutOptions = {}): Promise<CheckoutResult> {
    return await this.#repo.checkout(await this.#entries(), dir, options);
  }
}

/** One experiment: its params, provenance, status and checkpoints. */
export class Experiment {
  readonly #repo: Repository;
  /** The stored record. */
  readonly record: ExperimentRecord;
  #view: ExperimentView | null;
  #recorder: Recorder | null;
  #checkpoints: Checkpoint[];
  /** The project folder checkpoint paths are relative to (init()'s path). */
  #root: string;
  #live: LiveState | null;
  /** The `rep run` this process runs under, when init() joined its experiment (REP_CONTROL). */
  #attached: ControlClient | null;

  /** @internal */
  constructor(
    repo: Repository,
    view: ExperimentView | null,
    recorder: Recorder | null,
    root?: string,
    live?: LiveState,
    attached?: { client: ControlClient; record: ExperimentRecord },
  ) {
    this.#repo = repo;
    this.#root = root ?? Deno.cwd();
    this.#view = view;
    this.#recorder = recorder;
    this.#live = live ?? null;
    this.#attached = attached?.client ?? null;
    this.record = view?.record ?? attached?.record ?? recorder!.record;
    const earlier = view?.checkpoints ?? live?.earlier ?? [];
    this.#checkpoints = earlier.map((c) => new Checkpoint(repo, c, this.record));
  }

  /** Full experiment id. */
  get id(): string {
    return this.record.id;
  }
  /** Its human name (unique in the repository), or null. */
  get name(): string | null {
    return this.record.name ?? null;
  }
  /**
   * The attempt this process records (1, or n ≥ 2 after `init({ resume })` resumed it); for an
   * experiment read from the repository, its newest attempt.
   */
  get attempt(): number {
    if (this.#live) return this.#live.attempt;
    return this.#view?.attempts.length || 1;
  }
  /** The checkpoint whose files `init({ resume })` put back, or null. */
  get resumedFrom(): Checkpoint | null {
    const from = this.#live?.resumedFrom;
    return from ? new Checkpoint(this.#repo, from, this.record) : null;
  }
  /** When it started. */
  get created(): Date {
    return new Date(this.record.created);
  }
  /** Its params. */
  get params(): Record<string, ParamValue> {
    return this.record.params;
  }
  /** The command it ran, if any. */
  get command(): string[] {
    return this.record.command;
  }
  /** Git state at start. */
  get git(): GitInfo | null {
    return this.record.git;
  }
  /** Status: running, succeeded, failed, stopped or crashed. */
  get status(): Status {
    if (this.#recorder || this.#attached) return "running";
    return this.#view?.status ?? "running";
  }
  /** Exit code, when the experiment ran a command and it ended. */
  get exitCode(): number | null {
    return this.#view?.statusRecord?.exit_code ?? null;
  }
  /**
   * Everything recorded about the environment at start: Python version and packages, GPU, CPU,
   * platform, environment variables (secrets redacted), git diff and untracked files.
   */
  async provenance(): Promise<Record<string, unknown>> {
    if (!this.#view) return this.record.provenance;
    return (await this.#repo.withFullRecord(this.#view)).record.provenance;
  }

  /** Its checkpoints, oldest first. */
  get checkpoints(): Checkpoint[] {
    return this.#checkpoints;
  }

  /**
   * The best checkpoint by the primary metric (checkpoints missing it, or with NaN, are ignored),
   * or null when none has a value for it.
   */
  best(): Checkpoint | null {
    const best = bestCheckpoint(this.#checkpoints.map((c) => c.record), this.record.primary_metric);
    return this.#checkpoints.find((c) => c.record === best) ?? null;
  }

  /** The most recent checkpoint, or null. */
  latest(): Checkpoint | null {
    return this.#checkpoints[this.#checkpoints.length - 1] ?? null;
  }

  /**
   * Check out the code snapshot and the best (else latest) checkpoint's files into `dir`.
   */
  async checkout(dir: string, options: CheckoutOptions = {}): Promise<CheckoutResult> {
    const files: FileEntry[] = [];
    if (this.record.code) files.push(...(await this.#repo.tree(this.record.code.tree)).files);
    const ck = this.best() ?? this.latest();
    if (ck?.record.files) {
      const ckFiles = await this.#repo.checkpointFiles(this.record, ck.record);
      const over = new Set(ckFiles.map((f) => f.path));
      const merged = files.filter((f) => !over.has(f.path)).concat(ckFiles);
      return await this.#repo.checkout(merged, dir, options);
    }
    return await this.#repo.checkout(files, dir, options);
  }

  /**
   * Record a checkpoint: the files at `path` (a file or folder, relative to the working directory)
   * plus metrics. Only for experiments started with `init()`.
   */
  async checkpoint(options: CheckpointOptions = {}): Promise<Checkpoint> {
    if (this.#attached) return this.#add(await this.#attachedCheckpoint(this.#attached, options));
    const rec = this.#writer();
    let tree = null;
    let torn: string[] = [];
    if (options.path !== undefined && options.path !== null) {
      const { root, files } = await filesAt(options.path, this.#root);
      const snap = await rec.snapshot(root, files);
      tree = snap.tree;
      torn = snap.torn;
    }
    const all = this.#checkpoints;
    const step = options.step ??
      (all.length ? (all[all.length - 1]!.record.step ?? all.length - 1) + 1 : 0);
    const record = await rec.commit({
      tree,
      step,
      metrics: options.metrics ?? {},
      primaryMetric: options.primaryMetric ?? null,
      torn,
    });
    return this.#add(record);
  }

  /** Through the `rep run` it joined: that process reads the files before it answers. */
  async #attachedCheckpoint(
    client: ControlClient,
    options: CheckpointOptions,
  ): Promise<CheckpointRecord> {
    const reply = await client.request("checkpoint", {
      paths: options.path === undefined || options.path === null ? [] : [resolve(options.path)],
      step: options.step ?? null,
      metrics: options.metrics ?? {},
      primary_metric: options.primaryMetric ?? null,
    });
    return reply.checkpoint as CheckpointRecord;
  }

  #add(record: CheckpointRecord): Checkpoint {
    const ck = new Checkpoint(this.#repo, record, this.record);
    this.#checkpoints.push(ck);
    const retainer = this.#live?.retainer;
    if (retainer) {
      retainer.committed(record);
      // Removed ones leave the list as the retainer removes them.
      this.#checkpoints = this.#checkpoints.filter((c) => !retainer.removed.has(c.id));
    }
    return ck;
  }

  /**
   * Mark the experiment finished and wait for its uploads (and, with `keepBest`/`keepLast`, the
   * removal of the checkpoints outside them).
   */
  async stop(status: "succeeded" | "failed" | "stopped" = "succeeded"): Promise<void> {
    const attached = this.#attached;
    if (attached) {
      // The experiment ends when rep run's command exits; stop only ends this session.
      this.#attached = null;
      await attached.request("stop", { status, exit_code: null }).finally(() => attached.close());
      return;
    }
    const rec = this.#writer();
    this.#recorder = null;
    release(rec);
    await rec.stop(status);
    const retainer = this.#live?.retainer;
    if (retainer) {
      await retainer.settle();
      this.#checkpoints = this.#checkpoints.filter((c) => !retainer.removed.has(c.id));
    }
  }

  #writer(): Recorder {
    if (!this.#recorder && this.#live?.succeeded) {
      throw new UsageError(
        `Experiment ${this.id.slice(0, 7)}${
          this.name ? ` (${this.name})` : ""
        } already succeeded: nothing is recorded`,
        "Check experiment.status after init({ resume: true }), or pass rerun: true to record a new attempt",
      );
    }
    if (!this.#recorder) {
      throw new UsageError(
        `Experiment ${this.id.slice(0, 7)} is not being recorded by this process`,
        "Only an experiment returned by init() can take checkpoints, and only until stop()",
      );
    }
    return this.#recorder;
  }
}

/**
 * The files at `path` (a file or folder), as paths relative to the project folder `project`: a
 * checkpoint of `data/` holds `data/a.txt`. A path outside the project keeps its own name as the
 * first part (`/scratch/run/w.bin` is stored as `w.bin`, `/scratch/run/` as `run/…`).
 */
async function filesAt(path: string, project: string): Promise<{ root: string; files: string[] }> {
  const abs = resolve(path);
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(abs);
  } catch {
    throw new NotFoundError(
      `Cannot checkpoint "${path}": it does not exist`,
      "Pass an existing file or folder as path",
    );
  }
  const rel = relative(project, abs);
  const inside = rel !== "" && !rel.startsWith("..") && !isAbsolute(rel);
  const root = inside ? project : dirname(abs);
  const base = inside ? rel : basename(abs);
  if (st.isFile) return { root, files: [base] };
  const { walkFiles } = await import("./walk.ts");
  const below = await walkFiles(abs);
  return {
    root: rel === "" ? project : root,
    files: rel === "" ? below : below.map((f) => `${base}/${f}`),
  };
}

/** Options of {@link Experiment.checkpoint}. */
export interface CheckpointOptions {
  /**
   * A file or folder to store, relative to the working directory. Stored (and checked out) at its
   * path relative to the project folder, init()'s `path`: `data/` holds `data/a.txt`.
   */
  path?: string | null;
  /** Training step; defaults to the previous step + 1. */
  step?: number;
  /** Metrics at this step. */
  metrics?: Record<string, MetricValue>;
  /** Which metric decides the best checkpoint, and which way. */
  primaryMetric?: PrimaryMetric;
}

/** Options of `experiments.list()`. */
export interface ListOptions {
  /** Keep only experiments for which this returns true. */
  filter?: (experiment: Experiment) => boolean;
}

/** Access to the experiments of a repository. */
export interface ExperimentsApi {
  /** Every experiment, newest first, optionally filtered. */
  list(options?: ListOptions): Promise<Experiment[]>;
  /** The experiment with this id or unambiguous id prefix. */
  get(id: string): Promise<Experiment>;
}

/** Access to the checkpoints of a repository. */
export interface CheckpointsApi {
  /** The checkpoint with this id or unambiguous id prefix. */
  get(id: string): Promise<Checkpoint>;
}

/** A repository: experiments and checkpoints stored at one URL. */
export class Repo {
  readonly #repo: Repository;

  /** @internal */
  constructor(repo: Repository) {
    this.#repo = repo;
  }

  /** The repository URL. */
  get url(): string {
    return this.#repo.url;
  }

  /** @internal */
  get inner(): Repository {
    return this.#repo;
  }

  /** Experiments in this repository. */
  readonly experiments: ExperimentsApi = {
    /** Every experiment, newest first, optionally filtered. */
    list: async (options: ListOptions = {}): Promise<Experiment[]> => {
      const all = (await this.#repo.list()).map((v) => new Experiment(this.#repo, v, null));
      return options.filter ? all.filter(options.filter) : all;
    },
    /** The experiment with this id or unambiguous id prefix. */
    get: async (id: string): Promise<Experiment> => {
      const r = await this.#repo.resolve(id);
      if (r.kind !== "experiment") {
        throw new NotFoundError(
          `"${id}" is a checkpoint id, not an experiment id`,
          "Use checkpoints.get() for checkpoint ids",
        );
      }
      return new Experiment(this.#repo, r.experiment, null);
    },
  };

  /** Checkpoints in this repository. */
  readonly checkpoints: CheckpointsApi = {
    /** The checkpoint with this id or unambiguous id prefix. */
    get: async (id: string): Promise<Checkpoint> => {
      const r = await this.#repo.resolve(id);
      if (r.kind !== "checkpoint") {
        throw new NotFoundError(
          `"${id}" is an experiment id, not a checkpoint id`,
          "Use experiments.get() for experiment ids",
        );
      }
      return new Checkpoint(this.#repo, r.checkpoint, r.experiment.record);
    },
  };

  /**
   * Start recording an experiment in this repository; with `resume`, continue the one named
   * `name` (or given by id) as a new attempt, its latest checkpoint's files put back first.
   *
   * @throws {NameTakenError} `name` is taken by another experiment (without `resume`).
   * @throws {BusyError} The experiment to resume is running, or another process won the resume.
   */
  async init(options: InitOptions = {}): Promise<Experiment> {
    const control = Deno.env.get(CONTROL_ENV);
    if (control) return await this.#attach(control, options);
    const underRun = Deno.env.get("REP_EXPERIMENT_ID");
    if (underRun) {
      throw new UsageError(
        "This command runs under a `rep run` that does not accept checkpoints from init() " +
          `(REP_EXPERIMENT_ID=${underRun} is set, ${CONTROL_ENV} is not)`,
        "Upgrade rep, or let rep run checkpoint the output folder from metrics lines, or unset " +
          "REP_EXPERIMENT_ID to record a separate experiment",
      );
    }
    const project = resolve(options.path ?? ".");
    const policy = retentionPolicy(options);
    const plan = await planBegin(this.#repo, {
      name: options.name ?? null,
      ...(options.resume !== undefined ? { resume: options.resume } : {}),
      rerun: options.rerun ?? false,
    });
    if (plan.kind === "succeeded") {
      const e = plan.experiment;
      console.error(
        `rep: experiment ${e.id.slice(0, 7)}${e.name ? ` (${e.name})` : ""} already succeeded ` +
          `(attempt ${plan.attempt}); nothing is recorded (init({ rerun: true }) records a new attempt)`,
      );
      const view = await this.#repo.withFullRecord(e);
      return new Experiment(this.#repo, view, null, project, {
        attempt: plan.attempt,
        earlier: e.checkpoints,
        resumedFrom: null,
        retainer: null,
        succeeded: true,
      });
    }
    const begun = await begin(this.#repo, plan, {
      start: () => this.#startOptions(options),
      command: [],
      cwd: Deno.cwd(),
      restore: { root: project, folders: [] },
    });
    const { recorder: rec, resumed } = begun;
    const earlier = resumed?.earlier ?? [];
    const retainer = policy
      ? new Retainer(rec, {
        policy,
        primaryMetric: rec.record.primary_metric,
        earlier,
        remove: (cks, reason) =>
          this.#repo.catalog.remove(
            [],
            cks.map((c) => ({ experiment: c.experiment, checkpoint: c.id })),
            reason,
          ),
        say: (text) => console.error(text.trimEnd()),
      })
      : null;
    if (resumed) console.error(resumeMessage(begun, plan.name));
    // An uncaught error marks it failed and uploads it (src/api_exit.ts).
    guard(rec, retainer ? () => retainer.settle() : undefined);
    return new Experiment(this.#repo, null, rec, project, {
      attempt: rec.attempt,
      earlier,
      resumedFrom: resumed?.from ?? null,
      retainer,
      succeeded: false,
    });
  }

  /**
   * Under `rep run` (REP_CONTROL set): join the experiment it records. Its checkpoints are exactly
   * the ones this process makes; params, name and code are rep run's (a message says so).
   */
  async #attach(control: string, options: InitOptions): Promise<Experiment> {
    const client = await ControlClient.connect(control);
    try {
      const reply = await client.request("init", {
        project: resolve(options.path ?? "."),
        params: options.params ?? {},
        primary_metric: options.primaryMetric ?? null,
        code: options.path !== null,
        exclude: options.exclude ?? [],
        command: [basename(Deno.execPath()), ...Deno.args],
        python: null,
        tags: options.tags ?? [],
        note: options.note ?? null,
        name: options.name ?? null,
        resume: options.resume ?? null,
        rerun: options.rerun ?? false,
        keep_best: options.keepBest ?? null,
        keep_last: options.keepLast ?? null,
      });
      const record = reply.experiment as ExperimentRecord;
      // Its checkpoints are read back from rep run's repository, whichever this one is.
      const url = String(reply.repository);
      const repo = url === this.#repo.url ? this.#repo : await Repository.open(url);
      return new Experiment(repo, null, null, String(reply.project), {
        attempt: typeof reply.attempt === "number" ? reply.attempt : 1,
        earlier: (reply.checkpoints as CheckpointRecord[] | undefined) ?? [],
        resumedFrom: (reply.resumed_from as CheckpointRecord | null | undefined) ?? null,
        retainer: null,
        succeeded: reply.succeeded === true,
      }, { client, record });
    } catch (e) {
      client.close();
      throw e;
    }
  }

  /** What a new experiment records at start: code snapshot, git state, params. */
  async #startOptions(options: InitOptions): Promise<StartOptions> {
    const cwd = Deno.cwd();
    let code: { root: string; files: string[] } | null = null;
    if (options.path !== null) {
      const repoDir = this.#repo.store instanceof LocalStore ? [this.#repo.store.root] : [];
      const listed = await listCodeFiles(options.path ?? ".", [
        ...(options.exclude ?? []),
        ...repoDir,
      ]);
      code = { root: listed.root, files: listed.files };
    }
    const { gitInfo } = await import("./run/provenance.ts");
    const git = await gitInfo(options.path ?? cwd).catch(() => null);
    return {
      params: options.params ?? {},
      command: [],
      cwd,
      code,
      git: git ? { commit: git.commit, branch: git.branch, dirty: git.dirty } : null,
      tags: options.tags ?? [],
      note: options.note ?? null,
      primaryMetric: options.primaryMetric ?? null,
    };
  }

  /** Release connections. */
  async close(): Promise<void> {
    await this.#repo.close();
  }
}

/** Options of `init()`. */
export interface InitOptions {
  /** Folder of the code snapshot, or null for none. @default "." */
  path?: string | null;
  /** Paths to leave out of the code snapshot. */
  exclude?: string[];
  /** Hyperparameters. */
  params?: Record<string, ParamValue>;
  /** Tags. */
  tags?: string[];
  /** A note. */
  note?: string;
  /** Which metric decides the best checkpoint. */
  primaryMetric?: PrimaryMetric;
  /** Repository URL; defaults to the configured one. */
  repository?: string;
  /**
   * A human name, unique in the repository: init fails with a `NameTakenError` naming the
   * experiment that has it (unless `resume`). It works wherever an id does (`rep show NAME`).
   */
  name?: string;
  /**
   * `true`: continue the experiment called `name` if it exists and has not succeeded (crashed,
   * failed, stopped), else start it, so a requeued job can always run the same line. A string:
   * continue from that experiment or checkpoint id (or name). The latest (or given) checkpoint's
   * files are put back where they were, under `path`, before init returns; the experiment comes
   * back with its earlier checkpoints and records a new attempt.
   */
  resume?: boolean | string;
  /** With `resume`: record a new attempt even of an experiment that succeeded. @default false */
  rerun?: boolean;
  /**
   * Keep only the N best checkpoints by the primary metric (plus `keepLast`): the others are
   * removed as they fall out, once stored; `rep gc` reclaims their data.
   */
  keepBest?: number;
  /** Keep only the M latest checkpoints (plus `keepBest`). */
  keepLast?: number;
}

/** What an experiment returned by `init()` knows about its attempt. */
interface LiveState {
  attempt: number;
  /** The experiment's checkpoints from before this attempt, oldest first. */
  earlier: CheckpointRecord[];
  resumedFrom: CheckpointRecord | null;
  retainer: Retainer | null;
  /** It had already succeeded: nothing is recorded. */
  succeeded: boolean;
}

/** The retention policy of `init()` options, or null for none. */
function retentionPolicy(options: InitOptions): RetentionPolicy | null {
  const policy: RetentionPolicy = {};
  for (const key of ["keepBest", "keepLast"] as const) {
    const n = options[key];
    if (n === undefined) continue;
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new UsageError(`${key} must be a whole number ≥ 0, not ${n}`, `Example: ${key}: 3`);
    }
    policy[key] = n;
  }
  if (keepsAll(policy)) return null;
  if ((policy.keepBest ?? 0) + (policy.keepLast ?? 0) === 0) {
    throw new UsageError(
      "keepBest: 0 with keepLast: 0 would remove every checkpoint",
      "Keep at least one: e.g. keepBest: 3, keepLast: 1",
    );
  }
  return policy;
}

/** Open the repository at `url`, or the configured one (rep.yaml, REP_REPOSITORY, `.rep/`). */
export async function openRepository(url?: string): Promise<Repo> {
  const resolved = await resolveRepository(url ? { flag: url } : {});
  return new Repo(await Repository.open(resolved.url, { base: resolved.base }));
}
