/**
 * `rep logs`: print the output a `rep run` command wrote.
 *
 * @module
 */
import { type Command, type Io, oneId, openRepo, parse, REPO_OPTIONS } from "./common.ts";
import { logPrefix } from "../format/layout.ts";

const HELP = `Usage: rep logs ID [-R URL]

Print the stdout and stderr that the command of an experiment (or a checkpoint's experiment)
wrote, as stored by rep run. Logs are stored in segments while the command runs.

Options:
  -R, --repository URL   Repository
  -h, --help             This help
`;

async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse("logs", args, REPO_OPTIONS);
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const id = oneId("logs", positionals, "Example: rep logs 3f2a1b9");
  const { repo } = await openRepo(values.repository, io);
  try {
    const r = await repo.resolve(id);
    const prefix = logPrefix(r.experiment.id);
    const keys: string[] = [];
    for await (const info of repo.store.list(prefix)) keys.push(info.key);
    if (!keys.length) {
      io.err(`rep: experiment ${r.experiment.id.slice(0, 7)} has no stored output\n`);
      return 0;
    }
    for (const k of keys.sort()) {
      for await (const chunk of await repo.store.get(k)) {
        {
          if (io.outBytes) io.outBytes(chunk);
          else io.out(new TextDecoder().decode(chunk, { stream: true }));
        }
      }
    }
    return 0;
  } finally {
    await repo.close();
  }
}

/** The `logs` command. */
export const command: Command = { summary: "Print an experiment's output", help: HELP, run };
