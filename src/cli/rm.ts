/**
 * `rep rm ID…`: remove experiments and checkpoints with one write (a `changes/` object).
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { shortId } from "../format/ids.ts";
import type { CheckpointRef } from "../repository.ts";
import { type Command, type Io, openRepo, parse, REPO_OPTIONS } from "./common.ts";
import type { CheckpointRecord } from "../format/records.ts";
import type { ExperimentView } from "../catalog/views.ts";
import { compileFilters, matches } from "../catalog/filter.ts";
import { applyPrune, planPrune } from "../lifecycle/prune.ts";
import { keepPolicy } from "./keep.ts";
import { checkpointLabel } from "./views.ts";

const OPTIONS = {
  ...REPO_OPTIONS,
  quiet: { type: "boolean", short: "q" },
  "keep-best": { type: "string" },
  "keep-last": { type: "string" },
  filter: { type: "string", short: "f", multiple: true },
  "dry-run": { type: "boolean", short: "n" },
} as const;

const help = `rep rm: remove experiments or checkpoints

Usage: rep rm ID... [options]
       rep rm (ID... | -f FILTER...) --keep-best N --keep-last M [--dry-run]

Each ID is an experiment or checkpoint id (or an unambiguous prefix), or an experiment's name.
Every id is resolved first: if any is unknown or ambiguous, nothing is removed. Then all of them
are removed at once with a single small write, however many there are. No questions are asked.

Removing an experiment removes its checkpoints. Removing a checkpoint hides it everywhere
(rep ls, show, diff, checkout); its experiment's best and latest checkpoints are chosen again
from the ones left.

A removal is permanent: it holds for every reader, on every machine, also after "rep gc".
Removed data is not deleted right away: run "rep gc" to reclaim the space it used (data shared
with experiments that are kept stays).

With --keep-best and/or --keep-last, the experiments named (or all those matching the -f
filters) keep only their N best checkpoints by the primary metric and their M latest; the other
checkpoints are removed, as rep run --keep-best/--keep-last does while a run goes on. Running
experiments are left alone, and so, with --keep-best, are experiments without a primary metric.

Options:
      --keep-best N     Keep the N best checkpoints of each experiment (by its primary metric)
      --keep-last M     Keep the M latest checkpoints of each experiment
  -f, --filter "NAME OP VALUE"  With --keep-*: every experiment that matches (see rep ls --help)
  -n, --dry-run         With --keep-*: say what would be removed, remove nothing
  -q, --quiet           Print nothing
  -R, --repository URL  Repository to change
  -h, --help            Show this help

Examples:
  rep rm a1b2c3d 9f8e7d6
  rep rm $(rep ls -q -f "accuracy < 0.2")
  rep rm resnet-a --keep-best 3 --keep-last 1 --dry-run
  rep rm -f "status = succeeded" --keep-best 1
`;

/** `rep rm`. */
export const command: Command = {
  summary: "Remove experiments or checkpoints",
  help,
  async run(args, io) {
    const { values, positionals } = parse("rm", args, OPTIONS);
    if (values.help) {
      io.out(help);
      return 0;
    }
    if (values["keep-best"] !== undefined || values["keep-last"] !== undefined) {
      return await prune(values, positionals, io);
    }
    if (values.filter?.length || values["dry-run"]) {
      throw new UsageError(
        "-f and --dry-run go with --keep-best/--keep-last",
        "To remove whole experiments by filter: rep rm $(rep ls -q -f FILTER)",
      );
    }
    if (!positionals.length) {
      throw new UsageError(
        "rep rm needs at least one id",
        "Example: rep rm a1b2c3d (ids from rep ls)",
      );
    }
    const { repo } = await openRepo(values.repository, io);
    try {
      const experiments = new Map<string, string>();
      const checkpoints = new Map<string, { ref: CheckpointRef; label: string }>();
      const hits = [];
      for (const id of positionals) hits.push(await repo.resolve(id));
      for (const h of hits) {
        const e = h.experiment;
        if (h.kind === "experiment") {
          const label = e.name ? `${shortId(e.id)} (${e.name})` : shortId(e.id);
          experiments.set(e.id, `experiment ${label} (${e.numCheckpoints} checkpoint(s))`);
        } else {
          checkpoints.set(h.checkpoint.id, {
            ref: { experiment: e.id, checkpoint: h.checkpoint.id },
            label: `checkpoint ${checkpointLabel(h.checkpoint)} of experiment ${shortId(e.id)}`,
          });
        }
      }
      // A checkpoint of a removed experiment goes with it.
      for (const h of hits) {
        if (h.kind === "checkpoint" && experiments.has(h.experiment.id)) {
          checkpoints.delete(h.checkpoint.id);
        }
      }
      await repo.remove([...experiments.keys()], [...checkpoints.values()].map((c) => c.ref));
      if (!values.quiet) {
        io.out(
          [...experiments.values(), ...[...checkpoints.values()].map((c) => c.label)]
            .map((l) => `Removed ${l}\n`).join(""),
        );
      }
      return 0;
    } finally {
      await repo.close();
    }
  },
};

/** `rep rm … --keep-best N --keep-last M`: retention on finished experiments. */
async function prune(
  values: {
    "keep-best"?: string;
    "keep-last"?: string;
    filter?: string[];
    "dry-run"?: boolean;
    quiet?: boolean;
    repository?: string;
  },
  positionals: string[],
  io: Io,
): Promise<number> {
  const policy = keepPolicy(values["keep-best"], values["keep-last"], {}, null, false)!;
  if (!positionals.length && !values.filter?.length) {
    throw new UsageError(
      "rep rm --keep-best/--keep-last needs experiment ids or -f filters",
      'Example: rep rm -f "status = succeeded" --keep-best 3 --keep-last 1 --dry-run',
    );
  }
  if (positionals.length && values.filter?.length) {
    throw new UsageError("Give experiment ids or -f filters, not both", "See rep rm --help");
  }
  const { repo } = await openRepo(values.repository, io);
  try {
    let views: ExperimentView[];
    if (positionals.length) {
      views = [];
      for (const id of positionals) {
        const hit = await repo.resolve(id);
        if (hit.kind !== "experiment") {
          throw new UsageError(
            `${id} is a checkpoint: --keep-best/--keep-last apply to experiments`,
            `Use its experiment: rep rm ${shortId(hit.experiment.id)} --keep-…`,
          );
        }
        if (!views.some((v) => v.id === hit.experiment.id)) views.push(hit.experiment);
      }
    } else {
      const all = await repo.list();
      const filters = compileFilters(values.filter ?? [], all);
      views = all.filter((v) => filters.every((f) => matches(v, f)));
    }
    const plans = planPrune(views, policy);
    const dry = values["dry-run"] ?? false;
    const n = dry
      ? plans.reduce((k, p) => k + p.remove.length, 0)
      : await applyPrune(repo, plans, policy);
    if (!values.quiet) {
      const steps = (cs: CheckpointRecord[]) =>
        cs.map((c) => c.step === null ? shortId(c.id) : String(c.step)).join(", ");
      for (const p of plans) {
        const e = p.experiment;
        const label = e.name ? `${shortId(e.id)} (${e.name})` : shortId(e.id);
        if (p.skipped) {
          io.out(`Left experiment ${label} alone: ${p.skipped}\n`);
          continue;
        }
        const kept = p.keep.map((k) => k.checkpoint);
        io.out(
          `${dry ? "Would remove" : "Removed"} ${p.remove.length} checkpoint(s) of experiment ` +
            `${label}${p.remove.length ? ` (steps ${steps(p.remove)})` : ""}; ` +
            `kept ${kept.length}${kept.length ? ` (steps ${steps(kept)})` : ""}\n`,
        );
      }
      if (!plans.length) io.out("No experiments match\n");
      else if (!dry && n) io.out(`rep gc reclaims the space they used\n`);
    }
    return 0;
  } finally {
    await repo.close();
  }
}
