/**
 * What happens to the library's live experiments when the script ends without `stop()`.
 *
 * - An uncaught error or unhandled rejection: each experiment is marked `failed` at once, what it
 *   recorded is uploaded, the error is printed as Deno prints it, and the process exits with code 1
 *   (Deno's own code for an uncaught error).
 * - The script simply ends (the event loop has nothing left to do): each experiment is marked
 *   `succeeded` and its uploads finish before the process exits.
 *
 * Uploads that cannot finish because the storage keeps failing are left queued on this machine
 * (any later `rep` command, or `rep push`, uploads them). A process killed by a signal or ended
 * with `Deno.exit()` gives no chance to run: it reads as crashed once its heartbeat stops.
 *
 * @module
 */
import type { Recorder } from "./writer/recorder.ts";

/** How long uploads may keep failing before the process exits with them still queued. */
export const GIVE_UP_AFTER_MS = 10_000;

const live = new Set<Recorder>();
/** What to wait for after a recorder stopped (retention passes). */
const after = new Map<Recorder, () => Promise<void>>();
let installed = false;
let finishing = false;

/**
 * Watch `rec` until {@link release}: it is finished if the script ends without stopping it (and
 * `then`, when given, is awaited once it stopped).
 */
export function guard(rec: Recorder, then?: () => Promise<void>): void {
  install();
  live.add(rec);
  if (then) after.set(rec, then);
}

/** The experiment was stopped by its script: nothing to do for it at exit. */
export function release(rec: Recorder): void {
  live.delete(rec);
  after.delete(rec);
}

function install(): void {
  if (installed) return;
  installed = true;
  globalThis.addEventListener("error", (e) => {
    if (!live.size && !finishing) return;
    e.preventDefault();
    crash(e.error ?? e.message);
  });
  globalThis.addEventListener("unhandledrejection", (e) => {
    if (!live.size && !finishing) return;
    e.preventDefault();
    crash(e.reason, "(in promise) ");
  });
  globalThis.addEventListener("beforeunload", () => {
    if (!live.size || finishing) return;
    // Scheduling work here keeps the event loop alive until it is done.
    finishAll("succeeded").then(() => {}, () => {});
  });
}

/** Report an uncaught error the way Deno does, after the live experiments are marked failed. */
function crash(error: unknown, kind = ""): void {
  if (finishing) return; // a second error while finishing: the first one decides
  const text = error instanceof Error ? error.stack ?? String(error) : String(error);
  finishAll("failed").finally(() => {
    console.error(`error: Uncaught ${kind}${text}`);
    Deno.exit(1);
  });
}

async function finishAll(status: "succeeded" | "failed"): Promise<void> {
  finishing = true;
  const recs = [...live];
  live.clear();
  if (status === "failed") {
    const ids = recs.map((r) => r.record.id.slice(0, 7)).join(", ");
    console.error(`rep: the script failed; marking experiment ${ids} failed and uploading it`);
  }
  await Promise.all(recs.map((r) => finish(r, status)));
  finishing = false;
}

/** Stop `rec`, waiting for its uploads unless the storage keeps failing. */
async function finish(rec: Recorder, status: "succeeded" | "failed"): Promise<void> {
  const then = after.get(rec);
  after.delete(rec);
  const stopped = rec.stop(status).then(() => then?.()).then(() => true, () => false);
  let failingSince: number | null = null;
  while (true) {
    const done = await Promise.race([stopped, new Promise<null>((r) => setTimeout(r, 250, null))]);
    if (done !== null) return;
    const error = rec.pending().error;
    failingSince = error ? failingSince ?? Date.now() : null;
    if (failingSince !== null && Date.now() - failingSince > GIVE_UP_AFTER_MS) {
      rec.abandon();
      console.error(
        `rep: could not upload experiment ${rec.record.id.slice(0, 7)} (${error}); ` +
          "it stays queued on this machine and the next rep command (or rep push) uploads it",
      );
      return;
    }
  }
}
