/**
 * A checkpoint's file paths as readers present them. Format 2 paths are relative to the project
 * folder and are read as stored. Checkpoints of format 1 experiments started by `rep run` stored
 * paths relative to the output folder (`provenance.output`): they are presented under it, so
 * `model.pth` of output `output` reads as `output/model.pth` (docs/format.md, _Format 1_).
 *
 * @module
 */
import type { ExperimentRecord, FileEntry } from "../format/records.ts";

/** The folder format 1 `rep run` checkpoint paths are relative to, or null. */
export function format1Output(exp: ExperimentRecord): string | null {
  if (exp.format !== 1 || exp.command.length === 0) return null;
  const out = exp.provenance?.output;
  if (typeof out !== "string") return null;
  const clean = out.replace(/^\.\/+/, "").replace(/\/+$/, "");
  if (!clean || clean === "." || clean.startsWith("/") || clean.split("/").includes("..")) {
    return null;
  }
  return clean;
}

/** Present `files` of a checkpoint of `exp` with their project-relative paths. */
export function presentCheckpointFiles(exp: ExperimentRecord, files: FileEntry[]): FileEntry[] {
  const prefix = format1Output(exp);
  if (!prefix) return files;
  return files.map((f) => ({ ...f, path: `${prefix}/${f.path}` }));
}
