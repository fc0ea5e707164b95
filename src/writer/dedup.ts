/**
 * Repository-wide dedup for one writer: the packer's map of known chunks falls back to the
 * {@link ChunkCache}, and chunks found there (in packs of other writers) are reused only after
 * {@link Dedup.check} has confirmed, shortly before a record refers to them, that their pack is
 * stored, has the size its index gave, and is not listed for deletion in `gc/`.
 *
 * Why that is enough: `rep gc` deletes a pack only after listing it in `gc/` for its grace
 * period, and only while nothing refers to it. A pack that was stored and not listed when checked
 * cannot be deleted before that check plus the grace period, and the record that refers to it is
 * uploaded long before (records are queued right after the check). A pack gc deleted is missing,
 * and one it listed is in the listing: both fail the check and are never used again (see
 * docs/format.md, _Pack index_).
 *
 * @module
 */
import { packKey, packOfKey } from "../format/layout.ts";
import type { PackEntry } from "../format/pack_index.ts";
import type { Store } from "../storage/store.ts";
import { gcCandidates } from "../catalog/gc_listings.ts";
import { pool } from "../util.ts";
import { ChunkCache, type RefreshResult } from "./chunk_cache.ts";
import type { ChunkLoc, SealedPack } from "./packer.ts";

/** How old the view of `gc/` may be when {@link Dedup.check} uses it. */
const GC_VIEW_MAX_AGE_MS = 60_000;

/**
 * The packer's known chunks: this writer's own chunks in the map itself, then (on a miss) the
 * repository's, from the chunk cache. Foreign packs handed out are collected for
 * {@link Dedup.check}; banned packs are never handed out.
 */
export class KnownChunks extends Map<string, ChunkLoc> {
  #cache: ChunkCache | null = null;
  /** Chunks of other writers known without the cache (the trees a resume starts from). */
  readonly #foreign = new Map<string, ChunkLoc>();
  readonly #banned = new Set<string>();
  /** Foreign packs handed out and not yet checked. */
  readonly unchecked: Set<string> = new Set();
  /** Foreign packs that passed a check. */
  readonly checked: Set<string> = new Set();

  /** Fall back to `cache` for chunks this writer has not stored itself (null: none). */
  useCache(cache: ChunkCache | null): void {
    this.#cache = cache;
  }

  /** A chunk of another writer's pack, handed out (and checked) like those of the cache. */
  addForeign(hash: string, loc: ChunkLoc): void {
    this.#foreign.set(hash, loc);
  }

  /** Never hand out chunks of `packs` again. */
  ban(packs: Iterable<string>): void {
    for (const p of packs) {
      this.#banned.add(p);
      this.unchecked.delete(p);
    }
  }

  override get(hash: string): ChunkLoc | undefined {
    const own = super.get(hash);
    if (own) return own;
    let loc = this.#foreign.get(hash);
    if (loc && this.#banned.has(loc[0])) loc = undefined;
    if (!loc && this.#cache) {
      try {
        loc = this.#cache.lookup(hash);
      } catch {
        // The cache is advisory: if it fails, go on without it.
        this.#cache = null;
      }
    }
    if (!loc || this.#banned.has(loc[0])) return undefined;
    if (!this.checked.has(loc[0])) this.unchecked.add(loc[0]);
    return loc;
  }
}

/** Options of {@link Dedup.open}. */
export interface DedupOptions {
  /** Use the chunk cache (and refresh it). @default true */
  cache?: boolean;
  /** The cache file (default: per repository and host under the cache folder). */
  cachePath?: string;
  /**
   * Milliseconds {@link Dedup.open} waits for the refresh; after that it goes on in the background
   * (a cold cache of a large repository takes seconds to fill) and lookups see what it has read so
   * far. @default 1000
   */
  wait?: number;
}

/** Repository-wide dedup state of one writer. */
export class Dedup {
  readonly known: KnownChunks = new KnownChunks();
  readonly cache: ChunkCache | null;
  /** What the refresh at open did, once it is done; null until then or when it failed. */
  refreshed: RefreshResult | null = null;
  /** Why the refresh at open failed (the cache is then used as it was). */
  refreshError: Error | null = null;
  /** Settles when the refresh at open is done (or failed, or stopped by {@link Dedup.close}). */
  ready: Promise<void> = Promise.resolve();
  #closed = false;
  readonly #store: Store;
  #gcView: { at: number; packs: Set<string> } | null = null;
  #own: PackEntry[] = [];
  #ownKeys: string[] = [];

  private constructor(store: Store, cache: ChunkCache | null) {
    this.#store = store;
    this.cache = cache;
    this.known.useCache(cache);
  }

  /**
   * Open the chunk cache of `store` and refresh it (one listing of new pack indexes and one of
   * `gc/`, then the new index objects), waiting at most `options.wait` for it. Never fails:
   * without a usable cache or storage, dedup stays within this writer.
   */
  static async open(store: Store, options: DedupOptions = {}): Promise<Dedup> {
    const cache = options.cache === false ? null : ChunkCache.open(store.url, options.cachePath);
    const d = new Dedup(store, cache);
    if (!cache) return d;
    const at = Date.now();
    d.ready = cache.refresh(store, { stopped: () => d.#closed }).then((r) => {
      d.refreshed = r;
      if (!d.#gcView || d.#gcView.at < at) d.#gcView = { at, packs: r.gcPacks };
    }, (e) => {
      d.refreshError = e instanceof Error ? e : new Error(String(e));
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      d.ready,
      new Promise((r) => timer = setTimeout(r, options.wait ?? 1000)),
    ]);
    clearTimeout(timer);
    return d;
  }

  async #gcPacks(): Promise<Set<string>> {
    if (this.#gcView && Date.now() - this.#gcView.at <= GC_VIEW_MAX_AGE_MS) {
      return this.#gcView.packs;
    }
    const at = Date.now();
    const packs = new Set<string>();
    for (const key of (await gcCandidates(this.#store)).keys()) {
      const pack = packOfKey(key);
      if (pack) packs.add(pack);
    }
    this.#gcView = { at, packs };
    return packs;
  }

  /**
   * Check the foreign packs handed out since the last check: each must be stored with the size
   * its index gave and not be listed in `gc/`. Returns the packs that failed (banned from now on;
   * the caller must store the chunks it took from them again). A pack that cannot be checked
   * (storage failing) fails too, for this writer only.
   */
  async check(): Promise<Set<string>> {
    const todo = [...this.known.unchecked];
    const bad = new Set<string>();
    if (!todo.length) return bad;
    const dead: string[] = [];
    let listed: Set<string> | null = null;
    try {
      listed = await this.#gcPacks();
    } catch {
      for (const p of todo) bad.add(p);
    }
    if (listed) {
      await pool(todo, 8, async (pack) => {
        if (listed.has(pack)) {
          bad.add(pack);
          dead.push(pack);
          return;
        }
        try {
          const info = await this.#store.head(packKey(pack));
          const size = this.cache?.packSize(pack) ?? null;
          if (!info || (size !== null && info.size !== size)) {
            bad.add(pack);
            dead.push(pack);
          } else {
            this.known.checked.add(pack);
            this.known.unchecked.delete(pack);
          }
        } catch {
          bad.add(pack);
        }
      });
    }
    this.known.ban(bad);
    try {
      this.cache?.markDead(dead);
    } catch {
      // the cache is advisory
    }
    return bad;
  }

  /** Remember a pack this writer sealed and queued with its index under `key`. */
  sealed(pack: SealedPack, key: string): void {
    this.#own.push({ id: pack.id, size: pack.size, chunks: pack.chunks });
    this.#ownKeys.push(key);
  }

  /**
   * Add this writer's packs to the cache, once they and their indexes are uploaded (so other
   * processes of this host may reuse them without reading their indexes back).
   */
  publish(): void {
    if (!this.cache || !this.#own.length) return;
    try {
      this.cache.add(this.#own, this.#ownKeys);
    } catch {
      // the cache is advisory; a later refresh reads the indexes
    }
    this.#own = [];
    this.#ownKeys = [];
  }

  /** Stop the refresh (if still going) and close the cache. */
  close(): void {
    this.#closed = true;
    this.cache?.close();
  }
}
