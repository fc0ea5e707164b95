/**
 * Walking a folder for the files to snapshot: the names never included, virtualenvs and symlinks
 * left out.
 *
 * @module
 */
import { join } from "node:path";

/** Default names never included in a code snapshot. */
export const ALWAYS_EXCLUDED = new Set([
  ".git",
  ".hg",
  ".svn",
  ".rep",
  "__pycache__",
  ".mypy_cache",
  ".pytest_cache",
  ".ruff_cache",
  ".ipynb_checkpoints",
  "node_modules",
  ".venv",
  ".DS_Store",
]);

/**
 * List files under `root` (relative POSIX paths), skipping {@link ALWAYS_EXCLUDED} names, virtualenvs
 * (folders holding `pyvenv.cfg`), symlinks, and any relative path for which `exclude` returns true.
 */
export async function walkFiles(
  root: string,
  exclude: (rel: string, isDir: boolean) => boolean = () => false,
): Promise<string[]> {
  const out: string[] = [];
  async function walk(dirRel: string): Promise<void> {
    const dir = dirRel ? join(root, dirRel) : root;
    let ents: Deno.DirEntry[];
    try {
      ents = [...Deno.readDirSync(dir)];
    } catch {
      return;
    }
    if (dirRel && ents.some((e) => e.name === "pyvenv.cfg")) return;
    for (const e of ents) {
      if (ALWAYS_EXCLUDED.has(e.name) || e.isSymlink) continue;
      const rel = dirRel ? `${dirRel}/${e.name}` : e.name;
      if (exclude(rel, e.isDirectory)) continue;
      if (e.isDirectory) await walk(rel);
      else if (e.isFile) out.push(rel);
    }
  }
  await walk("");
  return out.sort();
}
