/**
 * A generator of large repositories for the dedup start-up benchmark: `experiments` finished
 * experiments (format 2 records: experiment, one checkpoint, status), each with `packs` packs and
 * their pack index objects (`chunks` chunks each, random hashes), spread over the last 30 days,
 * the newest few within the last hour (so a warm cache's refresh lists some keys again, as it does
 * in a repository in use). Pack files are sparse files of the right size: nothing refers to their
 * chunks, so `rep verify` has nothing to read and `rep gc` would reclaim them. It checks what it
 * built by listing the repository through the store and reading the indexes back: distinct
 * experiment ids, packs, pack indexes and chunk hashes, each index naming a stored pack of its size.
 *
 * Run alone: `deno run -A bench/dedup_repo.ts DIR [EXPERIMENTS]`.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { newId } from "../src/format/ids.ts";
import {
  checkpointKey,
  experimentKey,
  packIndexKey,
  packIndexOfKey,
  packKey,
  packOfKey,
  PREFIX,
  REPOSITORY_KEY,
  statusKey,
} from "../src/format/layout.ts";
import { encodePackIndex, type PackEntry, parsePackIndex } from "../src/format/pack_index.ts";
import { LocalStore } from "../src/storage/local.ts";
import { pool } from "../src/util.ts";

/** What to generate. */
export interface GenerateOptions {
  experiments: number;
  /** Packs per experiment. @default 2 */
  packs?: number;
  /** Chunks per pack. @default 64 */
  chunks?: number;
  /** Pack indexes written within the last hour. @default 20 */
  recent?: number;
}

/** What was generated (checked against the store). */
export interface Generated {
  experiments: number;
  packs: number;
  indexObjects: number;
  chunks: number;
  /** Bytes of pack index objects. */
  indexBytes: number;
  seconds: number;
}

const enc = new TextEncoder();

/** Generate the repository in `dir` (which must not exist or be empty) and check it. */
export async function generateDedupRepo(dir: string, options: GenerateOptions): Promise<Generated> {
  const t0 = performance.now();
  const packsPer = options.packs ?? 2;
  const chunksPer = options.chunks ?? 64;
  const recent = options.recent ?? 20;
  const n = options.experiments;
  const now = Date.now();
  const span = 30 * 86400_000;
  const write = async (key: string, data: Uint8Array) => {
    const path = join(dir, key);
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeFile(path, data);
  };
  await Deno.mkdir(dir, { recursive: true });
  await write(REPOSITORY_KEY, enc.encode(JSON.stringify({ format: 2 })));
  let indexBytes = 0;
  await pool(Array.from({ length: n }, (_, i) => i), 16, async (i) => {
    // Oldest first; the last `recent` experiments within the last hour.
    const t = i >= n - recent
      ? now - (n - i) * (50 * 60_000 / recent)
      : now - span + (i / n) * (span - 3600_000);
    const created = new Date(t);
    const id = newId();
    const exp = {
      format: 2,
      type: "experiment",
      id,
      created: created.toISOString(),
      name: null,
      params: { lr: 10 ** -(1 + (i % 4)), seed: i },
      command: ["python", "train.py"],
      cwd: "/home/user/project",
      output: "output",
      host: "bench",
      user: "bench",
      platform: "linux-x86_64",
      rep_version: "0.1.0",
      git: null,
      code: null,
      tags: [],
      note: null,
      primary_metric: { name: "loss", goal: "minimize" },
      provenance: {},
    };
    await write(experimentKey(id), enc.encode(JSON.stringify(exp)));
    const cid = newId();
    const ck = {
      format: 2,
      type: "checkpoint",
      id: cid,
      experiment: id,
      attempt: 1,
      created: new Date(t + 1000).toISOString(),
      step: 1,
      metrics: { loss: 1 / (1 + (i % 10)) },
      primary_metric: { name: "loss", goal: "minimize" },
      files: null,
      torn: [],
      warnings: [],
    };
    await write(checkpointKey(id, cid), enc.encode(JSON.stringify(ck)));
    const status = {
      format: 2,
      type: "status",
      status: "succeeded",
      exit_code: 0,
      signal: null,
      finished: new Date(t + 2000).toISOString(),
    };
    await write(statusKey(id), enc.encode(JSON.stringify(status)));
    for (let p = 0; p < packsPer; p++) {
      const pid = newId();
      const hashes = randomBytes(32 * chunksPer).toString("hex");
      const entry: PackEntry = {
        id: pid,
        size: chunksPer * 65536,
        chunks: Array.from(
          { length: chunksPer },
          (_, c) => [hashes.slice(c * 64, c * 64 + 64), c * 65536, 65536],
        ),
      };
      const path = join(dir, packKey(pid));
      await Deno.mkdir(dirname(path), { recursive: true });
      using f = await Deno.open(path, { write: true, createNew: true });
      await f.truncate(entry.size);
      const bytes = encodePackIndex([entry], created);
      indexBytes += bytes.length;
      await write(packIndexKey(pid, new Date(t + p)), bytes);
    }
  });
  // Check what was built, through the store.
  const store = new LocalStore(dir);
  try {
    const expIds = new Set<string>();
    for await (const p of store.listPrefixes(PREFIX.experiments)) expIds.add(p);
    const packIds = new Set<string>();
    for await (const info of store.list(PREFIX.packs)) {
      const id = packOfKey(info.key);
      if (id && info.size === chunksPer * 65536) packIds.add(id);
    }
    const keys = (await Array.fromAsync(store.list(PREFIX.packIndex))).map((i) => i.key);
    const indexed = new Set<string>();
    const hashes = new Set<string>();
    let chunks = 0;
    await pool(keys, 16, async (k) => {
      for (const p of parsePackIndex(await store.getBytes(k), k).packs) {
        indexed.add(p.id);
        chunks += p.chunks.length;
        for (const c of p.chunks) hashes.add(c[0]);
      }
    });
    const experiments = expIds.size;
    const packs = packIds.size;
    // Distinct ids: experiments, packs (each of its size, each indexed), chunk hashes.
    const want = [n, n * packsPer, n * packsPer, n * packsPer, n * packsPer * chunksPer];
    const got = [experiments, packs, keys.length, indexed.size, hashes.size];
    if (want.some((w, i) => w !== got[i]) || chunks !== hashes.size) {
      throw new Error(
        "generated repository is wrong: distinct experiments, packs, indexes, indexed packs, " +
          `chunks ${got} != ${want} (${chunks} chunk entries)`,
      );
    }
    for (const id of indexed) {
      if (!packIds.has(id)) throw new Error(`pack index names pack ${id}, which is not stored`);
    }
    const hour = keys.filter((k) => packIndexOfKey(k)!.time.getTime() >= now - 3600_000);
    if (hour.length < Math.min(recent, n) * packsPer) {
      throw new Error(`only ${hour.length} pack indexes within the last hour`);
    }
    return {
      experiments,
      packs,
      indexObjects: keys.length,
      chunks,
      indexBytes,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await store.close();
  }
}

if (import.meta.main) {
  const [dir, count] = Deno.args;
  if (!dir) {
    console.error("Usage: deno run -A bench/dedup_repo.ts DIR [EXPERIMENTS]");
    Deno.exit(2);
  }
  console.log(await generateDedupRepo(dir, { experiments: Number(count ?? 10_000) }));
}
