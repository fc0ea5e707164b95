/**
 * `rep run`: run a command unchanged, record it as an experiment, and make checkpoints while it
 * trains. Each metrics line (a line of the metrics JSONL file; with `--stdout-metrics`, a group
 * of `key: value` lines or a logged dict on stdout) makes one checkpoint holding that line's
 * metrics and the version of each output file that belongs to it.
 *
 * The parts, each with one job:
 * - `child.ts`: the command, its process group, freezing and signals;
 * - `watch.ts`: one ordered stream of file events (file versions and appends to line sources);
 * - `versions.ts`: every completed file version, copied while the command is held, chunked after;
 * - `lines.ts`: where each line sits among the file events;
 * - `attribution.ts`: which versions belong to which line (save-then-log or log-then-save);
 * - `log.ts`: the command's output, passed through and stored as segments and a tail;
 * - `lock.ts`: one live run per output folder.
 *
 * This file wires them together and commits the checkpoints.
 *
 * @module
 */
import { basename, dirname, join, relative, resolve } from "node:path";
import type {
  CheckpointRecord,
  ExperimentRecord,
  FileEntry,
  MetricValue,
  ParamValue,
  PrimaryMetric,
} from "../format/records.ts";
import type { OutboxState } from "../writer/outbox.ts";
import { TREE_FORMAT } from "../format/records.ts";
import type { Repository } from "../repository.ts";
import { outboxName, Recorder, type StartOptions } from "../writer/recorder.ts";
import { begin, type BeginPlan, type Begun } from "../lifecycle/begin.ts";
import { Retainer } from "../lifecycle/retainer.ts";
import type { RetentionPolicy } from "../catalog/retention.ts";
import { LocalStore } from "../storage/local.ts";
import { listCodeFiles } from "../code.ts";
import { newId } from "../format/ids.ts";
import { ALWAYS_EXCLUDED } from "../walk.ts";
import { CaptureThread } from "./capture_thread.ts";
import { lowerThreads } from "./nice.ts";
import { EventLog, ignoreBy, type IgnoreRules, type WatchEvent } from "./watch.ts";
import { type MetricsEvent, MetricsTail } from "./metrics.ts";
import { ScalarParser } from "./scalars.ts";
import {
  collectProvenance,
  isSecretName,
  REDACTED,
  redactParam,
  redactValue,
} from "./provenance.ts";
import { mergeParams, parseCommandParams } from "./params.ts";
import { cacheDir, formatBytes } from "../util.ts";
import { RepError, UsageError } from "../errors.ts";
import { attemptMalformedKey } from "../format/layout.ts";
import { checkProgram, Child, FORWARDED_SIGNALS } from "./child.ts";
import { type Version, VersionStore } from "./versions.ts";
import { countNewlines, LineSource, type Position } from "./lines.ts";
import { Attributor, END, type Order, type Released, type Timeline } from "./attribution.ts";
import { RunLog } from "./log.ts";
import { LOCK_FILE, OutputLock } from "./lock.ts";

export { allStopped, findProgram } from "./child.ts";

/** Options of {@link runExperiment}. */
export interface RunOptions {
  repo: Repository;
  command: string[];
  /** Working directory of the command: the project folder checkpoint paths are relative to. */
  cwd: string;
  /** The watched output folder (created when missing). */
  output: string;
  /** The metrics JSONL file. */
  metrics: string;
  primaryMetric: PrimaryMetric | null;
  /** Params given with -p (added to those read from the command; a contradiction is refused). */
  params: Record<string, ParamValue>;
  tags: string[];
  note: string | null;
  /** Skip the code snapshot. */
  noCode: boolean;
  /** Also read `key: value` scalars and logged dicts from the command's stdout. */
  stdoutMetrics: boolean;
  /** The script's order, when the user knows it better than the rule (`--order`). */
  order?: Order | null;
  /** Seconds a changed file must stay unchanged before it is checkpointed without a metrics line. */
  settle?: number;
  /** Messages for the user (stderr). */
  say: (text: string) => void;
  /** Where the command's stdout and stderr go. */
  stdout: (bytes: Uint8Array) => void;
  stderr: (bytes: Uint8Array) => void;
  /** Show upload progress (stderr is a terminal). */
  progress?: boolean;
  /** Environment of the command (defaults to this process's). */
  env?: Record<string, string>;
  /** Called once the command runs, with the seam for explicit checkpoints. */
  onStart?: (control: RunControl) => void;
  /**
   * How the experiment begins, as `planBegin` (src/lifecycle/begin.ts) decided: a new experiment
   * (with its name) or a resume. Default: a new experiment without a name.
   */
  plan?: Exclude<BeginPlan, { kind: "succeeded" }>;
  /** Remove the checkpoints outside this policy as they fall out (`--keep-best/--keep-last`). */
  keep?: RetentionPolicy | null;
}

/** What a control channel inside `rep run` can do while the command runs. */
export interface RunControl {
  experimentId: string;
  /** The experiment being recorded. */
  record: ExperimentRecord;
  /** The project folder (the command's working directory): checkpoint paths are relative to it. */
  project: string;
  /**
   * A client inside the command records its own checkpoints (Python `rep.init()`): from now on
   * rep run makes none from metrics lines, settled files or the command's end.
   */
  attach(): void;
  /**
   * Commit an explicit checkpoint of exactly `files` (paths relative to the project folder, or
   * absolute inside it) with `metrics`, as they are now (the caller has finished writing them).
   */
  checkpoint(options: ExplicitOptions): Promise<CheckpointRecord>;
  /** Upload progress. */
  pending(): OutboxState;
}

/** An explicit checkpoint through {@link RunControl.checkpoint}. */
export interface ExplicitOptions {
  files: string[];
  step?: number | null;
  metrics?: Record<string, MetricValue>;
  primaryMetric?: PrimaryMetric | null;
}

/** Result of a run. */
export interface RunResult {
  experimentId: string;
  /** The attempt this run recorded (1, or n ≥ 2 for a resume). */
  attempt: number;
  /** Checkpoints removed by the retention policy (`keep`) during the run. */
  removed: number;
  exitCode: number;
  status: "succeeded" | "failed" | "stopped";
  checkpoints: number;
  /** Checkpoints that carry warnings. */
  warned: number;
  /** Metrics lines that could not be read. */
  malformed: number;
  /** True when uploads were left pending (second Ctrl-C or storage down). */
  pendingLeft: boolean;
  /** Milliseconds the command was held per copy. */
  pauses: number[];
}

const TICK_MS = 250;
/** The nice value of rep's threads but the capture thread while the command runs (REP_NICE). */
const DEFAULT_NICE = 10;
/** Staging space for copies waiting to be chunked (bytes); `REP_STAGING_BYTES` overrides. */
const STAGING_BYTES = 2 * 1024 ** 3;
/** A version closed this soon before a failed exit may be a partial write. */
const CRASH_WINDOW_MS = 300;
/** Reads (each with its barrier) of a metrics file that grew past the last read, at most. */
const SETTLE_READS = 4;

/** A metrics line waiting for its files. */
interface LineData {
  step: number;
  metrics: Record<string, unknown>;
  path?: string;
  uncertain?: string;
}

/** Create a folder named by a flag, or fail with what to do. */
function makeFolder(dir: string, what: string, fix: string): void {
  try {
    Deno.mkdirSync(dir, { recursive: true });
    const probe = join(dir, `.rep-probe-${Deno.pid}`);
    Deno.writeFileSync(probe, new Uint8Array(0));
    Deno.removeSync(probe);
  } catch (e) {
    throw new RepError(`Cannot use ${dir} as ${what}: ${(e as Error).message}`, fix);
  }
}

/** Record `command` as an experiment and run it. */
export async function runExperiment(opts: RunOptions): Promise<RunResult> {
  const env = opts.env ?? Deno.env.toObject();
  await checkProgram(opts.command, opts.cwd, env.PATH ?? "");
  const output = resolve(opts.cwd, opts.output);
  const metricsPath = resolve(opts.cwd, opts.metrics);
  makeFolder(output, "the output folder", "Choose a writable folder with --output DIR");
  makeFolder(
    join(metricsPath, ".."),
    "the metrics file's folder",
    "Choose a writable place with --metrics FILE",
  );
  const params = recordParams(opts.command, opts.params);
  const command = redactCommand(opts.command);
  const id = opts.plan?.id ?? newId();
  const lock = OutputLock.acquire(output, id, opts.cwd);
  // Loaded now, while the run is prepared: the command starts only once it watches.
  const capture = env.REP_CAPTURE_THREAD === "0" ? null : CaptureThread.load();
  try {
    return await runLocked(opts, { env, output, metricsPath, params, command, id, lock, capture });
  } finally {
    capture?.close();
    lock.release();
  }
}

/** Params: the command's own arguments plus -p (see {@link mergeParams}), secrets redacted. */
function recordParams(
  cmd: string[],
  given: Record<string, ParamValue>,
): Record<string, ParamValue> {
  const merged = mergeParams(parseCommandParams(cmd), given);
  return Object.fromEntries(Object.entries(merged).map(([k, v]) => [k, redactParam(k, v)]));
}

interface Prepared {
  env: Record<string, string>;
  output: string;
  metricsPath: string;
  params: Record<string, ParamValue>;
  command: string[];
  id: string;
  lock: OutputLock;
  /** The capture thread, loading (null: rep watches on its main thread). */
  capture: CaptureThread | null;
}

async function runLocked(opts: RunOptions, p: Prepared): Promise<RunResult> {
  const { output, id } = p;
  const repoDir = opts.repo.store instanceof LocalStore ? opts.repo.store.root : null;
  // Checkpoint paths are relative to the project folder; an output folder outside it keeps its
  // own name as the first part.
  const outRel = relative(opts.cwd, output);
  const outside = outRel.startsWith("..") || resolve(opts.cwd, outRel) !== output;
  const prefix = outside ? basename(output) : outRel;
  const proj = (rel: string) => prefix ? `${prefix}/${rel}` : rel;

  let storageDown = false;
  const onStorageError = (e: Error | null) => {
    if (e && !storageDown) {
      opts.say(`rep: storage is failing (${e.message}); checkpoints are queued on local disk\n`);
    } else if (!e && storageDown) {
      opts.say("rep: storage is back; uploading queued checkpoints\n");
    }
    storageDown = e !== null;
  };
  const plan = opts.plan ?? { kind: "new" as const, id, name: null, fromResume: false };
  const started = await begin(opts.repo, plan, {
    start: () => startOptions(opts, p, outside ? output : (outRel || "."), repoDir),
    command: p.command,
    cwd: opts.cwd,
    // The output folder ends up holding exactly the checkpoint's files (but the metrics file and
    // rep's own files stay); an output folder that is the project folder itself gets only them.
    restore: outside
      ? {
        root: dirname(output),
        folders: [basename(output)],
        keep: keeper(opts, p, dirname(output)),
      }
      : { root: opts.cwd, folders: outRel ? [outRel] : [], keep: keeper(opts, p, opts.cwd) },
    onStorageError,
  });
  const rec = started.recorder;
  sayBegun(opts, started, plan.name);
  const run = new Run(opts, rec, p, proj, started);
  try {
    return await run.go();
  } finally {
    run.cleanup();
  }
}

/** What a new experiment records at start: provenance and the code snapshot. */
async function startOptions(
  opts: RunOptions,
  p: Prepared,
  outputRecorded: string,
  repoDir: string | null,
): Promise<StartOptions> {
  const [prov, code] = await Promise.all([
    collectProvenance({ cwd: opts.cwd, command: opts.command, env: p.env }),
    opts.noCode
      ? null
      : listCodeFiles(opts.cwd, [p.output, p.metricsPath, ...(repoDir ? [repoDir] : [])]),
  ]);
  if (code?.tooLarge.length) {
    opts.say(
      `rep: left ${code.tooLarge.length} large file(s) out of the code snapshot: ${
        code.tooLarge.slice(0, 3).join(", ")
      }${code.tooLarge.length > 3 ? ", …" : ""}\n`,
    );
  }
  const git = prov.git;
  return {
    params: p.params,
    command: p.command,
    cwd: opts.cwd,
    output: outputRecorded,
    code: code ? { root: code.root, files: code.files } : null,
    git: git
      ? { commit: git.commit, branch: git.branch, dirty: git.dirty, remote: git.remote }
      : null,
    tags: opts.tags,
    note: opts.note,
    primaryMetric: opts.primaryMetric,
    provenance: {
      platform: prov.platform,
      cpu: prov.cpu,
      memory_bytes: prov.memoryBytes,
      gpu: prov.gpu,
      python: prov.python,
      env: prov.env,
      git_diff: git?.diff ?? null,
      git_diff_truncated: git?.diffTruncated ?? false,
      git_untracked: git?.untracked ?? [],
      output: outputRecorded,
      metrics: relative(opts.cwd, p.metricsPath),
      warnings: prov.warnings,
    },
  };
}

/** Paths (relative to `root`) a resume leaves where they are: the metrics file, rep's files. */
function keeper(opts: RunOptions, p: Prepared, root: string): (rel: string) => boolean {
  const mine = [p.metricsPath, join(p.output, LOCK_FILE), cacheDir()];
  if (opts.repo.store instanceof LocalStore) mine.push(opts.repo.store.root);
  const abs = (rel: string) => resolve(root, rel);
  return (rel) => {
    const a = abs(rel);
    return basename(a).startsWith(".rep-probe-") ||
      mine.some((m) => a === m || a.startsWith(m + "/"));
  };
}

/** Say which experiment this run records, and what a resume put back. */
function sayBegun(opts: RunOptions, started: Begun, name: string | null): void {
  const rec = started.recorder;
  const label = `${rec.record.id.slice(0, 7)}${name ? ` (${name})` : ""}`;
  const r = started.resumed;
  if (!r) {
    opts.say(`rep: experiment ${label} in ${opts.repo.url}\n`);
    return;
  }
  const from = r.from;
  opts.say(
    `rep: resuming experiment ${label} as attempt ${rec.attempt}` +
      (from
        ? ` from checkpoint ${from.id.slice(0, 7)} (step ${from.step ?? "-"}): ` +
          `${r.restored.written.length + r.restored.unchanged.length} file(s) put back`
        : ": it has no checkpoint to put back") +
      (r.restored.moved.length
        ? `; ${r.restored.moved.length} file(s) not in it moved to ${r.backup}`
        : "") +
      ` (in ${opts.repo.url})\n`,
  );
}

/** One run's wiring. */
class Run {
  readonly opts: RunOptions;
  readonly rec: Recorder;
  readonly p: Prepared;
  readonly proj: (rel: string) => string;
  readonly runDir: string;
  readonly log: RunLog;
  readonly events: EventLog;
  /** Paths under the output folder that are never file versions. */
  readonly ignore: IgnoreRules;
  readonly stagingLimit: number;
  readonly store: VersionStore;
  readonly attributor: Attributor<LineData>;
  readonly metricsSrc: LineSource;
  readonly metricsTail = new MetricsTail();
  readonly stdoutSrc: LineSource | null;
  readonly scalars: ScalarParser | null;
  child: Child | null = null;
  /** Sequences where a run of appends to a line source started (sorted). */
  readonly lineRuns: number[] = [];
  versionSeq = 0;
  overflow = false;
  checkpoints = 0;
  warned = 0;
  warningsSaid = 0;
  lastStep: number | null = null;
  lastTree: string | null = null;
  lastContent: string | null = null;
  sawLines = false;
  /** The last error that lost a pack (disk full), for the versions it took with it. */
  lastStoreError: string | null = null;
  readonly malformed: { line: number; reason: string; text: string }[] = [];
  #commits: Promise<void> = Promise.resolve();
  #metricsBusy: Promise<void> | null = null;
  #metricsAgain = false;
  #outputBusy: Promise<void> | null = null;
  #outputAgain = false;
  #decoder = new TextDecoder();
  /** Positions of recent stdout lines: line number `#stdoutBase + i + 1` at index i. */
  #stdoutPos: Position[] = [];
  #stdoutBase = 0;
  #orderSaid = false;
  debug: ((m: string) => void) | null;
  /** The checkpoint a resume put back, or null. */
  readonly resumedFrom: CheckpointRecord | null;
  readonly retainer: Retainer | null;

  constructor(
    opts: RunOptions,
    rec: Recorder,
    p: Prepared,
    proj: (rel: string) => string,
    started: Begun,
  ) {
    this.opts = opts;
    this.rec = rec;
    this.p = p;
    this.proj = proj;
    this.debug = p.env.REP_DEBUG
      ? (m: string) => opts.say(`[rep ${Date.now() % 100000}] ${m}\n`)
      : null;
    this.resumedFrom = started.resumed?.from ?? null;
    // A resume's steps continue from the checkpoint it put back.
    const earlier = started.resumed?.earlier ?? [];
    this.lastStep = this.resumedFrom?.step ?? lastStepOf(earlier);
    this.retainer = opts.keep
      ? new Retainer(rec, {
        policy: opts.keep,
        primaryMetric: rec.record.primary_metric,
        earlier,
        remove: (cks, reason) =>
          opts.repo.catalog.remove(
            [],
            cks.map((c) => ({ experiment: c.experiment, checkpoint: c.id })),
            reason,
          ),
        say: opts.say,
      })
      : null;
    this.runDir = join(Recorder.outboxRoot(opts.repo), `${outboxName(p.id, rec.attempt)}.run`);
    Deno.mkdirSync(join(this.runDir, "versions"), { recursive: true });
    this.log = new RunLog(this.runDir, opts.repo.store, p.id, opts.say, rec.attempt);
    // The metrics file must exist to be watched; lines already there belong to an earlier run.
    Deno.writeFileSync(p.metricsPath, new Uint8Array(0), { append: true });
    const offset = Deno.statSync(p.metricsPath).size;
    if (offset > 0) {
      opts.say(
        `rep: ${
          relative(opts.cwd, p.metricsPath)
        } already has ${offset} bytes; reading only new lines\n`,
      );
    }
    this.metricsSrc = new LineSource(relative(opts.cwd, p.metricsPath), p.metricsPath, offset);
    this.stdoutSrc = opts.stdoutMetrics ? new LineSource("stdout", this.log.paths.stdout) : null;
    this.scalars = opts.stdoutMetrics ? new ScalarParser() : null;
    this.attributor = new Attributor<LineData>(opts.order ?? null);
    const metricsRel = relative(p.output, p.metricsPath);
    const runRel = relative(p.output, this.runDir);
    const repoDir = opts.repo.store instanceof LocalStore ? opts.repo.store.root : null;
    const repoRel = repoDir ? relative(p.output, repoDir) : "..";
    const cacheRel = relative(p.output, cacheDir());
    this.ignore = {
      exact: [metricsRel, LOCK_FILE],
      prefixes: [".rep-probe-"],
      under: [runRel, repoRel, cacheRel],
      names: [...ALWAYS_EXCLUDED],
    };
    const ignore = ignoreBy(this.ignore);
    this.events = new EventLog({
      output: p.output,
      runDir: this.runDir,
      sources: new Map([
        [p.metricsPath, "metrics"],
        [this.log.paths.stdout, "stdout"],
        [this.log.paths.stderr, "stderr"],
      ]),
      ignore,
    }, (ev) => this.#onEvent(ev));
    const limit = Number(p.env.REP_STAGING_BYTES ?? STAGING_BYTES);
    this.stagingLimit = Number.isFinite(limit) && limit > 0 ? limit : STAGING_BYTES;
    this.store = new VersionStore({
      output: p.output,
      staging: join(this.runDir, "versions"),
      holder: {
        freeze: () => this.child?.freeze() ?? Promise.resolve(false),
        thaw: () => this.child?.thaw(),
        sync: () => this.events.sync(),
      },
      chunk: async (dir, name) => {
        // Chunked into the open pack, sealed with the next checkpoint: a pack goes up right
        // before the record that refers to it (gc deletes unreferenced packs after its grace).
        const snap = await rec.snapshot(dir, [name]);
        if (snap.torn.length || snap.missing.length || !snap.tree.files[0]) {
          throw new Error("the staged copy changed");
        }
        const { path: _p, ...entry } = snap.tree.files[0];
        rec.statCache.delete(join(dir, name));
        return entry;
      },
      stagingLimit: this.stagingLimit,
      freed: (bytes) => this.events.capture?.freed(bytes),
      lineBetween: (a, b) => {
        for (let i = this.lineRuns.length - 1; i >= 0; i--) {
          const s = this.lineRuns[i]!;
          if (s <= a) return false;
          if (s < b) return true;
        }
        return false;
      },
      ...(this.debug ? { debug: this.debug } : {}),
    });
  }

  #onEvent(ev: WatchEvent): void {
    const c = ev.change;
    if (c.kind === "append") {
      if (c.source === "metrics") {
        this.#noteRun(this.metricsSrc, ev);
        this.kickMetrics();
      } else {
        if (c.source === "stdout" && this.stdoutSrc) this.#noteRun(this.stdoutSrc, ev);
        this.kickOutput();
      }
      return;
    }
    if (c.kind === "overflow") {
      if (!this.overflow) {
        this.opts.say("rep: warning: file events were lost (too many at once); see warnings\n");
      }
      this.overflow = true;
      return;
    }
    this.store.note(ev);
    if (c.kind !== "write") this.versionSeq = ev.seq;
    this.debug?.(`event ${ev.seq} ${c.kind} ${"path" in c ? c.path : ""}`);
  }

  #noteRun(src: LineSource, ev: WatchEvent): void {
    const before = this.lineRuns[this.lineRuns.length - 1] ?? 0;
    src.noteAppend(ev.seq, ev.time, this.versionSeq);
    if (this.versionSeq > before || this.lineRuns.length === 0) this.lineRuns.push(ev.seq);
  }

  readonly timeline: Timeline = {
    stateAt: (seq) => new Map(this.store.at(seq).versions.map((v) => [v.path, v.seq])),
    savesBetween: (from, to) => {
      let firstStart = Infinity;
      let lastComplete = 0;
      for (const st of this.store.files.values()) {
        for (const v of st.versions) {
          if (v.seq > from && v.seq < to && v.status !== "removed") {
            firstStart = Math.min(firstStart, v.startTime);
            lastComplete = Math.max(lastComplete, v.time);
          }
        }
      }
      return lastComplete ? { firstStart, lastComplete } : null;
    },
  };

  // ---- line sources ------------------------------------------------------------------------

  kickMetrics(final = false): Promise<void> {
    if (this.#metricsBusy) {
      this.#metricsAgain = true;
      return this.#metricsBusy;
    }
    this.#metricsBusy = (async () => {
      do {
        this.#metricsAgain = false;
        await this.#readMetrics(final);
      } while (this.#metricsAgain);
    })().catch((e) => this.#loopError(e)).finally(() => this.#metricsBusy = null);
    return this.#metricsBusy;
  }

  async #readMetrics(final: boolean): Promise<void> {
    const src = this.metricsSrc;
    if (src.truncated()) {
      this.opts.say(`rep: warning: ${src.name} was truncated; reading it anew\n`);
      src.offset = 0;
      this.metricsTail.reset();
    }
    const linesBefore = this.metricsTail.lines;
    const evs: MetricsEvent[] = this.metricsTail.push(src.read(16 << 20));
    let synced = false;
    if (this.metricsTail.lines > linesBefore) {
      // A line appended after the read but before the barrier has its run among those the
      // barrier shows: read it too, so the runs and the lines read match (see lines.ts).
      await this.events.sync();
      synced = true;
      for (let i = 0; i < SETTLE_READS && src.grew(); i++) {
        evs.push(...this.metricsTail.push(src.read(16 << 20)));
        await this.events.sync();
      }
    }
    if (final) evs.push(...this.metricsTail.flush());
    const count = this.metricsTail.lines - linesBefore;
    if (count === 0) return;
    if (!synced) await this.events.sync();
    const pos = src.place(count, this.events.seq, Date.now());
    for (const ev of evs) {
      const at = pos[ev.line - linesBefore - 1] ?? pos[pos.length - 1]!;
      if (ev.kind === "malformed") {
        if (this.malformed.length < 5) {
          this.opts.say(`rep: warning: ${src.name} line ${ev.line} ignored: ${ev.reason}\n`);
        }
        this.malformed.push({ line: ev.line, reason: ev.reason, text: ev.text.slice(0, 200) });
        continue;
      }
      this.#pushLine(at, ev.step, ev.metrics, ev.path);
    }
    this.release();
  }

  #pushLine(
    at: Position,
    step: number | undefined,
    metrics: Record<string, unknown>,
    path?: string,
  ) {
    this.sawLines = true;
    this.debug?.(`line at ${at.seq} step ${step} ${JSON.stringify(metrics)}`);
    const s = step ?? (this.lastStep === null ? 0 : this.lastStep + 1);
    this.lastStep = s;
    const data: LineData = { step: s, metrics };
    if (path !== undefined) data.path = path;
    if (at.uncertain) data.uncertain = at.uncertain;
    this.attributor.push({ seq: at.seq, time: at.time, data });
  }

  kickOutput(final = false): Promise<void> {
    if (this.#outputBusy) {
      this.#outputAgain = true;
      return this.#outputBusy;
    }
    this.#outputBusy = (async () => {
      do {
        this.#outputAgain = false;
        await this.#readOutput(final);
      } while (this.#outputAgain);
    })().catch((e) => this.#loopError(e)).finally(() => this.#outputBusy = null);
    return this.#outputBusy;
  }

  async #readOutput(final: boolean): Promise<void> {
    for (;;) {
      const err = this.log.pump("stderr");
      if (err.length) this.opts.stderr(err);
      const out = this.log.pump("stdout");
      if (out.length) {
        this.opts.stdout(out);
        if (this.scalars && this.stdoutSrc) {
          const evs = this.scalars.push(this.#decoder.decode(out, { stream: true }));
          const count = countNewlines(out);
          if (count) {
            await this.events.sync();
            this.#stdoutPos.push(...this.stdoutSrc.place(count, this.events.seq, Date.now()));
            const drop = this.#stdoutPos.length - 10_000;
            if (drop > 0) {
              this.#stdoutPos.splice(0, drop);
              this.#stdoutBase += drop;
            }
          }
          for (const ev of evs) {
            // A group ends at its last scalar line, which may have come in an earlier read.
            const at = this.#stdoutPos[ev.line - this.#stdoutBase - 1] ?? this.#now();
            this.#pushLine(at, ev.step, ev.metrics);
          }
          this.release();
        }
      }
      if (!out.length && !err.length) break;
    }
    if (final && this.scalars) {
      for (const ev of this.scalars.flush()) {
        const at = this.#stdoutPos[ev.line - this.#stdoutBase - 1] ?? this.#now();
        this.#pushLine(at, ev.step, ev.metrics);
      }
      this.release();
    }
  }

  #now(): Position {
    return { seq: this.events.seq + 1, time: Date.now() };
  }

  // ---- checkpoints -------------------------------------------------------------------------

  /** Commit the lines whose files are decided. */
  release(): Promise<void> {
    const ready = this.attributor.take(this.timeline);
    if (this.attributor.reason && !this.#orderSaid) {
      this.#orderSaid = true;
      this.opts.say(
        this.attributor.order === "save-then-log"
          ? "rep: each checkpoint holds the files saved before its metrics line " +
            `(${this.attributor.reason}; --order log-then-save if that is wrong)\n`
          : "rep: each checkpoint holds the files saved after its metrics line, up to the next " +
            `(${this.attributor.reason}; --order save-then-log if that is wrong)\n`,
      );
    }
    for (const r of ready) {
      if (this.attached) continue;
      this.#commits = this.#commits.then(() => this.#commitLine(r)).catch((e) =>
        this.#loopError(e)
      );
    }
    return this.#commits;
  }

  async #commitLine(r: Released<LineData>): Promise<void> {
    const { data } = r.line;
    const warnings: string[] = [];
    if (data.uncertain) warnings.push(data.uncertain);
    await this.#commitAt(r.cut, data.step, data.metrics, data.path, warnings);
  }

  /** Commit the output's state at `cut` (limited to `sub`). */
  async #commitAt(
    cut: number,
    step: number | null,
    metrics: Record<string, unknown>,
    sub: string | undefined,
    warnings: string[],
  ): Promise<void> {
    const { versions, writing } = this.store.at(cut === END ? END : cut);
    const subClean = sub?.replace(/^\.\/+/, "").replace(/\/+$/, "");
    const inSub = (rel: string) => !subClean || rel === subClean || rel.startsWith(subClean + "/");
    const chosen = versions.filter((v) => inSub(v.path));
    if (!sub) this.lastTree = treeKey(chosen);
    await Promise.all(chosen.map((v) => v.done));
    const files: FileEntry[] = [];
    const torn: string[] = [];
    for (const v of chosen) {
      if (v.status === "stored" && v.entry && this.rec.lostPack(v.entry)) {
        v.status = "lost";
        v.reason = `its data could not be written (${this.lastStoreError ?? "a pack was lost"})`;
      }
      if (v.status === "stored" && v.entry) files.push({ path: this.proj(v.path), ...v.entry });
      else {
        torn.push(this.proj(v.path));
        warnings.push(`${this.proj(v.path)}: left out because ${why(v)}`);
      }
    }
    for (const w of writing.filter(inSub)) {
      warnings.push(
        `${this.proj(w)}: still being written (not yet closed) at this point; left out`,
      );
    }
    if (this.overflow) {
      warnings.push("file events were lost while the command ran; files may be from another step");
    }
    if (!this.events.watching) {
      warnings.push("rep could not watch the output folder on this system; no files were kept");
    }
    await this.#commit(step, metrics, files, torn, warnings, !sub);
  }

  /** Content key of the output's state at `cut` (waits for its versions to be stored). */
  async #contentKey(cut: number): Promise<string> {
    const vs = this.store.at(cut).versions;
    await Promise.all(vs.map((v) => v.done));
    return vs.map((v) => `${v.path}\0${v.status === "stored" ? v.entry?.hash : v.status}`).join(
      "\n",
    );
  }

  async #commit(
    step: number | null,
    metrics: Record<string, unknown>,
    files: FileEntry[],
    torn: string[],
    warnings: string[],
    whole: boolean,
    primaryMetric?: PrimaryMetric | null,
  ): Promise<CheckpointRecord> {
    files.sort((a, b) => a.path < b.path ? -1 : 1);
    const commit = () =>
      this.rec.commit({
        tree: files.length ? { format: TREE_FORMAT, files } : null,
        step,
        metrics: metrics as Record<string, number>,
        torn: torn.sort(),
        warnings,
        ...(primaryMetric ? { primaryMetric } : {}),
      });
    let record: CheckpointRecord;
    try {
      record = await commit();
    } catch (e) {
      // The pack holding some of the files could not be written (disk full): those files are
      // left out, and the checkpoint is kept with the rest.
      this.lastStoreError = (e as Error).message;
      const lost = files.filter((f) => this.rec.lostPack(f));
      if (!lost.length) throw e;
      for (const f of lost) {
        files.splice(files.indexOf(f), 1);
        torn.push(f.path);
        warnings.push(
          `${f.path}: left out because its data could not be written (${(e as Error).message})`,
        );
      }
      this.opts.say(`rep: error while storing step ${step ?? "-"}: ${(e as Error).message}\n`);
      record = await commit();
    }
    this.checkpoints++;
    this.retainer?.committed(record);
    if (warnings.length) {
      this.warned++;
      if (this.warningsSaid++ < 5) {
        this.opts.say(`rep: warning: step ${step ?? "-"}: ${warnings.join("; ")}\n`);
      }
    }
    if (whole) this.lastContent = files.map((f) => `${f.path}\0${f.hash}`).sort().join("\n");
    this.debug?.(`checkpoint step ${step}: ${files.length} file(s), ${warnings.length} warning(s)`);
    return record;
  }

  #loopError(e: unknown): void {
    // Never harm the run: report, keep going.
    this.opts.say(`rep: error while checkpointing: ${(e as Error).message}\n`);
  }

  /** Files that changed with no metrics line: checkpoint them once they settle. */
  async #settle(): Promise<void> {
    if (this.attached) return;
    const wait = (this.opts.settle ?? 2) * 1000;
    const last = this.store.lastCompleted;
    if (!last || Date.now() - last < (this.sawLines ? Math.max(wait, 30_000) : wait)) return;
    if (this.attributor.waiting > 0) return;
    await this.#commits;
    const cut = this.events.seq + 1;
    const key = treeKey(this.store.at(cut).versions);
    if (key === this.lastTree || key === "") return;
    await this.#commitAt(cut, null, {}, undefined, []);
  }

  // ---- the run -----------------------------------------------------------------------------

  async go(): Promise<RunResult> {
    const { opts, p } = this;
    // Watched, and each version copied, on a thread of its own (see capture_thread.ts).
    if (!p.capture) this.events.start();
    else {
      await this.events.startCapture(p.capture, {
        ignore: this.ignore,
        staging: join(this.runDir, "versions"),
        limit: this.stagingLimit,
      });
    }
    const holds = this.events.capture?.holds ?? [];
    const childEnv: Record<string, string> = {
      ...p.env,
      REP_EXPERIMENT_ID: p.id,
      REP_OUTPUT_DIR: p.output,
      REP_METRICS_FILE: p.metricsPath,
    };
    if (this.resumedFrom) {
      childEnv.REP_RESUMED_FROM = this.resumedFrom.id;
      childEnv.REP_RESUME_STEP = this.resumedFrom.step === null
        ? ""
        : String(this.resumedFrom.step);
    } else {
      delete childEnv.REP_RESUMED_FROM;
      delete childEnv.REP_RESUME_STEP;
    }
    if (childEnv.PYTHONUNBUFFERED === undefined) childEnv.PYTHONUNBUFFERED = "1";
    const child = Child.spawn({
      command: opts.command,
      cwd: opts.cwd,
      env: childEnv,
      stdoutFile: this.log.paths.stdout,
      stderrFile: this.log.paths.stderr,
      canFreeze: p.env.REP_NO_FREEZE === undefined,
    });
    this.child = child;
    const capture = this.events.capture;
    if (child.hold) capture?.group(child.hold);
    // rep's chunking yields to the command; the capture thread keeps its priority.
    const nice = Number(p.env.REP_NICE ?? DEFAULT_NICE);
    if (capture && Number.isInteger(nice) && nice > 0) {
      void lowerThreads(nice, (t) => capture.owns(t)).then((tids) =>
        this.debug?.(`nice ${nice}: threads ${tids.join(" ")}`)
      );
    }
    this.log.state.pgid = child.pid;
    this.log.saveState();
    p.lock.setGroup(child.pid);
    opts.onStart?.({
      experimentId: p.id,
      record: this.rec.record,
      project: opts.cwd,
      attach: () => this.#attach(),
      checkpoint: (o) => this.#explicit(o),
      pending: () => this.rec.pending(),
    });

    // Signals: forwarded to the command while it runs (it has its own process group, so a
    // terminal's Ctrl-C reaches it once, through rep); after it ended, one stops the upload wait.
    let giveUpWaiting: (() => void) | null = null;
    const handlers: [Deno.Signal, () => void][] = [];
    for (const sig of FORWARDED_SIGNALS) {
      const h = () => {
        if (child.running) void this.#forward(sig);
        else giveUpWaiting?.();
      };
      try {
        Deno.addSignalListener(sig, h);
        handlers.push([sig, h]);
      } catch {
        // not supported here
      }
    }

    let running = true;
    // The command's exit cuts the tick's sleep short: its end is handled at once, not a tick later.
    let wake = () => {};
    const ticker = (async () => {
      while (running) {
        await new Promise<void>((r) => {
          const timer = setTimeout(r, TICK_MS);
          wake = () => {
            clearTimeout(timer);
            r();
          };
        });
        if (!running) break;
        try {
          // Poll too: an event may be late, and output is passed through promptly either way.
          await this.kickOutput();
          if (
            this.metricsSrc.truncated() || fileSize(this.p.metricsPath) > this.metricsSrc.offset
          ) {
            await this.kickMetrics();
          }
          await this.#settle();
          void this.log.tick();
        } catch (e) {
          this.#loopError(e);
        }
      }
    })();

    const exit = await child.exited;
    const exitTime = Date.now();
    running = false;
    wake();
    await ticker;
    // Let the rest of the command's group finish writing, then see every event.
    for (let i = 0; i < 100 && !child.groupGone(); i++) await new Promise((r) => setTimeout(r, 20));
    await this.events.sync();
    const failed = exit.signal !== null || exit.code !== 0;
    if (failed && !child.userSignal) {
      this.store.untrustSince(
        exitTime - CRASH_WINDOW_MS,
        this.lineRuns[this.lineRuns.length - 1] ?? 0,
        `it was closed just before the command failed (${
          exit.signal ?? `exit code ${exit.code}`
        }) and may be incomplete`,
      );
    }
    await this.kickOutput(true);
    await this.kickMetrics(true);
    await this.store.settled();
    this.attributor.end();
    await this.release();
    await this.#commits;
    // A last checkpoint when the output changed since the last whole one.
    try {
      const vs = this.store.at(END).versions;
      if (!this.attached && vs.length && treeKey(vs) !== this.lastTree) {
        await Promise.all(vs.map((v) => v.done));
        const stored = vs.filter((v) => v.status === "stored");
        const content = stored.map((v) => `${this.proj(v.path)}\0${v.entry!.hash}`).sort().join(
          "\n",
        );
        if (content !== this.lastContent && stored.length) {
          await this.#commitAt(END, null, {}, undefined, []);
        } else {
          // Nothing new to keep: only versions rep could not trust changed.
          for (const v of vs.filter((v) => v.status !== "stored")) {
            opts.say(`rep: warning: ${this.proj(v.path)} not stored: ${why(v)}\n`);
          }
        }
      }
    } catch (e) {
      opts.say(`rep: error while taking the last checkpoint: ${(e as Error).message}\n`);
    }
    await this.store.drained();
    this.events.close();
    child.close();
    if (this.malformed.length) {
      await this.rec.outbox.addBytes(
        attemptMalformedKey(p.id, this.rec.attempt),
        new TextEncoder().encode(JSON.stringify(this.malformed)),
        "data",
      ).catch((e) =>
        opts.say(`rep: could not store the malformed lines: ${(e as Error).message}\n`)
      );
    }
    // The log's last segment, unless storage keeps failing (it stays on local disk for the next
    // rep command to upload, like the outbox).
    const logStored = await this.#whileStorageWorks(this.log.finish(), false);

    const runStatus: RunResult["status"] = child.userSignal
      ? "stopped"
      : exit.signal
      ? "failed"
      : exit.code === 0
      ? "succeeded"
      : "failed";
    const pauses = [...child.pauses, ...holds.map((h) => h.held)];
    if (this.debug && holds.length) {
      this.debug(
        `capture holds (ms, held/copy/stop/barrier/MiB): ${
          holds.map((h) =>
            [h.held, h.copy, h.stop, h.barrier, h.bytes / 2 ** 20].map((x) => x.toFixed(1)).join(
              "/",
            )
          ).join(" ")
        }`,
      );
    }
    if (this.debug && pauses.length) {
      const ps = [...pauses].sort((a, b) => a - b);
      this.debug(
        `pauses: ${ps.length}, median ${ps[ps.length >> 1]!.toFixed(1)} ms, worst ${
          ps[ps.length - 1]!.toFixed(1)
        } ms, total ${ps.reduce((a, b) => a + b, 0).toFixed(0)} ms`,
      );
      this.debug(`held (ms): ${pauses.map((x) => x.toFixed(1)).join(" ")}`);
    }
    const pendingLeft = await this.#finish(runStatus, exit.exitCode, exit.signal, (f) => {
      giveUpWaiting = f;
    });
    for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
    if (logStored && !pendingLeft) this.removeRunDir = true;
    return {
      experimentId: p.id,
      attempt: this.rec.attempt,
      removed: this.retainer?.removed.size ?? 0,
      exitCode: exit.exitCode,
      status: runStatus,
      checkpoints: this.checkpoints,
      warned: this.warned,
      malformed: this.malformed.length,
      pendingLeft,
      pauses,
    };
  }

  removeRunDir = false;

  /** Freeze, see every event so far, then send the signal: a write in progress is interrupted. */
  async #forward(sig: Deno.Signal): Promise<void> {
    const child = this.child!;
    if (child.userSignal) return child.forward(sig);
    const frozen = await child.freeze();
    await this.events.sync();
    this.store.interruptedAt(
      this.events.seq,
      `it was being written when the command was interrupted (${sig})`,
    );
    child.forward(sig);
    if (frozen) child.thaw();
  }

  /** A client inside the command makes the checkpoints: metrics lines and settling make none. */
  attached = false;

  #attach(): void {
    if (this.attached) return;
    this.attached = true;
    this.opts.say(
      "rep: the command records its own checkpoints (rep.init()); rep run makes none from the " +
        "metrics file or the output folder\n",
    );
  }

  async #explicit(o: ExplicitOptions): Promise<CheckpointRecord> {
    const rels = o.files.map((f) => relative(this.opts.cwd, resolve(this.opts.cwd, f)));
    const bad = rels.find((r) => r.startsWith(".."));
    if (bad) throw new UsageError(`Cannot checkpoint ${bad}: it is outside the project folder`);
    const snap = await this.rec.snapshot(this.opts.cwd, rels);
    const gone = new Set([...snap.torn, ...snap.missing]);
    const step = o.step ?? (this.lastStep === null ? 0 : this.lastStep + 1);
    this.lastStep = step;
    let record!: CheckpointRecord;
    this.#commits = this.#commits.then(async () => {
      record = await this.#commit(
        step,
        o.metrics ?? {},
        snap.tree.files.filter((f) => !gone.has(f.path)),
        [...gone],
        [...gone].map((g) => `${g}: changed or vanished while rep read it`),
        false,
        o.primaryMetric,
      );
    });
    await this.#commits;
    return record;
  }

  /** `work`, or `fallback` once storage has been failing for REP_UPLOAD_WAIT seconds. */
  async #whileStorageWorks<T>(work: Promise<T>, fallback: T): Promise<T> {
    const maxFailing = Number(this.p.env.REP_UPLOAD_WAIT ?? 300) * 1000;
    let failingSince: number | null = null;
    let timer: ReturnType<typeof setInterval> | undefined;
    const gaveUp = new Promise<T>((resolve) => {
      timer = setInterval(() => {
        if (this.rec.pending().error) failingSince ??= Date.now();
        else failingSince = null;
        if (failingSince !== null && Date.now() - failingSince > maxFailing) resolve(fallback);
      }, 250);
    });
    try {
      return await Promise.race([work, gaveUp]);
    } finally {
      clearInterval(timer);
    }
  }

  /** Queue the status, wait for uploads (a second Ctrl-C stops waiting). True if left pending. */
  async #finish(
    status: RunResult["status"],
    exitCode: number,
    signal: string | null,
    setGiveUp: (f: () => void) => void,
  ): Promise<boolean> {
    const { opts, rec, p } = this;
    const pending = rec.pending();
    if (pending.items > 0 && (opts.progress || !(opts.repo.store instanceof LocalStore))) {
      opts.say(
        `rep: uploading ${pending.items} object(s), ${formatBytes(pending.bytes)}` +
          (opts.progress ? " (Ctrl-C to stop waiting; nothing is lost)\n" : "\n"),
      );
    }
    let giveUp = () => {};
    const gaveUp = new Promise<"gave-up">((r) => giveUp = () => r("gave-up"));
    setGiveUp(giveUp);
    // While storage keeps failing, wait at most REP_UPLOAD_WAIT seconds (default 300).
    const maxFailing = Number(p.env.REP_UPLOAD_WAIT ?? 300) * 1000;
    let failingSince: number | null = null;
    const progressTimer = pending.items > 0
      ? setInterval(() => {
        const q = rec.pending();
        if (q.error) failingSince ??= Date.now();
        else failingSince = null;
        if (failingSince !== null && Date.now() - failingSince > maxFailing) giveUp();
        if (opts.progress) {
          opts.say(
            `\rrep: ${q.items} object(s), ${formatBytes(q.bytes)} left${
              q.error ? " (storage failing, retrying)" : ""
            }   `,
          );
        }
      }, 500)
      : undefined;
    const result = await Promise.race([
      rec.stop(status, { exitCode, signal }).then(() => this.retainer?.settle()).then(() =>
        "done" as const
      ),
      gaveUp,
    ]).catch((e: unknown) => {
      opts.say(`rep: could not record the end of the run: ${(e as Error).message}\n`);
      return "gave-up" as const;
    });
    clearInterval(progressTimer);
    if (progressTimer && opts.progress) opts.say("\n");
    if (result === "gave-up") {
      rec.abandon();
      opts.say(
        `rep: stopped waiting; ${rec.pending().items} object(s) stay queued in ${rec.outbox.dir}\n` +
          `rep: run "rep push" to upload them; until then experiment ${
            p.id.slice(0, 7)
          } reads as crashed\n`,
      );
      return true;
    }
    return false;
  }

  cleanup(): void {
    this.events.close();
    this.child?.close();
    if (this.removeRunDir) {
      try {
        Deno.removeSync(this.runDir, { recursive: true });
      } catch {
        // gone
      }
    }
  }
}

function why(v: Version): string {
  if (v.reason) return v.reason;
  if (v.status === "dropped") return "rep did not keep that version";
  return "its version could not be stored";
}

/** The step of the last of `checkpoints` that has one, or null. */
function lastStepOf(checkpoints: CheckpointRecord[]): number | null {
  for (let i = checkpoints.length - 1; i >= 0; i--) {
    const step = checkpoints[i]!.step;
    if (step !== null) return step;
  }
  return null;
}

function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
}

function treeKey(versions: Version[]): string {
  return versions.map((v) => `${v.path}\0${v.seq}`).join("\n");
}

/**
 * The command as recorded: values of secret-named options (`--api-key X`, `--password=X`,
 * `token=X`) are redacted like secret params, and known credential formats anywhere.
 */
export function redactCommand(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const assign = /^(-{0,2}|\+{1,2})([A-Za-z_][A-Za-z0-9_.-]*)=([\s\S]+)$/.exec(a);
    if (i > 0 && assign && isSecretName(assign[2]!)) {
      out.push(`${assign[1]}${assign[2]}=${REDACTED}`);
      continue;
    }
    out.push(redactValue(a));
    const opt = /^--?([A-Za-z0-9_][A-Za-z0-9_.-]*)$/.exec(a);
    const next = args[i + 1];
    if (i > 0 && opt && isSecretName(opt[1]!) && next !== undefined && !next.startsWith("-")) {
      out.push(REDACTED);
      i++;
    }
  }
  return out;
}
