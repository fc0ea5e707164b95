/**
 * Where each metrics line sits among the file events. A line source is an append-only file (the
 * metrics file, or the command's stdout): each append is an event in the watcher's ordered stream,
 * and appends with no file version completed between them form one _run_. When rep reads the
 * source, then waits for a barrier, every line it read was completed by one of the runs seen up to
 * the barrier; the lines are placed at those runs (one per run when the counts match, all at the
 * one run otherwise). The reader reads again (and takes a new barrier) while the file grew past
 * what it read: the runs up to a barrier that no append preceded unread are exactly the lines
 * read. When that does not settle (the command appends without pause) and several runs,
 * separated by file versions, compete for a different number of lines, the placement is a guess
 * and says so.
 *
 * @module
 */

/** Appends with no file version completed between them. */
export interface Run {
  /** Sequence and time of its first append. */
  seq: number;
  time: number;
  /** Sequence and time of its last append. */
  lastSeq: number;
  lastTime: number;
}

/** Where a line sits. */
export interface Position {
  /** Event sequence: file versions completed before it have smaller numbers. */
  seq: number;
  /** When it was written (ms since epoch, as seen by rep). */
  time: number;
  /** Set when rep could not tell exactly (it read late). */
  uncertain?: string;
}

/** An append-only file read from an offset, with the runs of its appends. */
export class LineSource {
  readonly name: string;
  readonly path: string;
  offset: number;
  /** Lines (newline-terminated) read so far. */
  lines = 0;
  #runs: Run[] = [];
  #current: Run | null = null;
  #placedUpTo = 0;

  constructor(name: string, path: string, offset = 0) {
    this.name = name;
    this.path = path;
    this.offset = offset;
  }

  /** Note an append at `seq`; `versionSeq` is the newest file-version event seen so far. */
  noteAppend(seq: number, time: number, versionSeq: number): void {
    const last = this.#runs[this.#runs.length - 1] ?? this.#current;
    if (last && versionSeq <= last.lastSeq) {
      last.lastSeq = seq;
      last.lastTime = time;
      return;
    }
    this.#runs.push({ seq, time, lastSeq: seq, lastTime: time });
  }

  /** Read what was appended since the last read (at most `max` bytes). */
  read(max = 4 << 20): Uint8Array {
    let f: Deno.FsFile;
    try {
      f = Deno.openSync(this.path, { read: true });
    } catch {
      return new Uint8Array(0);
    }
    try {
      const size = f.statSync().size;
      if (size < this.offset) return new Uint8Array(0);
      const buf = new Uint8Array(Math.min(size - this.offset, max));
      f.seekSync(this.offset, Deno.SeekMode.Start);
      let n = 0;
      while (n < buf.length) {
        const r = f.readSync(buf.subarray(n));
        if (r === null) break;
        n += r;
      }
      this.offset += n;
      return buf.subarray(0, n);
    } finally {
      f.close();
    }
  }

  /** Whether the file has bytes past the offset: appends since the last read. */
  grew(): boolean {
    try {
      return Deno.statSync(this.path).size > this.offset;
    } catch {
      return false;
    }
  }

  /** Whether the file shrank below the offset (truncated or replaced). */
  truncated(): boolean {
    try {
      return Deno.statSync(this.path).size < this.offset;
    } catch {
      return false;
    }
  }

  /**
   * Place `count` lines just read, given that a barrier at `barrier` followed the read: returns
   * one position per line, in order.
   */
  place(count: number, barrier: number, barrierTime: number): Position[] {
    if (count === 0) return [];
    const fresh = this.#runs.filter((r) => r.seq <= barrier);
    this.#runs = this.#runs.filter((r) => r.seq > barrier);
    const cands: Run[] = [];
    if (this.#current && (this.#current.lastSeq > this.#placedUpTo || fresh.length === 0)) {
      cands.push(this.#current);
    }
    cands.push(...fresh);
    this.#placedUpTo = barrier;
    this.lines += count;
    if (cands.length === 0) {
      // Not watching (or the event is late): the barrier is the best bound there is.
      return Array.from({ length: count }, () => ({ seq: barrier, time: barrierTime }));
    }
    this.#current = cands[cands.length - 1]!;
    const at = (r: Run, uncertain?: string): Position =>
      uncertain ? { seq: r.seq, time: r.lastTime, uncertain } : { seq: r.seq, time: r.lastTime };
    if (cands.length === 1) return Array.from({ length: count }, () => at(cands[0]!));
    if (cands.length === count) return cands.map((r) => at(r));
    // More lines than runs: the extra lines go to the first run; fewer: to the last runs.
    const why =
      `rep read ${count} line(s) of ${this.name} late, written in ${cands.length} separate writes ` +
      `with files saved between them, and could not tell which line came with which save`;
    const out: Position[] = [];
    for (let i = 0; i < count; i++) {
      const r = count > cands.length
        ? cands[Math.max(0, i - (count - cands.length))]!
        : cands[cands.length - count + i]!;
      out.push(at(r, why));
    }
    return out;
  }
}

/** Count the newlines in `bytes`. */
export function countNewlines(bytes: Uint8Array): number {
  let n = 0;
  for (let i = bytes.indexOf(10); i >= 0; i = bytes.indexOf(10, i + 1)) n++;
  return n;
}
