/**
 * `rep rm ID…`: remove experiments and checkpoints with one write (a `changes/` object).
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { shortId } from "../format/ids.ts";
import type { CheckpointRef } from "../repository.ts";
import { type Command, openRepo, parse, REPO_OPTIONS } from "./common.ts";
import { checkpointLabel } from "./views.ts";

const OPTIONS = { ...REPO_OPTIONS, quiet: { type: "boolean", short: "q" } } as const;

const help = `rep rm: remove experiments or checkpoints

Usage: rep rm ID... [options]

Each ID is an experiment or checkpoint id (or an unambiguous prefix), or an experiment's name.
Every id is resolved first: if any is unknown or ambiguous, nothing is removed. Then all of them
are removed at once with a single small write, however many there are. No questions are asked.

Removing an experiment removes its checkpoints. Removing a checkpoint hides it everywhere
(rep ls, show, diff, checkout); its experiment's best and latest checkpoints are chosen again
from the ones left.

A removal is permanent: it holds for every reader, on every machine, also after "rep gc".
Removed data is not deleted right away: run "rep gc" to reclaim the space it used (data shared
with experiments that are kept stays).

Options:
  -q, --quiet           Print nothing
  -R, --repository URL  Repository to change
  -h, --help            Show this help

Examples:
  rep rm a1b2c3d 9f8e7d6
  rep rm $(rep ls -q -f "accuracy < 0.2")
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
