/**
 * Who holds the command's process group stopped, shared between threads. rep's main thread (a
 * user's signal, a folder moved in) and the capture thread (every file version) both stop the
 * group for a moment, and each must find it still stopped until it lets go: a counter in shared
 * memory, changed under a small lock together with the signal it implies, so the last holder to
 * let go is the one that sends SIGCONT and a new holder's SIGSTOP is never overtaken by an old
 * holder's SIGCONT.
 *
 * @module
 */

const LOCK = 0;
const HOLDERS = 1;

/** The shared hold count of one process group (pass {@link GroupHold.memory} to a worker). */
export class GroupHold {
  readonly pgid: number;
  readonly memory: SharedArrayBuffer;
  #cells: Int32Array;

  /** A new count for group `pgid`, or the one behind `memory` (made by another thread). */
  constructor(pgid: number, memory: SharedArrayBuffer = new SharedArrayBuffer(8)) {
    this.pgid = pgid;
    this.memory = memory;
    this.#cells = new Int32Array(memory);
  }

  #locked<T>(f: () => T): T {
    while (Atomics.compareExchange(this.#cells, LOCK, 0, 1) !== 0) {
      // The lock is held only for one kill(2).
    }
    try {
      return f();
    } finally {
      Atomics.store(this.#cells, LOCK, 0);
    }
  }

  /** Hold the group: send SIGSTOP. False (and nothing held) when the group cannot be signalled. */
  stop(): boolean {
    return this.#locked(() => {
      try {
        Deno.kill(-this.pgid, "SIGSTOP");
      } catch {
        return false;
      }
      Atomics.add(this.#cells, HOLDERS, 1);
      return true;
    });
  }

  /** Let go of one hold; the last one resumes the group (SIGCONT). */
  resume(): void {
    this.#locked(() => {
      if (Atomics.sub(this.#cells, HOLDERS, 1) !== 1) return;
      try {
        Deno.kill(-this.pgid, "SIGCONT");
      } catch {
        // gone
      }
    });
  }

  /** How many holds there are now. */
  get holders(): number {
    return Atomics.load(this.#cells, HOLDERS);
  }
}
