/**
 * Visibility: what readers see of the recorded experiments once the change objects are applied.
 * Every reader (the local index, shared segments, `rep gc`, `rep verify`) asks here whether an
 * experiment or checkpoint is removed, what its tags and note are, and whether a listing built
 * earlier can still be trusted after `rep gc` dropped removals it compacted away.
 *
 * Entries apply in (`created`, `id`) order; an entry seen twice (before and after a compaction)
 * applies once.
 *
 * @module
 */
import type { ChangeObject, Dropped, StoredEntry } from "./changes.ts";

/**
 * How long a change object may take to become visible after its `created` time (a slow upload,
 * clocks that disagree). A listing made later than this after a removal was created has seen it.
 */
export const VISIBILITY_MARGIN_MS = 60 * 60 * 1000;

interface TagOp {
  add: string[];
  remove: string[];
}

/** The state of the repository's change objects. */
export class Visibility {
  /** Experiments removed by `rep rm`. */
  readonly removedExperiments: Set<string> = new Set();
  /** Checkpoints removed by `rep rm`. */
  readonly removedCheckpoints: Set<string> = new Set();
  /** Removed checkpoints by experiment (those whose removal names it). */
  readonly removedCheckpointsOf: Map<string, Set<string>> = new Map();
  /** True when a format 1 tombstone removed checkpoints without naming their experiments. */
  unattributedRemovals: boolean = false;
  /** Newest attempt named by a `resume` entry, per experiment. */
  readonly resumed: Map<string, number> = new Map();
  /** What gc dropped, when it dropped anything. */
  readonly dropped: Dropped | null;
  /** The entries, in the order they apply. */
  readonly entries: StoredEntry[];
  readonly #tags = new Map<string, TagOp[]>();
  readonly #notes = new Map<string, string | null>();

  constructor(objects: Iterable<ChangeObject>) {
    const byId = new Map<string, StoredEntry>();
    let dropped: Dropped | null = null as Dropped | null;
    for (const o of objects) {
      for (const e of o.entries) if (!byId.has(e.id)) byId.set(e.id, e);
      const d = o.dropped;
      if (d) {
        dropped = dropped
          ? {
            at: dropped.at > d.at ? dropped.at : d.at,
            before: dropped.before > d.before ? dropped.before : d.before,
          }
          : d;
      }
    }
    this.dropped = dropped;
    this.entries = [...byId.values()].sort((a, b) =>
      a.created !== b.created ? (a.created < b.created ? -1 : 1) : a.id < b.id ? -1 : 1
    );
    for (const { entry } of this.entries) {
      switch (entry?.op) {
        case "remove":
          for (const id of entry.experiments) this.removedExperiments.add(id);
          for (const { experiment, checkpoint } of entry.checkpoints) {
            this.removedCheckpoints.add(checkpoint);
            if (experiment === null) {
              this.unattributedRemovals = true;
              continue;
            }
            const set = this.removedCheckpointsOf.get(experiment) ?? new Set<string>();
            set.add(checkpoint);
            this.removedCheckpointsOf.set(experiment, set);
          }
          break;
        case "tag": {
          const ops = this.#tags.get(entry.experiment) ?? [];
          ops.push({ add: entry.add, remove: entry.remove });
          this.#tags.set(entry.experiment, ops);
          break;
        }
        case "note":
          this.#notes.set(entry.experiment, entry.text);
          break;
        case "resume":
          if ((this.resumed.get(entry.experiment) ?? 1) < entry.attempt) {
            this.resumed.set(entry.experiment, entry.attempt);
          }
          break;
      }
    }
  }

  /** An experiment's tags: those of its record, then the `tag` entries in order. */
  tags(experiment: string, recorded: readonly string[]): string[] {
    const ops = this.#tags.get(experiment);
    if (!ops) return [...recorded];
    const out = new Set(recorded);
    for (const op of ops) {
      for (const t of op.add) out.add(t);
      for (const t of op.remove) out.delete(t);
    }
    return [...out];
  }

  /** An experiment's note: the newest `note` entry's text, else its record's. */
  note(experiment: string, recorded: string | null): string | null {
    return this.#notes.has(experiment) ? this.#notes.get(experiment)! : recorded;
  }

  /** Experiments some `tag` or `note` entry names. */
  annotated(): Set<string> {
    return new Set([...this.#tags.keys(), ...this.#notes.keys()]);
  }

  /**
   * Whether a listing (the local index, a shared segment) can still be trusted: it was made from a
   * changes listing at `basis`, by a reader that knew of gc's drops up to `knownDropAt`. It can
   * when no drop happened since, or when it was made long enough after every dropped removal was
   * created to have seen them all (and so left out what they removed).
   */
  trusts(basis: string | null, knownDropAt: string | null): boolean {
    const d = this.dropped;
    if (!d) return true;
    if (knownDropAt !== null && knownDropAt >= d.at) return true;
    return basis !== null && Date.parse(basis) >= Date.parse(d.before) + VISIBILITY_MARGIN_MS;
  }
}
