/**
 * Helpers for end-to-end tests: spawn the `rep` CLI with the compiled binary's permissions, and
 * record experiments directly through the recorder.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { MetricValue, ParamValue, PrimaryMetric } from "../src/format/records.ts";
import { Repository } from "../src/repository.ts";
import { Recorder } from "../src/writer/recorder.ts";
import { jsonBytes } from "../src/util.ts";

/** The project root (where main.ts is). */
export const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

/** The permission flags of the compiled binary. */
export const PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-net",
  "--allow-run",
  "--allow-sys",
];

/** The result of one CLI run. */
export interface RepResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link rep}. */
export interface RepOptions {
  /** Working directory. @default ROOT */
  cwd?: string;
  /** Extra environment variables (REP_CACHE_DIR should point at a temp dir). */
  env?: Record<string, string>;
}

/** Run `rep ARGS` as a subprocess (`deno run <permissions> main.ts ARGS`). */
export async function rep(args: string[], options: RepOptions = {}): Promise<RepResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...PERMISSIONS, join(ROOT, "main.ts"), ...args],
    cwd: options.cwd ?? ROOT,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Files as path → content. */
export type Files = Record<string, string | Uint8Array>;

/** A checkpoint to record. */
export interface CheckpointSpec {
  step?: number;
  metrics?: Record<string, MetricValue>;
  files?: Files;
  /** Files left out of it, and its warnings (as `rep run` records them). */
  torn?: string[];
  warnings?: string[];
}

/** An experiment to record with {@link makeExperiment}. */
export interface ExperimentSpec {
  id?: string;
  params?: Record<string, ParamValue>;
  /** Files of the code snapshot; omitted: no snapshot. */
  code?: Files;
  checkpoints?: CheckpointSpec[];
  primaryMetric?: PrimaryMetric;
  /** Final state; `running` leaves a fresh heartbeat, `crashed` a stale one. @default "succeeded" */
  status?: "succeeded" | "failed" | "stopped" | "running" | "crashed";
  exitCode?: number | null;
  command?: string[];
  tags?: string[];
  provenance?: Record<string, unknown>;
  git?: { commit: string | null; branch: string | null; dirty: boolean } | null;
}

/** What {@link makeExperiment} recorded. */
export interface MadeExperiment {
  id: string;
  /** Checkpoint ids, in order. */
  checkpoints: string[];
}

async function writeFiles(dir: string, files: Files): Promise<string[]> {
  for (const [p, content] of Object.entries(files)) {
    const dest = join(dir, p);
    await Deno.mkdir(dirname(dest), { recursive: true });
    if (typeof content === "string") await Deno.writeTextFile(dest, content);
    else await Deno.writeFile(dest, content);
  }
  return Object.keys(files);
}

/** Record an experiment in the repository at `url` (in this process, through the recorder). */
export async function makeExperiment(
  url: string,
  spec: ExperimentSpec = {},
): Promise<MadeExperiment> {
  const repo = await Repository.open(url, { cache: false });
  const tmp = await Deno.makeTempDir({ prefix: "rep-make-" });
  try {
    let code: { root: string; files: string[] } | null = null;
    if (spec.code) {
      const root = join(tmp, "code");
      await Deno.mkdir(root);
      code = { root, files: await writeFiles(root, spec.code) };
    }
    const rec = await Recorder.start(repo, {
      ...(spec.id ? { id: spec.id } : {}),
      params: spec.params ?? {},
      command: spec.command ?? ["python", "train.py"],
      cwd: tmp,
      code,
      git: spec.git ?? null,
      tags: spec.tags ?? [],
      primaryMetric: spec.primaryMetric ?? null,
      provenance: spec.provenance ?? {},
    });
    const ids: string[] = [];
    let n = 0;
    for (const ck of spec.checkpoints ?? []) {
      let tree = null;
      if (ck.files) {
        const root = join(tmp, `ck${n++}`);
        await Deno.mkdir(root);
        tree = (await rec.snapshot(root, await writeFiles(root, ck.files))).tree;
      }
      const r = await rec.commit({
        tree,
        step: ck.step ?? ids.length,
        metrics: ck.metrics ?? {},
        torn: ck.torn ?? [],
        warnings: ck.warnings ?? [],
      });
      ids.push(r.id);
      // Distinct creation times keep checkpoint order stable.
      await new Promise((res) => setTimeout(res, 2));
    }
    const status = spec.status ?? "succeeded";
    if (status === "running" || status === "crashed") {
      await rec.outbox.drain();
      rec.abandon();
      if (status === "crashed") {
        await repo.store.put(
          `experiments/${rec.record.id}/heartbeat.json`,
          jsonBytes({ pid: 1, host: "h", updated: "2020-01-01T00:00:00.000Z", interval: 10 }),
        );
      }
    } else {
      await rec.stop(status, { exitCode: spec.exitCode ?? (status === "succeeded" ? 0 : 1) });
    }
    return { id: rec.record.id, checkpoints: ids };
  } finally {
    await repo.close();
    await Deno.remove(tmp, { recursive: true });
  }
}

/** A temporary test folder with a repository path and a cache dir; removed by `cleanup()`. */
export async function tempRepo(): Promise<{
  dir: string;
  repo: string;
  env: Record<string, string>;
  cleanup: () => Promise<void>;
}> {
  const dir = await Deno.makeTempDir({ prefix: "rep-test-" });
  const repo = join(dir, "repo");
  return {
    dir,
    repo,
    env: { REP_REPOSITORY: repo, REP_CACHE_DIR: join(dir, "cache") },
    cleanup: async () => {
      await Deno.chmod(dir, 0o755).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
