/**
 * `rep tag ID TAG…` and `rep tag --rm ID TAG…`: add or remove an experiment's tags after the run,
 * as one `changes/` object (the experiment record is never rewritten).
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { shortId } from "../format/ids.ts";
import { type Command, openRepo, parse, REPO_OPTIONS } from "./common.ts";

const OPTIONS = {
  ...REPO_OPTIONS,
  rm: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
} as const;

const help = `rep tag: add or remove tags of an experiment

Usage: rep tag ID TAG... [options]
       rep tag --rm ID TAG...

ID is an experiment id (or an unambiguous prefix, or its name; a checkpoint id stands for its
experiment). Tags are 1-100 characters without spaces or commas. They show in rep ls, rep show,
--json and rep ui, and filters select by them: rep ls -f "tag = best". The change is recorded as
a new object; nothing recorded is rewritten.

Options:
      --rm              Remove the tags instead of adding them
  -q, --quiet           Print nothing
  -R, --repository URL  Repository to change
  -h, --help            Show this help

Examples:
  rep tag a1b2c3d baseline best-so-far
  rep tag --rm a1b2c3d best-so-far
`;

/** `rep tag`. */
export const command: Command = {
  summary: "Add or remove tags of an experiment",
  help,
  async run(args, io) {
    const { values, positionals } = parse("tag", args, OPTIONS);
    if (values.help) {
      io.out(help);
      return 0;
    }
    const [id, ...tags] = positionals;
    if (id === undefined || !tags.length) {
      throw new UsageError(
        id === undefined ? "rep tag needs an id and at least one tag" : "rep tag needs a tag",
        "Example: rep tag a1b2c3d baseline (ids from rep ls)",
      );
    }
    const { repo } = await openRepo(values.repository, io);
    try {
      const hit = await repo.resolve(id);
      const e = hit.experiment;
      const remove = values.rm ?? false;
      await repo.catalog.tag(e.id, remove ? [] : tags, remove ? tags : []);
      if (!values.quiet) {
        const now = remove
          ? e.tags.filter((t) => !tags.includes(t))
          : [...new Set([...e.tags, ...tags])];
        io.out(
          `${remove ? "Removed" : "Tagged"} experiment ${shortId(e.id)}: ${
            remove ? tags.join(", ") : tags.join(", ")
          } (tags now: ${now.length ? now.join(", ") : "none"})\n`,
        );
      }
      return 0;
    } finally {
      await repo.close();
    }
  },
};
