/**
 * Beginning an experiment, shared by `rep run` and the library's `init()`: a new experiment
 * (taking its name, when it has one), or a resume of an existing one (its newest attempt
 * crashed, failed or stopped): claim the next attempt, put the chosen checkpoint's files back
 * exactly, and record the new attempt. Two steps: {@link planBegin} decides without writing
 * anything (so `rep run` can say "already succeeded" or "running elsewhere" before it collects
 * provenance), {@link begin} does it.
 *
 * @module
 */
import { join } from "node:path";
import { BusyError, ConflictError, UsageError } from "../errors.ts";
import { shortId } from "../format/ids.ts";
import { attemptClaimScope } from "../format/layout.ts";
import { checkName } from "../format/names.ts";
import type { CheckpointRecord, ExperimentRecord, FileEntry } from "../format/records.ts";
import type { ExperimentView, Repository } from "../repository.ts";
import { claim } from "../catalog/claims.ts";
import { type ExactResult, restoreExactly } from "../restore/exact.ts";
import { newId } from "../format/ids.ts";
import { outboxName, Recorder, type StartOptions } from "../writer/recorder.ts";
import { recoverOutboxes } from "../writer/recover.ts";
import { cacheDir } from "../util.ts";
import { readAttemptState } from "./attempts.ts";
import { nameHolder, NameTakenError, takeName } from "./names.ts";

/** What the caller asks for. */
export interface BeginRequest {
  /** The experiment's name (a new one takes it; with `resume: true`, the one to resume). */
  name?: string | null;
  /**
   * Resume: `true` resumes the experiment called `name` (or starts it when there is none); a
   * string is an experiment or checkpoint id (or a name) to resume from.
   */
  resume?: boolean | string;
  /** Resume even an experiment whose newest attempt succeeded. */
  rerun?: boolean;
}

/** What {@link planBegin} decided. */
export type BeginPlan =
  | { kind: "new"; id: string; name: string | null; fromResume: boolean }
  | {
    kind: "resume";
    id: string;
    name: string | null;
    experiment: ExperimentView;
    /** The attempt this resume will be (the newest + 1). */
    attempt: number;
    /** The checkpoint whose files are put back (null: the experiment has none). */
    from: CheckpointRecord | null;
  }
  | { kind: "succeeded"; experiment: ExperimentView; attempt: number };

/**
 * A checkpoint's files with project-relative paths: format 1 `rep run` checkpoints stored them
 * relative to the output folder (`provenance.output`, docs/format.md _Format 1_).
 */
function presentCheckpointFiles(exp: ExperimentRecord, files: FileEntry[]): FileEntry[] {
  const out = exp.format === 1 && exp.command.length ? exp.provenance?.output : null;
  if (typeof out !== "string") return files;
  const prefix = out.replace(/^\.\/+/, "").replace(/\/+$/, "");
  if (!prefix || prefix === "." || prefix.startsWith("/") || prefix.split("/").includes("..")) {
    return files;
  }
  return files.map((f) => ({ ...f, path: `${prefix}/${f.path}` }));
}

/** Whether an experiment was removed, as the catalog's changes say. */
async function removedSet(repo: Repository): Promise<(id: string) => boolean> {
  const removed = (await repo.catalog.visibility()).removedExperiments;
  return (id) => removed.has(id);
}

function busyRunning(
  exp: ExperimentView,
  where: { attempt: number; host: string | null; pid: number | null },
): BusyError {
  const label = exp.name ? `${shortId(exp.id)} (${exp.name})` : shortId(exp.id);
  const on = where.host ? ` on ${where.host}${where.pid ? ` (pid ${where.pid})` : ""}` : "";
  return new BusyError(
    `Experiment ${label} is running${on}, attempt ${where.attempt}: not resuming it`,
    "Wait for it to end, or stop it there; rep run --resume then continues it",
  );
}

/**
 * Decide how to begin, reading the repository fresh (and first uploading what a dead process left
 * on this machine for the experiment, so its last checkpoints count). Writes nothing else.
 *
 * @throws {BusyError} The experiment is running (fresh heartbeat) or being started elsewhere.
 * @throws {NameTakenError} A new experiment's name is taken (without `resume`).
 */
export async function planBegin(repo: Repository, req: BeginRequest): Promise<BeginPlan> {
  const name = req.name ? checkName(req.name) : null;
  if (!name && !req.resume) return { kind: "new", id: newId(), name, fromResume: false };
  // Fresh: this process (the library) may have written the experiment moments ago.
  await repo.catalog.refresh({ force: true });
  if (!req.resume) {
    if (name) {
      const holder = await nameHolder(repo.store, name, await removedSet(repo));
      if (holder) throw new NameTakenError(holder);
    }
    return { kind: "new", id: newId(), name, fromResume: false };
  }
  let experiment: ExperimentView;
  let from: CheckpointRecord | null = null;
  if (req.resume === true) {
    if (!name) {
      throw new UsageError(
        "--resume needs the experiment's name (--name NAME) or an id (--resume ID)",
        "Example: rep run --name resnet-1 --resume -- python train.py",
      );
    }
    const holder = await nameHolder(repo.store, name, await removedSet(repo));
    if (!holder) return { kind: "new", id: newId(), name, fromResume: true };
    if (!holder.recorded) {
      throw new BusyError(
        `Experiment ${shortId(holder.experiment)} (${name}) is starting${
          holder.host ? ` on ${holder.host}` : ""
        }: not resuming it`,
        "If it died while starting, the name is free again two minutes after; run the same line then",
      );
    }
    if ((await recoverOutboxes(repo, { experiment: holder.experiment })).objects) {
      await repo.catalog.refresh({ force: true });
    }
    const view = await repo.catalog.get(holder.experiment);
    if (!view) {
      throw new ConflictError(
        `Experiment ${shortId(holder.experiment)} holds the name "${name}" but cannot be read`,
        "Run rep verify",
      );
    }
    experiment = view;
  } else {
    const r = await repo.resolve(req.resume);
    if ((await recoverOutboxes(repo, { experiment: r.experiment.id })).objects) {
      await repo.catalog.refresh({ force: true });
    }
    experiment = (await repo.catalog.get(r.experiment.id)) ?? r.experiment;
    if (r.kind === "checkpoint") {
      from = experiment.checkpoints.find((c) => c.id === r.checkpoint.id) ?? null;
      if (!from) {
        throw new ConflictError(`Checkpoint ${shortId(r.checkpoint.id)} was removed meanwhile`);
      }
    }
    if (name && experiment.name !== name) {
      throw new UsageError(
        `--name ${name} does not match experiment ${shortId(experiment.id)}${
          experiment.name ? ` (named ${experiment.name})` : " (which has no name)"
        }`,
        "Drop --name, or give the experiment's own name",
      );
    }
  }
  const state = await readAttemptState(repo.store, experiment.id, experiment.created);
  if (state.state === "running") throw busyRunning(experiment, state);
  if (state.status?.status === "succeeded" && !req.rerun) {
    return { kind: "succeeded", experiment, attempt: state.attempt };
  }
  return {
    kind: "resume",
    id: experiment.id,
    name: experiment.name,
    experiment,
    attempt: state.attempt + 1,
    from: from ?? resumePoint(experiment.checkpoints),
  };
}

/**
 * The checkpoint a resume starts from when none is named: the latest with a step and every file
 * stored, else the latest. A last checkpoint `rep run` took after a failed exit (no step, or a
 * file left out as possibly incomplete) is not where training can continue from.
 */
export function resumePoint(checkpoints: CheckpointRecord[]): CheckpointRecord | null {
  for (let i = checkpoints.length - 1; i >= 0; i--) {
    const c = checkpoints[i]!;
    if (c.step !== null && !c.torn.length) return c;
  }
  return checkpoints[checkpoints.length - 1] ?? null;
}

/** Options of {@link begin}. */
export interface BeginOptions {
  /** The recorder's start options for a new experiment (`id` and `name` come from the plan). */
  start: () => StartOptions | Promise<StartOptions>;
  /** The resumed attempt's command and project folder. */
  command: string[];
  cwd: string;
  /**
   * Where a resume puts the checkpoint's files: under `root` (default `cwd`, the folder the
   * checkpoint paths are relative to); `folders` (relative to it) end up holding only them
   * (`rep run`: the output folder); paths for which `keep` is true are left alone.
   */
  restore?: { root?: string; folders: string[]; keep?: (rel: string) => boolean };
  onStorageError?: (error: Error | null) => void;
}

/** An experiment begun. */
export interface Begun {
  recorder: Recorder;
  /** For a resume: the checkpoint put back, what was written and moved aside, and where to. */
  resumed: {
    from: CheckpointRecord | null;
    restored: ExactResult;
    backup: string;
    /** The experiment's visible checkpoints before this attempt, oldest first. */
    earlier: CheckpointRecord[];
  } | null;
}

/**
 * What a library resume (`init({ resume })` in TS or Python) says on stderr: the attempt, the
 * checkpoint put back and the files moved aside; no line end.
 */
export function resumeMessage(begun: Begun, name: string | null): string {
  const r = begun.resumed!;
  const rec = begun.recorder;
  const from = r.from;
  return `rep: resuming experiment ${rec.record.id.slice(0, 7)}${name ? ` (${name})` : ""}` +
    ` as attempt ${rec.attempt}` +
    (from
      ? ` from checkpoint ${from.id.slice(0, 7)} (step ${from.step ?? "-"}): ` +
        `${r.restored.written.length + r.restored.unchanged.length} file(s) put back`
      : ": it has no checkpoint to put back") +
    (r.restored.moved.length
      ? `; ${r.restored.moved.length} file(s) with other content moved to ${r.backup}`
      : "");
}

/**
 * Begin as planned. A new experiment takes its name (when it has one) and starts; a resume claims
 * its attempt, starts recording it (heartbeat first, so nobody else takes it meanwhile), puts the
 * checkpoint's files back, and records a `resume` change so every reader looks at it again.
 *
 * @throws {BusyError} Another process won the name or the attempt (it runs elsewhere now).
 * @throws {NameTakenError} The name was taken meanwhile (without resume).
 */
export async function begin(
  repo: Repository,
  plan: Exclude<BeginPlan, { kind: "succeeded" }>,
  options: BeginOptions,
): Promise<Begun> {
  if (plan.kind === "new") {
    // Provenance first (it can take seconds): between winning the name and the first heartbeat
    // nothing else happens, so the name never looks abandoned.
    const start = await options.start();
    if (plan.name) {
      try {
        await takeName(repo.store, plan.name, plan.id, await removedSet(repo));
      } catch (e) {
        if (!(e instanceof NameTakenError) || !plan.fromResume) throw e;
        throw new BusyError(
          `Experiment ${shortId(e.holder.experiment)} (${plan.name}) was started by another ` +
            `process${
              e.holder.host ? ` on ${e.holder.host}` : ""
            } at the same time: not running it twice`,
          "The other process runs it; nothing to do here",
        );
      }
    }
    const recorder = await Recorder.start(repo, {
      ...start,
      id: plan.id,
      name: plan.name,
      ...(options.onStorageError ? { onStorageError: options.onStorageError } : {}),
    });
    return { recorder, resumed: null };
  }
  const { id, attempt, from } = plan;
  const won = await claim(repo.store, attemptClaimScope(id, attempt), { experiment: id, attempt });
  if (!won.won) {
    const w = won.winner;
    throw new BusyError(
      `Another process${w?.host ? ` on ${w.host}${w.pid ? ` (pid ${w.pid})` : ""}` : ""} is ` +
        `resuming experiment ${
          plan.name ?? shortId(id)
        } as attempt ${attempt}: not running it twice`,
      "The other process runs it; nothing to do here",
    );
  }
  const full = await repo.withFullRecord(plan.experiment);
  const tree = from?.files ? await repo.tree(from.files.tree) : null;
  const recorder = await Recorder.resume(repo, {
    record: full.record as ExperimentRecord,
    attempt,
    command: options.command,
    cwd: options.cwd,
    resumedFrom: from,
    seed: tree ? [tree] : [],
    ...(options.onStorageError ? { onStorageError: options.onStorageError } : {}),
  });
  try {
    // The attempt record first, then the change that makes warm readers list the folder again.
    await recorder.outbox.drain();
    await repo.catalog.resumed(id, attempt);
    const backup = join(cacheDir(), "resume-backup", outboxName(id, attempt));
    const files = tree ? presentCheckpointFiles(full.record, tree.files) : [];
    const restored = await restoreExactly(repo.store, files, options.restore?.root ?? options.cwd, {
      folders: options.restore?.folders ?? [],
      ...(options.restore?.keep ? { keep: options.restore.keep } : {}),
      backup,
    });
    return {
      recorder,
      resumed: { from, restored, backup, earlier: plan.experiment.checkpoints },
    };
  } catch (e) {
    await recorder.stop("failed", { exitCode: null }).catch(() => recorder.abandon());
    throw e;
  }
}
