/**
 * Checkout: write stored files into a folder. Every destination is checked before anything is
 * written (files that differ are refused unless forced, nothing outside the target, no symlinked
 * parents followed); each file is written to a temporary name and renamed into place.
 *
 * @module
 */
import * as fs from "node:fs";
import { dirname, join, resolve as resolvePath, sep } from "node:path";
import { ConflictError, NotFoundError, RepError } from "../errors.ts";
import { newId } from "../format/ids.ts";
import type { FileEntry } from "../format/records.ts";
import { hashStream } from "../format/content_id.ts";
import type { Store } from "../storage/store.ts";
import { LocalStore } from "../storage/local.ts";
import { checkoutWorkerByDefault, WORKER_MIN_SIZE } from "../hashing/hasher.ts";
import { pool, writeAll } from "../util.ts";
import { fileStream } from "./file_stream.ts";
import { RestorePipe, writeFromLocalPacks } from "./local_packs.ts";

export interface CheckoutOptions {
  /** Overwrite files that differ. */
  force?: boolean;
  /** Only these paths (files, or folders as prefixes). */
  paths?: string[];
  /** Called with each path written. */
  onFile?: (path: string, size: number) => void;
  /**
   * Verify large files' chunks in a worker thread while this one reads and writes (local stores
   * only; default: with two or more cores, see `checkoutWorkerByDefault` in
   * src/hashing/hasher.ts).
   */
  worker?: boolean;
}

/** A checkout result. */
export interface CheckoutResult {
  written: string[];
  unchanged: string[];
  bytes: number;
}

/**
 * Write `files` into `dir`. Paths are checked to stay inside `dir` (no symlinked parents are
 * followed); files that exist with different content are refused unless `force`.
 */
export async function checkout(
  store: Store,
  files: FileEntry[],
  dir: string,
  options: CheckoutOptions = {},
): Promise<CheckoutResult> {
  const root = resolvePath(dir);
  try {
    return await checkoutInto(store, files, root, options);
  } catch (e) {
    if (isSystemError(e)) throw writeError(root, null, e);
    throw e;
  }
}

/** The reason a system call failed, in words: "no space left on device". */
function reason(e: Error): string {
  // node:fs: "ENOSPC: no space left on device, write"; Deno: "No space left on device (os error 28)"
  const m = /^E[A-Z]+: ([^,]+)/.exec(e.message);
  return (m ? m[1]! : e.message.replace(/ \(os error \d+\)$/, "")).replace(
    /^./,
    (c) => c.toLowerCase(),
  );
}

/** The error for a failed write into `root` (of `rel`, when known), with its fix. */
function writeError(root: string, rel: string | null, e: Error): ConflictError {
  const code = (e as { code?: string }).code;
  const full = code === "ENOSPC" || /no space left/i.test(e.message);
  return new ConflictError(
    `Cannot write into ${root}: ${rel ? `${rel}: ` : ""}${reason(e)}`,
    full
      ? "Free some space on that disk, or check out somewhere else (rep checkout -o DIR)"
      : "Check that the folder is writable, or choose another one (rep checkout -o DIR)",
    { cause: e },
  );
}

/** An error of the file system (Deno's, or node:fs's with an errno code), not one of rep's. */
function isSystemError(e: unknown): e is Error {
  if (!(e instanceof Error) || e instanceof RepError) return false;
  const code = (e as { code?: unknown }).code;
  return e.name in Deno.errors || (typeof code === "string" && /^E[A-Z]+$/.test(code));
}

async function checkoutInto(
  store: Store,
  files: FileEntry[],
  root: string,
  options: CheckoutOptions,
): Promise<CheckoutResult> {
  let selected = files;
  if (options.paths?.length) {
    const wanted = options.paths.map((p) => p.replace(/^\.\/+/, "").replace(/\/+$/, ""));
    selected = files.filter((f) => wanted.some((w) => f.path === w || f.path.startsWith(w + "/")));
    const missing = wanted.filter((w) =>
      !files.some((f) => f.path === w || f.path.startsWith(w + "/"))
    );
    if (missing.length) {
      throw new NotFoundError(
        `No file ${missing.map((m) => JSON.stringify(m)).join(", ")} in this checkpoint`,
        "Run `rep show ID` to see its files",
      );
    }
  }
  await Deno.mkdir(root, { recursive: true });
  // Plan: check every destination before writing anything.
  const conflicts: string[] = [];
  const unchanged = new Set<string>();
  await pool(selected, 8, async (f) => {
    const dest = await safeDestination(root, f.path);
    let st: Deno.FileInfo;
    try {
      st = await Deno.lstat(dest);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    if (!st.isFile) {
      conflicts.push(`${f.path} (exists and is not a regular file)`);
      return;
    }
    if (st.size === f.size) {
      using file = await Deno.open(dest);
      const { hash } = await hashStream(file.readable);
      if (hash === f.hash) {
        unchanged.add(f.path);
        return;
      }
    }
    conflicts.push(f.path);
  });
  if (conflicts.length && !options.force) {
    conflicts.sort();
    const shown = conflicts.slice(0, 20).map((c) => `  ${c}`).join("\n");
    const more = conflicts.length > 20 ? `\n  … and ${conflicts.length - 20} more` : "";
    throw new ConflictError(
      `Cannot check out into ${root}: ${conflicts.length} file(s) exist with different content:\n${shown}${more}`,
      "Use --force to overwrite them, or -o DIR to check out somewhere else",
    );
  }
  const written: string[] = [];
  let bytes = 0;
  await writeFiles(
    store,
    selected.filter((f) => !unchanged.has(f.path)),
    root,
    options,
    (path, size) => {
      written.push(path);
      bytes += size;
    },
  );
  return { written: written.sort(), unchanged: [...unchanged].sort(), bytes };
}

/**
 * Run `fn` over `items`, at most `limit` at a time. On the first failure no new item starts, and
 * the ones running are waited for (so each has cleaned up) before that failure is thrown.
 */
async function poolSettled<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let error: { e: unknown } | null = null;
  const run = async () => {
    while (!error && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        error ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  if (error) throw (error as { e: unknown }).e;
}

/** Files at least this large are written through a {@link RestorePipe} (local stores). */
const PIPE_MIN = WORKER_MIN_SIZE;

/**
 * Write `files`: small ones four at a time, then (from a local store) large ones one at a time,
 * each with several ranges in flight and, by default on two or more cores, verified partly in a
 * worker. A failure stops new files, and every file begun is finished or removed before it is
 * thrown: no temporary file is left behind.
 */
async function writeFiles(
  store: Store,
  files: FileEntry[],
  root: string,
  options: CheckoutOptions,
  done: (path: string, size: number) => void,
): Promise<void> {
  const local = store instanceof LocalStore ? store : null;
  const large = local ? files.filter((f) => f.size >= PIPE_MIN) : [];
  const small = local ? files.filter((f) => f.size < PIPE_MIN) : files;
  const write = async (f: FileEntry, pipe: RestorePipe | null) => {
    await writeOne(store, local, f, root, pipe);
    done(f.path, f.size);
    options.onFile?.(f.path, f.size);
  };
  await poolSettled(small, 4, (f) => write(f, null));
  if (!large.length) return;
  const pipe = new RestorePipe({ worker: options.worker ?? checkoutWorkerByDefault() });
  try {
    await poolSettled(large, 1, (f) => write(f, pipe));
  } finally {
    pipe.close();
  }
}

/** Write one file to a temporary name beside its destination, then rename it into place. */
async function writeOne(
  store: Store,
  local: LocalStore | null,
  f: FileEntry,
  root: string,
  pipe: RestorePipe | null,
): Promise<void> {
  const dest = await safeDestination(root, f.path);
  await Deno.mkdir(dirname(dest), { recursive: true });
  // Re-check the parent after creating it: it must not have become a symlink.
  await safeDestination(root, f.path);
  const tmp = `${dest}.rep-${newId().slice(0, 8)}.tmp`;
  const mode = f.mode & 0o777 & ~0o022 | 0o600;
  try {
    if (local) {
      const fd = await openNew(tmp, mode);
      try {
        await writeFromLocalPacks(local, f, fd, tmp, pipe);
      } finally {
        fs.closeSync(fd);
      }
    } else {
      const file = await Deno.open(tmp, { write: true, createNew: true, mode });
      try {
        // Plain writes of whole verified ranges while the next ranges are fetched.
        // (Our consumer is done with a block once it asks for the next: buffers are reused.)
        const blocks = fileStream(store, f, { reuseBuffers: true });
        for await (const block of blocks) await writeAll(file, block);
      } finally {
        file.close();
      }
    }
    const st = await Deno.lstat(dest).catch(() => null);
    if (st && !st.isFile && !st.isSymlink) {
      throw new ConflictError(
        `Cannot write ${f.path}: ${
          st.isDirectory ? "a folder" : "something that is not a regular file"
        } is in the way`,
        "Remove it, or check out into another folder with -o DIR",
      );
    }
    await Deno.rename(tmp, dest);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw isSystemError(e) ? writeError(root, f.path, e) : e;
  }
}

/** Create `path` (which must not exist) for writing; returns its descriptor. */
function openNew(path: string, mode: number): Promise<number> {
  const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;
  return new Promise((resolve, reject) =>
    fs.open(path, flags, mode, (e, fd) => e ? reject(e) : resolve(fd))
  );
}

/**
 * The absolute destination of `rel` inside `root`, refusing anything that would leave it: absolute
 * paths, `..`, and any existing parent folder that is a symlink.
 */
export async function safeDestination(root: string, rel: string): Promise<string> {
  const parts = rel.split("/");
  if (
    rel.startsWith("/") || rel.includes("\\") || rel.includes("\0") ||
    parts.some((p) => p === "" || p === "." || p === "..")
  ) {
    throw new ConflictError(
      `Refusing to write ${JSON.stringify(rel)}: the path leaves the target folder`,
      "The repository holds a hostile or damaged file list; run `rep verify`",
    );
  }
  const dest = join(root, ...parts);
  if (!dest.startsWith(root + sep)) {
    throw new ConflictError(`Refusing to write ${JSON.stringify(rel)}: the path leaves ${root}`);
  }
  let cur = root;
  for (const p of parts.slice(0, -1)) {
    cur = join(cur, p);
    const st = await Deno.lstat(cur).catch(() => null);
    if (!st) break;
    if (st.isSymlink) {
      throw new ConflictError(
        `Refusing to write ${rel}: ${cur} is a symlink, which could lead outside ${root}`,
        "Remove the symlink or check out into an empty folder",
      );
    }
    if (!st.isDirectory) {
      throw new ConflictError(`Cannot write ${rel}: ${cur} exists and is not a folder`);
    }
  }
  return dest;
}
