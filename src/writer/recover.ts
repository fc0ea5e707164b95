/**
 * Finish uploads left behind: outboxes whose owning process is gone (crash, kill, second Ctrl-C,
 * storage outage) are uploaded in order, data first, then records.
 *
 * @module
 */
import { hostname } from "node:os";
import { join } from "node:path";
import { Outbox } from "./outbox.ts";
import type { Repository } from "../repository.ts";
import { Recorder } from "./recorder.ts";
import { pidAlive } from "../util.ts";

/** An outbox found on this machine. */
export interface OutboxInfo {
  dir: string;
  experiment: string;
  /** The attempt that wrote it (1 unless the experiment was resumed). */
  attempt: number;
  pid: number | null;
  alive: boolean;
  items: number;
  bytes: number;
}

/** List the outboxes of `repo` on this machine. */
export async function listOutboxes(repo: Repository): Promise<OutboxInfo[]> {
  const root = Recorder.outboxRoot(repo);
  const out: OutboxInfo[] = [];
  let ents: Deno.DirEntry[];
  try {
    ents = await Array.fromAsync(Deno.readDir(root));
  } catch {
    return [];
  }
  const host = hostname();
  for (const e of ents) {
    // `<id>.run` folders are rep run's live output (src/run/log.ts), not outboxes.
    if (!e.isDirectory || e.name.endsWith(".run")) continue;
    const dir = join(root, e.name);
    const owner = await Outbox.owner(dir);
    // An outbox of another host (a shared folder) is that host's business.
    if (owner && owner.host !== host) continue;
    let items = 0;
    let bytes = 0;
    try {
      for await (const q of Deno.readDir(join(dir, "queue"))) {
        const st = await Deno.stat(join(dir, "queue", q.name)).catch(() => null);
        if (st) {
          items++;
          bytes += st.size;
        }
      }
    } catch {
      // empty
    }
    const [experiment, attempt] = e.name.split("-");
    out.push({
      dir,
      experiment: experiment!,
      attempt: attempt ? Number(attempt) : 1,
      pid: owner?.pid ?? null,
      alive: owner ? owner.pid === Deno.pid || pidAlive(owner.pid) : false,
      items,
      bytes,
    });
  }
  return out;
}

/**
 * Upload what dead processes left queued (only for `experiment` when given: a resume first
 * finishes what the attempt it resumes left on this machine). Returns the outboxes finished and
 * objects uploaded.
 */
export async function recoverOutboxes(
  repo: Repository,
  options: { experiment?: string } = {},
): Promise<{ outboxes: number; objects: number; failed: { dir: string; error: string }[] }> {
  let outboxes = 0;
  let objects = 0;
  const failed: { dir: string; error: string }[] = [];
  for (const ob of await listOutboxes(repo)) {
    if (ob.alive) continue;
    if (options.experiment !== undefined && ob.experiment !== options.experiment) continue;
    try {
      objects += await Outbox.recover(ob.dir, repo.store);
      outboxes++;
    } catch (e) {
      failed.push({ dir: ob.dir, error: e instanceof Error ? e.message : String(e) });
    }
  }
  return { outboxes, objects, failed };
}
