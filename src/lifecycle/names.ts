/**
 * Experiment names: taken with the claim protocol on `names/<name>/` when an experiment starts,
 * held by the experiment the winning claim names, given back when that experiment is removed.
 * See docs/format.md, _Names_.
 *
 * @module
 */
import { ConflictError, NotFoundError } from "../errors.ts";
import { shortId } from "../format/ids.ts";
import { experimentKey, heartbeatKey, nameScope } from "../format/layout.ts";
import { checkName } from "../format/names.ts";
import { type ClaimRecord, parseHeartbeat, parseJson } from "../format/records.ts";
import type { Store } from "../storage/store.ts";
import { claim, type ClaimOptions, winnerOf } from "../catalog/claims.ts";
import { heartbeatFresh, START_GRACE_MS } from "./attempts.ts";

/** Whether an experiment id was removed (by `rep rm`, as the catalog's changes say). */
export type IsRemoved = (experiment: string) => boolean | Promise<boolean>;

/** The experiment holding a name, as its claim says. */
export interface NameHolder {
  /** The name. */
  name: string;
  /** The id of the experiment holding it. */
  experiment: string;
  /** False while the holder's experiment record is not stored (starting, or lost at start). */
  recorded: boolean;
  /** The host that took the name. */
  host: string;
  /** The process that took the name, when known. */
  pid: number | null;
  /** When the name was taken (by the taker's clock). */
  created: string;
}

/** A name is held by another experiment. */
export class NameTakenError extends ConflictError {
  /** The experiment that holds the name. */
  readonly holder: NameHolder;
  /** An error naming `holder` and how to go on. */
  constructor(holder: NameHolder) {
    const where = holder.host ? ` on ${holder.host}` : "";
    super(
      `Name "${holder.name}" is taken by experiment ${shortId(holder.experiment)}${
        holder.recorded ? "" : ` (starting${where}, or it stopped before recording anything)`
      }`,
      holder.recorded
        ? `Choose another name, resume that experiment with rep run --name ${holder.name} --resume, or free the name with rep rm ${holder.name}`
        : "Choose another name; if that process is gone, the name is free again two minutes after it took it",
    );
    this.holder = holder;
  }
}

/**
 * Whether a won marker of a name still holds it: its experiment was not removed, and it was
 * recorded, or is still starting (fresh heartbeat, or no heartbeat yet within the start grace).
 */
function holdsName(store: Store, removed: IsRemoved): NonNullable<ClaimOptions["holds"]> {
  return async (won: ClaimRecord, age: number | null) => {
    const id = won.experiment;
    if (id === null) return true;
    if (await removed(id)) return false;
    if (await store.head(experimentKey(id))) return true;
    // Never recorded: still starting, or it died before its record was stored.
    let hb;
    try {
      hb = parseHeartbeat(parseJson(await store.getBytes(heartbeatKey(id)), heartbeatKey(id)));
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
      hb = null;
    }
    if (hb) return heartbeatFresh(hb, Date.now());
    return age === null || age <= START_GRACE_MS;
  };
}

async function holderOf(store: Store, name: string, won: ClaimRecord): Promise<NameHolder> {
  return {
    name,
    experiment: won.experiment ?? "",
    recorded: won.experiment !== null && (await store.head(experimentKey(won.experiment))) !== null,
    host: won.host,
    pid: won.pid || null,
    created: won.created,
  };
}

/**
 * Take `name` for experiment `experiment` (not started yet: its id is chosen first). Throws
 * {@link NameTakenError} when another experiment holds it, and a {@link ConflictError} when
 * contention did not settle.
 */
export async function takeName(
  store: Store,
  name: string,
  experiment: string,
  removed: IsRemoved,
): Promise<void> {
  checkName(name);
  const out = await claim(store, nameScope(name), {
    experiment,
    holds: holdsName(store, removed),
  });
  if (out.won) return;
  if (out.winner) throw new NameTakenError(await holderOf(store, name, out.winner));
  throw new ConflictError(
    `Could not take name "${name}": other processes kept claiming it`,
    "Try again in a minute, or choose another name",
  );
}

/** The experiment holding `name`, or null when the name is free. */
export async function nameHolder(
  store: Store,
  name: string,
  removed: IsRemoved,
): Promise<NameHolder | null> {
  checkName(name);
  const won = await winnerOf(store, nameScope(name), holdsName(store, removed));
  return won ? await holderOf(store, name, won) : null;
}
