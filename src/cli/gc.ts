/**
 * `rep gc`: delete data nothing refers to.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { collectGarbage, SAFE_GRACE_MS } from "../maintenance/gc.ts";
import { formatBytes } from "../util.ts";
import { type Command, type Io, openRepo, parse, REPO_OPTIONS } from "./common.ts";

const HELP = `Usage: rep gc [--dry-run] [--grace DURATION] [-R URL]

Reclaim space: delete packs and file lists that no experiment or checkpoint refers to, the
records of experiments and checkpoints removed with "rep rm", and orphans (folders without an
experiment record, heartbeats left beside a final status). Also compacts the repository's change
objects and listing segments. Safe while other machines write to the repository: an unreferenced
object is first listed for deletion, and deleted by a later "rep gc" only when it is still
unreferenced and both it and the listing are older than the grace period (runs in progress never
reuse data that is listed). Removals stay removed for every reader.

Options:
  -n, --dry-run          Only report what would be deleted
      --grace DURATION   How old unreferenced data must be: 30s, 10m, 24h, 7d (default 24h).
                         --grace 0 lists and deletes at once, in one run, while nothing is being
                         recorded; while experiments run, a grace under 10m lists unreferenced
                         data and deletes it only 10m after it was listed.
  -R, --repository URL   Repository
  -h, --help             This help
`;

/** Parse 30s / 10m / 24h / 7d / plain seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([smhd]?)$/.exec(text.trim());
  if (!m) {
    throw new UsageError(
      `Invalid duration "${text}"`,
      "Use a number with s, m, h or d: 30s, 10m, 24h, 7d",
    );
  }
  const mult = { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "" | "s" | "m" | "h" | "d"];
  return Number(m[1]) * mult;
}

async function run(args: string[], io: Io): Promise<number> {
  const { values } = parse("gc", args, {
    ...REPO_OPTIONS,
    "dry-run": { type: "boolean", short: "n" },
    grace: { type: "string" },
  }, false);
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const grace = values.grace === undefined ? 86400 : parseDuration(values.grace);
  const { repo } = await openRepo(values.repository, io);
  try {
    const r = await collectGarbage(repo, { dryRun: values["dry-run"] ?? false, grace });
    const dry = values["dry-run"] ?? false;
    const verb = dry ? "would delete" : "deleted";
    io.out(`${verb} ${r.deleted.length} object(s), ${formatBytes(r.freed)}\n`);
    io.out(`${verb} ${r.records} record(s) of removed experiments and checkpoints\n`);
    if (r.orphans.length) io.out(`${verb} ${r.orphans.length} orphaned object(s)\n`);
    if (r.listed.length && (values.grace === undefined || grace > 0 || r.held)) {
      io.out(
        `${dry ? "would list" : "listed"} ${r.listed.length} unreferenced object(s) ` +
          "for deletion by a later rep gc\n",
      );
    }
    if (r.held) {
      const ids = r.writers.slice(0, 3).map((id) => id.slice(0, 7)).join(", ") +
        (r.writers.length > 3 ? ", …" : "");
      io.out(
        `kept ${r.held} unreferenced object(s) for now: ${r.writers.length} experiment(s) ` +
          `are being recorded (${ids}), and a grace under ${SAFE_GRACE_MS / 60_000}m deletes ` +
          "only while nothing is (a running experiment may be about to refer to them); " +
          "a later rep gc deletes them\n",
      );
    }
    if (r.young) io.out(`kept ${r.young} unreferenced object(s) younger than the grace period\n`);
    if (r.compacted) {
      io.out(
        `${dry ? "would compact" : "compacted"} ${r.compacted} change object(s) into one` +
          (r.droppedRemovals ? ` (${r.droppedRemovals} removal(s) fully reclaimed)` : "") + "\n",
      );
    }
    if (r.segments.written || r.segments.deleted) {
      io.out(
        `rewrote listing segments: ${r.segments.written} written, ${r.segments.deleted} deleted\n`,
      );
    }
    return 0;
  } finally {
    await repo.close();
  }
}

/** The `gc` command. */
export const command: Command = { summary: "Delete data nothing refers to", help: HELP, run };
