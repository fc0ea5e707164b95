/**
 * Configuration: `rep.yaml` found upward from the working directory. The repository URL comes from
 * (first wins) the `-R/--repository` flag, the `REP_REPOSITORY` environment variable, the
 * `repository` key of `rep.yaml`, an existing `.rep/` folder found upward, and finally `.rep/` in
 * the working directory.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { ConfigError } from "./errors.ts";
import { parseYaml } from "./deps/yaml.ts";

/** The name of the configuration file. */
export const CONFIG_FILE = "rep.yaml";

/** The parsed configuration. */
export interface Config {
  /** Repository URL; relative paths are relative to the folder holding `rep.yaml`. */
  repository?: string;
  /** Defaults for `rep run`. */
  run?: {
    output?: string;
    metrics?: string;
    primary_metric?: string;
    /** `save-then-log` or `log-then-save` (see `rep run --order`). */
    order?: string;
    /** Retention while running (see `rep run --keep-best`). */
    keep_best?: number;
    /** Retention while running (see `rep run --keep-last`). */
    keep_last?: number;
  };
}

/** Where the repository came from, for messages. */
export interface ResolvedRepository {
  url: string;
  /** Folder relative repository paths are resolved against. */
  base: string;
  source: "flag" | "env" | "config" | "found" | "default";
  /** The project folder: where rep.yaml is, or the working directory. */
  projectDir: string;
  config: Config;
  configPath: string | null;
}

const KEYS = new Set(["repository", "run"]);
const RUN_KEYS = new Set([
  "output",
  "metrics",
  "primary_metric",
  "order",
  "keep_best",
  "keep_last",
]);
const RUN_COUNTS = new Set(["keep_best", "keep_last"]);

/** Parse and validate the text of a `rep.yaml`. */
export function parseConfig(text: string, path = CONFIG_FILE): Config {
  let v: unknown;
  try {
    v = parseYaml(text, { maxAliasCount: 10, logLevel: "error" });
  } catch (e) {
    const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new ConfigError(`Cannot parse ${path}: ${msg}`, "Fix the YAML syntax");
  }
  if (v === null || v === undefined) return {};
  if (typeof v !== "object" || Array.isArray(v)) {
    throw new ConfigError(
      `Invalid ${path}: it must be a mapping of keys to values`,
      "Example: repository: s3://bucket/prefix",
    );
  }
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!KEYS.has(k)) {
      throw new ConfigError(
        `Invalid ${path}: unknown key "${k}"`,
        `Valid keys: ${[...KEYS].join(", ")}`,
      );
    }
  }
  const cfg: Config = {};
  if (o.repository !== undefined && o.repository !== null) {
    if (typeof o.repository !== "string" || o.repository.trim() === "") {
      throw new ConfigError(
        `Invalid ${path}: "repository" must be a URL string`,
        "Example: repository: s3://bucket/prefix",
      );
    }
    cfg.repository = o.repository.trim();
  }
  if (o.run !== undefined && o.run !== null) {
    if (typeof o.run !== "object" || Array.isArray(o.run)) {
      throw new ConfigError(`Invalid ${path}: "run" must be a mapping`);
    }
    const run: NonNullable<Config["run"]> = {};
    for (const [k, val] of Object.entries(o.run as Record<string, unknown>)) {
      if (!RUN_KEYS.has(k)) {
        throw new ConfigError(
          `Invalid ${path}: unknown key "run.${k}"`,
          `Valid keys under run: ${[...RUN_KEYS].join(", ")}`,
        );
      }
      if (RUN_COUNTS.has(k)) {
        if (typeof val !== "number" || !Number.isSafeInteger(val) || val < 0) {
          throw new ConfigError(
            `Invalid ${path}: "run.${k}" must be a whole number of checkpoints`,
            `Example: ${k}: 3`,
          );
        }
        run[k as "keep_best" | "keep_last"] = val;
        continue;
      }
      if (typeof val !== "string") {
        throw new ConfigError(`Invalid ${path}: "run.${k}" must be a string`);
      }
      run[k as "output" | "metrics" | "primary_metric" | "order"] = val;
    }
    cfg.run = run;
  }
  return cfg;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Work out which repository to use, from the flag, the environment and the config file. */
export async function resolveRepository(
  options: { flag?: string | undefined; cwd?: string; env?: (name: string) => string | undefined } =
    {},
): Promise<ResolvedRepository> {
  const cwd = resolve(options.cwd ?? Deno.cwd());
  const env = options.env ?? ((n: string) => Deno.env.get(n));
  let config: Config = {};
  let configPath: string | null = null;
  let found: string | null = null;
  for (let dir = cwd;; dir = dirname(dir)) {
    const candidate = join(dir, CONFIG_FILE);
    if (await exists(candidate)) {
      configPath = candidate;
      config = parseConfig(await Deno.readTextFile(candidate), candidate);
      break;
    }
    if (!found && await exists(join(dir, ".rep", "repository.json"))) found = dir;
    if (dirname(dir) === dir) break;
  }
  const projectDir = configPath ? dirname(configPath) : found ?? cwd;
  const base = { config, configPath, projectDir };
  if (options.flag) return { url: options.flag, base: cwd, source: "flag", ...base };
  const fromEnv = env("REP_REPOSITORY");
  if (fromEnv) return { url: fromEnv, base: cwd, source: "env", ...base };
  if (config.repository) {
    return { url: config.repository, base: projectDir, source: "config", ...base };
  }
  if (found) return { url: join(found, ".rep"), base: found, source: "found", ...base };
  return { url: join(cwd, ".rep"), base: cwd, source: "default", ...base };
}
