/**
 * `rep`: version control for machine learning. Record experiments (params, code, environment) and
 * their checkpoints (files + metrics) from TypeScript, and read them back: list, compare, stream one
 * file of the best checkpoint, check out code and weights.
 *
 * The default repository is the one `rep` uses on the command line: `-R`/`REP_REPOSITORY`, then the
 * `repository` key of `rep.yaml` found upward from the working directory, else `.rep/` in the
 * project folder. {@link openRepository} opens any other (`s3://bucket/prefix`, `gs://…`, a path).
 *
 * Permissions: `--allow-read --allow-write --allow-env --allow-net --allow-run --allow-sys`
 * (run: git and python for provenance; net: cloud stores only).
 *
 * @example Record an experiment
 * ```ts
 * import { init } from "./mod.ts";
 * const dir = await Deno.makeTempDir();
 * Deno.env.set("REP_REPOSITORY", `${dir}/repo`);
 * await Deno.writeTextFile(`${dir}/model.bin`, "weights");
 * const exp = await init({ path: null, params: { lr: 0.01 } });
 * await exp.checkpoint({
 *   path: `${dir}/model.bin`,
 *   metrics: { loss: 0.25 },
 *   primaryMetric: { name: "loss", goal: "minimize" },
 * });
 * await exp.stop();
 * Deno.env.delete("REP_REPOSITORY");
 * ```
 *
 * @example Read the best checkpoint's weights
 * ```ts ignore
 * import { experiments } from "./mod.ts";
 * const exp = await experiments.get("a1b2c3d");
 * const weights = await exp.best()!.open("model.pth");
 * ```
 *
 * @module
 */
import { type Experiment, type InitOptions, openRepository, type Repo } from "./src/api.ts";
import type { Checkpoint, CheckpointsApi, ExperimentsApi, ListOptions } from "./src/api.ts";

export {
  type CheckoutOptions,
  type CheckoutResult,
  Checkpoint,
  type CheckpointOptions,
  type CheckpointsApi,
  Experiment,
  type ExperimentsApi,
  type FileInfo,
  type InitOptions,
  type ListOptions,
  openRepository,
  Repo,
} from "./src/api.ts";
export type {
  CheckpointRecord,
  ExperimentRecord,
  GitInfo,
  Goal,
  MetricValue,
  ParamScalar,
  ParamValue,
  PrimaryMetric,
  Status,
  TreeRef,
} from "./src/format/records.ts";
export {
  AmbiguousIdError,
  BusyError,
  ConfigError,
  ConflictError,
  CorruptObjectError,
  FormatVersionError,
  NotFoundError,
  RepError,
  StorageError,
  UsageError,
} from "./src/errors.ts";
export { type NameHolder, NameTakenError } from "./src/lifecycle/names.ts";

let configured: Promise<Repo> | null = null;
let configuredKey = "";

function defaultRepo(): Promise<Repo> {
  // Re-resolve when the working directory or REP_REPOSITORY changes.
  const key = `${Deno.cwd()}\0${Deno.env.get("REP_REPOSITORY") ?? ""}`;
  if (!configured || key !== configuredKey) {
    configuredKey = key;
    configured = openRepository();
  }
  return configured;
}

/**
 * Start recording an experiment in the configured repository (or `options.repository`): snapshots
 * the code at `options.path` (default `.`), records params and environment, starts a heartbeat.
 *
 * Under `rep run` (`REP_CONTROL` set) it joins the experiment rep run records instead, as the
 * Python package's `rep.init()` does: `checkpoint()` is then an explicit checkpoint of exactly the
 * file or folder it names, committed by rep run, and rep run makes none of its own.
 *
 * Call `stop()` when done. If the script throws (or rejects) first, the experiment is marked
 * `failed` at once and what it recorded is uploaded before the process exits with code 1; if it
 * ends without `stop()`, it is marked `succeeded` once its uploads finish.
 *
 * @example
 * ```ts
 * import { init } from "./mod.ts";
 * const dir = await Deno.makeTempDir();
 * const exp = await init({ repository: `${dir}/repo`, path: null, params: { epochs: 3 } });
 * for (let step = 0; step < 3; step++) {
 *   await exp.checkpoint({ step, metrics: { loss: 1 / (step + 1) } });
 * }
 * await exp.stop();
 * ```
 */
export async function init(options: InitOptions = {}): Promise<Experiment> {
  const repo = options.repository ? await openRepository(options.repository) : await defaultRepo();
  return await repo.init(options);
}

/**
 * Experiments in the configured repository.
 *
 * @example List experiments and pick the best run
 * ```ts
 * import { experiments } from "./mod.ts";
 * const dir = await Deno.makeTempDir();
 * Deno.env.set("REP_REPOSITORY", dir);
 * const all = await experiments.list({ filter: (e) => e.status === "succeeded" });
 * console.assert(all.length === 0);
 * Deno.env.delete("REP_REPOSITORY");
 * ```
 */
export const experiments: ExperimentsApi = {
  /** Every experiment, newest first, optionally filtered. */
  async list(options: ListOptions = {}): Promise<Experiment[]> {
    return await (await defaultRepo()).experiments.list(options);
  },
  /** The experiment with this id or unambiguous prefix. */
  async get(id: string): Promise<Experiment> {
    return await (await defaultRepo()).experiments.get(id);
  },
};

/**
 * Checkpoints in the configured repository.
 *
 * @example Get a checkpoint by id prefix
 * ```ts ignore
 * import { checkpoints } from "./mod.ts";
 * const ck = await checkpoints.get("9f8e7d6");
 * console.log(ck.step, ck.metrics);
 * ```
 */
export const checkpoints: CheckpointsApi = {
  /** The checkpoint with this id or unambiguous prefix. */
  async get(id: string): Promise<Checkpoint> {
    return await (await defaultRepo()).checkpoints.get(id);
  },
};
