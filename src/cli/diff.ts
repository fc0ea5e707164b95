/**
 * `rep diff ID ID [ID…]`: what differs between experiments or checkpoints — experiment fields,
 * params, metrics, environment, checkpoint files, and the code snapshots as unified diffs.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { shortId } from "../format/ids.ts";
import {
  type Command,
  fmtValue,
  type Io,
  openRepo,
  parse,
  REPO_OPTIONS,
  style,
  table,
} from "./common.ts";
import { diffItems, diffJson, resolveItems, type Row } from "../present/diff.ts";
import { checkpointLabel, jsonText } from "./views.ts";

const OPTIONS = {
  ...REPO_OPTIONS,
  json: { type: "boolean" },
  "no-code": { type: "boolean" },
} as const;

const help = `rep diff: compare experiments or checkpoints

Usage: rep diff ID ID [ID...] [options]

Each ID is an experiment or checkpoint id (or prefix). An experiment stands for its best
checkpoint (the latest when there is no primary metric). Only what differs is printed:
  experiment   command, cwd, host, user, platform, rep version, git commit/branch/dirty, status
  params       every param whose value differs ("-" = not set)
  metrics      the checkpoints' metrics
  environment  Python version, GPU, CPU, and Python packages added, removed or changed
  files        the checkpoints' files added, removed or changed (by content hash)
  code         the code snapshots as a unified diff (text files; binary files are named only)
With more than two ids, files and code compare the first with each of the others.

Options:
      --no-code         Do not compare the code snapshots
      --json            Print JSON (see docs/json.md)
  -R, --repository URL  Repository to read
  -h, --help            Show this help

Examples:
  rep diff a1b2c3d e4f5a6b
  rep diff a1b2c3d e4f5a6b 9f8e7d6 --no-code
`;

function cell(v: unknown): string {
  if (v === null || v === undefined) return "-";
  if (Array.isArray(v)) return v.map((x) => fmtValue(x)).join(" ");
  return fmtValue(v);
}

function section(io: Io, title: string, heads: string[], rows: Record<string, Row>): string {
  const entries = Object.entries(rows);
  if (!entries.length) return "";
  return `\n${style(io, "bold", title)}\n` +
    table(["", ...heads], entries.map(([k, vals]) => [k, ...vals.map(cell)])).split("\n")
      .map((l) => (l ? "  " + l : l)).join("\n");
}

function colorDiff(io: Io, text: string): string {
  if (!io.color) return text;
  return text.split("\n").map((l) =>
    l.startsWith("+++") || l.startsWith("---")
      ? style(io, "bold", l)
      : l.startsWith("+")
      ? style(io, "green", l)
      : l.startsWith("-")
      ? style(io, "red", l)
      : l.startsWith("@@")
      ? style(io, "cyan", l)
      : l
  ).join("\n");
}

/** `rep diff`. */
export const command: Command = {
  summary: "Compare experiments or checkpoints",
  help,
  async run(args, io) {
    const { values, positionals } = parse("diff", args, OPTIONS);
    if (values.help) {
      io.out(help);
      return 0;
    }
    if (positionals.length < 2) {
      throw new UsageError(
        `rep diff needs at least two ids, got ${positionals.length}`,
        "Example: rep diff a1b2c3d e4f5a6b (to see one: rep show ID)",
      );
    }
    const { repo } = await openRepo(values.repository, io);
    try {
      const items = await resolveItems(repo, positionals);
      const d = await diffItems(repo, items, { code: !values["no-code"] });
      if (values.json) {
        io.out(jsonText(diffJson(d)));
        return 0;
      }
      const { experiment, params, metrics, env, comparisons } = d;
      const heads = items.map((i) => shortId(i.checkpoint?.id ?? i.experiment.id));
      let out = table(
        ["", ...heads],
        [
          ["experiment", ...items.map((i) => shortId(i.experiment.id))],
          [
            "checkpoint",
            ...items.map((i) => i.checkpoint ? checkpointLabel(i.checkpoint) : "(none)"),
          ],
        ],
      ).split("\n").slice(1).join("\n");
      const sections = [
        section(io, "Experiment", heads, experiment),
        section(io, "Params", heads, params),
        section(io, "Metrics", heads, metrics),
        section(io, "Environment", heads, env.fields),
        section(io, "Python packages", heads, env.packages),
      ].filter(Boolean);
      out += sections.join("");
      for (const c of comparisons) {
        const a = heads[0]!;
        const b = heads[c.to]!;
        const f = c.files;
        const fileLines = [
          ...f.added.map((p) => `  added    ${p}`),
          ...f.removed.map((p) => `  removed  ${p}`),
          ...f.changed.map((p) => `  changed  ${p}`),
        ];
        if (fileLines.length) {
          out += `\n${style(io, "bold", `Checkpoint files (${a} → ${b})`)}\n${
            fileLines.join("\n")
          }\n`;
        }
        if (c.code?.length) {
          out += `\n${style(io, "bold", `Code (${a} → ${b})`)}\n`;
          for (const d of c.code) {
            const kind = d.binary ? "Binary file" : "File";
            const why = d.binary ? "" : " (too large to diff)";
            if (d.diff) out += colorDiff(io, d.diff);
            else if (d.change === "added") out += `${kind} b/${d.path} added${why}\n`;
            else if (d.change === "removed") out += `${kind} a/${d.path} removed${why}\n`;
            else out += `${kind}s a/${d.path} and b/${d.path} differ${why}\n`;
          }
        }
      }
      if (
        !sections.length &&
        comparisons.every((c) => !c.code?.length && !Object.values(c.files).some((l) => l.length))
      ) {
        out += "\nNo differences\n";
      }
      io.out(out);
      return 0;
    } finally {
      await repo.close();
    }
  },
};
