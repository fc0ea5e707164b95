/**
 * Put a checkpoint's files back so that a folder holds exactly them: what a resume does before the
 * command starts. Files the checkpoint does not hold, and files whose content differs from it
 * (written by the attempt that was cut short, after its last checkpoint), are moved into a backup
 * folder rather than deleted; identical files are left as they are; the rest is checked out.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import type { FileEntry } from "../format/records.ts";
import { hashStream } from "../format/content_id.ts";
import type { Store } from "../storage/store.ts";
import { walkFiles } from "../walk.ts";
import { checkout, safeDestination } from "./checkout.ts";

/** Options of {@link restoreExactly}. */
export interface ExactOptions {
  /**
   * Folders (relative to the root, `.` for all of it) that must end up holding only the
   * checkpoint's files: anything else in them is moved to `backup`.
   */
  folders: string[];
  /** Paths (relative to the root) left alone wherever they are: a lock file, the metrics file. */
  keep?: (rel: string) => boolean;
  /** Where displaced files go, under their relative paths (created when needed). */
  backup: string;
}

/** What {@link restoreExactly} did. */
export interface ExactResult {
  /** Files written from the repository. */
  written: string[];
  /** Files already on disk with the checkpoint's content. */
  unchanged: string[];
  /** Bytes written. */
  bytes: number;
  /** Files moved to the backup folder (not in the checkpoint, or with other content). */
  moved: string[];
}

/**
 * Make `root` hold `files` exactly (within `options.folders`), moving whatever is in the way to
 * `options.backup`. Paths are checked as checkout checks them (nothing outside `root`).
 *
 * @param store The repository's store.
 * @param files The checkpoint's files, with paths relative to `root`.
 * @param root The folder the paths are relative to (the project folder).
 * @returns What was written, left, and moved aside.
 */
export async function restoreExactly(
  store: Store,
  files: FileEntry[],
  root: string,
  options: ExactOptions,
): Promise<ExactResult> {
  const base = resolve(root);
  const keep = options.keep ?? (() => false);
  const wanted = new Map(files.map((f) => [f.path, f]));
  const present = new Set<string>();
  for (const folder of options.folders) {
    const clean = folder.replace(/^\.\/+/, "").replace(/\/+$/, "");
    const dir = clean === "" || clean === "." ? base : join(base, clean);
    for (const rel of await walkFiles(dir)) {
      present.add(clean === "" || clean === "." ? rel : `${clean}/${rel}`);
    }
  }
  for (const f of files) present.add(f.path);
  const moved: string[] = [];
  const unchanged = new Set<string>();
  for (const rel of [...present].sort()) {
    if (keep(rel)) continue;
    const path = await safeDestination(base, rel);
    const st = await Deno.lstat(path).catch(() => null);
    if (!st) continue;
    const want = wanted.get(rel);
    if (want && st.isFile && st.size === want.size && await sameContent(path, want.hash)) {
      unchanged.add(rel);
      continue;
    }
    if (!st.isFile && !st.isSymlink) continue; // a folder in the way: checkout says so
    await moveAside(path, join(options.backup, rel));
    moved.push(rel);
  }
  const result = await checkout(store, files.filter((f) => !unchanged.has(f.path)), base);
  return {
    written: result.written,
    unchanged: [...unchanged, ...result.unchanged].sort(),
    bytes: result.bytes,
    moved,
  };
}

async function sameContent(path: string, hash: string): Promise<boolean> {
  using file = await Deno.open(path);
  return (await hashStream(file.readable)).hash === hash;
}

/** Move a file, copying when the backup is on another filesystem. */
async function moveAside(from: string, to: string): Promise<void> {
  await Deno.mkdir(dirname(to), { recursive: true });
  try {
    await Deno.rename(from, to);
  } catch (e) {
    if (!(e instanceof Error && /EXDEV|cross-device/i.test(`${e.message} ${e.name}`))) throw e;
    await Deno.copyFile(from, to);
    await Deno.remove(from);
  }
}
