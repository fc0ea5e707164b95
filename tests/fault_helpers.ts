/**
 * Helpers shared by the fault, fuzz and security tests: a seeded PRNG, long-lived `rep` processes,
 * polling, and reading a repository back in this process.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { PERMISSIONS, ROOT } from "./helpers.ts";
import { Repository } from "../src/repository.ts";
import type { FileEntry } from "../src/format/records.ts";

/** mulberry32: a small seeded PRNG; `next()` is uniform in [0, 1). */
export function prng(seed: number): {
  next: () => number;
  int: (lo: number, hi: number) => number;
  pick: <T>(xs: readonly T[]) => T;
  bytes: (n: number) => Uint8Array;
} {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  return {
    next,
    int,
    pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]!,
    bytes: (n: number) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(next() * 256);
      return b;
    },
  };
}

/** A `rep` process running in the background, its output collected. */
export interface RepProcess {
  child: Deno.ChildProcess;
  pid: number;
  /** stderr collected so far. */
  stderr: () => string;
  stdout: () => string;
  /** Exit code and signal once it ended, output complete. */
  done: Promise<{ code: number; signal: Deno.Signal | null; stdout: string; stderr: string }>;
  /** SIGKILL unless already gone. */
  kill: (sig?: Deno.Signal) => void;
}

/** Start `rep ARGS` the way the compiled binary runs. `shell` wraps it in `sh -c` (e.g. umask). */
export function spawnRep(
  args: string[],
  o: { cwd: string; env: Record<string, string>; shellPrefix?: string; timeoutMs?: number },
): RepProcess {
  const argv = [Deno.execPath(), "run", "--quiet", ...PERMISSIONS, join(ROOT, "main.ts"), ...args];
  const cmd = o.shellPrefix
    ? new Deno.Command("sh", {
      args: ["-c", `${o.shellPrefix}; exec "$@"`, "sh", ...argv],
      cwd: o.cwd,
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...o.env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    })
    : new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      cwd: o.cwd,
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...o.env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    });
  const child = cmd.spawn();
  let out = "";
  let err = "";
  const collect = async (s: ReadableStream<Uint8Array>, to: (t: string) => void) => {
    const dec = new TextDecoder();
    for await (const c of s) to(dec.decode(c, { stream: true }));
  };
  const kill = (sig: Deno.Signal = "SIGKILL") => {
    try {
      child.kill(sig);
    } catch {
      // gone
    }
  };
  const timer = setTimeout(() => kill(), o.timeoutMs ?? 120_000);
  const done = (async () => {
    const [st] = await Promise.all([
      child.status,
      collect(child.stdout, (t) => out += t),
      collect(child.stderr, (t) => err += t),
    ]);
    clearTimeout(timer);
    return { code: st.code, signal: st.signal, stdout: out, stderr: err };
  })();
  return { child, pid: child.pid, stderr: () => err, stdout: () => out, done, kill };
}

/** Run `rep ARGS` to the end. */
export async function runRep(
  args: string[],
  o: { cwd: string; env: Record<string, string>; shellPrefix?: string; timeoutMs?: number },
): Promise<{ code: number; signal: Deno.Signal | null; stdout: string; stderr: string }> {
  return await spawnRep(args, o).done;
}

/** Sleep `ms`. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `cond` every `everyMs` until true; false after `timeoutMs`. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 10,
): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return true;
    await sleep(everyMs);
  }
  return await cond();
}

/** sha256 hex of bytes. */
export function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

/** Read a stream to one array. */
export async function readAll(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** Open a repository in this process, without the index cache. */
export function openRepo(url: string): Promise<Repository> {
  return Repository.open(url, { cache: false });
}

/** The bytes of one file of a tree, read (and chunk-verified) through the library. */
export async function fileBytes(repo: Repository, entry: FileEntry): Promise<Uint8Array> {
  return await readAll(repo.fileStream(entry));
}

/** Does `path` exist (lstat)? */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * State letter of a process (R, S, T, Z…), or null when it is gone. Asks `ps`: without
 * --allow-all, Deno refuses to read /proc/<pid>.
 */
export function procState(pid: number): string | null {
  const out = new Deno.Command("ps", { args: ["-o", "stat=", "-p", String(pid)], stderr: "null" })
    .outputSync();
  const s = new TextDecoder().decode(out.stdout).trim();
  return out.success && s ? s[0]! : null;
}

/** Every path under `dir` (files, folders, symlinks), relative, depth first. */
export async function walkAll(dir: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(join(dir, rel))) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    out.push(r);
    if (e.isDirectory) out.push(...await walkAll(dir, r));
  }
  return out;
}
