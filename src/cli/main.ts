/**
 * CLI dispatch: global flags, the command table, and the mapping of errors to exit codes.
 *
 * @module
 */
import { BUSY_EXIT_CODE, BusyError, RepError, UsageError } from "../errors.ts";
import { type Command, type Io, processIo, style } from "./common.ts";
import { VERSION } from "../version.ts";

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  run: {
    summary: "Run a training command and record it",
    load: async () => (await import("./run.ts")).command,
  },
  ls: { summary: "List experiments", load: async () => (await import("./ls.ts")).command },
  ps: {
    summary: "List running experiments",
    load: async () => (await import("./ls.ts")).psCommand,
  },
  show: {
    summary: "Show an experiment or checkpoint",
    load: async () => (await import("./show.ts")).command,
  },
  diff: {
    summary: "Compare experiments or checkpoints",
    load: async () => (await import("./diff.ts")).command,
  },
  logs: {
    summary: "Print an experiment's output",
    load: async () => (await import("./logs.ts")).command,
  },
  plot: {
    summary: "Plot a metric over steps in the terminal",
    load: async () => (await import("./plot.ts")).command,
  },
  checkout: {
    summary: "Write a checkpoint's files (and code) to disk",
    load: async () => (await import("./checkout.ts")).command,
  },
  rm: {
    summary: "Remove experiments or checkpoints",
    load: async () => (await import("./rm.ts")).command,
  },
  tag: {
    summary: "Add or remove tags of an experiment",
    load: async () => (await import("./tag.ts")).command,
  },
  note: {
    summary: "Set the note of an experiment",
    load: async () => (await import("./note.ts")).command,
  },
  ui: {
    summary: "Browse the repository in a local web viewer",
    load: async () => (await import("./ui.ts")).command,
  },
  verify: {
    summary: "Check every object against its hash",
    load: async () => (await import("./verify.ts")).command,
  },
  gc: {
    summary: "Delete data nothing refers to",
    load: async () => (await import("./gc.ts")).command,
  },
  push: {
    summary: "Upload checkpoints left on this machine",
    load: async () => (await import("./push.ts")).command,
  },
  record: {
    summary: "Record over the line protocol (the Python package)",
    load: async () => (await import("./record.ts")).command,
  },
};

function usage(): string {
  const names = Object.keys(COMMANDS);
  const w = Math.max(...names.map((n) => n.length));
  return `rep ${VERSION}: version control for machine learning

Usage: rep [-R URL] <command> [options]

Commands:
${names.map((n) => `  ${n.padEnd(w)}  ${COMMANDS[n]!.summary}`).join("\n")}

Global options:
  -R, --repository URL  Repository. Without -R: REP_REPOSITORY, else "repository:" in rep.yaml
                        (found upward), else a .rep/ folder found upward, else .rep/ here
  -h, --help            Help for rep or a command
  --version             Print the version

Run "rep <command> --help" for a command's options.
`;
}

/** Run the CLI with `args`; returns the exit code. */
export async function main(args: string[], io: Io = processIo()): Promise<number> {
  try {
    // A -R/--repository before the command applies to it.
    let i = 0;
    const global: string[] = [];
    while (i < args.length && args[i]!.startsWith("-")) {
      const a = args[i]!;
      if (a === "-h" || a === "--help") {
        io.out(usage());
        return 0;
      }
      if (a === "--version" || a === "-V") {
        io.out(`rep ${VERSION}\n`);
        return 0;
      }
      if (a === "-R" || a === "--repository") {
        if (i + 1 >= args.length) {
          throw new UsageError(`${a} needs a URL`, "Example: rep -R s3://bucket/prefix ls");
        }
        global.push("--repository", args[i + 1]!);
        i += 2;
        continue;
      }
      if (a.startsWith("--repository=")) {
        global.push(a);
        i++;
        continue;
      }
      throw new UsageError(
        `Unknown option ${a}`,
        "Run rep --help; command options go after the command",
      );
    }
    const name = args[i];
    if (name === undefined) {
      io.err(usage());
      return 2;
    }
    if (name === "help") {
      const sub = args[i + 1];
      if (sub && COMMANDS[sub]) {
        io.out((await COMMANDS[sub]!.load()).help);
        return 0;
      }
      io.out(usage());
      return 0;
    }
    const entry = COMMANDS[name];
    if (!entry) {
      const close = Object.keys(COMMANDS).filter((n) => n[0] === name[0]);
      throw new UsageError(
        `Unknown command "${name}"`,
        close.length
          ? `Did you mean ${close.map((c) => `"rep ${c}"`).join(" or ")}? See rep --help`
          : "See rep --help",
      );
    }
    const command = await entry.load();
    const rest = args.slice(i + 1);
    // `rep run` takes everything after its options verbatim; put -R where it parses it.
    return await command.run([...global, ...rest], io);
  } catch (e) {
    return report(e, io);
  }
}

/** Print an error with its hint; returns its exit code. */
export function report(e: unknown, io: Io): number {
  if (e instanceof RepError) {
    io.err(`${style(io, "red", "error:")} ${e.message}\n`);
    if (e.hint) io.err(`${style(io, "dim", "hint:")} ${e.hint}\n`);
    return e instanceof UsageError ? 2 : e instanceof BusyError ? BUSY_EXIT_CODE : 1;
  }
  if (e instanceof Deno.errors.PermissionDenied) {
    io.err(`error: ${e.message}\n`);
    return 1;
  }
  // Operating-system errors (disk full, permissions, missing folders) are clear on their own.
  const os = e instanceof Error && /\(os error (\d+)\)/.exec(e.message);
  if (os) {
    io.err(`${style(io, "red", "error:")} ${e.message}\n`);
    if (os[1] === "28") {
      io.err(
        "hint: the disk is full; free space, or set REP_CACHE_DIR or the repository elsewhere\n",
      );
    }
    return 1;
  }
  const msg = e instanceof Error
    ? (Deno.env.get("REP_DEBUG") ? e.stack ?? e.message : e.message)
    : String(e);
  io.err(`${style(io, "red", "error:")} ${msg}\n`);
  io.err("hint: this is unexpected; rerun with REP_DEBUG=1 for details and report it\n");
  return 1;
}
