/**
 * `rep record`: record one experiment driven over the line protocol on stdin/stdout. This is how
 * the Python package records (`rep.init()` starts it); see docs/protocol.md.
 *
 * @module
 */
import { resolveRepository } from "../config.ts";
import { Repository } from "../repository.ts";
import { RecorderHost } from "../protocol/recorder_host.ts";
import { readLines, serveSession } from "../protocol/session.ts";
import { type Command, type Io, parse, REPO_OPTIONS } from "./common.ts";

const HELP = `Usage: rep record [-R URL]

Record one experiment for a program that speaks rep's line protocol on this process's stdin and
stdout (one JSON object per line; see docs/protocol.md). The Python package starts it from
rep.init(). stdout carries only protocol lines; messages for the user are sent as protocol events.

When stdin closes before a "stop" request (the program died), the experiment ends as crashed and
every checkpoint it made is still uploaded before rep exits.

Options:
  -R, --repository URL  Repository (default from rep.yaml, REP_REPOSITORY, or .rep/)
  -h, --help            This help
`;

async function run(args: string[], io: Io): Promise<number> {
  const { values } = parse("record", args, REPO_OPTIONS, false);
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  // Nothing but protocol lines may reach stdout: send stray library output to stderr.
  console.log = console.info = console.debug = (...a: unknown[]) => console.error(...a);
  let repo: Repository | null = null;
  const host = new RecorderHost(async () => {
    const resolved = await resolveRepository({ flag: values.repository });
    repo = await Repository.open(resolved.url, { base: resolved.base });
    return repo;
  });
  const enc = new TextEncoder();
  let out = true;
  const send = (line: string) => {
    if (!out) return;
    const bytes = enc.encode(line);
    try {
      let o = 0;
      while (o < bytes.length) o += Deno.stdout.writeSync(bytes.subarray(o));
    } catch {
      out = false; // the client went away; keep recording what is queued
    }
  };
  try {
    let stopped = false;
    try {
      stopped = (await serveSession(readLines(Deno.stdin.readable), send, host, {
        endAfterStop: true,
      })).stopped;
    } finally {
      // However the input ended, what was queued is uploaded.
      if (!stopped) await host.disconnected();
    }
  } finally {
    await (repo as Repository | null)?.close();
  }
  return 0;
}

/** The `record` command. */
export const command: Command = {
  summary: "Record an experiment over the line protocol (used by the Python package)",
  help: HELP,
  run,
};
