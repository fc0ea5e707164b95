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
import { UsageError } from "../errors.ts";
import { packKey, packOfKey } from "../format/layout.ts";
import type { PackChunk } from "../format/pack_index.ts";
import type { ChunkRef, Tree } from "../format/records.ts";
import type { Store } from "../storage/store.ts";
import { gcCandidates } from "../catalog/gc_listings.ts";
import { ChunkCache, type RefreshResult } from "./chunk_cache.ts";
import type { ChunkLoc, SealedPack } from "./packer.ts";

/** How old the view of `gc/` may be when {@link Dedup.check} uses it. */
const GC_VIEW_MAX_AGE_MS = 60_000;
/** How long {@link Dedup.check} waits for storage before it gives up on reusing. */
export const CHECK_TIMEOUT_MS = 2_000;
/** A snapshot that takes fewer bytes than this from a pack waits at most SMALL_WAIT_MS for it. */
export const SMALL_REUSE = 1024 * 1024;
/**
 * How long a checkpoint waits for the check of a pack it takes little from: none (one turn of the
 * event loop, for checks already answered). The training is frozen meanwhile, and while storage
 * stalls (before uploads are known to fail) even 0.3 s per checkpoint held training up.
 */
export const SMALL_WAIT_MS = 0;

/** Wait for `p` (its outcome is not needed), at most `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    p.catch(() => {}),
    new Promise((r) => timer = setTimeout(r, ms)),
  ]);
  clearTimeout(timer);
}
/**
 * Is repository-wide dedup on, as far as the environment says? `REP_DEDUP=off` (or `0`) turns it
 * off: the writer neither reads nor fills the chunk cache and dedups within its experiment only.
 */
export function dedupFromEnv(env: { get(key: string): string | undefined } = Deno.env): boolean {
  const v = env.get("REP_DEDUP")?.trim().toLowerCase();
  if (v === undefined || v === "" || v === "on" || v === "1") return true;
  if (v === "off" || v === "0") return false;
  throw new UsageError(
    `REP_DEDUP is "${env.get("REP_DEDUP")}"`,
    "Set REP_DEDUP to on or off (off: no chunks are reused from other experiments)",
  );
}

/** After storage failed a check, the cache is left out for this long. */
export const CACHE_PAUSE_MS = 10 * 60_000;

/**
 * The packer's known chunks: this writer's own chunks in the map itself, then (on a miss) the
 * repository's, from the chunk cache. Foreign packs handed out are collected for
 * {@link Dedup.check}; banned packs are never handed out.
 */
export class KnownChunks extends Map<string, ChunkLoc> {
  #cache: ChunkCache | null = null;
  /** Chunks of other writers known without the cache (the trees a resume starts from). */
  readonly #foreign = new Map<string, ChunkLoc>();
  readonly #seededPacks = new Set<string>();
  #pausedUntil = 0;
  readonly #banned = new Set<string>();
  /** Foreign packs handed out and not yet checked. */
  readonly unchecked: Set<string> = new Set();
  /** Foreign packs that passed a check. */
  readonly checked: Set<string> = new Set();
  /** Called when a foreign pack is first handed out. */
  onForeign: ((pack: string) => void) | null = null;
  /** Called for the packs of {@link KnownChunks.addForeign} (it may be called again per pack). */
  prefetch: ((pack: string) => void) | null = null;

  /** Fall back to `cache` for chunks this writer has not stored itself (null: none). */
  useCache(cache: ChunkCache | null): void {
    this.#cache = cache;
  }

  /**
   * A chunk of another writer's pack, handed out (and checked) like those of the cache; the check
   * of its pack starts now, so that it is done when the pack is first used.
   */
  addForeign(hash: string, loc: ChunkLoc): void {
    this.#foreign.set(hash, loc);
    if (!this.#seededPacks.has(loc[0])) {
      this.#seededPacks.add(loc[0]);
      this.prefetch?.(loc[0]);
    }
  }

  /** Was `pack` given by {@link KnownChunks.addForeign} (a tree the writer starts from)? */
  seeded(pack: string): boolean {
    return this.#seededPacks.has(pack);
  }

  /** Hand out no chunks of the cache (nor foreign ones) until `until` (a time in ms). */
  pauseCache(until: number): void {
    this.#pausedUntil = until;
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
    if (own || (this.#pausedUntil && Date.now() < this.#pausedUntil)) return own;
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
    if (!this.checked.has(loc[0]) && !this.unchecked.has(loc[0])) {
      this.unchecked.add(loc[0]);
      this.onForeign?.(loc[0]);
    }
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
   * Milliseconds after {@link Dedup.open} that {@link Dedup.refreshWait} waits for the refresh
   * until; after that it goes on in the background (a cold cache of a large repository takes
   * seconds to fill) and lookups see what it has read so far. @default 1000
   */
  wait?: number;
  /** Milliseconds {@link Dedup.check} waits for storage. @default CHECK_TIMEOUT_MS */
  checkTimeout?: number;
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
  /** Until when (ms since the epoch) {@link Dedup.refreshWait} waits for {@link Dedup.ready}. */
  #waitUntil = 0;
  #closed = false;
  readonly #store: Store;
  #checkTimeout = CHECK_TIMEOUT_MS;
  #gcView: { at: number; packs: Set<string> } | null = null;
  #gcFetch: Promise<{ at: number; packs: Set<string> }> | null = null;
  /** Checks of foreign packs, started when first handed out, and their results once settled. */
  readonly #checks = new Map<string, Promise<"ok" | "dead">>();
  readonly #results = new Map<string, "ok" | "dead" | "error">();
  /** The time of the view of `gc/` each check used (good for records queued within a minute). */
  readonly #viewAt = new Map<string, number>();
  /** Is storage known to be failing (the writer's uploads)? Then checks are not waited for. */
  storageFailing: () => boolean = () => false;
  #own: { id: string; size: number; refs: ChunkRef[] }[] = [];
  #ownKeys: string[] = [];

  private constructor(store: Store, cache: ChunkCache | null) {
    this.#store = store;
    this.cache = cache;
    this.known.useCache(cache);
    this.known.onForeign = (pack) => this.#startCheck(pack);
    this.known.prefetch = (pack) => this.#startCheck(pack);
  }

  /**
   * Open the chunk cache of `store` and start refreshing it in the background (one listing of new
   * pack indexes and one of `gc/`, then the new index objects); nothing waits for that here: a
   * writer that never snapshots (`rep run --no-code -- true`) is not held up by it, and the first
   * snapshot waits for it through {@link Dedup.refreshWait}. Never fails: without a usable cache
   * or storage, dedup stays within this writer.
   */
  static open(store: Store, options: DedupOptions = {}): Promise<Dedup> {
    const cache = options.cache === false ? null : ChunkCache.open(store.url, options.cachePath);
    const d = new Dedup(store, cache);
    d.#checkTimeout = options.checkTimeout ?? CHECK_TIMEOUT_MS;
    if (!cache) return Promise.resolve(d);
    const at = Date.now();
    d.#waitUntil = at + (options.wait ?? 1000);
    d.ready = cache.refresh(store, { stopped: () => d.#closed }).then((r) => {
      d.refreshed = r;
      if (!d.#gcView || d.#gcView.at < at) d.#gcView = { at, packs: r.gcPacks };
    }, (e) => {
      d.refreshError = e instanceof Error ? e : new Error(String(e));
    });
    return Promise.resolve(d);
  }

  /**
   * Wait for the refresh started by {@link Dedup.open}, at most until `options.wait` after open
   * (a snapshot taken later than that does not wait at all; lookups then see what the refresh has
   * read so far). Call before a snapshot: a warm cache is then up to date for it.
   */
  async refreshWait(): Promise<void> {
    const left = this.#waitUntil - Date.now();
    if (left <= 0 || this.refreshed || this.refreshError) return;
    await within(this.ready, left);
  }

  /** The packs listed in `gc/`, from a view at most {@link GC_VIEW_MAX_AGE_MS} old. */
  #gcPacks(): Promise<{ at: number; packs: Set<string> }> {
    if (this.#gcView && Date.now() - this.#gcView.at <= GC_VIEW_MAX_AGE_MS) {
      return Promise.resolve(this.#gcView);
    }
    this.#gcFetch ??= (async () => {
      const at = Date.now();
      const packs = new Set<string>();
      for (const key of (await gcCandidates(this.#store)).keys()) {
        const pack = packOfKey(key);
        if (pack) packs.add(pack);
      }
      this.#gcView = { at, packs };
      return this.#gcView;
    })().finally(() => {
      this.#gcFetch = null;
    });
    return this.#gcFetch;
  }

  /** Start checking `pack` (as soon as a chunk of it is handed out, so it runs meanwhile). */
  #startCheck(pack: string): void {
    if (this.#checks.has(pack)) return;
    const p = (async (): Promise<"ok" | "dead"> => {
      const view = await this.#gcPacks();
      this.#viewAt.set(pack, view.at);
      if (view.packs.has(pack)) return "dead";
      const info = await this.#store.head(packKey(pack));
      const size = this.cache?.packSize(pack) ?? null;
      return !info || (size !== null && info.size !== size) ? "dead" : "ok";
    })();
    this.#checks.set(pack, p);
    const settle = (r: "ok" | "dead" | "error") => {
      if (this.#checks.get(pack) === p) this.#results.set(pack, r);
    };
    p.then(settle, () => settle("error"));
  }

  /**
   * Check the foreign packs handed out since the last check: each must be stored with the size
   * its index gave and not be listed in `gc/` (the checks start when a pack is first handed out).
   * Returns the packs that failed (banned from now on; the caller must store the chunks it took
   * from them again). Checkpoints are not held up for little gain or by storage: a pack that
   * `tree` (the snapshot) takes less than {@link SMALL_REUSE} bytes from (and that no tree the
   * writer starts from holds) is used only if its check is answered within {@link SMALL_WAIT_MS}
   * (at once), the others are waited for at most
   * `checkTimeout`, none while storage is known to be failing. Packs not confirmed fail (for this
   * writer only); when storage failed them, the cache is left out for {@link CACHE_PAUSE_MS}.
   */
  async check(tree?: Tree): Promise<Set<string>> {
    const todo = [...this.known.unchecked];
    const bad = new Set<string>();
    if (!todo.length) return bad;
    for (const pack of todo) {
      // A result from a view of gc/ that is too old by now (a check started long before the pack
      // was used, or a very long snapshot) is taken again.
      const at = this.#viewAt.get(pack);
      if (at !== undefined && Date.now() - at > GC_VIEW_MAX_AGE_MS) {
        this.#checks.delete(pack);
        this.#results.delete(pack);
        this.#viewAt.delete(pack);
      }
      this.#startCheck(pack);
    }
    // How long each check may still take: little reuse is not worth holding a checkpoint up.
    const bytes = new Map<string, number>();
    for (const f of tree?.files ?? []) {
      for (const c of f.chunks) bytes.set(c[0], (bytes.get(c[0]) ?? 0) + c[2]);
    }
    const patience = (p: string) =>
      !tree || this.known.seeded(p) || (bytes.get(p) ?? 0) >= SMALL_REUSE
        ? this.#checkTimeout
        : Math.min(SMALL_WAIT_MS, this.#checkTimeout);
    if (!this.storageFailing()) {
      await Promise.all(todo.map((p) => within(this.#checks.get(p)!, patience(p))));
    }
    // Let the results just settled be recorded.
    await Promise.resolve();
    const dead: string[] = [];
    let failed = false;
    for (const pack of todo) {
      const r = this.#results.get(pack);
      if (r === "ok") {
        this.known.checked.add(pack);
        this.known.unchecked.delete(pack);
        continue;
      }
      bad.add(pack);
      if (r === "dead") dead.push(pack);
      else if (r === "error" || patience(pack) === this.#checkTimeout) failed = true;
    }
    this.known.ban(bad);
    if (failed) this.known.pauseCache(Date.now() + CACHE_PAUSE_MS);
    try {
      this.cache?.markDead(dead);
    } catch {
      // the cache is advisory
    }
    return bad;
  }

  /** Remember a pack this writer sealed and queued with its index under `key`. */
  sealed(pack: SealedPack, key: string): void {
    // The references, not the pack index's chunk list: they are kept anyway (by the trees).
    this.#own.push({ id: pack.id, size: pack.size, refs: pack.refs });
    this.#ownKeys.push(key);
  }

  /**
   * Add this writer's packs to the cache, once they and their indexes are uploaded (so other
   * processes of this host may reuse them without reading their indexes back). One pack at a
   * time: what a pack's rows cost is freed before the next (a 4 GiB file has 65,000 chunks).
   */
  publish(): void {
    if (!this.cache || !this.#own.length) return;
    try {
      for (let i = 0; i < this.#own.length; i++) {
        const { id, size, refs } = this.#own[i]!;
        const chunks = refs.map((r): PackChunk => [r[3], r[1], r[2]]);
        this.cache.add([{ id, size, chunks }], [this.#ownKeys[i]!]);
      }
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
