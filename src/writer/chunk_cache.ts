/**
 * The chunk cache: a local SQLite copy of the repository's pack indexes (`pack-index/`), so that a
 * writer knows which chunks the repository already holds and stores none of them again, across
 * experiments and machines. It is refreshed incrementally: one listing of the index objects written
 * since the newest one seen (less a safety window), reading only objects not read before, plus the
 * `gc/` listings, whose packs are never reused. A store whose `foldersMark` says `pack-index/` is
 * unchanged since the last listing (a local folder) is not listed again. See docs/format.md,
 * _Pack index_.
 *
 * The cache is advisory: deleting it loses nothing, and what it says is checked before a record
 * refers to it (see `Dedup.check`). One file per repository and host under `$REP_CACHE_DIR/chunks/`
 * (a home folder shared over NFS by many hosts never has two hosts writing one SQLite file);
 * processes of one host share it (WAL mode, short transactions).
 *
 * Measured (2 shared cores, 1M chunks): a lookup takes 4–5 µs, an insert about 5 µs, the file
 * about 45 bytes per chunk.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { CorruptObjectError, NotFoundError } from "../errors.ts";
import { packIndexListStart, packIndexOfKey, packOfKey, PREFIX } from "../format/layout.ts";
import { type PackEntry, parsePackIndex } from "../format/pack_index.ts";
import type { Store } from "../storage/store.ts";
import { gcCandidates } from "../catalog/gc_listings.ts";
import { cacheDir, pool } from "../util.ts";
import type { ChunkLoc } from "./packer.ts";

/** Version of the cache's tables; a cache of another version is rebuilt. */
const SCHEMA = "2";

/**
 * A refresh lists again the index keys of this long before the newest key seen: `<time>` in a key
 * is when its pack was sealed, and the index is uploaded after the pack (seconds to minutes later,
 * longer during an outage), and clocks of machines differ.
 */
export const REFRESH_WINDOW_MS = 2 * 3600 * 1000;

/** A refresh adds chunks to the cache in transactions of about this many. */
const BATCH_CHUNKS = 10_000;

/** What one {@link ChunkCache.refresh} did. */
export interface RefreshResult {
  /** Index keys listed. */
  listed: number;
  /** Index objects read (the others were read before). */
  read: number;
  /** Packs and chunks added to the cache. */
  packs: number;
  chunks: number;
  /** Packs listed in `gc/` (never reused). */
  listedForDeletion: number;
  /** True when the cache was empty: every index object was listed. */
  full: boolean;
  /** False when the refresh was stopped before it read everything it listed. */
  complete: boolean;
}

interface PackInfo {
  id: string;
  size: number | null;
  dead: boolean;
}

const TABLES = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS packs (
  n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, size INTEGER, dead INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS chunks (
  h BLOB NOT NULL, pack INTEGER NOT NULL, off INTEGER NOT NULL, len INTEGER NOT NULL,
  tail BLOB NOT NULL, PRIMARY KEY (h, pack, off)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (key TEXT PRIMARY KEY) WITHOUT ROWID;
`;

/** The cache file of the repository at `url` on this host. */
export function chunkCachePath(url: string): string {
  const h = createHash("sha256").update(`${url}\n${hostname()}`).digest("hex").slice(0, 24);
  return join(cacheDir(), "chunks", `${h}.sqlite`);
}

function isCorrupt(e: unknown): boolean {
  return e instanceof Error && /not a database|malformed|corrupt/i.test(e.message);
}

function removeDb(path: string): void {
  for (const suffix of ["", "-wal", "-shm"]) {
    try {
      Deno.removeSync(path + suffix);
    } catch {
      // not there
    }
  }
}

/** Cache files unused for this long are deleted (other hosts' and repositories' caches too). */
const UNUSED_MS = 30 * 86400_000;

/**
 * Delete cache files in `dir` not modified for {@link UNUSED_MS} (a home folder shared by hosts
 * that come and go, like containers, would otherwise collect one per host). Best effort.
 */
function sweepOldCaches(dir: string, keep: string): void {
  try {
    const now = Date.now();
    for (const e of Deno.readDirSync(dir)) {
      if (!e.isFile || !e.name.endsWith(".sqlite")) continue;
      const path = join(dir, e.name);
      if (path === keep) continue;
      const mtime = Deno.statSync(path).mtime?.getTime() ?? now;
      if (now - mtime > UNUSED_MS) removeDb(path);
    }
  } catch {
    // a cache folder we cannot sweep is fine
  }
}

/** A repository's chunk cache on this host. Open with {@link ChunkCache.open}. */
export class ChunkCache {
  /** The SQLite file. */
  readonly path: string;
  #db: DatabaseSync;
  #lookup: StatementSync;
  #packByN: StatementSync;
  #packById: StatementSync;
  #insertPack: StatementSync;
  #insertChunk: StatementSync;
  #seen: StatementSync;
  #markSeen: StatementSync;
  #unpend: StatementSync;
  #closed = false;
  /** Pack number → pack, for packs met by lookups in this process. */
  #packs = new Map<number, PackInfo>();

  private constructor(db: DatabaseSync, path: string) {
    this.#db = db;
    this.path = path;
    this.#lookup = db.prepare("SELECT pack, off, len, tail FROM chunks WHERE h = ?");
    this.#packByN = db.prepare("SELECT id, size, dead FROM packs WHERE n = ?");
    this.#packById = db.prepare("SELECT n, dead FROM packs WHERE id = ?");
    this.#insertPack = db.prepare("INSERT INTO packs (id, size, dead) VALUES (?, ?, ?)");
    this.#insertChunk = db.prepare("INSERT OR IGNORE INTO chunks VALUES (?, ?, ?, ?, ?)");
    this.#seen = db.prepare("SELECT 1 AS x FROM seen WHERE key = ?");
    this.#markSeen = db.prepare("INSERT OR IGNORE INTO seen VALUES (?)");
    this.#unpend = db.prepare("DELETE FROM pending WHERE key = ?");
  }

  /**
   * Open (or create) the cache at `path` (default: {@link chunkCachePath} of `url`). A damaged file
   * or one of another version is rebuilt; returns null when no cache can be opened (read-only
   * cache folder, …): the writer then deduplicates within its own run only.
   */
  static open(url: string, path: string = chunkCachePath(url)): ChunkCache | null {
    for (let attempt = 0; attempt < 2; attempt++) {
      let db: DatabaseSync | null = null;
      try {
        Deno.mkdirSync(dirname(path), { recursive: true });
        db = new DatabaseSync(path);
        db.exec("PRAGMA busy_timeout = 10000");
        db.exec("PRAGMA journal_mode = WAL");
        db.exec("PRAGMA synchronous = NORMAL");
        db.exec(TABLES);
        const row = db.prepare("SELECT v FROM meta WHERE k = 'schema'").get() as
          | { v: string }
          | undefined;
        if (!row) {
          db.prepare("INSERT OR IGNORE INTO meta VALUES ('schema', ?)").run(SCHEMA);
          db.prepare("INSERT OR IGNORE INTO meta VALUES ('url', ?)").run(url);
        } else if (row.v === SCHEMA) {
          // Mark the file as in use (see sweepOldCaches).
          db.prepare("INSERT OR REPLACE INTO meta VALUES ('opened', ?)").run(
            new Date().toISOString(),
          );
        } else {
          db.close();
          db = null;
          removeDb(path);
          continue;
        }
        sweepOldCaches(dirname(path), path);
        return new ChunkCache(db, path);
      } catch (e) {
        try {
          db?.close();
        } catch {
          // already closed
        }
        if (attempt === 0 && isCorrupt(e)) {
          removeDb(path);
          continue;
        }
        return null;
      }
    }
    return null;
  }

  /** Where the repository holds the chunk with this sha256 (hex), if the cache knows it. */
  lookup(hash: string): ChunkLoc | undefined {
    const bin = Buffer.from(hash, "hex");
    const rows = this.#lookup.all(bin.subarray(0, 16)) as {
      pack: number;
      off: number;
      len: number;
      tail: Uint8Array;
    }[];
    for (const r of rows) {
      if (!bin.subarray(16).equals(r.tail)) continue;
      const pack = this.#pack(r.pack);
      if (pack && !pack.dead) return [pack.id, r.off, r.len];
    }
    return undefined;
  }

  #pack(n: number): PackInfo | undefined {
    let p = this.#packs.get(n);
    if (!p) {
      const row = this.#packByN.get(n) as
        | { id: string; size: number | null; dead: number }
        | undefined;
      if (!row) return undefined;
      p = { id: row.id, size: row.size, dead: row.dead !== 0 };
      this.#packs.set(n, p);
    }
    return p;
  }

  /** The size a pack index gave for `pack`, or null when unknown. */
  packSize(pack: string): number | null {
    const row = this.#db.prepare("SELECT size FROM packs WHERE id = ?").get(pack) as
      | { size: number | null }
      | undefined;
    return row?.size ?? null;
  }

  /** Has the index object `key` been read into the cache? */
  seen(key: string): boolean {
    return this.#seen.get(key) !== undefined;
  }

  /** The newest index key read, or null for an empty cache. */
  newest(): string | null {
    return this.#meta("newest");
  }

  #meta(k: string): string | null {
    const row = this.#db.prepare("SELECT v FROM meta WHERE k = ?").get(k) as
      | { v: string }
      | undefined;
    return row?.v ?? null;
  }

  #tx<T>(fn: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const v = fn();
      this.#db.exec("COMMIT");
      return v;
    } catch (e) {
      this.#db.exec("ROLLBACK");
      throw e;
    }
  }

  /**
   * Add packs (those the cache already has, or knows dead, are skipped) and mark the index
   * objects they came from as read, in one transaction. Rows go in in key order, which keeps
   * large batches (a cold cache) fast.
   */
  add(packs: PackEntry[], keys: string[] = []): { packs: number; chunks: number } {
    return this.#tx(() => {
      let np = 0;
      const rows: { key: Buffer; n: number; off: number; len: number }[] = [];
      const ids = new Set<string>();
      for (const p of packs) {
        if (ids.has(p.id) || this.#packById.get(p.id)) continue;
        ids.add(p.id);
        const n = Number(this.#insertPack.run(p.id, p.size, 0).lastInsertRowid);
        for (const [h, off, len] of p.chunks) {
          rows.push({ key: Buffer.from(h, "hex"), n, off, len });
        }
        np++;
      }
      rows.sort((a, b) => Buffer.compare(a.key, b.key));
      for (const r of rows) {
        this.#insertChunk.run(r.key.subarray(0, 16), r.n, r.off, r.len, r.key.subarray(16));
      }
      for (const k of keys) {
        this.#markSeen.run(k);
        this.#unpend.run(k);
      }
      return { packs: np, chunks: rows.length };
    });
  }

  /** Never hand out chunks of these packs again (listed by gc, or found missing). */
  markDead(packs: Iterable<string>): void {
    const ids = [...packs];
    if (!ids.length) return;
    this.#tx(() => {
      const update = this.#db.prepare("UPDATE packs SET dead = 1 WHERE n = ?");
      for (const id of ids) {
        const row = this.#packById.get(id) as { n: number; dead: number } | undefined;
        if (!row) this.#insertPack.run(id, null, 1);
        else if (!row.dead) update.run(row.n);
        if (row) this.#packs.delete(row.n);
      }
    });
  }

  /**
   * Bring the cache up to date with the repository: list the index objects written since the
   * newest one listed before (less {@link REFRESH_WINDOW_MS}) and `gc/`, mark the packs listed in
   * `gc/` dead, note the index objects not read yet as pending, then read the pending ones,
   * newest first (the likeliest to be reused). When `stopped()` turns true it stops reading: what
   * was read is kept (unless the cache was closed), and the next refresh reads the rest without
   * listing it again. Returns the `gc/` pack ids too.
   */
  async refresh(
    store: Store,
    options: { stopped?: () => boolean } = {},
  ): Promise<RefreshResult & { gcPacks: Set<string> }> {
    const stopped = options.stopped ?? (() => false);
    const newest = this.newest();
    const lastMark = this.#meta("pack_index_mark");
    const since = newest ? packIndexOfKey(newest)?.time : undefined;
    const start = since
      ? packIndexListStart(new Date(since.getTime() - REFRESH_WINDOW_MS))
      : undefined;
    const listing = (async () => {
      const keys: string[] = [];
      // A store that can tell the folder has not changed since the last listing (a local folder
      // of 20,000 indexes) is not listed again: nothing was added to it since.
      const mark = await store.foldersMark?.(PREFIX.packIndex) ?? null;
      if (mark !== null && mark === lastMark) return { keys, mark };
      const opts = start ? { startAfter: start } : undefined;
      for await (const info of store.list(PREFIX.packIndex, opts)) {
        if (packIndexOfKey(info.key)) keys.push(info.key);
      }
      return { keys, mark };
    })();
    const [{ keys, mark }, gc] = await Promise.all([listing, gcCandidates(store)]);
    const gcPacks = new Set<string>();
    for (const key of gc.keys()) {
      const pack = packOfKey(key);
      if (pack) gcPacks.add(pack);
    }
    const result = {
      listed: keys.length,
      read: 0,
      packs: 0,
      chunks: 0,
      listedForDeletion: gcPacks.size,
      full: !newest,
      complete: false,
      gcPacks,
    };
    if (stopped() || this.#closed) return result;
    this.markDead(gcPacks);
    // What this listing found is noted at once: a refresh stopped early resumes from here.
    const last = keys[keys.length - 1];
    this.#tx(() => {
      const pend = this.#db.prepare("INSERT OR IGNORE INTO pending VALUES (?)");
      for (const k of keys) if (!this.seen(k)) pend.run(k);
      if (last && (!newest || last > newest)) {
        this.#db.prepare(
          "INSERT OR REPLACE INTO meta VALUES ('newest', max(?, coalesce(" +
            "(SELECT v FROM meta WHERE k = 'newest'), '')))",
        ).run(last);
        // Keys at or before the next refresh's starting point are never listed again.
        const t = packIndexOfKey(last)!.time.getTime() - REFRESH_WINDOW_MS;
        this.#db.prepare("DELETE FROM seen WHERE key <= ?").run(packIndexListStart(new Date(t)));
      }
      // Taken before the listing: a key added meanwhile changed the folder, so it is listed next.
      if (mark !== null) {
        this.#db.prepare("INSERT OR REPLACE INTO meta VALUES ('pack_index_mark', ?)").run(mark);
      }
    });
    const todo = (this.#db.prepare("SELECT key FROM pending ORDER BY key DESC").all() as {
      key: string;
    }[]).map((r) => r.key);
    // Objects are read a few at a time and added in batches of about BATCH_CHUNKS chunks (each a
    // short synchronous transaction: the event loop runs between them).
    let batch: PackEntry[] = [];
    let batchKeys: string[] = [];
    let batchChunks = 0;
    const flush = () => {
      if (!batchKeys.length || this.#closed) return;
      const r = this.add(batch, batchKeys);
      result.packs += r.packs;
      result.chunks += r.chunks;
      batch = [];
      batchKeys = [];
      batchChunks = 0;
    };
    await pool(todo, 8, async (key) => {
      if (stopped()) return;
      let entries: PackEntry[] = [];
      try {
        entries = parsePackIndex(await store.getBytes(key), key).packs;
      } catch (e) {
        // Compacted by gc meanwhile, or damaged (which costs only dedup): done with it.
        if (!(e instanceof NotFoundError) && !(e instanceof CorruptObjectError)) throw e;
      }
      result.read++;
      batch.push(...entries);
      batchKeys.push(key);
      for (const p of entries) batchChunks += p.chunks.length;
      if (batchChunks >= BATCH_CHUNKS) flush();
    });
    flush();
    if (stopped() || this.#closed) return result;
    result.complete = true;
    return result;
  }

  /** Close the database. */
  close(): void {
    this.#closed = true;
    try {
      this.#db.close();
    } catch {
      // already closed
    }
  }
}
