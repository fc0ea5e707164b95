/**
 * The training command as a child process: started in its own process group with its stdout and
 * stderr going to files (so it never depends on rep being alive to read a pipe), frozen and thawed
 * as a group (SIGSTOP/SIGCONT) while rep copies a file version, and sent the user's signals.
 *
 * A guardian shell resumes the group if rep dies while the command is frozen (SIGKILL cannot be
 * caught, so rep cannot do it itself).
 *
 * @module
 */
import { join, resolve } from "node:path";
import { UsageError } from "../errors.ts";
import { GroupHold } from "./group_hold.ts";

/** Signals forwarded from rep to the command. */
export const FORWARDED_SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];
const SIGNUM: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

/** Options of {@link Child.spawn}. */
export interface SpawnOptions {
  command: string[];
  cwd: string;
  env: Record<string, string>;
  /** Files that receive the command's stdout and stderr (appended; created when missing). */
  stdoutFile: string;
  stderrFile: string;
  /** Freezing (SIGSTOP) allowed. @default true on POSIX systems */
  canFreeze?: boolean;
}

/** How the command ended. */
export interface ChildExit {
  code: number;
  signal: string | null;
  /** The exit code rep returns: the command's, or 128 + signal number. */
  exitCode: number;
}

/**
 * Find `program` the way the OS will when it runs it: a path (with a `/`) relative to `cwd`, else
 * the first executable file of that name in PATH. Null when there is none.
 */
export async function findProgram(
  program: string,
  cwd: string,
  path: string,
): Promise<string | null> {
  const isExec = async (p: string) => {
    try {
      const st = await Deno.stat(p);
      return st.isFile && (Deno.build.os === "windows" || ((st.mode ?? 0o755) & 0o111) !== 0);
    } catch {
      return false;
    }
  };
  if (program.includes("/")) {
    const p = resolve(cwd, program);
    return (await isExec(p)) ? p : null;
  }
  for (const dir of path.split(":")) {
    const p = join(resolve(cwd, dir || "."), program);
    if (await isExec(p)) return p;
  }
  return null;
}

/** Refuse a command that cannot be found, before anything is recorded. */
export async function checkProgram(command: string[], cwd: string, pathEnv: string) {
  if (!(await findProgram(command[0]!, cwd, pathEnv))) {
    throw new UsageError(
      `Cannot run "${command[0]}": command not found`,
      command[0]!.includes("/")
        ? "Check the path, and that the file is executable"
        : "Check the command name and your PATH",
    );
  }
}

/** The running command. Create with {@link Child.spawn}. */
export class Child {
  readonly pid: number;
  /** Resolves when the command (the process rep started) has exited. */
  readonly exited: Promise<ChildExit>;
  readonly canFreeze: boolean;
  #running = true;
  #guardian: Deno.ChildProcess | null;
  /** The first signal the user sent, and when (ms since epoch). */
  userSignal: { signal: Deno.Signal; at: number } | null = null;
  /** Milliseconds spent frozen, per freeze. */
  readonly pauses: number[] = [];
  #frozenAt = 0;
  /** Holds taken by this thread's {@link freeze} calls and not yet let go. */
  #holds = 0;
  #procReader: ProcReader | null = null;
  /** The group's hold count, shared with the capture thread; null when it cannot be frozen. */
  readonly hold: GroupHold | null;

  private constructor(proc: Deno.ChildProcess, canFreeze: boolean) {
    this.pid = proc.pid;
    this.canFreeze = canFreeze;
    this.hold = canFreeze ? new GroupHold(proc.pid) : null;
    this.#guardian = canFreeze ? startGuardian(proc.pid) : null;
    this.exited = proc.status.then((s) => {
      this.#running = false;
      const signal = s.signal ?? null;
      return {
        code: s.code,
        signal,
        exitCode: signal ? 128 + (SIGNUM[signal] ?? 0) : s.code,
      };
    });
  }

  /**
   * Start the command. On POSIX systems a `sh` wrapper opens the output files (appending) and
   * `exec`s the command, so the command keeps its pid and writes to files rep only reads.
   */
  static spawn(o: SpawnOptions): Child {
    const posix = Deno.build.os !== "windows";
    const canFreeze = posix && (o.canFreeze ?? true);
    let proc: Deno.ChildProcess;
    try {
      proc = new Deno.Command("sh", {
        args: [
          "-c",
          'o=$1; e=$2; shift 2; exec "$@" >>"$o" 2>>"$e"',
          "rep-run",
          o.stdoutFile,
          o.stderrFile,
          ...o.command,
        ],
        cwd: o.cwd,
        env: o.env,
        clearEnv: true,
        stdin: "inherit",
        stdout: "null",
        stderr: "null",
        detached: true,
      }).spawn();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new UsageError(
          `Cannot run "${o.command[0]}": no POSIX shell (sh) to start it with`,
          "Install sh, or run the command without rep run",
        );
      }
      throw e;
    }
    return new Child(proc, canFreeze);
  }

  /** True until the command has exited. */
  get running(): boolean {
    return this.#running;
  }

  /**
   * Stop every process of the command's group and wait until each thread is really stopped (a
   * system call in progress finishes first). False when the group could not be frozen.
   */
  async freeze(): Promise<boolean> {
    if (!this.hold || !this.#running) return false;
    if (!this.hold.stop()) return false;
    if (this.#holds++ === 0) this.#frozenAt = performance.now();
    this.#procReader ??= ProcReader.start();
    await allStopped(this.pid, 2000, this.#procReader);
    return true;
  }

  /** Resume the group after {@link freeze} (unless the capture thread holds it too). */
  thaw(): void {
    if (this.#holds === 0) return;
    if (--this.#holds === 0) this.pauses.push(performance.now() - this.#frozenAt);
    this.hold?.resume();
  }

  /** Forward a signal the user sent to rep (the command runs in its own process group). */
  forward(sig: Deno.Signal): void {
    this.userSignal ??= { signal: sig, at: Date.now() };
    try {
      Deno.kill(this.pid, sig);
    } catch {
      // already gone
    }
  }

  /** True once the command and every process of its group are gone: nothing changes any more. */
  groupGone(): boolean {
    if (this.#running || Deno.build.os === "windows") return false;
    return !groupAlive(this.pid);
  }

  /** Stop the guardian (the command ended). */
  close(): void {
    try {
      this.#guardian?.kill();
    } catch {
      // gone
    }
    this.#guardian = null;
    this.#procReader?.close();
    this.#procReader = null;
  }
}

/** True while any process of process group `pgid` exists (asked through `kill -0`). */
export function groupAlive(pgid: number): boolean {
  try {
    const out = new Deno.Command("sh", {
      args: ["-c", `kill -0 -- -${pgid} 2>&1`],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    return out.success || /not permitted/i.test(new TextDecoder().decode(out.stdout));
  } catch {
    return false;
  }
}

/**
 * Wait until every thread of process group `pgid` is stopped (or gone). SIGSTOP takes effect only
 * when a thread leaves the kernel: a system call in progress (a truncating open, a long write) can
 * already show its effect on a file while its file event comes only at its end. Reads /proc
 * through `sh` (rep's own permissions cannot read /proc/<pid>). False when that is not possible
 * (no /proc) or takes longer than `timeoutMs`.
 */
export async function allStopped(
  pgid: number,
  timeoutMs = 2000,
  reader: ProcReader | null = null,
): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  const end = Date.now() + timeoutMs;
  const dec = new TextDecoder();
  for (;;) {
    let text: string;
    try {
      const fromReader = reader ? await reader.read() : null;
      if (fromReader !== null) text = fromReader;
      else {
        const out = await new Deno.Command("sh", {
          args: ["-c", "cat /proc/[0-9]*/task/[0-9]*/stat 2>/dev/null"],
          stdin: "null",
          stdout: "piped",
          stderr: "null",
        }).output();
        text = dec.decode(out.stdout);
      }
    } catch {
      return false;
    }
    let tasks = 0;
    let running = false;
    for (const line of text.split("\n")) {
      // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
      const close = line.lastIndexOf(")");
      if (close < 0) continue;
      tasks++;
      const [state, , pgrp] = line.slice(close + 2).split(" ");
      // T: stopped, t: traced, Z/X: exited.
      if (Number(pgrp) === pgid && !"TtZXx".includes(state ?? "?")) running = true;
    }
    if (tasks === 0) return false; // no /proc: cannot tell
    if (!running) return true;
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, 1));
  }
}

const PROC_END = "rep-proc-end";

/**
 * A shell kept running to print the threads' `/proc/<pid>/task/<tid>/stat` lines on request:
 * rep's own permissions cannot read /proc/<pid>, and starting a process for every look costs tens
 * of milliseconds on a loaded machine, which would all be time the command is held.
 */
export class ProcReader {
  #proc: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #reader: ReadableStreamDefaultReader<string>;
  #buf = "";
  #busy: Promise<unknown> = Promise.resolve();
  #broken = false;

  private constructor(proc: Deno.ChildProcess) {
    this.#proc = proc;
    this.#writer = proc.stdin.getWriter();
    this.#reader = proc.stdout.pipeThrough<string>(new TextDecoderStream()).getReader();
  }

  /** Start the shell; null where there is none. */
  static start(): ProcReader | null {
    if (Deno.build.os !== "linux") return null;
    try {
      const proc = new Deno.Command("sh", {
        args: [
          "-c",
          `while read -r _; do cat /proc/[0-9]*/task/[0-9]*/stat 2>/dev/null; echo; echo ${PROC_END}; done`,
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "null",
      }).spawn();
      proc.unref();
      return new ProcReader(proc);
    } catch {
      return null;
    }
  }

  /** Every thread's stat line, or null when the shell is gone. */
  read(): Promise<string | null> {
    const p = this.#busy.then(() => this.#read());
    this.#busy = p.catch(() => {});
    return p;
  }

  async #read(): Promise<string | null> {
    if (this.#broken) return null;
    try {
      await this.#writer.write(new Uint8Array([10]));
      const mark = `\n${PROC_END}\n`;
      for (;;) {
        const at = this.#buf.indexOf(mark);
        if (at >= 0) {
          const text = this.#buf.slice(0, at);
          this.#buf = this.#buf.slice(at + mark.length);
          return text;
        }
        const { value, done } = await this.#reader.read();
        if (done) throw new Error("closed");
        this.#buf += value;
      }
    } catch {
      this.#broken = true;
      return null;
    }
  }

  /** Stop the shell. */
  close(): void {
    this.#broken = true;
    try {
      this.#proc.kill();
    } catch {
      // gone
    }
    this.#writer.close().catch(() => {});
    this.#reader.cancel().catch(() => {});
  }
}

/**
 * A small shell process that resumes the command's process group if rep dies while the command is
 * frozen for a copy.
 */
function startGuardian(pgid: number): Deno.ChildProcess | null {
  try {
    const script =
      `while kill -0 ${Deno.pid} 2>/dev/null; do sleep 1; done; kill -CONT -${pgid} 2>/dev/null`;
    const p = new Deno.Command("sh", {
      args: ["-c", script],
      stdin: "null",
      stdout: "null",
      stderr: "null",
      detached: true,
    }).spawn();
    p.unref();
    return p;
  } catch {
    return null;
  }
}
