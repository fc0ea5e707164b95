/**
 * `rep verify`: check every object against its hash and every reference.
 *
 * @module
 */
import { verifyRepository } from "../maintenance/verify.ts";
import type { ExperimentView } from "../repository.ts";
import { formatBytes } from "../util.ts";
import { type Command, type Io, openRepo, parse, REPO_OPTIONS } from "./common.ts";

const HELP = `Usage: rep verify [ID…] [--quick] [--json] [-R URL]

Check the repository: every record parses, every file list (tree) exists and matches its hash,
every chunk of every checkpoint and code snapshot exists and matches its sha256. With ids, only
those experiments (a checkpoint id checks its experiment). Reports what is missing or corrupt and
which experiments and checkpoints it affects. Exit code 1 when anything is wrong.

Options:
      --quick            Only check that data objects exist with the right sizes (no reading)
      --json             Print the result as JSON
  -R, --repository URL   Repository
  -h, --help             This help
`;

async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse("verify", args, {
    ...REPO_OPTIONS,
    quick: { type: "boolean" },
    json: { type: "boolean" },
  });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const { repo } = await openRepo(values.repository, io);
  try {
    let experiments: ExperimentView[] | undefined;
    if (positionals.length) {
      const seen = new Map<string, ExperimentView>();
      for (const id of positionals) {
        const r = await repo.resolve(id);
        seen.set(r.experiment.id, r.experiment);
      }
      experiments = [...seen.values()];
    }
    const result = await verifyRepository(repo, {
      ...(experiments ? { experiments } : {}),
      quick: values.quick ?? false,
      ...(io.errTty && !values.json
        ? { progress: (d: number, t: number) => io.err(`\rverifying packs ${d}/${t}`) }
        : {}),
    });
    if (io.errTty && !values.json) io.err("\r\x1b[K");
    if (values.json) {
      io.out(JSON.stringify(result, null, 2) + "\n");
    } else {
      io.out(
        `checked ${result.experiments} experiment(s), ${result.checkpoints} checkpoint(s), ` +
          `${result.trees} file list(s), ${result.packs} pack(s), ${result.chunks} chunk(s), ` +
          `${formatBytes(result.bytes)}${values.quick ? " (quick: sizes only)" : ""}\n`,
      );
      for (const p of result.problems) {
        const who = p.affects.slice(0, 5).map((a) => a.slice(0, 7)).join(", ") +
          (p.affects.length > 5 ? `, … (${p.affects.length})` : "");
        io.out(`${p.kind.toUpperCase()}  ${p.key}: ${p.detail}${who ? ` (affects ${who})` : ""}\n`);
      }
      io.out(result.problems.length ? `${result.problems.length} problem(s) found\n` : "ok\n");
    }
    return result.problems.length ? 1 : 0;
  } finally {
    await repo.close();
  }
}

/** The `verify` command. */
export const command: Command = { summary: "Check every object against its hash", help: HELP, run };
