/**
 * `rep ui`: a local, offline, read-only web viewer of a repository.
 *
 * @module
 */
import { hostname } from "node:os";
import { UsageError } from "../errors.ts";
import { viewer } from "../ui/server.ts";
import { isLoopback, newToken } from "../ui/access.ts";
import { type Command, type Io, openRepo, parse, REPO_OPTIONS } from "./common.ts";

const HELP = `Usage: rep ui [--port N] [--host ADDR] [--token] [-R URL]

Serve a read-only web viewer of the repository: the experiments table (sortable, columns to
choose, search with the filters of rep ls -f, live while runs go on), comparisons of experiments
(metric curves overlaid, params and metrics side by side, what rep diff shows), params against
metrics (scatter and parallel coordinates), and each experiment's checkpoints, logs, provenance,
code and file downloads. Everything is served by rep itself: no account, no licence, nothing from
the internet. Stop it with Ctrl-C.

It listens on 127.0.0.1 and answers only to localhost, 127.0.0.1 and [::1], so other web sites
cannot read it (DNS rebinding). From another machine, tunnel it:
  ssh -L 8321:localhost:8321 HOST 'rep ui'      then open http://localhost:8321/
or listen on the network with --host 0.0.0.0: rep then prints a URL with a one-time token;
whoever has that URL can read the repository (plain HTTP: use it on a network you trust).

Options:
      --port N           Port (default 8321; 0 picks a free one)
      --host ADDR        Address to listen on (default 127.0.0.1). Beyond the loopback, a
                         token is required
      --token            Require the printed token on the loopback too (shared machines)
  -R, --repository URL   Repository
  -h, --help             This help
`;

async function run(args: string[], io: Io): Promise<number> {
  const { values } = parse("ui", args, {
    ...REPO_OPTIONS,
    port: { type: "string" },
    host: { type: "string" },
    token: { type: "boolean" },
  }, false);
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const port = values.port === undefined ? 8321 : Number(values.port);
  if (!/^\d+$/.test(values.port ?? "0") || port > 65535) {
    throw new UsageError(`Invalid --port "${values.port}"`, "Use a number from 0 to 65535");
  }
  const host = values.host ?? "127.0.0.1";
  if (host.trim() === "" || /[\s/]/.test(host)) {
    throw new UsageError(
      `Invalid --host "${host}"`,
      "Use an address such as 127.0.0.1 or 0.0.0.0",
    );
  }
  const loopback = isLoopback(host.replace(/^\[(.*)\]$/, "$1"));
  const token = values.token || !loopback ? newToken() : null;
  const { repo } = await openRepo(values.repository, io);
  const ac = new AbortController();
  const stop = () => ac.abort();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  try {
    let handler: ((req: Request) => Promise<Response>) | null = null;
    const server = Deno.serve({
      port,
      hostname: host,
      signal: ac.signal,
      onListen: ({ port: bound }) => {
        handler = viewer(repo, { access: { port: bound, loopbackOnly: loopback, token } });
        const shown = loopback
          ? (host.includes(":") ? `[${host.replace(/^\[|\]$/g, "")}]` : host)
          : hostname();
        const url = `http://${shown}:${bound}/${token ? `?token=${token}` : ""}`;
        io.out(`rep ui: ${url} (Ctrl-C to stop)\n`);
        if (!loopback) {
          io.err(
            `rep: listening on ${host}: anyone who has this URL can read the repository; ` +
              "traffic is not encrypted\n",
          );
        }
      },
    }, (req) => handler ? handler(req) : Promise.resolve(new Response(null, { status: 503 })));
    await server.finished;
    return 0;
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new UsageError(
        `Port ${port} is in use (another rep ui?)`,
        "Choose another with --port N (0 picks a free one)",
      );
    }
    if (e instanceof Deno.errors.AddrNotAvailable) {
      throw new UsageError(
        `Cannot listen on ${host}: it is not an address of this machine`,
        "Use 127.0.0.1 (the default), 0.0.0.0 for every address, or one this machine has",
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
