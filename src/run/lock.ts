/**
 * One live run per output folder: `rep run` claims the folder with a small `.rep-run.json` in it
 * (experiment id, host, rep's pid, the command's process group). A second run on the same folder
 * is refused while the first one's command is alive, even after its rep died; a claim whose
 * command is gone is taken over.
 *
 * @module
 */
import { hostname } from "node:os";
import { join, relative } from "node:path";
import { UsageError } from "../errors.ts";
import { groupAlive } from "./child.ts";
import { pidAlive } from "../util.ts";

/** The claim file's name inside the output folder; never part of a checkpoint. */
export const LOCK_FILE = ".rep-run.json";

interface Claim {
  experiment: string;
  host: string;
  pid: number;
  pgid: number | null;
  started: string;
}

/** A held claim. */
export class OutputLock {
  readonly path: string;
  readonly claim: Claim;

  private constructor(path: string, claim: Claim) {
    this.path = path;
    this.claim = claim;
  }

  /**
   * Claim `output` for `experiment`, or throw a usage error naming the live run that holds it and
   * the fix. `cwd` makes the paths in the message relative.
   */
  static acquire(output: string, experiment: string, cwd: string): OutputLock {
    const path = join(output, LOCK_FILE);
    const claim: Claim = {
      experiment,
      host: hostname(),
      pid: Deno.pid,
      pgid: null,
      started: new Date().toISOString(),
    };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        Deno.writeTextFileSync(path, JSON.stringify(claim), { createNew: true });
        return new OutputLock(path, claim);
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      }
      let other: Claim | null = null;
      try {
        other = JSON.parse(Deno.readTextFileSync(path));
      } catch {
        // half-written or gone: try again
      }
      if (other && isLive(other)) {
        const where = relative(cwd, output) || ".";
        throw new UsageError(
          `Output folder ${where} is in use by experiment ${other.experiment.slice(0, 7)}, ` +
            `still running${other.host !== hostname() ? ` on ${other.host}` : ""}`,
          `Give this run its own folder: rep run --output ${where}-2 … (or wait for that run to ` +
            `end${
              other.host !== hostname() ? `; if it is gone, delete ${join(where, LOCK_FILE)}` : ""
            })`,
        );
      }
      try {
        Deno.removeSync(path);
      } catch {
        // taken meanwhile
      }
    }
    throw new UsageError(`Cannot claim the output folder ${output}`, "Try again");
  }

  /** Record the command's process group (liveness outlives rep). */
  setGroup(pgid: number): void {
    this.claim.pgid = pgid;
    try {
      Deno.writeTextFileSync(this.path, JSON.stringify(this.claim));
    } catch {
      // the folder was removed by the command: nothing to guard any more
    }
  }

  /** Give the folder back (only when the claim is still ours). */
  release(): void {
    try {
      const now = JSON.parse(Deno.readTextFileSync(this.path)) as Claim;
      if (now.experiment === this.claim.experiment) Deno.removeSync(this.path);
    } catch {
      // gone
    }
  }
}

function isLive(c: Claim): boolean {
  if (c.host !== hostname()) return true; // cannot tell: assume live
  if (c.pgid !== null && groupAlive(c.pgid)) return true;
  return c.pid !== Deno.pid && pidAlive(c.pid);
}
