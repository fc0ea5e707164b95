/**
 * Bring the local index up to date with the repository. Records are immutable, so a refresh lists
 * `changes/` and the `experiments/` folders, and reads only what it has not read before: new change
 * objects, new experiments, and the new records and heartbeats of unfinished ones. With many
 * experiments unknown (an empty cache), shared segments give finished ones in a few objects.
 *
 * Order matters for removals to stay removed: changes are listed first, then records are read and
 * anything removed is left out; `rep gc` deletes records before it drops the removals that named
 * them. An index made before removals that gc has since dropped is rebuilt
 * ({@link Visibility.trusts}).
 *
 * @module
 */
import { NotFoundError } from "../errors.ts";
import {
  experimentObject,
  experimentOfPrefix,
  experimentPrefix,
  heartbeatKey,
  PREFIX,
} from "../format/layout.ts";
import {
  parseAttempt,
  parseCheckpoint,
  parseExperiment,
  parseHeartbeat,
  parseJson,
  parseStatus,
} from "../format/records.ts";
import type { Store } from "../storage/store.ts";
import { pool } from "../util.ts";
import { type ChangeObject, listChangeKeys, parseChangeObject } from "./changes.ts";
import { type ExperimentState, type IndexDb, newestAttempt, paramTypes } from "./index_db.ts";
import { bestCheckpoint, compareCheckpoints } from "./order.ts";
import {
  listSegments,
  readSegment,
  readSegmentCheckpoints,
  SEGMENT_MAX,
  type SegmentInput,
  writeSegment,
} from "./segments.ts";
import { Visibility } from "./visibility.ts";

/** Fewest experiments worth reading segments for, or writing one. */
export const SEGMENT_MIN = 100;

/** Experiments read and stored per transaction. */
const BATCH = 1000;

/** Progress callback: items done out of total. */
export type Progress = (done: number, total: number) => void;

/** Options of {@link refresh}. */
export interface RefreshOptions {
  progress?: Progress;
  /** Read shared segments (default true); false reads every record. */
  segments?: boolean;
  /** Write a segment of what was read the slow way (default: as `segments`). */
  writeSegments?: boolean;
}

/** What a refresh found. */
export interface RefreshResult {
  visibility: Visibility;
  /** The change objects, as read. */
  changes: ChangeObject[];
  /** Ids of the folders under `experiments/`. */
  folders: Set<string>;
  /** When `changes/` was listed: what was removed then is left out of the index. */
  basis: string;
}

/** Read the change objects: those the index has, and the new ones. */
async function readChanges(store: Store, db: IndexDb): Promise<ChangeObject[]> {
  const keys = await listChangeKeys(store);
  const known = db.changes();
  const listed = new Set(keys);
  const gone = [...known.keys()].filter((k) => !listed.has(k));
  const fresh = await pool(keys.filter((k) => !known.has(k)), 16, async (k) => {
    try {
      return [k, await store.getBytes(k)] as const;
    } catch (e) {
      if (e instanceof NotFoundError) return null; // compacted meanwhile
      throw e;
    }
  });
  db.transaction(() => {
    db.deleteChanges(gone);
    for (const f of fresh) if (f) db.putChange(f[0], f[1]);
  });
  const out: ChangeObject[] = [];
  for (const k of keys) {
    const body = known.get(k) ?? fresh.find((f) => f?.[0] === k)?.[1];
    if (!body) continue;
    try {
      out.push(parseChangeObject(body, k));
    } catch {
      // malformed: `rep verify` reports it
    }
  }
  return out;
}

function emptyState(): Omit<ExperimentState, "record"> & {
  record: ExperimentState["record"] | null;
} {
  return {
    record: null,
    checkpoints: [],
    status: null,
    attempts: [],
    heartbeat: null,
    keys: {},
    corrupt: {},
  };
}

type Partial = ReturnType<typeof emptyState>;

/**
 * Read what is new in one experiment's folder into `s` (records not read before, and the
 * heartbeat while unfinished); removed checkpoints are left out.
 */
export async function readExperiment(
  store: Store,
  id: string,
  s: Partial,
  vis: Visibility,
): Promise<void> {
  const base = experimentPrefix(id);
  const listed: { key: string; size: number }[] = [];
  for await (const info of store.list(base)) listed.push({ key: info.key, size: info.size });
  const fresh = listed.filter((k) => {
    if (s.keys[k.key] !== undefined) return false;
    const o = experimentObject(k.key.slice(base.length));
    if (o.kind === "checkpoint" && vis.removedCheckpoints.has(o.checkpoint)) return false;
    return ["experiment", "status", "checkpoint", "attempt", "attempt-status"].includes(o.kind);
  });
  const attempts = new Map(s.attempts.map((a) => [a.attempt, a]));
  const attempt = (n: number) => {
    let a = attempts.get(n);
    if (!a) attempts.set(n, a = { attempt: n, record: null, status: null });
    return a;
  };
  await pool(fresh, 8, async ({ key, size }) => {
    const o = experimentObject(key.slice(base.length));
    try {
      const v = parseJson(await store.getBytes(key), key);
      switch (o.kind) {
        case "experiment": {
          const rec = parseExperiment(v, key);
          if (rec.id !== id) throw new Error(`id ${rec.id} does not match its folder`);
          // The index keeps what listings need; provenance (environment, packages, git diff) can
          // be large and is read from the record when shown.
          s.record = { ...rec, provenance: {} };
          break;
        }
        case "status":
          s.status = parseStatus(v, key);
          break;
        case "checkpoint": {
          const ck = parseCheckpoint(v, key);
          if (ck.experiment !== id) {
            throw new Error(`experiment ${ck.experiment} is not its folder`);
          }
          if (ck.id !== o.checkpoint) throw new Error(`id ${ck.id} does not match its key`);
          if (!s.checkpoints.some((c) => c.id === ck.id)) s.checkpoints.push(ck);
          break;
        }
        case "attempt": {
          const rec = parseAttempt(v, key);
          if (rec.attempt !== o.attempt) throw new Error("attempt number does not match its key");
          attempt(o.attempt).record = rec;
          break;
        }
        case "attempt-status":
          attempt(o.attempt).status = parseStatus(v, key);
          break;
      }
      s.keys[key] = size;
    } catch (e) {
      if (e instanceof NotFoundError) return; // deleted meanwhile
      s.corrupt[key] = e instanceof Error ? e.message : String(e);
      s.keys[key] = size;
    }
  });
  s.attempts = [...attempts.values()].sort((a, b) => a.attempt - b.attempt);
  s.checkpoints = s.checkpoints.filter((c) => !vis.removedCheckpoints.has(c.id))
    .sort(compareCheckpoints);
  s.heartbeat = null;
  const { status } = newestAttempt(s);
  if (!status && listed.some((k) => k.key === heartbeatKey(id))) {
    try {
      const key = heartbeatKey(id);
      s.heartbeat = parseHeartbeat(parseJson(await store.getBytes(key), key), key);
    } catch {
      // rewritten or deleted while read
    }
  }
}

/** The ids of the folders under `experiments/`, sorted. */
async function listFolders(store: Store): Promise<string[]> {
  const ids: string[] = [];
  for await (const p of store.listPrefixes(PREFIX.experiments)) {
    const id = experimentOfPrefix(p);
    if (id) ids.push(id);
  }
  return ids.sort();
}

/** True when nothing more will be written to the experiment (until a resume says otherwise). */
function isFinished(s: Partial, vis: Visibility): boolean {
  if (!s.record) return false;
  const { attempt, status } = newestAttempt(s);
  return status !== null && (vis.resumed.get(s.record.id) ?? 1) <= attempt;
}

/**
 * Bring `db` up to date with `store`. Returns the visibility of the change objects, and the
 * experiment folders present.
 */
export async function refresh(
  store: Store,
  db: IndexDb,
  options: RefreshOptions = {},
): Promise<RefreshResult> {
  const useSegments = options.segments !== false;
  const writeSegments = options.writeSegments ?? useSegments;
  const basis = new Date().toISOString();
  const changes = await readChanges(store, db);
  const vis = new Visibility(changes);
  // Removals gc dropped since this index was made, that it may not have seen: start again.
  if (!vis.trusts(db.meta("basis"), db.meta("drop_at"))) db.forgetExperiments();
  const dropAt = vis.dropped?.at ?? null;
  if (db.meta("drop_at") !== dropAt) db.transaction(() => db.setMeta("drop_at", dropAt));

  // What the index holds, without reading its rows: ids, and the few it must read again.
  const indexed = new Set(db.ids());
  const unfinished = db.unfinished();
  const known = db.folders();
  // The folders: listed, unless the store says none came or went since the last listing.
  const mark = await store.foldersMark?.(PREFIX.experiments) ?? null;
  const listed = mark !== null && mark === db.meta("folders_mark")
    ? [...indexed, ...known.keys()].sort()
    : await listFolders(store);
  const folders = new Set(listed);
  const removedExp = vis.removedExperiments;
  const gone = [...indexed].filter((id) => !folders.has(id) || removedExp.has(id));
  // Finished experiments that a resume names a newer attempt of.
  const resumed = new Set<string>();
  for (const [id, n] of vis.resumed) {
    if (indexed.has(id) && !unfinished.has(id) && n > (db.stateOf(id)?.attempt ?? n)) {
      resumed.add(id);
    }
  }
  // Checkpoint removals apply to what the index holds (it keeps no removed record).
  const touched = new Set<string>();
  for (const exp of vis.removedCheckpointsOf.keys()) {
    if (indexed.has(exp) && !removedExp.has(exp)) touched.add(exp);
  }
  if (vis.unattributedRemovals) {
    for (const exp of db.experimentsOfCheckpoints(vis.removedCheckpoints).values()) {
      touched.add(exp);
    }
  }
  const goneFolders = [...known.keys()].filter((id) => !folders.has(id) || removedExp.has(id));
  if (gone.length || goneFolders.length || touched.size) {
    db.transaction(() => {
      db.deleteExperiments(gone);
      db.deleteFolders(goneFolders);
      for (const id of gone) indexed.delete(id);
      for (const id of touched) if (indexed.has(id)) applyRemovals(db, id, vis, indexed);
    });
  }

  // New folders, unfinished experiments, and resumed ones (the listing is sorted by id).
  let todo = listed.filter((id) =>
    !removedExp.has(id) && (!indexed.has(id) || unfinished.has(id) || resumed.has(id))
  );
  if (useSegments && todo.length >= SEGMENT_MIN) {
    const imported = await importSegments(store, db, vis, new Set(todo));
    todo = todo.filter((id) => !imported.has(id));
  }

  // Read the rest one folder at a time, stored in batches (memory stays bounded).
  let done = 0;
  let forSegment: SegmentInput[] = [];
  const flushSegment = async (force: boolean) => {
    if (forSegment.length >= SEGMENT_MAX || (force && forSegment.length >= SEGMENT_MIN)) {
      const batch = forSegment;
      forSegment = [];
      if (writeSegments) {
        const dropAt = vis.dropped?.at ?? null;
        await writeSegment(store, batch, basis, dropAt).catch(() => {});
      }
    }
  };
  for (let i = 0; i < todo.length; i += BATCH) {
    const ids = todo.slice(i, i + BATCH);
    const read = await pool(ids, 16, async (id) => {
      const folder = known.get(id);
      const s: Partial = db.state(id) ?? {
        ...emptyState(),
        keys: folder ? { ...folder.keys } : {},
        corrupt: folder ? { ...folder.corrupt } : {},
      };
      s.checkpoints = s.checkpoints.filter((c) => !vis.removedCheckpoints.has(c.id));
      await readExperiment(store, id, s, vis);
      options.progress?.(++done, todo.length);
      return [id, s] as const;
    });
    db.transaction(() => {
      for (const [id, s] of read) {
        if (!s.record) {
          db.putFolder(id, s.keys, s.corrupt);
          continue;
        }
        db.deleteFolders([id]);
        const finished = isFinished(s, vis);
        db.putExperiment(s as ExperimentState, finished);
        if (finished && !Object.keys(s.corrupt).length && !resumed.has(id)) {
          const list = s.checkpoints;
          forSegment.push({
            state: s as ExperimentState,
            best: bestCheckpoint(list, s.record.primary_metric),
            latest: list[list.length - 1] ?? null,
          });
        }
      }
    });
    await flushSegment(false);
  }
  await flushSegment(true);
  db.transaction(() => {
    db.setMeta("basis", basis);
    db.setMeta("folders_mark", mark);
  });
  return { visibility: vis, changes, folders, basis };
}

/** Leave removed checkpoints out of one experiment in the index, and recompute its summary. */
function applyRemovals(db: IndexDb, id: string, vis: Visibility, indexed: Set<string>): void {
  const st = db.stateOf(id);
  if (!st) return;
  if (st.pending) {
    // Only the summary is here: read the folder again (a few records).
    db.deleteExperiments([id]);
    indexed.delete(id);
    return;
  }
  const s = db.state(id);
  if (!s) return;
  const kept = s.checkpoints.filter((c) => !vis.removedCheckpoints.has(c.id));
  if (kept.length === s.checkpoints.length) return;
  db.putExperiment({ ...s, checkpoints: kept }, st.finished);
}

/**
 * Merge in the trusted segments not merged before, for experiments in `wanted` (present, not
 * removed, not known finished). Their checkpoint records stay in the segment until needed.
 */
async function importSegments(
  store: Store,
  db: IndexDb,
  vis: Visibility,
  wanted: Set<string>,
): Promise<Set<string>> {
  const loaded = db.segments();
  const keys = (await listSegments(store)).filter((k) => !loaded.has(k));
  const imported = new Set<string>();
  // One segment at a time (each is ~20 MB parsed), the next one read meanwhile.
  let next = keys.length ? readSegment(store, keys[0]!) : null;
  for (let i = 0; i < keys.length; i++) {
    const seg = await next!;
    next = i + 1 < keys.length ? readSegment(store, keys[i + 1]!) : null;
    if (!seg || !vis.trusts(seg.basis, seg.droppedAt)) continue;
    db.transaction(() => {
      const params = new Map<string, number>();
      const metrics = new Map<string, number>();
      for (const e of seg.experiments) {
        const id = e.state.record.id;
        if (!wanted.has(id)) continue;
        if (vis.removedCheckpointsOf.has(id)) continue; // its summary may count a removed one
        const { attempt, status } = newestAttempt(e.state);
        if ((vis.resumed.get(id) ?? 1) > attempt || !status) continue;
        db.putExperiment(e.state, true, {
          pending: seg.name,
          summary: { count: e.count, best: e.best, latest: e.latest },
          names: false,
        });
        addTypes(params, paramTypes(e.state.record.params));
        addTypes(metrics, e.metrics);
        wanted.delete(id);
        imported.add(id);
      }
      db.addNames("param", params);
      db.addNames("metric", metrics);
      db.addSegment(seg.key);
    });
  }
  // Format 1 tombstones do not say which experiment a removed checkpoint was in.
  if (vis.unattributedRemovals && imported.size) await loadCheckpoints(store, db, vis);
  return imported;
}

function addTypes(into: Map<string, number>, types: Record<string, number>): void {
  for (const k in types) into.set(k, (into.get(k) ?? 0) | types[k]!);
}

/**
 * Load the checkpoint records of experiments merged in from segments (all of them, or `ids`), so
 * that their views have every checkpoint. A segment whose checkpoints object is gone (compacted by
 * gc meanwhile) gives way to the experiments' own records.
 */
export async function loadCheckpoints(
  store: Store,
  db: IndexDb,
  vis: Visibility,
  ids?: Iterable<string>,
): Promise<void> {
  const pending = db.pending(ids);
  const fallback: string[] = [];
  await pool([...pending], 4, async ([name, exps]) => {
    const lists = await readSegmentCheckpoints(store, name);
    db.transaction(() => {
      for (const id of exps) {
        const list = lists?.get(id);
        if (list) db.loadPending(id, list.filter((c) => !vis.removedCheckpoints.has(c.id)));
        else fallback.push(id);
      }
    });
  });
  // Those the segments could not give: from their folders.
  await pool(fallback, 16, async (id) => {
    const s = emptyState();
    await readExperiment(store, id, s, vis);
    db.transaction(() => {
      if (!s.record) db.deleteExperiments([id]);
      else db.putExperiment(s as ExperimentState, isFinished(s, vis));
    });
  });
  // Recompute summaries for the removals a segment could not apply.
  if (vis.unattributedRemovals) {
    const indexed = new Set<string>();
    db.transaction(() => {
      for (const exp of new Set(db.experimentsOfCheckpoints(vis.removedCheckpoints).values())) {
        applyRemovals(db, exp, vis, indexed);
      }
    });
  }
}
