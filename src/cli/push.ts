/**
 * `rep push`: upload checkpoints left queued on this machine.
 *
 * @module
 */
import { listOutboxes, recoverOutboxes } from "../writer/recover.ts";
import { formatBytes } from "../util.ts";
import { type Command, type Io, openRepo, parse, REPO_OPTIONS } from "./common.ts";

const HELP = `Usage: rep push [-R URL] [--dry-run]

Upload what runs on this machine left queued on local disk: a run whose storage was unreachable,
a run stopped with a second Ctrl-C, or one that was killed. Data goes first, then the records that
refer to it, so nothing half-written is ever visible. Queues of runs still alive are left to them.

Options:
  -n, --dry-run          Only list what is queued
  -R, --repository URL   Repository
  -h, --help             This help
`;

async function run(args: string[], io: Io): Promise<number> {
  const { values } = parse("push", args, {
    ...REPO_OPTIONS,
    "dry-run": { type: "boolean", short: "n" },
  }, false);
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const { repo } = await openRepo(values.repository, io, {
    recover: false,
    requireRepository: false,
  });
  try {
    const boxes = await listOutboxes(repo);
    if (!boxes.length) {
      io.err("rep: nothing is queued on this machine\n");
      return 0;
    }
    for (const b of boxes) {
      io.out(
        `${b.experiment.slice(0, 7)}  ${b.items} object(s), ${formatBytes(b.bytes)}${
          b.alive ? `  (run in progress, pid ${b.pid})` : ""
        }\n`,
      );
    }
    if (values["dry-run"]) return 0;
    const r = await recoverOutboxes(repo);
    io.err(`rep: uploaded ${r.objects} object(s) from ${r.outboxes} queue(s)\n`);
    for (const f of r.failed) io.err(`rep: could not upload ${f.dir}: ${f.error}\n`);
    return r.failed.length ? 1 : 0;
  } finally {
    await repo.close();
  }
}

/** The `push` command. */
export const command: Command = {
  summary: "Upload checkpoints left on this machine",
  help: HELP,
  run,
};
