/**
 * The host behind `rep record`: one experiment recorded by the same {@link Recorder} that
 * `rep run` and mod.ts use, driven by a client over the line protocol. When the client goes away
 * without `stop` (its process was killed, or died before it could stop), the experiment ends as
 * `crashed` and every checkpoint it made is still uploaded.
 *
 * @module
 */
import { NotFoundError, UsageError } from "../errors.ts";
import {
  type CheckpointRecord,
  type ParamValue,
  type Tree,
  TREE_FORMAT,
} from "../format/records.ts";
import type { Repository } from "../repository.ts";
import type { OutboxState } from "../writer/outbox.ts";
import type { Recorder, StartOptions } from "../writer/recorder.ts";
import { begin, planBegin, resumeMessage } from "../lifecycle/begin.ts";
import { Retainer } from "../lifecycle/retainer.ts";
import { keepsAll, type RetentionPolicy } from "../catalog/retention.ts";
import { listCodeFiles } from "../code.ts";
import { collectProvenance, redactParam } from "../run/provenance.ts";
import { redactCommand } from "../run/runner.ts";
import type { CheckpointRequest, InitRequest, StopRequest } from "./messages.ts";
import type { Host, InitReply, Say, StopReply } from "./session.ts";
import { checkpointFiles } from "./paths.ts";

/** How long uploads may make no progress, after the client went away, before rep gives up. */
export const ORPHAN_STALL_MS = 10 * 60 * 1000;

/** Options of {@link RecorderHost}. */
export interface RecorderHostOptions {
  /** Environment recorded as provenance (default: this process's). */
  env?: Record<string, string>;
  /** See {@link ORPHAN_STALL_MS}. */
  orphanStallMs?: number;
}

/** Records one experiment for a protocol client. */
export class RecorderHost implements Host {
  readonly #open: () => Promise<Repository>;
  readonly #options: RecorderHostOptions;
  #rec: Recorder | null = null;
  /** The experiment's checkpoints from before this attempt (a resume). */
  #earlier: CheckpointRecord[] = [];
  #retainer: Retainer | null = null;
  /** Set when init found the experiment already succeeded: nothing is recorded. */
  #done: string | null = null;
  #project = "";
  #stopping: Promise<void> | null = null;
  #say: Say = () => {};

  /** `open` opens the repository when `init` comes (so its errors go back to the client). */
  constructor(open: () => Promise<Repository>, options: RecorderHostOptions = {}) {
    this.#open = open;
    this.#options = options;
  }

  /** The recorder, once started. */
  get recorder(): Recorder | null {
    return this.#rec;
  }

  async init(req: InitRequest, say: Say): Promise<InitReply> {
    if (this.#rec || this.#done) {
      throw new UsageError(
        "init() was already called in this session",
        "Call init() once per experiment",
      );
    }
    this.#say = say;
    const st = await Deno.stat(req.project).catch(() => null);
    if (!st?.isDirectory) {
      throw new NotFoundError(
        `Cannot record in ${req.project}: it is not a folder`,
        "Pass an existing project folder as init(path=...)",
      );
    }
    const repo = await this.#open();
    const policy = retentionOf(req);
    const plan = await planBegin(repo, {
      name: req.name,
      ...(req.resume !== null ? { resume: req.resume } : {}),
      rerun: req.rerun,
    });
    if (plan.kind === "succeeded") {
      const e = plan.experiment;
      say(
        `rep: experiment ${e.id.slice(0, 7)}${e.name ? ` (${e.name})` : ""} already succeeded ` +
          `(attempt ${plan.attempt}); nothing is recorded (init(..., rerun=True) records a new attempt)`,
      );
      this.#done = e.id;
      return {
        experiment: (await repo.withFullRecord(e)).record,
        repository: repo.url,
        project: req.project,
        attached: false,
        attempt: plan.attempt,
        resumed_from: null,
        checkpoints: e.checkpoints,
        succeeded: true,
      };
    }
    const env = this.#options.env ?? Deno.env.toObject();
    const start = async (): Promise<StartOptions> => {
      const [prov, code] = await Promise.all([
        collectProvenance({ cwd: req.project, command: [], env }),
        req.code ? listCodeFiles(req.project, req.exclude) : null,
      ]);
      if (code?.tooLarge.length) {
        say(
          `rep: left ${code.tooLarge.length} large file(s) out of the code snapshot: ${
            code.tooLarge.slice(0, 3).join(", ")
          }${code.tooLarge.length > 3 ? ", …" : ""}`,
        );
      }
      const params: Record<string, ParamValue> = {};
      for (const [k, v] of Object.entries(req.params)) {
        params[k] = redactParam(k, v);
      }
      const git = prov.git;
      return {
        params,
        command: redactCommand(req.command),
        cwd: req.project,
        output: null,
        code: code ? { root: code.root, files: code.files } : null,
        git: git
          ? { commit: git.commit, branch: git.branch, dirty: git.dirty, remote: git.remote }
          : null,
        tags: req.tags,
        note: req.note,
        primaryMetric: req.primaryMetric,
        provenance: {
          platform: prov.platform,
          cpu: prov.cpu,
          memory_bytes: prov.memoryBytes,
          gpu: prov.gpu,
          python: req.python,
          env: prov.env,
          git_diff: git?.diff ?? null,
          git_diff_truncated: git?.diffTruncated ?? false,
          git_untracked: git?.untracked ?? [],
          warnings: prov.warnings,
        },
      };
    };
    let storageDown = false;
    const begun = await begin(repo, plan, {
      start,
      command: redactCommand(req.command),
      cwd: req.project,
      restore: { folders: [] },
      onStorageError: (e) => {
        if (e && !storageDown) {
          this.#say(`rep: storage is failing (${e.message}); checkpoints are queued on local disk`);
        } else if (!e && storageDown) {
          this.#say("rep: storage is back; uploading queued checkpoints");
        }
        storageDown = e !== null;
      },
    });
    const { recorder, resumed } = begun;
    this.#rec = recorder;
    this.#earlier = resumed?.earlier ?? [];
    this.#retainer = policy
      ? new Retainer(recorder, {
        policy,
        primaryMetric: recorder.record.primary_metric,
        earlier: this.#earlier,
        remove: (cks, reason) =>
          repo.catalog.remove(
            [],
            cks.map((c) => ({ experiment: c.experiment, checkpoint: c.id })),
            reason,
          ),
        say: (text) => this.#say(text.trimEnd()),
      })
      : null;
    this.#project = req.project;
    if (resumed) say(resumeMessage(begun, plan.name));
    return {
      experiment: recorder.record,
      repository: repo.url,
      project: req.project,
      attached: false,
      attempt: recorder.attempt,
      resumed_from: resumed?.from ?? null,
      checkpoints: this.#earlier,
      succeeded: false,
    };
  }

  #writer(): Recorder {
    if (this.#done) {
      throw new UsageError(
        `Experiment ${this.#done.slice(0, 7)} already succeeded: nothing is recorded`,
        "Check experiment.status after init(resume=True), or pass rerun=True to record a new attempt",
      );
    }
    if (!this.#rec) {
      throw new UsageError("No experiment yet", "Send init before checkpoint or stop");
    }
    if (this.#stopping) {
      throw new UsageError(
        `Experiment ${this.#rec.record.id.slice(0, 7)} was stopped`,
        "Start a new experiment with init()",
      );
    }
    return this.#rec;
  }

  async checkpoint(req: CheckpointRequest, say: Say): Promise<CheckpointRecord> {
    const rec = this.#writer();
    let tree: Tree | null = null;
    let torn: string[] = [];
    if (req.paths.length) {
      const files = await checkpointFiles(this.#project, req.paths);
      const snap = await rec.snapshot(this.#project, files);
      const bad = new Set([...snap.torn, ...snap.missing]);
      torn = [...bad].sort();
      const kept = snap.tree.files.filter((f) => !bad.has(f.path));
      tree = kept.length ? { format: TREE_FORMAT, files: kept } : null;
      if (torn.length) {
        say(
          `rep: warning: ${torn.join(", ")} changed or vanished while rep read it; left out of ` +
            "this checkpoint (write files before calling checkpoint(), not during it)",
        );
      }
    }
    const record = await rec.commit({
      tree,
      step: req.step ?? nextStep([...this.#earlier, ...rec.checkpoints]),
      metrics: req.metrics,
      primaryMetric: req.primaryMetric,
      torn,
    });
    this.#retainer?.committed(record);
    return record;
  }

  async stop(
    req: StopRequest,
    progress: (state: OutboxState) => void,
    _say: Say,
  ): Promise<StopReply> {
    if (this.#done && !this.#rec) return { uploaded: true, pending: null };
    const rec = this.#writer();
    this.#stopping = rec.stop(req.status, { exitCode: req.exitCode })
      .then(() => this.#retainer?.settle());
    const timer = setInterval(() => progress(rec.pending()), 1000);
    try {
      await this.#stopping;
    } finally {
      clearInterval(timer);
    }
    return { uploaded: true, pending: rec.pending() };
  }

  pending(): OutboxState | null {
    return this.#rec?.pending() ?? null;
  }

  /**
   * The client went away. Without a `stop`, the experiment ends as `crashed`; either way every
   * queued upload is finished, unless uploads make no progress for {@link ORPHAN_STALL_MS} (then
   * the outbox stays on disk for `rep push`). Returns true when everything was uploaded.
   */
  async disconnected(): Promise<boolean> {
    const rec = this.#rec;
    if (!rec) return true;
    this.#say = () => {};
    this.#stopping ??= rec.stop("crashed");
    return await untilStalled(this.#stopping, rec, this.#options.orphanStallMs ?? ORPHAN_STALL_MS);
  }
}

/** The step after the last checkpoint's (0 for the first). */
function nextStep(checkpoints: CheckpointRecord[]): number {
  const last = checkpoints[checkpoints.length - 1];
  return last ? (last.step ?? checkpoints.length - 1) + 1 : 0;
}

/** The retention policy of an `init`, or null for none. */
function retentionOf(req: InitRequest): RetentionPolicy | null {
  const policy: RetentionPolicy = {};
  if (req.keepBest !== null) policy.keepBest = req.keepBest;
  if (req.keepLast !== null) policy.keepLast = req.keepLast;
  if (keepsAll(policy)) return null;
  if ((policy.keepBest ?? 0) + (policy.keepLast ?? 0) === 0) {
    throw new UsageError(
      "keep_best=0 with keep_last=0 would remove every checkpoint",
      "Keep at least one: e.g. keep_best=3, keep_last=1",
    );
  }
  return policy;
}

/** Wait for `done`, unless uploads stay stuck for `stallMs`: then abandon them (false). */
async function untilStalled(done: Promise<void>, rec: Recorder, stallMs: number): Promise<boolean> {
  let last = "";
  let since = Date.now();
  let timer: ReturnType<typeof setInterval> | undefined;
  const stalled = new Promise<boolean>((resolve) => {
    timer = setInterval(() => {
      const s = rec.pending();
      const key = `${s.items}/${s.bytes}`;
      if (key !== last) {
        last = key;
        since = Date.now();
      } else if (Date.now() - since > stallMs) {
        rec.abandon();
        resolve(false);
      }
    }, 1000);
  });
  try {
    return await Promise.race([done.then(() => true), stalled]);
  } finally {
    clearInterval(timer);
  }
}
