/**
 * `rep run`: wrap a training command and checkpoint it automatically.
 *
 * @module
 */
import { isAbsolute, relative, resolve } from "node:path";
import { UsageError } from "../errors.ts";
import type { ParamValue, PrimaryMetric } from "../format/records.ts";
import { parseParamFlag } from "../run/params.ts";
import { runExperiment } from "../run/runner.ts";
import { openRunControl } from "../protocol/run_control.ts";
import type { Order } from "../run/attribution.ts";
import { type Command, type Io, openRepo } from "./common.ts";
import { LocalStore } from "../storage/local.ts";
import { RepError } from "../errors.ts";
import { planBegin } from "../lifecycle/begin.ts";
import { keepPolicy } from "./keep.ts";
import { describePolicy } from "../lifecycle/retainer.ts";
import type { ExperimentView, Repository } from "../repository.ts";

/** A local repository folder rep run cannot write is named with the setting it came from. */
function checkRepositoryFolder(root: string, source: string): void {
  const from: Record<string, string> = {
    flag: "-R/--repository",
    env: "REP_REPOSITORY",
    config: "repository: in rep.yaml",
    found: "the .rep folder found above this one",
    default: "the default .rep folder",
  };
  try {
    Deno.mkdirSync(root, { recursive: true });
    const probe = `${root}/.rep-probe-${Deno.pid}`;
    Deno.writeFileSync(probe, new Uint8Array(0));
    Deno.removeSync(probe);
  } catch (e) {
    throw new RepError(
      `Cannot write the repository ${root} (from ${from[source] ?? source}): ${
        (e as Error).message
      }`,
      "Choose a writable folder with -R DIR (or REP_REPOSITORY, or repository: in rep.yaml)",
    );
  }
}

const HELP = `Usage: rep run [options] [--] <command> [args…]

Run a command unchanged and record it as an experiment: params (from -p and from the command's
own --name value / name=value arguments), code snapshot, git state, environment (secrets
redacted), Python packages, and the command's output as a log. While it runs, each complete line
of the metrics file makes a checkpoint holding that line's metrics and the version of each output
file that belongs to it: the files saved just before the line (a script that saves, then logs) or
just after it, up to the next line (a script that logs, then saves). rep finds the order from
the first steps and says which; --order overrides it. Files already in the output folder before
the run belong to no checkpoint unless the command rewrites them. Paths are kept relative to the
current folder: output/model.pth is stored, and checked out, as output/model.pth.

Options:
  -o, --output DIR              Watched output folder (default: output; created when missing)
  -m, --metrics FILE            Metrics JSONL file (default: DIR/metrics.jsonl)
      --primary-metric NAME:GOAL  Metric that picks the best checkpoint; GOAL is minimize or maximize
  -p, --param KEY=VALUE         A param (repeatable); typed as int, float, bool or string
  -t, --tag TAG                 A tag (repeatable)
      --note TEXT               A note
      --no-code                 Skip the code snapshot
      --stdout-metrics          Also read "key: value" lines from the command's stdout
                                ("step: N" sets the step; a repeated key starts a new step)
                                and logged dicts such as {'loss': 0.69, 'epoch': 1.0}
      --order ORDER             save-then-log or log-then-save: which files go with a line,
                                for scripts the automatic rule gets wrong
      --settle SECONDS          How long changed files must stay unchanged before they are
                                checkpointed without a metrics line (default 2)
      --name NAME               A name for the experiment, unique in the repository; it works
                                wherever an id does (rep show NAME, checkout, rm, -f "name = …")
      --resume [ID]             With --name: continue experiment NAME if it exists and has not
                                succeeded (else start it): its latest checkpoint's files are put
                                back in the output folder, then the command runs as a new attempt
                                of the same experiment. A requeued job can always run the same
                                line. With an experiment or checkpoint id: continue from there.
                                An experiment that succeeded is not run again (exit 0). The
                                output folder must be the earlier attempt's
      --rerun                   With --resume: run even an experiment that succeeded
      --keep-best N             While it runs, keep only the N best checkpoints by the primary
                                metric (plus --keep-last); the others are removed as they fall
                                out and rep gc reclaims their data
      --keep-last M             Keep only the M latest checkpoints (plus --keep-best)
  -R, --repository URL          Repository (default from rep.yaml, REP_REPOSITORY, or .rep/)
  -h, --help                    This help

The command sees REP_EXPERIMENT_ID, REP_OUTPUT_DIR, REP_METRICS_FILE and REP_CONTROL in its
environment (a resumed one also REP_RESUMED_FROM, the checkpoint id put back, and REP_RESUME_STEP,
its step). A Python script that calls rep.init() joins this experiment through REP_CONTROL and
makes its checkpoints itself, exactly as experiment.checkpoint(path=..., metrics=...) names them;
rep run then makes none of its own from the metrics file or the output folder.
A metrics line is a JSON object: {"step": 3, "loss": 0.21, "accuracy": 0.93}; "path" limits the
checkpoint to part of the output folder. Ctrl-C and SIGTERM go to the command; rep then finishes
its uploads (a second Ctrl-C stops waiting, leaving them for "rep push"). rep run exits with the
command's exit code; 75 when another process runs (or is resuming) the experiment.

Examples:
  rep run --primary-metric loss:minimize -- python train.py --lr 0.01
  rep run --name resnet-1 --resume --keep-best 3 --keep-last 1 -- python train.py
`;

const VALUE_OPTS: Record<string, string> = {
  "-o": "output",
  "--output": "output",
  "-m": "metrics",
  "--metrics": "metrics",
  "--primary-metric": "primary-metric",
  "-p": "param",
  "--param": "param",
  "-t": "tag",
  "--tag": "tag",
  "--note": "note",
  "-R": "repository",
  "--repository": "repository",
  "--settle": "settle",
  "--order": "order",
  "--name": "name",
  "--keep-best": "keep-best",
  "--keep-last": "keep-last",
};
const FLAG_OPTS: Record<string, string> = {
  "--no-code": "no-code",
  "--stdout-metrics": "stdout-metrics",
  "--rerun": "rerun",
  "-h": "help",
  "--help": "help",
};

/** Parsed `rep run` arguments. */
export interface RunArgs {
  values: Record<string, string[]>;
  flags: Set<string>;
  command: string[];
}

/** Split `rep run` arguments into rep's options and the command (which starts at the first non-option). */
export function parseRunArgs(args: string[]): RunArgs {
  const values: Record<string, string[]> = {};
  const flags = new Set<string>();
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      i++;
      break;
    }
    if (!a.startsWith("-") || a === "-") break;
    const eq = a.indexOf("=");
    const name = a.startsWith("--") && eq > 0 ? a.slice(0, eq) : a;
    if (name === "--resume") {
      // An optional value: --resume=ID, or --resume ID when a -- ends rep's options later (or ID
      // looks like an id); otherwise the next word starts the command.
      const next = args[i + 1];
      let v = "";
      if (name !== a) v = a.slice(eq + 1);
      else if (
        next !== undefined && !next.startsWith("-") &&
        (args.indexOf("--", i + 2) > 0 || /^[0-9a-f]{7,32}$/.test(next))
      ) {
        v = next;
        i++;
      }
      (values.resume ??= []).push(v);
      continue;
    }
    if (VALUE_OPTS[name]) {
      let v: string;
      if (name !== a) v = a.slice(eq + 1);
      else {
        if (i + 1 >= args.length) {
          throw new UsageError(`Option ${a} needs a value`, "See rep run --help");
        }
        v = args[++i]!;
      }
      (values[VALUE_OPTS[name]!] ??= []).push(v);
    } else if (FLAG_OPTS[a]) {
      flags.add(FLAG_OPTS[a]!);
    } else {
      throw new UsageError(
        `Unknown option ${a} for rep run`,
        "Put rep's options before the command, or use -- before a command that starts with -; see rep run --help",
      );
    }
  }
  return { values, flags, command: args.slice(i) };
}

/** Parse `name:minimize|maximize`. */
export function parsePrimaryMetric(text: string): PrimaryMetric {
  const m = /^(.+):(minimize|maximize|min|max)$/.exec(text.trim());
  if (!m || !m[1]!.trim()) {
    throw new UsageError(
      `Invalid --primary-metric "${text}": expected NAME:minimize or NAME:maximize`,
      "Example: --primary-metric loss:minimize",
    );
  }
  return { name: m[1]!.trim(), goal: m[2]!.startsWith("min") ? "minimize" : "maximize" };
}

async function run(args: string[], io: Io): Promise<number> {
  const parsed = parseRunArgs(args);
  if (parsed.flags.has("help")) {
    io.out(HELP);
    return 0;
  }
  if (!parsed.command.length) {
    throw new UsageError("rep run needs a command to run", "Example: rep run -- python train.py");
  }
  const one = (k: string) => {
    const v = parsed.values[k];
    if (v && v.length > 1) throw new UsageError(`Option --${k} given more than once`);
    return v?.[0];
  };
  const { repo, resolved } = await openRepo(one("repository"), io, { requireRepository: false });
  if (repo.store instanceof LocalStore) {
    try {
      checkRepositoryFolder(repo.store.root, resolved.source);
    } catch (e) {
      await repo.close();
      throw e;
    }
  }
  const cfgRun = resolved.config.run ?? {};
  const params: Record<string, ParamValue> = {};
  for (const p of parsed.values.param ?? []) {
    const [k, v] = parseParamFlag(p);
    params[k] = v;
  }
  const pmText = one("primary-metric") ?? cfgRun.primary_metric;
  const primaryMetric = pmText ? parsePrimaryMetric(pmText) : null;
  const cwd = Deno.cwd();
  const output = resolve(cwd, one("output") ?? cfgRun.output ?? "output");
  const metrics = resolve(cwd, one("metrics") ?? cfgRun.metrics ?? `${output}/metrics.jsonl`);
  const settleText = one("settle");
  const settle = settleText === undefined ? undefined : Number(settleText);
  if (settle !== undefined && !(settle >= 0)) {
    throw new UsageError(
      `Invalid --settle "${settleText}": expected seconds`,
      "Example: --settle 5",
    );
  }
  const orderText = one("order") ?? cfgRun.order;
  if (orderText !== undefined && orderText !== "save-then-log" && orderText !== "log-then-save") {
    throw new UsageError(
      `Invalid --order "${orderText}": expected save-then-log or log-then-save`,
      "save-then-log: the script saves its files, then writes the metrics line; log-then-save: the other way",
    );
  }
  const order = (orderText ?? null) as Order | null;
  const keep = keepPolicy(one("keep-best"), one("keep-last"), cfgRun, primaryMetric);
  const resumeText = one("resume");
  const name = one("name") ?? null;
  if (parsed.flags.has("rerun") && resumeText === undefined) {
    throw new UsageError(
      "--rerun goes with --resume",
      "Example: rep run --name x --resume --rerun -- …",
    );
  }
  if (resumeText === "" && !name) {
    throw new UsageError(
      "--resume needs the experiment's name (--name NAME) or an id (--resume ID)",
      "Example: rep run --name resnet-1 --resume -- python train.py",
    );
  }
  const plan = await planBegin(repo, {
    name,
    ...(resumeText !== undefined ? { resume: resumeText === "" ? true : resumeText } : {}),
    rerun: parsed.flags.has("rerun"),
  }).catch(async (e) => {
    await repo.close();
    throw e;
  });
  if (plan.kind === "resume") {
    await checkResumeOutput(repo, plan.experiment, cwd, output).catch(async (e) => {
      await repo.close();
      throw e;
    });
  }
  if (plan.kind === "succeeded") {
    const e = plan.experiment;
    io.err(
      `rep: experiment ${e.id.slice(0, 7)}${e.name ? ` (${e.name})` : ""} already succeeded ` +
        `(attempt ${plan.attempt}); not running it again (--rerun runs it anyway)\n`,
    );
    await repo.close();
    return 0;
  }
  const enc = (b: Uint8Array, w: typeof Deno.stdout) => {
    let o = 0;
    try {
      while (o < b.length) o += w.writeSync(b.subarray(o));
    } catch {
      // our stdout closed; keep the run going
    }
  };
  // The control socket: Python's rep.init() inside the command joins this experiment, and its
  // checkpoint() calls become explicit checkpoints (docs/protocol.md, "Attached").
  const control = await openRunControl(repo.url, cwd);
  try {
    const result = await runExperiment({
      repo,
      env: { ...Deno.env.toObject(), ...control.env },
      onStart: (c) => control.attach(c),
      command: parsed.command,
      cwd,
      output,
      metrics,
      primaryMetric,
      params,
      tags: parsed.values.tag ?? [],
      note: one("note") ?? null,
      noCode: parsed.flags.has("no-code"),
      stdoutMetrics: parsed.flags.has("stdout-metrics"),
      order,
      plan,
      keep,
      ...(settle !== undefined ? { settle } : {}),
      say: io.err,
      stdout: (b) => enc(b, Deno.stdout),
      stderr: (b) => enc(b, Deno.stderr),
      progress: io.errTty,
    });
    const notes: string[] = [];
    if (result.removed && keep) {
      notes.push(`${result.removed} removed to ${describePolicy(keep)} (rep gc reclaims them)`);
    }
    if (result.warned) notes.push(`${result.warned} with warnings (rep show lists them)`);
    if (result.malformed) {
      notes.push(`${result.malformed} metrics line(s) could not be read (rep show lists them)`);
    }
    const label = `${result.experimentId.slice(0, 7)}${plan.name ? ` (${plan.name})` : ""}${
      result.attempt > 1 ? `, attempt ${result.attempt},` : ""
    }`;
    io.err(
      `rep: experiment ${label} ${result.status} with ${result.checkpoints} checkpoint(s)${
        notes.length ? `; ${notes.join("; ")}` : ""
      }\n`,
    );
    return result.exitCode;
  } finally {
    await control.close();
    await repo.close();
  }
}

/** The `run` command. */
export const command: Command = {
  summary: "Run a training command and record it",
  help: HELP,
  run,
};

/**
 * A resume puts the checkpoint's files back where the earlier attempt's output folder was: refuse
 * to watch another folder (the command would not find them, and its checkpoints would mix two
 * layouts). Compared as project-relative paths; an output folder outside the project (an absolute
 * path, which may differ between machines) is not compared.
 */
async function checkResumeOutput(
  repo: Repository,
  exp: ExperimentView,
  cwd: string,
  output: string,
): Promise<void> {
  if (!exp.record.command.length) return; // a library experiment: no output folder
  const full = await repo.withFullRecord(exp);
  const was = full.record.provenance?.output;
  const now = relative(cwd, output) || ".";
  if (typeof was !== "string" || isAbsolute(was) || now.startsWith("..")) return;
  const norm = (p: string) => p.replace(/^\.\/+/, "").replace(/\/+$/, "") || ".";
  if (norm(was) === norm(now)) return;
  const label = `${exp.id.slice(0, 7)}${exp.name ? ` (${exp.name})` : ""}`;
  throw new UsageError(
    `Experiment ${label} recorded its output folder as ${norm(was)}/, but this run watches ${
      norm(now)
    }/: its checkpoint's files go back to ${norm(was)}/, where the command would not look`,
    `Resume with --output ${norm(was)} (or set output: under run: in rep.yaml)`,
  );
}
