/**
 * `verify`: check every record, tree and chunk a repository's experiments refer to. Packs are read
 * sequentially once each and every referenced chunk is checked against its sha256. Records are all
 * read again (no cache, no shared segments: those would trust what was read before), and orphans
 * are reported: folders without `experiment.json`, heartbeats left beside a final status.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { CorruptObjectError, NotFoundError } from "../errors.ts";
import type { FileEntry } from "../format/records.ts";
import type { ExperimentView, Repository } from "../repository.ts";
import { pool } from "../util.ts";
import { packKey, treeKey } from "../format/layout.ts";
import { Catalog } from "../catalog/catalog.ts";
import { listChangeKeys, parseChangeObject } from "../catalog/changes.ts";
import { findOrphans, listExperimentKeys } from "./orphans.ts";

/** Orphans younger than this are not reported: their writer may be about to finish them. */
export const ORPHAN_MIN_AGE_MS = 10 * 60 * 1000;

/** One problem found. */
export interface Problem {
  /** The object at fault. */
  key: string;
  kind: "missing" | "corrupt" | "orphan";
  detail: string;
  /** Experiments and checkpoints affected (full ids). */
  affects: string[];
}

/** Result of {@link verifyRepository}. */
export interface VerifyResult {
  experiments: number;
  checkpoints: number;
  trees: number;
  packs: number;
  chunks: number;
  bytes: number;
  problems: Problem[];
}

/** Options of {@link verifyRepository}. */
export interface VerifyOptions {
  /** Only these experiments (already resolved). */
  experiments?: ExperimentView[];
  /** Only check that packs exist and are long enough; do not read chunk data. */
  quick?: boolean;
  /** Called as packs are checked. */
  progress?: (done: number, total: number) => void;
}

interface ChunkUse {
  offset: number;
  length: number;
  hash: string;
  owners: Set<string>;
}

/** Verify the repository (or some experiments of it). */
export async function verifyRepository(
  repo: Repository,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  const problems: Problem[] = [];
  const catalog = new Catalog(repo.store, { cache: false, segments: false });
  try {
    return await verifyWith(repo, catalog, options, problems);
  } finally {
    catalog.close();
  }
}

async function verifyWith(
  repo: Repository,
  catalog: Catalog,
  options: VerifyOptions,
  problems: Problem[],
): Promise<VerifyResult> {
  const everything = await catalog.list();
  const { visibility } = catalog.lastRefresh!;
  const all = options.experiments ?? everything;
  const only = options.experiments ? new Set(options.experiments.map((e) => e.id)) : null;
  // Records that failed to parse (an experiment whose own record is corrupt has no view).
  for (const e of everything) {
    if (only && !only.has(e.id)) continue;
    for (const [key, reason] of Object.entries(e.corrupt)) {
      problems.push({ key, kind: "corrupt", detail: reason, affects: [e.id] });
    }
  }
  for (const [id, f] of await catalog.folders()) {
    if (only && !only.has(id)) continue;
    for (const [key, reason] of Object.entries(f.corrupt)) {
      problems.push({ key, kind: "corrupt", detail: reason, affects: [id] });
    }
  }
  if (!only) {
    const orphans = findOrphans(
      await listExperimentKeys(repo.store),
      visibility,
      Date.now(),
      ORPHAN_MIN_AGE_MS,
    );
    for (const o of orphans) {
      problems.push({
        key: o.kind === "folder" ? `experiments/${o.experiment}/` : o.keys[0]!,
        kind: "orphan",
        detail: o.kind === "folder"
          ? `${o.keys.length} object(s) without an experiment record (rep gc deletes them)`
          : "a heartbeat left beside the final status (rep gc deletes it)",
        affects: [o.experiment],
      });
    }
    for (const key of await listChangeKeys(repo.store)) {
      try {
        parseChangeObject(await repo.store.getBytes(key), key);
      } catch (e) {
        if (e instanceof NotFoundError) continue;
        problems.push({
          key,
          kind: "corrupt",
          detail: e instanceof Error ? e.message : String(e),
          affects: [],
        });
      }
    }
  }
  // Trees: which experiments and checkpoints use each.
  const treeOwners = new Map<string, Set<string>>();
  let checkpoints = 0;
  for (const e of all) {
    if (e.record.code) add(treeOwners, e.record.code.tree, e.id);
    for (const c of e.checkpoints) {
      checkpoints++;
      if (c.files) add(treeOwners, c.files.tree, c.id);
    }
  }
  const packs = new Map<string, Map<string, ChunkUse>>();
  await pool([...treeOwners], 8, async ([hash, owners]) => {
    let files: FileEntry[];
    try {
      files = (await repo.tree(hash)).files;
    } catch (e) {
      if (e instanceof CorruptObjectError || e instanceof NotFoundError) {
        problems.push({
          key: treeKey(hash),
          kind: /Missing/.test(e.message) ? "missing" : "corrupt",
          detail: e.message,
          affects: [...owners],
        });
        return;
      }
      throw e;
    }
    for (const f of files) {
      for (const [pack, offset, length, chunkHash] of f.chunks) {
        const uses = packs.get(pack) ?? new Map<string, ChunkUse>();
        packs.set(pack, uses);
        const k = `${offset}:${length}`;
        const use = uses.get(k) ?? { offset, length, hash: chunkHash, owners: new Set() };
        for (const o of owners) use.owners.add(o);
        uses.set(k, use);
      }
    }
  });
  let chunks = 0;
  let bytes = 0;
  let done = 0;
  const packList = [...packs];
  await pool(packList, 4, async ([pack, uses]) => {
    const key = packKey(pack);
    const list = [...uses.values()].sort((a, b) => a.offset - b.offset);
    const owners = () => [...new Set(list.flatMap((u) => [...u.owners]))];
    const info = await repo.store.head(key);
    const need = Math.max(...list.map((u) => u.offset + u.length));
    if (!info) {
      problems.push({ key, kind: "missing", detail: "pack not found", affects: owners() });
    } else if (info.size < need) {
      problems.push({
        key,
        kind: "corrupt",
        detail: `pack is ${info.size} bytes, chunks need ${need}`,
        affects: owners(),
      });
    } else if (!options.quick) {
      const bad = await checkPack(repo, key, list);
      for (const u of bad) {
        problems.push({
          key,
          kind: "corrupt",
          detail: `chunk at ${u.offset} (+${u.length}) does not match its hash`,
          affects: [...u.owners],
        });
      }
    }
    chunks += list.length;
    bytes += list.reduce((n, u) => n + u.length, 0);
    options.progress?.(++done, packList.length);
  });
  return {
    experiments: all.length,
    checkpoints,
    trees: treeOwners.size,
    packs: packs.size,
    chunks,
    bytes,
    problems,
  };
}

function add(map: Map<string, Set<string>>, k: string, v: string): void {
  const s = map.get(k) ?? new Set<string>();
  s.add(v);
  map.set(k, s);
}

/** Stream a pack once and return the chunks whose bytes do not match their hash. */
async function checkPack(repo: Repository, key: string, uses: ChunkUse[]): Promise<ChunkUse[]> {
  const bad: ChunkUse[] = [];
  const end = Math.max(...uses.map((u) => u.offset + u.length));
  const stream = await repo.store.get(key, { offset: 0, length: end });
  let pos = 0; // bytes of the pack consumed
  let i = 0;
  let cur: { use: ChunkUse; h: ReturnType<typeof createHash>; left: number } | null = null;
  for await (const block of stream) {
    let o = 0;
    while (o < block.length) {
      if (!cur) {
        while (i < uses.length && uses[i]!.offset + uses[i]!.length <= pos + o) i++;
        const u = uses[i];
        if (!u) {
          o = block.length;
          break;
        }
        if (u.offset > pos + o) {
          o = Math.min(block.length, u.offset - pos);
          continue;
        }
        cur = { use: u, h: createHash("sha256"), left: u.length };
      }
      const take = Math.min(cur.left, block.length - o);
      cur.h.update(block.subarray(o, o + take));
      cur.left -= take;
      o += take;
      if (cur.left === 0) {
        if (cur.h.digest("hex") !== cur.use.hash) bad.push(cur.use);
        cur = null;
        i++;
      }
    }
    pos += block.length;
  }
  if (cur) bad.push(cur.use);
  return bad;
}
