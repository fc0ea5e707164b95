/**
 * The files a protocol checkpoint names: paths relative to the project folder (or absolute inside
 * it), folders expanded to their files. Stored paths stay relative to the project (docs/format.md).
 *
 * @module
 */
import { isAbsolute, relative, resolve, sep } from "node:path";
import { NotFoundError, UsageError } from "../errors.ts";
import { walkFiles } from "../walk.ts";

/** The files under `paths` as sorted POSIX paths relative to `project`. */
export async function checkpointFiles(project: string, paths: string[]): Promise<string[]> {
  const out = new Set<string>();
  for (const p of paths) {
    if (p === "") throw new UsageError("Cannot checkpoint an empty path", "Pass a file or folder");
    const abs = resolve(project, p);
    const rel = relative(project, abs);
    if (rel.startsWith("..") || isAbsolute(rel)) {
      throw new UsageError(
        `Cannot checkpoint "${p}": it is outside the project folder ${project}`,
        "Checkpoint paths are relative to the folder given to init(path=...); pass a path inside " +
          "it, or init a folder that contains it",
      );
    }
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(abs);
    } catch {
      throw new NotFoundError(
        `Cannot checkpoint "${p}": ${abs} does not exist`,
        "Save the file before calling checkpoint(), or fix the path (it is relative to the project folder)",
      );
    }
    const posix = rel.split(sep).join("/");
    if (st.isFile) {
      out.add(posix);
    } else if (st.isDirectory) {
      for (const f of await walkFiles(abs)) out.add(posix ? `${posix}/${f}` : f);
    } else {
      throw new UsageError(`Cannot checkpoint "${p}": it is not a file or folder`);
    }
  }
  return [...out].sort();
}
