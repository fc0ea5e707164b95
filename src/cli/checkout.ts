/**
 * `rep checkout ID`: write an experiment's code snapshot and a checkpoint's files to disk, refusing
 * to overwrite files that differ unless `--force`.
 *
 * @module
 */
import { resolve } from "node:path";
import { RepError } from "../errors.ts";
import { shortId } from "../format/ids.ts";
import type { FileEntry } from "../format/records.ts";
import { formatBytes } from "../util.ts";
import { type Command, oneId, openRepo, parse, REPO_OPTIONS } from "./common.ts";
import { checkpointLabel } from "./views.ts";

const OPTIONS = {
  ...REPO_OPTIONS,
  output: { type: "string", short: "o" },
  path: { type: "string", short: "p", multiple: true },
  force: { type: "boolean", short: "f" },
  "no-code": { type: "boolean" },
} as const;

const help = `rep checkout: write a checkpoint's files and its code to disk

Usage: rep checkout ID [options]

ID is an experiment or checkpoint id (or an unambiguous prefix).
  experiment  its code snapshot, then its best checkpoint's files on top (the latest checkpoint
              when there is no primary metric)
  checkpoint  its experiment's code snapshot, then that checkpoint's files on top

Safe by default: nothing is written if any file already exists with different content; the
conflicting files are listed and the command exits with status 1. Files that already have the
right content are left alone. Only the listed files are touched; nothing is deleted.

Options:
  -o, --output DIR      Where to write (default: the current directory; created if missing)
  -p, --path FILE       Only this file, or folder (repeatable)
  -f, --force           Overwrite files that exist with different content
      --no-code         Skip the code snapshot: only the checkpoint's files
  -R, --repository URL  Repository to read
  -h, --help            Show this help

Examples:
  rep checkout a1b2c3d -o /tmp/run          # code + best weights into /tmp/run
  rep checkout 9f8e7d6 --path output/model.pth   # one file of a checkpoint, here

Checkpoint files keep their path relative to the project folder (rep run's working directory):
output/model.pth is written to DIR/output/model.pth. When a checkpoint file and a code file have
the same path, the checkpoint's wins, and checkout says so.
`;

/** Turn file-system errors into messages that name the target and the fix. */
function targetError(e: unknown, dir: string): unknown {
  if (e instanceof RepError || !(e instanceof Error)) return e;
  const fsErrors = [
    Deno.errors.PermissionDenied,
    Deno.errors.NotADirectory,
    Deno.errors.AlreadyExists,
    Deno.errors.IsADirectory,
    Deno.errors.NotFound,
  ];
  if (fsErrors.some((c) => e instanceof c) || "code" in e) {
    return new RepError(
      `Cannot write into ${dir}: ${e.message}`,
      "Check that the folder is writable (and not under a file), or choose another with -o DIR",
    );
  }
  return e;
}

/** `rep checkout`. */
export const command: Command = {
  summary: "Write a checkpoint's files (and code) to disk",
  help,
  async run(args, io) {
    const { values, positionals } = parse("checkout", args, OPTIONS);
    if (values.help) {
      io.out(help);
      return 0;
    }
    const id = oneId("checkout", positionals, "Example: rep checkout a1b2c3d -o out/");
    const dir = resolve(values.output ?? ".");
    const { repo } = await openRepo(values.repository, io);
    try {
      const hit = await repo.resolve(id);
      const exp = hit.experiment;
      const ck = hit.kind === "checkpoint" ? hit.checkpoint : exp.best ?? exp.latest;
      const files: FileEntry[] = [];
      if (!values["no-code"] && exp.record.code) {
        files.push(...(await repo.tree(exp.record.code.tree)).files);
      }
      const what = hit.kind === "checkpoint"
        ? `checkpoint ${checkpointLabel(ck)} of experiment ${shortId(exp.id)}`
        : `experiment ${shortId(exp.id)}${
          ck
            ? ` with its ${exp.best ? "best" : "latest"} checkpoint ${checkpointLabel(ck)}`
            : " (no checkpoints)"
        }`;
      if (ck && !ck.files) {
        const why = [
          ...(ck.torn.length ? [`left out: ${ck.torn.join(", ")}`] : []),
          ...ck.warnings,
        ];
        throw new RepError(
          `Nothing to check out: checkpoint ${checkpointLabel(ck)} of experiment ${
            shortId(exp.id)
          } has no files${why.length ? ` (${why.join("; ")})` : ""}`,
          `Pick a checkpoint that has files: \`rep show ${
            shortId(exp.id)
          }\` lists them; then rep checkout <checkpoint id>`,
        );
      }
      const shadowed: string[] = [];
      if (ck?.files) {
        const over = await repo.checkpointFiles(exp.record, ck);
        const paths = new Set(over.map((f) => f.path));
        const code = files.filter((f) => {
          if (!paths.has(f.path)) return true;
          shadowed.push(f.path);
          return false;
        });
        files.length = 0;
        files.push(...code, ...over);
      }
      if (ck && (ck.torn.length || ck.warnings.length)) {
        io.err(
          `rep: warning: checkpoint ${checkpointLabel(ck)}: ${
            [...(ck.torn.length ? [`left out: ${ck.torn.join(", ")}`] : []), ...ck.warnings]
              .join("; ")
          }\n`,
        );
      }
      if (!files.length) {
        io.err(
          `Nothing to check out: ${what} has no files${
            values["no-code"] ? " besides its code" : ""
          }\n`,
        );
        return values["no-code"] ? 1 : 0;
      }
      let st: Deno.FileInfo | null = null;
      try {
        st = await Deno.stat(dir);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw targetError(e, dir);
      }
      if (st && !st.isDirectory) {
        throw new RepError(
          `Cannot check out into ${dir}: it is a file`,
          "Choose a folder with -o DIR",
        );
      }
      const total = values.path?.length ? null : files.length;
      let done = 0;
      let bytes = 0;
      let last = 0;
      const result = await repo.checkout(files, dir, {
        force: values.force ?? false,
        ...(values.path ? { paths: values.path } : {}),
        onFile: (_p, size) => {
          done++;
          bytes += size;
          const now = Date.now();
          if (io.errTty && now - last > 100) {
            last = now;
            io.err(
              `\r\x1b[KWriting ${done}${total ? `/${total}` : ""} files, ${formatBytes(bytes)}`,
            );
          }
        },
      }).catch((e) => {
        throw targetError(e, dir);
      }).finally(() => {
        if (io.errTty && last) io.err("\r\x1b[K");
      });
      const parts = [`${result.written.length} file(s) written (${formatBytes(result.bytes)})`];
      if (shadowed.length) {
        const shown = shadowed.filter((f) =>
          !values.path ||
          values.path.some((p) =>
            f === p.replace(/\/+$/, "") || f.startsWith(p.replace(/\/+$/, "") + "/")
          )
        );
        if (shown.length) {
          io.err(
            `rep: ${shown.length} file(s) of the checkpoint replace the code file(s) at the same path: ${
              shown.slice(0, 5).join(", ")
            }${shown.length > 5 ? ", …" : ""}\n`,
          );
        }
      }
      if (result.unchanged.length) parts.push(`${result.unchanged.length} already up to date`);
      io.err(`Checked out ${what} into ${dir}: ${parts.join(", ")}\n`);
      return 0;
    } finally {
      await repo.close();
    }
  },
};
