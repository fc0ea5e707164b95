/**
 * Shared pieces of the CLI: argument parsing with usage errors, the repository flag, output helpers.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig, styleText } from "node:util";
import { ConfigError, NotFoundError, UsageError } from "../errors.ts";
import { type ResolvedRepository, resolveRepository } from "../config.ts";
import { Repository } from "../repository.ts";
import { LocalStore } from "../storage/local.ts";

/** A command's context: where output goes. */
export interface Io {
  out: (text: string) => void;
  /** Raw bytes to stdout, when supported. */
  outBytes?: (bytes: Uint8Array) => void;
  err: (text: string) => void;
  /** True when stdout is a terminal (tables with colour, progress). */
  isTty: boolean;
  /** True when stderr is a terminal. */
  errTty: boolean;
  color: boolean;
}

/** The standard process io. */
export function processIo(): Io {
  const enc = new TextEncoder();
  const isTty = Deno.stdout.isTerminal();
  const errTty = Deno.stderr.isTerminal();
  return {
    out: (t) => writeAll(Deno.stdout, enc.encode(t)),
    outBytes: (b) => writeAll(Deno.stdout, b),
    err: (t) => writeAll(Deno.stderr, enc.encode(t)),
    isTty,
    errTty,
    color: isTty && !Deno.env.get("NO_COLOR"),
  };
}

function writeAll(w: { writeSync(p: Uint8Array): number }, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) {
    try {
      off += w.writeSync(data.subarray(off));
    } catch (e) {
      if (e instanceof Deno.errors.BrokenPipe) return;
      throw e;
    }
  }
}

/** A command module: help text and a handler returning an exit code. */
export interface Command {
  summary: string;
  help: string;
  run(args: string[], io: Io): Promise<number>;
}

/** Options every command that touches a repository accepts. */
export const REPO_OPTIONS = {
  repository: { type: "string", short: "R" },
  help: { type: "boolean", short: "h" },
} as const;

type Options = NonNullable<ParseArgsConfig["options"]>;

/** parseArgs, turning its errors into {@link UsageError}s that point at the help. */
export function parse<T extends Options>(
  command: string,
  args: string[],
  options: T,
  allowPositionals = true,
): ReturnType<
  typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>
> {
  try {
    return parseArgs({ args, options, allowPositionals: allowPositionals as true, strict: true });
  } catch (e) {
    const msg = e instanceof Error ? e.message.replace(/\. To specify.*$/s, "") : String(e);
    throw new UsageError(
      `Invalid arguments to rep ${command}: ${msg}`,
      `See rep ${command} --help`,
    );
  }
}

/** The single id a command takes, or a usage error that says what was given and shows `example`. */
export function oneId(command: string, positionals: string[], example: string): string {
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length
        ? `rep ${command} takes one id, got ${positionals.length}`
        : `rep ${command} needs an id`,
      positionals.length && command === "show" ? "To compare several: rep diff ID ID" : example,
    );
  }
  return positionals[0]!;
}

/** Options of {@link openRepo}. */
export interface OpenRepoOptions {
  /** Upload what killed or interrupted runs left queued on this machine. @default true */
  recover?: boolean;
  /**
   * Refuse a URL that holds no repository, so that a typo is an error, not an empty listing. Only
   * commands that write (`rep run` creates the repository, `rep push` uploads what a run queued)
   * turn it off. @default true
   */
  requireRepository?: boolean;
}

/** Open the repository named by `-R`, `REP_REPOSITORY`, rep.yaml or the default. */
export async function openRepo(
  flag: string | undefined,
  io?: Io,
  options: OpenRepoOptions = {},
): Promise<{ repo: Repository; resolved: ResolvedRepository }> {
  const resolved = await resolveRepository({ flag });
  const repo = await Repository.open(resolved.url, { base: resolved.base });
  try {
    await checkLocalRoot(repo, resolved);
    if ((options.requireRepository ?? true) && await repo.checkFormat() === null) {
      throw noRepository(repo, resolved);
    }
  } catch (e) {
    await repo.close();
    throw e;
  }
  // Finish uploads that a killed or interrupted run left on this machine.
  const { listOutboxes, recoverOutboxes } = await import("../writer/recover.ts");
  const recover = options.recover ?? true;
  if (recover) {
    // The output of runs whose rep was killed: stored as log segments.
    const { recoverRunLogs } = await import("../run/log.ts");
    const { Recorder } = await import("../writer/recorder.ts");
    await recoverRunLogs(Recorder.outboxRoot(repo), repo.store).catch((e) =>
      io?.err(`rep: could not upload the log of an earlier run: ${(e as Error).message}\n`)
    );
  }
  const dead = recover ? (await listOutboxes(repo).catch(() => [])).filter((o) => !o.alive) : [];
  if (dead.length) {
    const n = dead.reduce((a, o) => a + o.items, 0);
    if (n) io?.err(`rep: uploading ${n} object(s) left queued by an earlier run\n`);
    const r = await recoverOutboxes(repo).catch(() => null);
    for (const f of r?.failed ?? []) io?.err(`rep: could not upload ${f.dir}: ${f.error}\n`);
  }
  return { repo, resolved };
}

/** The error of a read command pointed at a URL that holds no repository. */
function noRepository(repo: Repository, r: ResolvedRepository): NotFoundError {
  const where = repo.store instanceof LocalStore ? repo.store.root : repo.url;
  if (r.source === "default" || r.source === "found") {
    return new NotFoundError(
      `No repository here: ${where} does not exist, and no -R, REP_REPOSITORY or rep.yaml names one`,
      "Record an experiment first (rep run -- python train.py creates .rep/ here), " +
        "or name an existing repository with -R URL",
    );
  }
  return new NotFoundError(
    `No repository at ${where}`,
    `${sourceText(r)}: check it. Only rep run creates a repository; other commands read one`,
  );
}

/** Where the URL came from, in words, for the hint of an error about it. */
function sourceText(r: ResolvedRepository): string {
  switch (r.source) {
    case "flag":
      return `It comes from -R "${r.url}"`;
    case "env":
      return `It comes from REP_REPOSITORY="${r.url}"`;
    case "config":
      return `It comes from "repository: ${r.config.repository}" in ${r.configPath}`;
    case "found":
    case "default":
      return `It is the default, .rep/ in ${r.base}`;
  }
}

/** A local repository path that names a file (say `-R train.py`) is refused for every command. */
async function checkLocalRoot(repo: Repository, resolved: ResolvedRepository): Promise<void> {
  if (!(repo.store instanceof LocalStore)) return;
  const root = repo.store.root;
  const refuse = (why: string) =>
    new ConfigError(
      `Cannot use ${root} as a repository: ${why}`,
      `${sourceText(resolved)}. A repository is a folder, s3://bucket/prefix or gs://bucket/prefix`,
    );
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(root);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    if (e instanceof Deno.errors.NotADirectory) throw refuse("part of its path is a file");
    throw e;
  }
  if (!info.isDirectory) throw refuse("it is a file, not a folder");
}

/** A progress callback for long listings, shown only when stderr is a terminal. */
export function listProgress(io: Io): ((done: number, total: number) => void) | undefined {
  if (!io.errTty) return undefined;
  let shown = false;
  return (done, total) => {
    if (total < 50) return;
    shown = true;
    io.err(`\rreading experiments ${done}/${total}`);
    if (done === total && shown) io.err("\r\x1b[K");
  };
}

/** Style text when colour is on. */
export function style(io: Io, format: Parameters<typeof styleText>[0], text: string): string {
  return io.color ? styleText(format, text, { validateStream: false }) : text;
}

/** Render rows as an aligned table. */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i] ?? ""))));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === cells.length - 1 ? c : c + " ".repeat(widths[i]! - visible(c)))
      .join("  ").trimEnd();
  return [line(head), ...rows.map(line)].join("\n") + "\n";
}

function visible(s: string): number {
  // deno-lint-ignore no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, "").length;
}

/** Format a metric or param value compactly. */
export function fmtValue(v: unknown): string {
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
    return String(Number(v.toPrecision(4)));
  }
  if (v === null || v === undefined) return "";
  return String(v);
}

/** "3 minutes ago"-style age of an ISO date. */
export function ago(iso: string, now = Date.now()): string {
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  if (s < 86400 * 30) return `${Math.floor(s / 86400)}d ago`;
  return iso.slice(0, 10);
}
