/**
 * `rep logs`: print the output a `rep run` command wrote; `-f` follows a live run.
 *
 * @module
 */
import { type Command, type Io, oneId, openRepo, parse, REPO_OPTIONS } from "./common.ts";
import { readStoredLog } from "../run/log.ts";
import { attemptStatusKey } from "../format/layout.ts";
import type { Repository } from "../repository.ts";

const HELP = `Usage: rep logs ID [-f] [-R URL]

Print the stdout and stderr that the command of an experiment (or a checkpoint's experiment)
wrote, as stored by rep run. Output reaches the repository within a few seconds while the command
runs, and survives a crash of rep itself (the next rep command uploads the rest). A resumed
experiment prints each attempt's output in turn (a "rep: attempt N" line on stderr before each
attempt after the first); -f follows the newest attempt.

Options:
  -f, --follow           Keep printing new output until the run ends
  -R, --repository URL   Repository
  -h, --help             This help
`;

const OPTIONS = { ...REPO_OPTIONS, follow: { type: "boolean", short: "f" } } as const;

async function finished(repo: Repository, id: string, attempt: number): Promise<boolean> {
  return (await repo.store.head(attemptStatusKey(id, attempt)).catch(() => null)) !== null;
}

async function run(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse("logs", args, OPTIONS);
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const id = oneId("logs", positionals, "Example: rep logs 3f2a1b9");
  const { repo } = await openRepo(values.repository, io);
  try {
    const r = await repo.resolve(id);
    const eid = r.experiment.id;
    const dec = new TextDecoder();
    const print = (b: Uint8Array) => {
      if (!b.length) return;
      if (io.outBytes) io.outBytes(b);
      else io.out(dec.decode(b, { stream: true }));
    };
    const newest = Math.max(1, ...r.experiment.attempts.map((a) => a.attempt));
    let earlier = 0;
    for (let n = 1; n < newest; n++) {
      const log = await readStoredLog(repo.store, eid, 0, n);
      if (n > 1) io.err(`rep: attempt ${n}\n`);
      print(log.bytes);
      earlier += log.total;
    }
    if (newest > 1) io.err(`rep: attempt ${newest}\n`);
    let at = 0;
    const first = await readStoredLog(repo.store, eid, 0, newest);
    print(first.bytes);
    at = first.total;
    if (!values.follow) {
      if (first.total + earlier === 0) {
        io.err(`rep: experiment ${eid.slice(0, 7)} has no stored output\n`);
      }
      return 0;
    }
    // Follow until the run has ended and its last output is stored (no tail left).
    let idle = 0;
    for (;;) {
      const done = await finished(repo, eid, newest);
      const next = await readStoredLog(repo.store, eid, at, newest);
      print(next.bytes);
      at = Math.max(at, next.total);
      if (done && !next.tail) return 0;
      // A run whose rep died never finishes: stop once it reads as crashed and nothing comes.
      idle = next.bytes.length ? 0 : idle + 1;
      if (idle > 30 && r.experiment.status === "crashed") return 0;
      await new Promise((res) => setTimeout(res, 1000));
    }
  } finally {
    await repo.close();
  }
}

/** The `logs` command. */
export const command: Command = { summary: "Print an experiment's output", help: HELP, run };
