/**
 * The outbox: objects staged on local disk, uploaded to the store in the background. Data objects
 * (packs, trees) upload in parallel; an index (a pack's index) uploads in parallel too, but only
 * after every data object queued before it; a record uploads only after every item queued before
 * it, in queue order. That order is what guarantees a reader never sees a record whose data is missing.
 * The queue lives in files (`<seq>_<kind>_<key>`), so a crash loses nothing: a later `rep` command
 * finishes it with {@link Outbox.recover}.
 *
 * @module
 */
import { join } from "node:path";
import { hostname } from "node:os";
import type { Store } from "../storage/store.ts";

/**
 * `data` items have no ordering constraint; `index` items wait for the data items before them;
 * `record` items wait for everything before them, one at a time.
 */
export type ItemKind = "data" | "index" | "record";

interface Item {
  seq: number;
  kind: ItemKind;
  key: string;
  path: string;
  size: number;
  done: boolean;
  started: boolean;
}

/** Progress of an outbox. */
export interface OutboxState {
  items: number;
  bytes: number;
  /** The last upload error while storage is failing, else null. */
  error: string | null;
}

/** Options of an {@link Outbox}. */
export interface OutboxOptions {
  /** Parallel data uploads. @default 4 */
  concurrency?: number;
  /** Called when uploads start failing and when they recover. */
  onStorageError?: (error: Error | null) => void;
}

const encodeKey = (key: string) => key.replaceAll("/", "~");
const decodeKey = (name: string) => name.replaceAll("~", "/");

/** Upload `path` to `key` in `store`, moving the file when the store is local. */
export async function uploadFile(store: Store, key: string, path: string): Promise<void> {
  if (store.putFile) return await store.putFile(key, path);
  const st = await Deno.stat(path);
  const file = await Deno.open(path);
  await store.put(key, file.readable, st.size);
}

/** A directory-backed upload queue for one writer. */
export class Outbox {
  readonly dir: string;
  readonly store: Store;
  #items: Item[] = [];
  #seq = 0;
  #concurrency: number;
  #active = 0;
  /** The last upload error, while uploads are failing. */
  #error: Error | null = null;
  /** Uploads wait for the retry timer. */
  #paused = false;
  #waiters: (() => void)[] = [];
  /** Who waits for no upload to be in flight. */
  #idleWaiters: (() => void)[] = [];
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #onStorageError: ((error: Error | null) => void) | undefined;
  /** Record keys stored so far, and who waits for a record key to be stored. */
  #storedRecords = new Set<string>();
  #recordWaiters = new Map<string, { resolve: () => void; reject: (e: Error) => void }[]>();

  private constructor(dir: string, store: Store, options: OutboxOptions) {
    this.dir = dir;
    this.store = store;
    this.#concurrency = options.concurrency ?? 4;
    this.#onStorageError = options.onStorageError;
  }

  /** Create a new, empty outbox in `dir` (which must not exist yet or be empty). */
  static async create(dir: string, store: Store, options: OutboxOptions = {}): Promise<Outbox> {
    await Deno.mkdir(join(dir, "queue"), { recursive: true });
    await Deno.mkdir(join(dir, "tmp"), { recursive: true });
    await Deno.writeTextFile(
      join(dir, "owner.json"),
      JSON.stringify({ pid: Deno.pid, host: hostname(), started: new Date().toISOString() }),
    );
    return new Outbox(dir, store, options);
  }

  /** Directory for files being written before they are queued (same filesystem as the queue). */
  get tmpDir(): string {
    return join(this.dir, "tmp");
  }

  /** Queue an existing file (it is moved into the queue). */
  async addFile(key: string, path: string, kind: ItemKind): Promise<void> {
    const seq = ++this.#seq;
    const dest = join(
      this.dir,
      "queue",
      `${String(seq).padStart(10, "0")}_${kind}_${encodeKey(key)}`,
    );
    await Deno.rename(path, dest);
    const size = (await Deno.stat(dest)).size;
    this.#items.push({ seq, kind, key, path: dest, size, done: false, started: false });
    this.#pump();
  }

  /** Queue bytes as an object. */
  async addBytes(key: string, bytes: Uint8Array, kind: ItemKind): Promise<void> {
    const tmp = join(this.tmpDir, `${crypto.randomUUID()}`);
    await Deno.writeFile(tmp, bytes);
    await this.addFile(key, tmp, kind);
  }

  /** What is still to upload. */
  state(): OutboxState {
    let items = 0;
    let bytes = 0;
    for (const it of this.#items) {
      if (!it.done) {
        items++;
        bytes += it.size;
      }
    }
    return { items, bytes, error: this.#error ? this.#error.message : null };
  }

  #pump(): void {
    if (this.#stopped || this.#paused) return;
    // Records go one at a time, in order, each after everything queued before it; data items
    // behind a waiting record still upload.
    let allBeforeDone = true;
    let dataBeforeDone = true;
    let recordBlocked = false;
    for (const it of this.#items) {
      if (this.#active >= this.#concurrency) break;
      if (it.done) continue;
      if (it.kind === "record") {
        if (!recordBlocked && allBeforeDone && !it.started) {
          it.started = true;
          this.#active++;
          this.#upload(it);
        }
        recordBlocked = true;
      } else if (it.kind === "index") {
        if (dataBeforeDone && !it.started) {
          it.started = true;
          this.#active++;
          this.#upload(it);
        }
      } else if (!it.started) {
        it.started = true;
        this.#active++;
        this.#upload(it);
      }
      if (it.kind === "data") dataBeforeDone = false;
      allBeforeDone = false;
    }
    if (this.#items.every((i) => i.done)) {
      this.#items = [];
      for (const w of this.#waiters.splice(0)) w();
    }
  }

  async #upload(it: Item): Promise<void> {
    try {
      await uploadFile(this.store, it.key, it.path);
      await Deno.remove(it.path).catch(() => {});
      it.done = true;
      if (it.kind === "record") {
        this.#storedRecords.add(it.key);
        for (const w of this.#recordWaiters.get(it.key) ?? []) w.resolve();
        this.#recordWaiters.delete(it.key);
      }
      if (this.#error) {
        this.#error = null;
        this.#onStorageError?.(null);
      }
    } catch (e) {
      it.started = false;
      const err = e instanceof Error ? e : new Error(String(e));
      if (!this.#error) this.#onStorageError?.(err);
      this.#error = err;
      // Retry everything a little later; storage outages must not lose queued objects.
      this.#paused = true;
      clearTimeout(this.#retryTimer);
      this.#retryTimer = setTimeout(() => {
        this.#paused = false;
        this.#pump();
      }, 2000);
    } finally {
      this.#active--;
      if (this.#active === 0) { for (const w of this.#idleWaiters.splice(0)) w(); }
      this.#pump();
    }
  }

  /**
   * Resolve once no upload is in flight. After {@link stop}, no upload starts, so this is when the
   * last one started has ended (and only the files on disk are left to {@link Outbox.recover}).
   */
  idle(): Promise<void> {
    if (this.#active === 0) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  /** Resolve once everything queued so far is uploaded. */
  drain(): Promise<void> {
    if (this.#items.every((i) => i.done)) return Promise.resolve();
    return new Promise((r) => this.#waiters.push(r));
  }

  /**
   * Resolve once the record queued under `key` is stored (and so, by queue order, everything
   * queued before it). Rejects when uploading stops first, or when no such record was queued.
   */
  whenStored(key: string): Promise<void> {
    if (this.#storedRecords.has(key)) return Promise.resolve();
    if (!this.#items.some((i) => i.key === key && i.kind === "record")) {
      return Promise.reject(new RangeError(`No record ${key} was queued in this outbox`));
    }
    if (this.#stopped) return Promise.reject(new Error("Uploads stopped"));
    return new Promise((resolve, reject) => {
      const list = this.#recordWaiters.get(key) ?? [];
      list.push({ resolve, reject });
      this.#recordWaiters.set(key, list);
    });
  }

  /** Stop uploading (what is queued stays on disk for a later {@link Outbox.recover}). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    for (const list of this.#recordWaiters.values()) {
      for (const w of list) w.reject(new Error("Uploads stopped"));
    }
    this.#recordWaiters.clear();
  }

  /** Remove the outbox directory once everything is uploaded. */
  async remove(): Promise<void> {
    clearTimeout(this.#retryTimer);
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /**
   * Finish an outbox left by a process that died: upload its queue in order (data, then indexes,
   * then records)
   * and remove it. Returns the number of objects uploaded.
   */
  static async recover(dir: string, store: Store): Promise<number> {
    const qdir = join(dir, "queue");
    let names: string[];
    try {
      names = (await Array.fromAsync(Deno.readDir(qdir))).filter((e) => e.isFile).map((e) => e.name)
        .sort();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) names = [];
      else throw e;
    }
    let n = 0;
    const upload = async (name: string) => {
      try {
        await uploadFile(store, decodeKey(name.split("_").slice(2).join("_")), join(qdir, name));
        await Deno.remove(join(qdir, name)).catch(() => {});
        n++;
      } catch (e) {
        // Gone meanwhile: uploaded by its owner's last attempt.
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    };
    // Data first (any order, a few at a time), then indexes, then records in sequence order.
    for (const kind of ["data", "index"]) {
      const items = names.filter((x) => x.split("_")[1] === kind);
      for (let i = 0; i < items.length; i += 4) {
        await Promise.all(items.slice(i, i + 4).map(upload));
      }
    }
    for (const name of names.filter((x) => x.split("_")[1] === "record")) await upload(name);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    return n;
  }

  /** Read an outbox's owner (pid and host), or null when absent. */
  static async owner(dir: string): Promise<{ pid: number; host: string; started: string } | null> {
    try {
      return JSON.parse(await Deno.readTextFile(join(dir, "owner.json")));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof SyntaxError) return null;
      throw e;
    }
  }
}
