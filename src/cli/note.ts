/**
 * `rep note ID "text"`: set an experiment's note after the run (one `changes/` object; the
 * experiment record is never rewritten). `rep note ID --clear` removes it.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { shortId } from "../format/ids.ts";
import { type Command, openRepo, parse, REPO_OPTIONS } from "./common.ts";

const OPTIONS = {
  ...REPO_OPTIONS,
  clear: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
} as const;

const help = `rep note: set the note of an experiment

Usage: rep note ID "TEXT" [options]
       rep note ID --clear

ID is an experiment id (or an unambiguous prefix, or its name; a checkpoint id stands for its
experiment). The note replaces the previous one; it shows in rep ls, rep show, --json and
rep ui, and filters select by it: rep ls -f "note ~ diverged". The change is recorded as a new
object; nothing recorded is rewritten.

Options:
      --clear           Remove the note
  -q, --quiet           Print nothing
  -R, --repository URL  Repository to change
  -h, --help            Show this help

Examples:
  rep note a1b2c3d "diverged after warmup; lr too high"
  rep note a1b2c3d --clear
`;

/** `rep note`. */
export const command: Command = {
  summary: "Set the note of an experiment",
  help,
  async run(args, io) {
    const { values, positionals } = parse("note", args, OPTIONS);
    if (values.help) {
      io.out(help);
      return 0;
    }
    const [id, ...words] = positionals;
    const clear = values.clear ?? false;
    if (id === undefined || (!clear && !words.length) || (clear && words.length)) {
      throw new UsageError(
        id === undefined
          ? "rep note needs an id and the text"
          : clear
          ? "rep note --clear takes no text"
          : "rep note needs the text of the note",
        'Example: rep note a1b2c3d "lr too high" (quote the text)',
      );
    }
    const text = clear ? null : words.join(" ");
    if (text !== null && !text.trim()) {
      throw new UsageError("The note is empty", `To remove a note: rep note ${id} --clear`);
    }
    const { repo } = await openRepo(values.repository, io);
    try {
      const e = (await repo.resolve(id)).experiment;
      await repo.catalog.note(e.id, text);
      if (!values.quiet) {
        io.out(
          text === null
            ? `Cleared the note of experiment ${shortId(e.id)}\n`
            : `Noted experiment ${shortId(e.id)}\n`,
        );
      }
      return 0;
    } finally {
      await repo.close();
    }
  },
};
