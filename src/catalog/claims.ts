/**
 * The claim protocol: among any number of processes on any machines that want the same thing (an
 * experiment name, attempt n of an experiment), exactly one wins, with object storage only (no lock
 * service, no conditional writes). See docs/format.md, _Claims_, for the protocol and the argument
 * that two claimers cannot both win.
 *
 * A scope is a key prefix ending with `/` (`names/<name>/`, `experiments/<id>/attempts/<n>/claims/`).
 * Contenders put claims in it, list it, and the one that sees no other live claim puts a won
 * marker; the won marker is the lasting record of who holds the scope.
 *
 * @module
 */
import { hostname } from "node:os";
import { CorruptObjectError, NotFoundError } from "../errors.ts";
import { newId } from "../format/ids.ts";
import { claimKey, claimOfKey, wonKey } from "../format/layout.ts";
import { type ClaimRecord, FORMAT_VERSION, parseClaim, parseJson } from "../format/records.ts";
import type { Store } from "../storage/store.ts";
import { jsonBytes } from "../util.ts";

/**
 * A claim whose object is older than the claimer's own by more than this (store times, so clocks
 * of the machines do not matter) belongs to a claimer that died: it is ignored.
 */
export const CLAIM_STALE_MS = 60_000;

/**
 * A claimer wins only if it put its won marker within this long of starting to put its claim;
 * later, it withdraws and tries again. The gap to {@link CLAIM_STALE_MS} is the margin for the
 * store's own clock and for slow requests.
 */
export const CLAIM_BUDGET_MS = 20_000;

/** Options of {@link claim}. */
export interface ClaimOptions {
  /** The experiment the claimer starts or resumes (recorded in the claim). */
  experiment?: string | null;
  /** The attempt the claimer would run (recorded in the claim). */
  attempt?: number | null;
  /**
   * Whether a won marker still holds the scope. A marker for which this is false is ignored (its
   * experiment was removed: the name is free again). It must stay false once false, and must be
   * true for a marker put in the last {@link CLAIM_STALE_MS}. @default always true
   */
  holds?: (won: ClaimRecord, age: number | null) => boolean | Promise<boolean>;
  /** Give up (lost, no winner known) after this long without a decision. @default 120000 */
  patienceMs?: number;
  /** See {@link CLAIM_STALE_MS}. */
  staleMs?: number;
  /** See {@link CLAIM_BUDGET_MS}. */
  budgetMs?: number;
}

/** What {@link claim} decided. */
export type ClaimOutcome =
  | {
    won: true;
    /** The winning claim (its won marker holds the same fields, with type "won"). */
    claim: ClaimRecord;
    /** Rounds it took (1 without contention). */
    rounds: number;
  }
  | {
    won: false;
    /** Who holds the scope, or null when the claimer gave up under contention. */
    winner: ClaimRecord | null;
    rounds: number;
  };

/** One look at a scope. */
interface ScopeView {
  /** The won marker that holds the scope, if any. */
  winner: ClaimRecord | null;
  /** Live claims of other contenders without a won marker: key name (`<time>-<claimer>`). */
  others: string[];
  /** This claimer's own claim was listed. */
  ownListed: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const between = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

/**
 * Claim `scope` for this process. Resolves once it is decided: won (this process holds the scope),
 * or lost (to the returned winner), or lost without a known winner after `patienceMs` of
 * contention. A won marker that already holds the scope makes it lose at once.
 *
 * @param store The repository's store.
 * @param scope A key prefix ending with `/`.
 * @returns The outcome; a winner's claim record (host, pid, experiment, attempt) for the loser.
 *
 * @example Take a name
 * ```ts ignore
 * const outcome = await claim(repo.store, nameScope("baseline"), { experiment: id });
 * if (!outcome.won) console.log(`taken by ${outcome.winner?.experiment}`);
 * ```
 */
export async function claim(
  store: Store,
  scope: string,
  options: ClaimOptions = {},
): Promise<ClaimOutcome> {
  if (!scope.endsWith("/")) throw new RangeError(`A claim scope ends with "/": ${scope}`);
  const staleMs = options.staleMs ?? CLAIM_STALE_MS;
  const budgetMs = options.budgetMs ?? CLAIM_BUDGET_MS;
  const give = performance.now() + (options.patienceMs ?? 120_000);
  const claimer = newId();
  const base = {
    format: FORMAT_VERSION,
    claimer,
    host: hostname(),
    pid: Deno.pid,
    experiment: options.experiment ?? null,
    attempt: options.attempt ?? null,
  };
  for (let round = 1;; round++) {
    const started = performance.now();
    const record: ClaimRecord = { ...base, type: "claim", created: new Date().toISOString() };
    const key = claimKey(scope, claimer, new Date(record.created));
    const own = key.slice(scope.length);
    await store.put(key, jsonBytes(record));
    let withdraw = true;
    try {
      // Stay while ours is the oldest live claim, so that contention resolves instead of every
      // contender backing off forever; others see ours and step back.
      for (;;) {
        const view = await look(store, scope, own, staleMs, options.holds);
        if (view.winner) return { won: false, winner: view.winner, rounds: round };
        if (view.others.length === 0) {
          const won: ClaimRecord = { ...record, type: "won" };
          await store.put(wonKey(scope, claimer), jsonBytes(won));
          if (performance.now() - started <= budgetMs) {
            withdraw = false;
            return { won: true, claim: won, rounds: round };
          }
          // Too slow: someone may already treat our claim as stale. Take the marker back.
          await store.delete([wonKey(scope, claimer)]);
          break;
        }
        const oldest = view.ownListed && view.others.every((o) => o > own);
        if (!oldest || performance.now() - started > budgetMs / 2) break;
        await sleep(between(50, 250));
      }
    } finally {
      if (withdraw) await store.delete([key]).catch(() => {});
    }
    if (performance.now() >= give) return { won: false, winner: null, rounds: round };
    await sleep(between(200, Math.min(2000 * 1.3 ** (round - 1), 8000)));
  }
}

/** List a scope once, as the claimer whose claim's key name is `own` sees it. */
async function look(
  store: Store,
  scope: string,
  own: string,
  staleMs: number,
  holds: ClaimOptions["holds"],
): Promise<ScopeView> {
  const claims: { name: string; claimer: string; mtime: number | null }[] = [];
  const won: { key: string; mtime: number | null }[] = [];
  for await (const info of store.list(scope)) {
    const c = claimOfKey(scope, info.key);
    if (!c) continue;
    const mtime = info.mtime ? info.mtime.getTime() : null;
    if (c.kind === "won") won.push({ key: info.key, mtime });
    else claims.push({ name: info.key.slice(scope.length), claimer: c.claimer, mtime });
  }
  const mine = claims.find((c) => c.name === own);
  const now = mine?.mtime ?? null;
  const winners = await readWinners(store, scope, won, now, holds);
  const decided = new Set(winners.all.map((w) => w.claimer));
  const others = claims.filter((c) =>
    c.name !== own && !decided.has(c.claimer) &&
    // Without both store times, a claim cannot be judged stale: it counts.
    !(now !== null && c.mtime !== null && now - c.mtime > staleMs)
  ).map((c) => c.name);
  return { winner: winners.holding, others, ownListed: mine !== undefined };
}

/** Read won markers; the holding one is the newest that `holds` accepts. */
async function readWinners(
  store: Store,
  scope: string,
  markers: { key: string; mtime: number | null }[],
  now: number | null,
  holds: ClaimOptions["holds"],
): Promise<{ all: ClaimRecord[]; holding: ClaimRecord | null }> {
  const all: ClaimRecord[] = [];
  let holding: ClaimRecord | null = null;
  let holdingTime = -Infinity;
  for (const m of markers) {
    let rec: ClaimRecord;
    try {
      rec = parseClaim(parseJson(await store.getBytes(m.key), m.key), m.key);
    } catch (e) {
      if (e instanceof NotFoundError) continue; // taken back by a claimer that was too slow
      throw e;
    }
    if (rec.type !== "won" || claimOfKey(scope, m.key)?.claimer !== rec.claimer) {
      throw new CorruptObjectError(
        `Corrupt won marker ${m.key}: its claimer does not match its key`,
        "Delete the object; the repository may have been written by a broken or hostile client",
      );
    }
    all.push(rec);
    const age = now !== null && m.mtime !== null ? now - m.mtime : null;
    if (holds && !(await holds(rec, age))) continue;
    // Newest by store time, then by the winner's own clock.
    const t = m.mtime ?? Date.parse(rec.created);
    if (t > holdingTime || (t === holdingTime && holding && rec.created > holding.created)) {
      holding = rec;
      holdingTime = t;
    }
  }
  return { all, holding };
}

/**
 * Who holds `scope`, without claiming it: the newest won marker that `holds` accepts, or null.
 * Without a claim of ours to measure against, a marker's `age` is taken from this machine's clock
 * (good enough for a question; {@link claim} never relies on it).
 */
export async function winnerOf(
  store: Store,
  scope: string,
  holds?: ClaimOptions["holds"],
): Promise<ClaimRecord | null> {
  const won: { key: string; mtime: number | null }[] = [];
  for await (const info of store.list(scope)) {
    if (claimOfKey(scope, info.key)?.kind === "won") {
      won.push({ key: info.key, mtime: info.mtime ? info.mtime.getTime() : null });
    }
  }
  return (await readWinners(store, scope, won, Date.now(), holds)).holding;
}
