/**
 * The host behind `rep run`'s control socket: a client started by `rep run` (the Python package's
 * `init()` sees `REP_CONTROL`) joins the experiment `rep run` records instead of starting another,
 * and its `checkpoint()` becomes an explicit checkpoint of exactly the files and metrics it names,
 * committed by the runner. `stop` does nothing: the experiment ends when the command exits.
 *
 * @module
 */
import type {
  CheckpointRecord,
  ExperimentRecord,
  MetricValue,
  PrimaryMetric,
} from "../format/records.ts";
import type { OutboxState } from "../writer/outbox.ts";
import type { CheckpointRequest, InitRequest } from "./messages.ts";
import type { Host, InitReply, Say, StopReply } from "./session.ts";
import { checkpointFiles } from "./paths.ts";

/** An explicit checkpoint for the runner to commit. */
export interface ExplicitCheckpoint {
  /** Files relative to the project folder (the runner's working directory), sorted. */
  files: string[];
  step: number | null;
  metrics: Record<string, MetricValue>;
  primaryMetric: PrimaryMetric | null;
}

/** What the runner provides to the control socket. */
export interface RunnerSeam {
  /** The experiment being recorded. */
  record: ExperimentRecord;
  /** The repository URL. */
  repository: string;
  /** The project folder (the command's working directory). */
  project: string;
  /** Snapshot exactly these files now and commit them as a checkpoint with these metrics. */
  commit(checkpoint: ExplicitCheckpoint, say: Say): Promise<CheckpointRecord>;
  /** Upload progress, when the runner tells. */
  pending?(): OutboxState;
  /** A client joined: from now on it makes the checkpoints (rep run stops making its own). */
  attach?(): void;
}

/** Serves clients started by `rep run`. */
export class AttachedHost implements Host {
  readonly #seam: Promise<RunnerSeam>;
  #known: RunnerSeam | null = null;

  /** `seam` may be a promise: the socket listens before the runner has started the command. */
  constructor(seam: RunnerSeam | Promise<RunnerSeam>) {
    this.#seam = Promise.resolve(seam).then((s) => (this.#known = s));
  }

  async init(req: InitRequest, say: Say): Promise<InitReply> {
    const seam = await this.#seam;
    const rec = seam.record;
    const lost = Object.entries(req.params).filter(([k, v]) => rec.params[k] !== v).map(([k]) => k);
    if (lost.length) {
      say(
        `rep: params given to init() are not recorded under rep run (${lost.join(", ")}); ` +
          `pass them as arguments of the command (--${lost[0]} …) or with rep run -p ${lost[0]}=…`,
      );
    }
    if (req.name || req.resume || req.keepBest !== null || req.keepLast !== null) {
      say(
        "rep: name, resume, keep_best and keep_last given to init() do not apply under rep run; " +
          "pass them to rep run (--name, --resume, --keep-best, --keep-last)",
      );
    }
    seam.attach?.();
    return { experiment: rec, repository: seam.repository, project: seam.project, attached: true };
  }

  async checkpoint(req: CheckpointRequest, say: Say): Promise<CheckpointRecord> {
    const seam = await this.#seam;
    const files = req.paths.length ? await checkpointFiles(seam.project, req.paths) : [];
    return await seam.commit(
      { files, step: req.step, metrics: req.metrics, primaryMetric: req.primaryMetric },
      say,
    );
  }

  stop(): Promise<StopReply> {
    // rep run ends the experiment (and waits for its uploads) when the command exits.
    return Promise.resolve({ uploaded: false, pending: this.pending() });
  }

  pending(): OutboxState | null {
    return this.#known?.pending?.() ?? null;
  }
}
