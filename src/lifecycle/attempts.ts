/**
 * How an experiment's newest attempt stands, read fresh from the store (not from the listing
 * cache): what a resume decides on. It also counts an attempt whose claim was won but whose record
 * is not stored yet, so that two resumers never both take the same turn.
 *
 * `src/lifecycle/` sits above the writer and maintenance and below `rep run` and the library: it
 * starts, resumes and prunes experiments.
 *
 * @module
 */
import { NotFoundError } from "../errors.ts";
import {
  attemptKey,
  attemptStatusKey,
  claimOfKey,
  experimentPrefix,
  heartbeatKey,
} from "../format/layout.ts";
import {
  type ClaimRecord,
  type Heartbeat,
  parseAttempt,
  parseClaim,
  parseHeartbeat,
  parseJson,
  parseStatus,
  type StatusRecord,
} from "../format/records.ts";
import type { Store } from "../storage/store.ts";
import { hostname } from "node:os";
import { pidAlive } from "../util.ts";

/** An attempt without a heartbeat counts as running this long after it started. */
export const START_GRACE_MS = 120_000;

/** How the newest attempt of an experiment stands. */
export interface AttemptState {
  /** The newest attempt: 1 unless the experiment was resumed (or a resume is starting). */
  attempt: number;
  /** `ended` (it has a status), `running` (fresh heartbeat, or just started) or `crashed`. */
  state: "ended" | "running" | "crashed";
  /** Its status record when it ended. */
  status: StatusRecord | null;
  /** The heartbeat, when there is one (of whichever attempt wrote it last). */
  heartbeat: Heartbeat | null;
  /** Where the newest attempt runs or ran, when known. */
  host: string | null;
  pid: number | null;
}

/**
 * True when a heartbeat was written by a process of this machine that is gone: its attempt
 * crashed, without waiting for the heartbeat to go stale (a job requeued on the same node).
 */
function deadHere(hb: Heartbeat): boolean {
  return hb.host === hostname() && hb.pid > 0 && hb.pid !== Deno.pid && !pidAlive(hb.pid);
}

/** The deadline of a heartbeat: after it, its attempt counts as crashed. */
export function heartbeatFresh(hb: Heartbeat, now: number): boolean {
  return Date.parse(hb.updated) + (hb.interval * 3 + 30) * 1000 >= now;
}

async function readJson(store: Store, key: string): Promise<unknown | null> {
  try {
    return parseJson(await store.getBytes(key), key);
  } catch (e) {
    if (e instanceof NotFoundError) return null;
    throw e;
  }
}

/**
 * Read the state of experiment `id`'s newest attempt. `started` is when attempt 1 started (the
 * experiment record's `created`).
 */
export async function readAttemptState(
  store: Store,
  id: string,
  started: string,
  now: number = Date.now(),
): Promise<AttemptState> {
  const base = `${experimentPrefix(id)}attempts/`;
  // attempt → when it started (its won marker's store time), and who won it
  const won = new Map<number, { at: number; claim: ClaimRecord | null }>();
  const recorded = new Set<number>();
  for await (const info of store.list(base)) {
    const m = /^(\d+)\/(.+)$/.exec(info.key.slice(base.length));
    if (!m) continue;
    const n = Number(m[1]);
    if (!Number.isSafeInteger(n) || n < 2) continue;
    if (m[2] === "attempt.json") recorded.add(n);
    const scope = `${base}${n}/claims/`;
    if (claimOfKey(scope, info.key)?.kind === "won") {
      const raw = await readJson(store, info.key);
      won.set(n, {
        at: info.mtime?.getTime() ?? now,
        claim: raw === null ? null : parseClaim(raw, info.key),
      });
    }
  }
  const attempt = Math.max(1, ...won.keys(), ...recorded);
  const statusRaw = await readJson(store, attemptStatusKey(id, attempt));
  const status = statusRaw === null ? null : parseStatus(statusRaw, attemptStatusKey(id, attempt));
  const hbRaw = await readJson(store, heartbeatKey(id));
  const heartbeat = hbRaw === null ? null : parseHeartbeat(hbRaw, heartbeatKey(id));
  const mine = heartbeat && (heartbeat.attempt ?? 1) === attempt ? heartbeat : null;
  let host = mine?.host ?? won.get(attempt)?.claim?.host ?? null;
  let pid = mine?.pid ?? won.get(attempt)?.claim?.pid ?? null;
  let begun = attempt === 1 ? Date.parse(started) : won.get(attempt)?.at ?? null;
  if (attempt > 1 && recorded.has(attempt) && (host === null || begun === null)) {
    const raw = await readJson(store, attemptKey(id, attempt));
    if (raw !== null) {
      const rec = parseAttempt(raw, attemptKey(id, attempt));
      host ??= rec.host;
      pid ??= rec.pid;
      begun ??= Date.parse(rec.created);
    }
  }
  let state: AttemptState["state"];
  if (status) state = "ended";
  else if (mine) state = heartbeatFresh(mine, now) && !deadHere(mine) ? "running" : "crashed";
  else state = begun !== null && begun + START_GRACE_MS >= now ? "running" : "crashed";
  return { attempt, state, status, heartbeat, host, pid };
}
