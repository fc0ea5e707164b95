/**
 * `rep ui`: a local, offline, read-only web viewer of a repository.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { viewer } from "../ui/server.ts";
import { type Command, type Io, openRepo, parse, REPO_OPTIONS } from "./common.ts";

const HELP = `Usage: rep ui [--port N] [--host ADDR] [-R URL]

Serve a read-only web viewer of the repository on this machine: the experiments table (live while
runs go on), each experiment's params, provenance and checkpoints, metric charts across
experiments, and downloads of checkpoint files. Nothing leaves the machine; no account, no
licence. Stop it with Ctrl-C.

Options:
      --port N           Port (default 8321; 0 picks a free one)
      --host ADDR        Address to listen on (default 127.0.0.1; only change it on a trusted network)
  -R, --repository URL   Repository
  -h, --help             This help
`;

async function run(args: string[], io: Io): Promise<number> {
  const { values } = parse("ui", args, {
    ...REPO_OPTIONS,
    port: { type: "string" },
    host: { type: "string" },
  }, false);
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const port = values.port === undefined ? 8321 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`Invalid --port "${values.port}"`, "Use a number from 0 to 65535");
  }
  const { repo } = await openRepo(values.repository, io);
  const ac = new AbortController();
  const stop = () => ac.abort();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  try {
    const server = Deno.serve({
      port,
      hostname: values.host ?? "127.0.0.1",
      signal: ac.signal,
      onListen: ({ hostname, port }) =>
        io.out(`rep ui: http://${hostname}:${port}/ (Ctrl-C to stop)\n`),
    }, viewer(repo));
    await server.finished;
    return 0;
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new UsageError(
        `Port ${port} is in use`,
        "Choose another with --port N (0 picks a free one)",
      );
    }
    throw e;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
    await repo.close();
  }
}

/** The `ui` command. */
export const command: Command = {
  summary: "Browse the repository in a local web viewer",
  help: HELP,
  run,
};
