/**
 * rep's background work yields to the training command. On a machine with few cores, chunking and
 * hashing a checkpoint competes with the command for CPU: every step it computes is slower by
 * what rep takes. So, once the command runs, rep lowers the scheduling priority (raises the nice
 * value) of its own threads, all but the capture thread (which holds the command for each copy
 * and must react at once). Raising one's own nice value needs no privilege; it cannot be undone
 * without one, so it is done only after the command has started (a child inherits the nice value
 * of the thread that starts it). Threads made later by a lowered thread are lowered too.
 *
 * Linux only (`/proc/<pid>/task`, `renice` on thread ids); elsewhere nothing happens.
 *
 * @module
 */

/** A thread of this process: its id and name (`comm`, at most 15 bytes). */
export interface ThreadName {
  tid: number;
  name: string;
}

/** The threads of this process, read through `sh` (rep's permissions cannot read /proc). */
export async function threads(): Promise<ThreadName[]> {
  if (Deno.build.os !== "linux") return [];
  try {
    const out = await new Deno.Command("sh", {
      args: [
        "-c",
        'cd "/proc/$1/task" || exit 1; for t in *; do read -r c < "$t/comm" && printf "%s\\t%s\\n" "$t" "$c"; done',
        "rep-threads",
        String(Deno.pid),
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!out.success) return [];
    return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).map((l) => {
      const [tid, name] = l.split("\t");
      return { tid: Number(tid), name: name ?? "" };
    }).filter((t) => Number.isInteger(t.tid) && t.tid > 0);
  } catch {
    return [];
  }
}

/**
 * Set the nice value of every thread of this process for which `keep` is false to `nice`;
 * resolves with the thread ids changed (none where that is not possible).
 */
export async function lowerThreads(
  nice: number,
  keep: (t: ThreadName) => boolean,
): Promise<number[]> {
  const tids = (await threads()).filter((t) => !keep(t)).map((t) => t.tid);
  if (!tids.length) return [];
  try {
    const out = await new Deno.Command("renice", {
      args: ["-n", String(nice), "-p", ...tids.map(String)],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success ? tids : [];
  } catch {
    return [];
  }
}
