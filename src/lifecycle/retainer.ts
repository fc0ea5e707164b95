/**
 * Retention while an experiment runs (`--keep-best N --keep-last M`): after each checkpoint is
 * stored, the checkpoints that fell outside the N best and the M latest are removed (one `remove`
 * change entry per pass). Removing only records a change: the data stays until `rep gc`, whose
 * grace period protects whoever is reading it. A checkpoint is considered only once its record is
 * stored, so a removal never names a record still on its way (and the one being uploaded is never
 * touched). Nothing here can fail the training run: errors are reported and retention goes on.
 *
 * @module
 */
import type { CheckpointRecord, PrimaryMetric } from "../format/records.ts";
import type { Recorder } from "../writer/recorder.ts";
import { planRetention, type RetentionPolicy } from "../catalog/retention.ts";

/** How often a long run re-reads `rep gc`'s listings to stop reusing listed data. */
export const FORGET_LISTED_MS = 10 * 60_000;

/** Options of a {@link Retainer}. */
export interface RetainerOptions {
  policy: RetentionPolicy;
  /** The experiment's primary metric (checkpoints may name their own). */
  primaryMetric: PrimaryMetric | null;
  /** Visible checkpoints of earlier attempts (a resume), oldest first. */
  earlier?: CheckpointRecord[];
  /** Record the removal of `checkpoints` of this experiment (a `changes/` remove entry). */
  remove: (checkpoints: CheckpointRecord[], reason: string) => Promise<void>;
  /** Messages for the user. */
  say?: (text: string) => void;
}

/** Describe a policy the way the flags read: `keep best 2, last 1`. */
export function describePolicy(policy: RetentionPolicy): string {
  const parts: string[] = [];
  if (policy.keepBest !== undefined) parts.push(`best ${policy.keepBest}`);
  if (policy.keepLast !== undefined) parts.push(`last ${policy.keepLast}`);
  return `keep ${parts.join(", ")}`;
}

/** Applies a retention policy to one recorder's experiment as checkpoints are stored. */
export class Retainer {
  readonly #rec: Recorder;
  readonly #options: RetainerOptions;
  readonly #removed = new Set<string>();
  readonly #stored: CheckpointRecord[] = [];
  #chain: Promise<void> = Promise.resolve();
  #forgotAt = Date.now();
  #failed = false;

  constructor(rec: Recorder, options: RetainerOptions) {
    this.#rec = rec;
    this.#options = options;
    this.#stored.push(...(options.earlier ?? []));
  }

  /** Checkpoints removed so far by this retainer. */
  get removed(): ReadonlySet<string> {
    return this.#removed;
  }

  /** Call after each commit: once `ck` is stored, remove what fell out (in the background). */
  committed(ck: CheckpointRecord): void {
    const stored = this.#rec.stored(ck.id);
    this.#chain = this.#chain.then(async () => {
      try {
        await stored;
      } catch {
        return; // uploads stopped: the run is ending without them
      }
      this.#stored.push(ck);
      await this.#pass();
    });
  }

  /** Wait for the passes of every checkpoint stored so far. */
  async settle(): Promise<void> {
    await this.#chain;
  }

  async #pass(): Promise<void> {
    const { policy, primaryMetric, say } = this.#options;
    try {
      const live = this.#stored.filter((c) => !this.#removed.has(c.id));
      const { remove } = planRetention(live, policy, primaryMetric);
      if (remove.length) {
        await this.#options.remove(remove, `retention: ${describePolicy(policy)}`);
        for (const c of remove) this.#removed.add(c.id);
      }
      if (Date.now() - this.#forgotAt >= FORGET_LISTED_MS) {
        this.#forgotAt = Date.now();
        await this.#rec.forgetListed();
      }
      this.#failed = false;
    } catch (e) {
      if (!this.#failed) {
        say?.(
          `rep: could not remove checkpoints outside "${describePolicy(policy)}" (${
            e instanceof Error ? e.message : String(e)
          }); will try again at the next checkpoint\n`,
        );
      }
      this.#failed = true;
    }
  }
}
