/**
 * `rep run`'s control socket, wired to the runner: it listens before the command starts (its path
 * goes into the command's environment as `REP_CONTROL`) and serves {@link AttachedHost} sessions
 * once the runner hands over its seam (requests that come earlier wait for it).
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
import { AttachedHost } from "./attached_host.ts";
import { CONTROL_ENV, serveControl } from "./socket.ts";

/** What the runner offers while the command runs (its `onStart` argument). */
export interface RunnerControl {
  /** The experiment being recorded. */
  record: ExperimentRecord;
  /** Commit an explicit checkpoint of these files (relative to the project) as they are now. */
  checkpoint(options: {
    files: string[];
    step?: number | null;
    metrics?: Record<string, MetricValue>;
    primaryMetric?: PrimaryMetric | null;
  }): Promise<CheckpointRecord>;
  /** Upload progress. */
  pending?(): OutboxState;
  /**
   * A client joined (its `init` arrived): from now on it makes the checkpoints, and the runner
   * makes none of its own.
   */
  attach?(): void;
}

/** A listening control socket of one `rep run`. */
export interface RunControlServer {
  /** Variables for the command's environment (`REP_CONTROL`). */
  env: Record<string, string>;
  /** Start serving requests through the runner. */
  attach(control: RunnerControl): void;
  /** Stop listening and remove the socket. */
  close(): Promise<void>;
}

/** Open the control socket of a `rep run` recording into `repository` from `project`. */
export async function openRunControl(
  repository: string,
  project: string,
): Promise<RunControlServer> {
  let attach!: (c: RunnerControl) => void;
  const control = new Promise<RunnerControl>((resolve) => (attach = resolve));
  const server = await serveControl(
    new AttachedHost(control.then((c) => ({
      record: c.record,
      repository,
      project,
      commit: (ck) =>
        c.checkpoint({
          files: ck.files,
          step: ck.step,
          metrics: ck.metrics,
          primaryMetric: ck.primaryMetric,
        }),
      ...(c.pending ? { pending: () => c.pending!() } : {}),
      ...(c.attach ? { attach: () => c.attach!() } : {}),
    }))),
  );
  return { env: { [CONTROL_ENV]: server.path }, attach, close: () => server.close() };
}
