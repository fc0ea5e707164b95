/**
 * Which files belong to which metrics line. Training scripts either save, then log (the line
 * comes right after the files of its step) or log, then save (the files of a step come after its
 * line, before the next line). So a line's files are the newest version of each file completed
 * before a _cut_: the line itself (save-then-log), or the next line (log-then-save; the end of
 * the run for the last line).
 *
 * The order is found from the first line whose two candidate cuts differ: when the files that
 * differ had no version at all before that line, the script logs, then saves; when they had one
 * (a newer one replaced it), it saves, then logs. One exception, told by timing: the first save
 * came long after the first line and right before the next line, as when a script logs an
 * evaluation before training and then saves, then logs, each epoch. `--order` overrides it all.
 * Nothing here does I/O.
 *
 * @module
 */

/** The two orders. */
export type Order = "save-then-log" | "log-then-save";

/** How much closer the saves after a line must be to tell log-then-save by timing (ms). */
export const TIMING_MARGIN_MS = 300;

/** The cut of the last line of a log-then-save run: the end. */
export const END = Number.MAX_SAFE_INTEGER;

/** A line with its place among the file events. */
export interface PlacedLine<T> {
  seq: number;
  time: number;
  data: T;
}

/** What the rule needs to know about the files. */
export interface Timeline {
  /** Each file's version id at cut `seq` (files without a version left out). */
  stateAt(seq: number): Map<string, number>;
  /** File versions completed between two cuts: when the first began and the last completed. */
  savesBetween(from: number, to: number): { firstStart: number; lastComplete: number } | null;
}

/** A line whose files are decided. */
export interface Released<T> {
  line: PlacedLine<T>;
  cut: number;
}

/** Decides the cut of each line, in order. */
export class Attributor<T> {
  order: Order | null;
  /** How the order was decided, in words (null while undecided or when given). */
  reason: string | null = null;
  readonly #lines: PlacedLine<T>[] = [];
  #next = 0;
  #ended = false;

  constructor(order: Order | null = null) {
    this.order = order;
  }

  /** Add the next line (in order). */
  push(line: PlacedLine<T>): void {
    this.#lines.push(line);
  }

  /** No more lines will come. */
  end(): void {
    this.#ended = true;
  }

  /** Lines waiting for their cut. */
  get waiting(): number {
    return this.#lines.length - this.#next;
  }

  /** The lines whose cut can be decided now, with their cuts, in order. */
  take(t: Timeline): Released<T>[] {
    const out: Released<T>[] = [];
    while (this.#next < this.#lines.length) {
      const line = this.#lines[this.#next]!;
      const next = this.#lines[this.#next + 1];
      if (this.order === "save-then-log") {
        out.push({ line, cut: line.seq });
      } else {
        if (!next && !this.#ended) break;
        const after = next ? next.seq : END;
        if (this.order === null) {
          const a = t.stateAt(line.seq);
          const b = t.stateAt(after);
          if (sameState(a, b)) {
            out.push({ line, cut: line.seq });
            this.#next++;
            continue;
          }
          this.#decide(line, next, a, b, t);
          continue; // again, with the order known
        }
        out.push({ line, cut: after });
      }
      this.#next++;
    }
    return out;
  }

  #decide(
    line: PlacedLine<T>,
    next: PlacedLine<T> | undefined,
    a: Map<string, number>,
    b: Map<string, number>,
    t: Timeline,
  ): void {
    const differing = [...b.keys()].filter((k) => a.get(k) !== b.get(k));
    const newFiles = differing.every((k) => !a.has(k));
    if (!newFiles) {
      this.order = "save-then-log";
      this.reason = "files were saved before the first metrics line";
      return;
    }
    const prev = this.#lines[this.#next - 1]?.seq ?? 0;
    const before = t.savesBetween(prev, line.seq);
    const after = t.savesBetween(line.seq, next ? next.seq : END);
    if (before && after) {
      // New files both before and after the line: the line goes with the closer saves. Times are
      // when rep saw the events, late by up to its scheduling delay on a loaded machine, so the
      // saves after the line must be closer by a clear margin (a script that writes a config at
      // startup, trains, logs, then saves, is still told: its first epoch is longer than that).
      const dBefore = line.time - before.lastComplete;
      const dAfter = after.firstStart - line.time;
      if (dBefore <= dAfter + TIMING_MARGIN_MS) {
        this.order = "save-then-log";
        this.reason = "the first metrics line came right after files were saved";
      } else {
        this.order = "log-then-save";
        this.reason = "files were saved right after the first metrics line";
      }
      return;
    }
    // (Right before: within a quarter of the wait, and of the margin, as rep sees events late.)
    const wait = after && next ? after.firstStart - line.time : 0;
    if (
      !before && after && next && wait > 500 &&
      next.time - after.lastComplete < Math.min(TIMING_MARGIN_MS, wait / 4)
    ) {
      this.order = "save-then-log";
      this.reason = "the first files were saved long after the first metrics line and right " +
        "before the next one";
      return;
    }
    this.order = "log-then-save";
    this.reason = "the first files were saved after the first metrics line";
  }
}

function sameState(a: Map<string, number>, b: Map<string, number>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
