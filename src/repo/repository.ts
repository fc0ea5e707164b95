/**
 * The repository: the object layout on top of a {@link Store}. Reading (listing, id resolution,
 * trees, file streams, checkout) lives here; writing goes through the recorder and the outbox.
 * See docs/format.md for the layout.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join, resolve as resolvePath, sep } from "node:path";
import {
  AmbiguousIdError,
  ConflictError,
  CorruptObjectError,
  FormatVersionError,
  NotFoundError,
  RepError,
  UsageError,
} from "../errors.ts";
import { newId, shortId } from "../format/ids.ts";
import {
  type CheckpointRecord,
  type ExperimentRecord,
  type FileEntry,
  FORMAT_VERSION,
  type Heartbeat,
  parseExperiment,
  parseJson,
  parseTree,
  type Status,
  type StatusRecord,
  type Tree,
} from "../format/records.ts";
import type { Store } from "../storage/store.ts";
import { openStore } from "../storage/open.ts";
import { LocalStore } from "../storage/local.ts";
import { cacheDir, jsonBytes, pool } from "../util.ts";
import { hashStream, WORKER_MIN_SIZE, workerByDefault } from "./snapshot.ts";
import { Hasher, Queue } from "./hasher.ts";
import {
  bestCheckpoint,
  type IndexData,
  indexPath,
  type Progress,
  refreshIndex,
} from "./index_cache.ts";

export { bestCheckpoint };

/** An experiment as listed: its records plus derived state. */
export interface ExperimentView {
  id: string;
  record: ExperimentRecord;
  checkpoints: CheckpointRecord[];
  /** `checkpoints.length`, known without reading the checkpoint list. */
  numCheckpoints: number;
  status: Status;
  statusRecord: StatusRecord | null;
  heartbeat: Heartbeat | null;
  best: CheckpointRecord | null;
  latest: CheckpointRecord | null;
  /** Keys of records that could not be read. */
  corrupt: Record<string, string>;
}

/** What an id prefix resolved to. */
export type Resolved =
  | { kind: "experiment"; experiment: ExperimentView }
  | { kind: "checkpoint"; experiment: ExperimentView; checkpoint: CheckpointRecord };

/** Options of {@link Repository.checkout}. */
export interface CheckoutOptions {
  /** Overwrite files that differ. */
  force?: boolean;
  /** Only these paths (files, or folders as prefixes). */
  paths?: string[];
  /** Called with each path written. */
  onFile?: (path: string, size: number) => void;
  /**
   * Verify large files' chunks in a worker thread while this one reads and writes (local stores
   * only; default: with three or more cores, see `workerByDefault` in snapshot.ts).
   */
  worker?: boolean;
}

/** A checkout result. */
export interface CheckoutResult {
  written: string[];
  unchanged: string[];
  bytes: number;
}

/** How stale a heartbeat may be before its experiment counts as crashed. */
export function heartbeatDeadline(hb: Heartbeat): number {
  return Date.parse(hb.updated) + (hb.interval * 3 + 30) * 1000;
}

/** A repository opened from a URL. */
export class Repository {
  readonly store: Store;
  readonly #cacheFile: string | null;
  #formatChecked = false;
  #index: IndexData | null = null;
  #trees = new Map<string, Tree>();

  constructor(store: Store, options: { cache?: boolean } = {}) {
    this.store = store;
    this.#cacheFile = options.cache === false ? null : indexPath(cacheDir(), store.url);
  }

  /** Open the repository at `url` (a path, `file://`, `s3://` or `gs://` URL). */
  static async open(
    url: string,
    options: { cache?: boolean; base?: string } = {},
  ): Promise<Repository> {
    return new Repository(await openStore(url, options.base), options);
  }

  /** The repository URL. */
  get url(): string {
    return this.store.url;
  }

  /**
   * Check `repository.json`: a repository of a newer format is refused. Returns the format, or
   * null when the repository has not been written yet.
   */
  async checkFormat(): Promise<number | null> {
    let bytes: Uint8Array;
    try {
      bytes = await this.store.getBytes("repository.json");
    } catch (e) {
      if (e instanceof NotFoundError) return null;
      throw e;
    }
    const v = parseJson(bytes, "repository.json") as { format?: unknown };
    const format = typeof v === "object" && v ? v.format : undefined;
    if (typeof format !== "number" || !Number.isInteger(format) || format < 1) {
      throw new CorruptObjectError(
        "Corrupt repository.json: it has no valid format number",
        `Check that ${this.url} is a rep repository`,
      );
    }
    if (format > FORMAT_VERSION) {
      throw new FormatVersionError(
        `Cannot use repository ${this.url}: it has format ${format}, and this rep reads up to ${FORMAT_VERSION}`,
        "Upgrade rep to a newer version",
      );
    }
    this.#formatChecked = true;
    return format;
  }

  /** Create `repository.json` when missing (writers call this before their first object). */
  async init(): Promise<void> {
    const format = await this.checkFormat();
    if (format === null) {
      await this.store.put("repository.json", jsonBytes({ format: FORMAT_VERSION }));
    }
  }

  /** Refresh and return the index. */
  async index(options: { full?: boolean; progress?: Progress } = {}): Promise<IndexData> {
    if (!this.#formatChecked) await this.checkFormat();
    this.#index = await refreshIndex(this.store, this.#cacheFile, options);
    return this.#index;
  }

  /** Every experiment not removed, newest first. */
  async list(options: { progress?: Progress; now?: number } = {}): Promise<ExperimentView[]> {
    const index = await this.index(options.progress ? { progress: options.progress } : {});
    return viewsOf(index, options.now ?? Date.now());
  }

  /**
   * Resolve an experiment or checkpoint id, or an unambiguous prefix of one. Pass `views` (from
   * {@link list}) to resolve many ids against one listing instead of refreshing it for each.
   */
  async resolve(prefix: string, views?: ExperimentView[]): Promise<Resolved> {
    const p = prefix.trim().toLowerCase();
    if (!/^[0-9a-f]{1,32}$/.test(p)) {
      throw new UsageError(
        `Invalid id "${prefix}": ids are hexadecimal`,
        "Use an id or prefix shown by `rep ls` or `rep show`",
      );
    }
    views ??= await this.list();
    const hits: Resolved[] = [];
    for (const e of views) {
      if (e.id.startsWith(p)) hits.push({ kind: "experiment", experiment: e });
      for (const c of e.checkpoints) {
        if (c.id.startsWith(p)) hits.push({ kind: "checkpoint", experiment: e, checkpoint: c });
      }
    }
    if (hits.length === 0) {
      throw new NotFoundError(
        `No experiment or checkpoint matches "${prefix}" in ${this.url}`,
        "Run `rep ls` to see experiment ids, `rep show ID` for checkpoint ids",
      );
    }
    if (hits.length > 1) {
      const ids = hits.map((h) => h.kind === "experiment" ? h.experiment.id : h.checkpoint.id);
      const lines = hits.map((h) =>
        h.kind === "experiment"
          ? `  experiment ${h.experiment.id}`
          : `  checkpoint ${h.checkpoint.id} (experiment ${shortId(h.experiment.id)})`
      );
      throw new AmbiguousIdError(
        `Ambiguous id "${prefix}": it matches ${hits.length} ids:\n${lines.join("\n")}`,
        ids,
        "Type more characters of the id",
      );
    }
    return hits[0]!;
  }

  /**
   * The view with its complete experiment record (listings keep records without provenance).
   */
  async withFullRecord(view: ExperimentView): Promise<ExperimentView> {
    const key = `experiments/${view.id}/experiment.json`;
    const record = parseExperiment(parseJson(await this.store.getBytes(key), key), key);
    return { ...view, record };
  }

  /** Read and verify a tree by its sha256. */
  async tree(hash: string): Promise<Tree> {
    const hit = this.#trees.get(hash);
    if (hit) return hit;
    const key = `trees/${hash}.json`;
    let bytes: Uint8Array;
    try {
      bytes = await this.store.getBytes(key);
    } catch (e) {
      if (e instanceof NotFoundError) {
        throw new CorruptObjectError(
          `Missing object ${key}: a record refers to a file list that is not in the repository`,
          "Run `rep verify` to list what is damaged",
        );
      }
      throw e;
    }
    const actual = createHash("sha256").update(bytes).digest("hex");
    if (actual !== hash) {
      throw new CorruptObjectError(
        `Corrupt object ${key}: its content hashes to ${actual.slice(0, 12)}…`,
        "Run `rep verify` to list what is damaged",
      );
    }
    const tree = parseTree(parseJson(bytes, key), key);
    this.#trees.set(hash, tree);
    return tree;
  }

  /**
   * Stream one file's bytes, fetching its chunks by ranged reads a few at a time and checking each
   * chunk's hash. Memory stays bounded whatever the file size.
   */
  fileStream(entry: FileEntry, options: { parallel?: number } = {}): ReadableStream<Uint8Array> {
    const ranges = groupRanges(entry);
    const store = this.store;
    const parallel = options.parallel ?? 4;
    const inflight: Promise<Uint8Array>[] = [];
    let next = 0;
    const fetchRange = async (r: Range): Promise<Uint8Array> => {
      let bytes: Uint8Array;
      try {
        bytes = await store.getBytes(`packs/${r.pack}`, { offset: r.offset, length: r.length });
      } catch (e) {
        if (e instanceof NotFoundError) {
          throw new CorruptObjectError(
            `Missing object packs/${r.pack}: it holds data of ${entry.path}`,
            "Run `rep verify` to list what is damaged",
          );
        }
        throw e;
      }
      if (bytes.length !== r.length) {
        throw new CorruptObjectError(
          `Corrupt object packs/${r.pack}: it is shorter than ${entry.path} needs`,
          "Run `rep verify` to list what is damaged",
        );
      }
      let o = 0;
      for (const [len, hash] of r.chunks) {
        const c = bytes.subarray(o, o + len);
        o += len;
        if (createHash("sha256").update(c).digest("hex") !== hash) throw corruptChunk(r, entry);
      }
      // The range's chunks are contiguous: hand them on as one block (fewer, larger writes).
      return bytes;
    };
    const fill = () => {
      while (inflight.length < parallel && next < ranges.length) {
        const p = fetchRange(ranges[next++]!);
        p.catch(() => {}); // surfaced when awaited in order
        inflight.push(p);
      }
    };
    return new ReadableStream<Uint8Array>({
      async pull(ctl) {
        fill();
        const p = inflight.shift();
        if (!p) {
          ctl.close();
          return;
        }
        ctl.enqueue(await p);
        fill();
      },
    }, { highWaterMark: 0 });
  }

  /**
   * Write `files` into `dir`. Paths are checked to stay inside `dir` (no symlinked parents are
   * followed); files that exist with different content are refused unless `force`.
   */
  async checkout(
    files: FileEntry[],
    dir: string,
    options: CheckoutOptions = {},
  ): Promise<CheckoutResult> {
    const root = resolvePath(dir);
    try {
      return await this.#checkout(files, root, options);
    } catch (e) {
      if (e instanceof Error && !(e instanceof RepError) && e.name in Deno.errors) {
        throw new ConflictError(
          `Cannot write into ${root}: ${e.message}`,
          "Check that the folder is writable, or choose another one (rep checkout -o DIR)",
          { cause: e },
        );
      }
      throw e;
    }
  }

  async #checkout(
    files: FileEntry[],
    root: string,
    options: CheckoutOptions,
  ): Promise<CheckoutResult> {
    let selected = files;
    if (options.paths?.length) {
      const wanted = options.paths.map((p) => p.replace(/^\.\/+/, "").replace(/\/+$/, ""));
      selected = files.filter((f) =>
        wanted.some((w) => f.path === w || f.path.startsWith(w + "/"))
      );
      const missing = wanted.filter((w) =>
        !files.some((f) => f.path === w || f.path.startsWith(w + "/"))
      );
      if (missing.length) {
        throw new NotFoundError(
          `No file ${missing.map((m) => JSON.stringify(m)).join(", ")} in this checkpoint`,
          "Run `rep show ID` to see its files",
        );
      }
    }
    await Deno.mkdir(root, { recursive: true });
    // Plan: check every destination before writing anything.
    const conflicts: string[] = [];
    const unchanged = new Set<string>();
    await pool(selected, 8, async (f) => {
      const dest = await safeDestination(root, f.path);
      let st: Deno.FileInfo;
      try {
        st = await Deno.lstat(dest);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return;
        throw e;
      }
      if (!st.isFile) {
        conflicts.push(`${f.path} (exists and is not a regular file)`);
        return;
      }
      if (st.size === f.size) {
        using file = await Deno.open(dest);
        const { hash } = await hashStream(file.readable);
        if (hash === f.hash) {
          unchanged.add(f.path);
          return;
        }
      }
      conflicts.push(f.path);
    });
    if (conflicts.length && !options.force) {
      conflicts.sort();
      const shown = conflicts.slice(0, 20).map((c) => `  ${c}`).join("\n");
      const more = conflicts.length > 20 ? `\n  … and ${conflicts.length - 20} more` : "";
      throw new ConflictError(
        `Cannot check out into ${root}: ${conflicts.length} file(s) exist with different content:\n${shown}${more}`,
        "Use --force to overwrite them, or -o DIR to check out somewhere else",
      );
    }
    const written: string[] = [];
    let bytes = 0;
    // Large files are verified in a worker (on another core) while this thread reads and writes.
    let hasher: Hasher | null = null;
    try {
      await this.#writeFiles(
        selected.filter((f) => !unchanged.has(f.path)),
        root,
        options,
        () => (hasher ??= new Hasher()),
        (path, size) => {
          written.push(path);
          bytes += size;
        },
      );
    } finally {
      (hasher as Hasher | null)?.close();
    }
    return { written: written.sort(), unchanged: [...unchanged].sort(), bytes };
  }

  #writeFiles(
    files: FileEntry[],
    root: string,
    options: CheckoutOptions,
    hasher: () => Hasher,
    done: (path: string, size: number) => void,
  ): Promise<void> {
    return pool(files, 4, async (f) => {
      const dest = await safeDestination(root, f.path);
      await Deno.mkdir(dirname(dest), { recursive: true });
      // Re-check the parent after creating it: it must not have become a symlink.
      await safeDestination(root, f.path);
      const tmp = `${dest}.rep-${newId().slice(0, 8)}.tmp`;
      try {
        const file = await Deno.open(tmp, {
          write: true,
          createNew: true,
          mode: f.mode & 0o777 & ~0o022 | 0o600,
        });
        try {
          if (this.store instanceof LocalStore) {
            await writeFromLocalPacks(
              this.store,
              f,
              file,
              f.size >= WORKER_MIN_SIZE && (options.worker ?? workerByDefault()) ? hasher() : null,
            );
          } else {
            // Plain writes of whole verified ranges while the next ranges are fetched.
            for await (const block of this.fileStream(f)) await writeAll(file, block);
          }
        } finally {
          file.close();
        }
        const st = await Deno.lstat(dest).catch(() => null);
        if (st && !st.isFile && !st.isSymlink) {
          throw new ConflictError(
            `Cannot write ${f.path}: ${
              st.isDirectory ? "a folder" : "something that is not a regular file"
            } is in the way`,
            "Remove it, or check out into another folder with -o DIR",
          );
        }
        await Deno.rename(tmp, dest);
      } catch (e) {
        await Deno.remove(tmp).catch(() => {});
        throw e;
      }
      done(f.path, f.size);
      options.onFile?.(f.path, f.size);
    }).then(() => {});
  }

  /** Record that experiments and checkpoints are removed (one small object, whatever the count). */
  async remove(experiments: string[], checkpoints: string[]): Promise<void> {
    if (!experiments.length && !checkpoints.length) return;
    const created = new Date().toISOString();
    const key = `tombstones/${created.replace(/[-:.]/g, "")}-${newId().slice(0, 12)}.json`;
    await this.store.put(
      key,
      jsonBytes({ format: FORMAT_VERSION, type: "tombstone", created, experiments, checkpoints }),
    );
    this.#index = null;
  }

  /** Release the store. */
  async close(): Promise<void> {
    await this.store.close();
  }
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off));
}

function corruptChunk(r: Range, entry: FileEntry): CorruptObjectError {
  return new CorruptObjectError(
    `Corrupt data in packs/${r.pack}: a chunk of ${entry.path} does not match its hash`,
    "Run `rep verify` to list what is damaged",
  );
}

/** Buffers per file in flight through checkout's read → verify → write pipeline. */
const CHECKOUT_BUFFERS = 4;
/** When the worker has this many ranges queued, the main thread verifies the next one itself. */
const WORKER_BACKLOG = 2;

/** Hex sha256 of each chunk of a range read into `buf`, in-thread. */
function hashChunks(buf: Uint8Array, r: Range): string[] {
  const out: string[] = [];
  let o = 0;
  for (const [len] of r.chunks) {
    out.push(createHash("sha256").update(buf.subarray(o, o + len)).digest("hex"));
    o += len;
  }
  return out;
}

/**
 * Reads byte ranges of a local store's packs into caller buffers, keeping the last pack open
 * (consecutive ranges of a file are mostly in one pack). Missing or short packs are reported as
 * corrupt data of `entry`.
 */
class PackReader {
  #open: { pack: string; file: Deno.FsFile } | null = null;
  constructor(readonly store: LocalStore, readonly entry: FileEntry) {}

  /** Fill `buf` (from its start) with range `r`. */
  async read(r: Range, buf: Uint8Array): Promise<void> {
    if (this.#open?.pack !== r.pack) {
      this.close();
      try {
        this.#open = {
          pack: r.pack,
          file: await Deno.open(this.store.path(`packs/${r.pack}`)),
        };
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) {
          throw new CorruptObjectError(
            `Missing object packs/${r.pack}: it holds data of ${this.entry.path}`,
            "Run `rep verify` to list what is damaged",
          );
        }
        throw e;
      }
    }
    const file = this.#open!.file;
    await file.seek(r.offset, Deno.SeekMode.Start);
    const view = buf.subarray(0, r.length);
    let n = 0;
    while (n < view.length) {
      const got = await file.read(view.subarray(n));
      if (got === null) break;
      n += got;
    }
    if (n !== r.length) {
      throw new CorruptObjectError(
        `Corrupt object packs/${r.pack}: it is shorter than ${this.entry.path} needs`,
        "Run `rep verify` to list what is damaged",
      );
    }
  }

  close(): void {
    this.#open?.file.close();
    this.#open = null;
  }
}

/**
 * {@link writeFromLocalPacks} without a worker: read each range into one of three reused buffers,
 * verify its chunks in-thread, and write it, with the next range read and the previous one written
 * meanwhile.
 */
async function writeFromLocalPacksInThread(
  store: LocalStore,
  entry: FileEntry,
  out: Deno.FsFile,
): Promise<void> {
  const ranges = groupRanges(entry);
  const free: Uint8Array[] = [];
  const packs = new PackReader(store, entry);
  const readRange = async (r: Range): Promise<Uint8Array> => {
    let buf = free.pop();
    if (!buf || buf.length < r.length) buf = new Uint8Array(Math.max(MAX_RANGE, r.length));
    await packs.read(r, buf);
    return buf;
  };
  let reading: Promise<Uint8Array> | null = null;
  let writing: Promise<void> = Promise.resolve();
  try {
    if (ranges.length) reading = readRange(ranges[0]!);
    for (let k = 0; k < ranges.length; k++) {
      const r = ranges[k]!;
      const buf = await reading!;
      reading = null;
      if (k + 1 < ranges.length) reading = readRange(ranges[k + 1]!);
      let o = 0;
      for (const [len, hash] of r.chunks) {
        if (createHash("sha256").update(buf.subarray(o, o + len)).digest("hex") !== hash) {
          throw corruptChunk(r, entry);
        }
        o += len;
      }
      await writing;
      writing = writeAll(out, buf.subarray(0, r.length)).then(() => {
        free.push(buf);
      });
    }
    await writing;
  } finally {
    // Let reads and writes in flight finish before their files close.
    await Promise.allSettled([reading, writing]);
    packs.close();
  }
}

/**
 * Checkout's path for a local store: read each range of packs straight into one of a few reused
 * buffers, verify its chunks, and write it, as a pipeline: the next range is read and this one
 * verified in the `hasher` worker while the previous one is written (without a hasher:
 * {@link writeFromLocalPacksInThread}).
 * Reusing buffers keeps memory flat (no garbage buffers for the collector to chase).
 *
 * @internal Exported for tests.
 */
export async function writeFromLocalPacks(
  store: LocalStore,
  entry: FileEntry,
  out: Deno.FsFile,
  hasher: Hasher | null = null,
): Promise<void> {
  if (!hasher) return writeFromLocalPacksInThread(store, entry, out);
  const ranges = groupRanges(entry);
  if (!ranges.length) return;
  // Sized to the largest range (small files get small buffers); whole buffers, for the worker.
  const size = ranges.reduce((m, r) => Math.max(m, r.length), 0);
  const free = new Queue<Uint8Array>();
  for (let i = 0; i < Math.min(CHECKOUT_BUFFERS, ranges.length); i++) {
    free.put(new Uint8Array(size));
  }
  const blocks = new Queue<{ r: Range; hashed: Promise<{ buf: Uint8Array; hashes: string[] }> }>();
  const owned = new Set<Promise<unknown>>();
  const packs = new PackReader(store, entry);
  let failed = false;
  const readRange = (r: Range, buf: Uint8Array): Promise<void> => packs.read(r, buf);
  const produce = async () => {
    // One read ahead: the next range is read while this one is verified.
    let reading: Promise<void> | null = null;
    try {
      let buf = await free.take();
      if (!buf || failed) return;
      reading = readRange(ranges[0]!, buf);
      for (let k = 0; k < ranges.length; k++) {
        const r = ranges[k]!;
        await reading;
        reading = null;
        if (failed) return;
        let next: Uint8Array | null = null;
        if (k + 1 < ranges.length) {
          next = await free.take();
          if (!next || failed) return;
          reading = readRange(ranges[k + 1]!, next);
        }
        let hashed: Promise<{ buf: Uint8Array; hashes: string[] }>;
        if (hasher?.ready && hasher.pending < WORKER_BACKLOG) {
          const spans: number[] = [];
          let o = 0;
          for (const [len] of r.chunks) spans.push(o, o += len);
          hashed = hasher.hash(buf, spans);
          owned.add(hashed);
          hashed.catch(() => {}).finally(() => owned.delete(hashed));
        } else {
          hashed = Promise.resolve({ buf, hashes: hashChunks(buf, r) });
        }
        blocks.put({ r, hashed });
        if (!next) return;
        buf = next;
      }
    } finally {
      // Never leave a read in flight (the pack file closes after this).
      if (reading) await (reading as Promise<void>).catch(() => {});
      blocks.close();
    }
  };
  const producing = produce();
  producing.catch(() => {
    failed = true;
  });
  try {
    for (;;) {
      const blk = await blocks.take();
      if (!blk) break;
      const { buf, hashes } = await blk.hashed;
      for (let i = 0; i < hashes.length; i++) {
        if (hashes[i] !== blk.r.chunks[i]![1]) throw corruptChunk(blk.r, entry);
      }
      await writeAll(out, buf.subarray(0, blk.r.length));
      free.put(buf);
    }
    await producing;
  } finally {
    failed = true;
    free.close();
    // Let the read in flight and the worker finish before the pack file closes.
    await producing.catch(() => {});
    await Promise.allSettled([...owned]);
    packs.close();
  }
}

interface Range {
  pack: string;
  offset: number;
  length: number;
  chunks: [number, string][];
}

const MAX_RANGE = 8 * 1024 * 1024;

function groupRanges(entry: FileEntry): Range[] {
  const out: Range[] = [];
  for (const [pack, offset, length, hash] of entry.chunks) {
    const last = out[out.length - 1];
    if (
      last && last.pack === pack && last.offset + last.length === offset &&
      last.length + length <= MAX_RANGE
    ) {
      last.length += length;
      last.chunks.push([length, hash]);
    } else {
      out.push({ pack, offset, length, chunks: [[length, hash]] });
    }
  }
  return out;
}

/**
 * The absolute destination of `rel` inside `root`, refusing anything that would leave it: absolute
 * paths, `..`, and any existing parent folder that is a symlink.
 */
export async function safeDestination(root: string, rel: string): Promise<string> {
  const parts = rel.split("/");
  if (
    rel.startsWith("/") || rel.includes("\\") || rel.includes("\0") ||
    parts.some((p) => p === "" || p === "." || p === "..")
  ) {
    throw new ConflictError(
      `Refusing to write ${JSON.stringify(rel)}: the path leaves the target folder`,
      "The repository holds a hostile or damaged file list; run `rep verify`",
    );
  }
  const dest = join(root, ...parts);
  if (!dest.startsWith(root + sep)) {
    throw new ConflictError(`Refusing to write ${JSON.stringify(rel)}: the path leaves ${root}`);
  }
  let cur = root;
  for (const p of parts.slice(0, -1)) {
    cur = join(cur, p);
    const st = await Deno.lstat(cur).catch(() => null);
    if (!st) break;
    if (st.isSymlink) {
      throw new ConflictError(
        `Refusing to write ${rel}: ${cur} is a symlink, which could lead outside ${root}`,
        "Remove the symlink or check out into an empty folder",
      );
    }
    if (!st.isDirectory) {
      throw new ConflictError(`Cannot write ${rel}: ${cur} exists and is not a folder`);
    }
  }
  return dest;
}

/** Turn an index into experiment views: tombstones applied, status derived, best/latest picked. */
export function viewsOf(index: IndexData, now: number): ExperimentView[] {
  const goneExp = new Set<string>();
  const goneCk = new Set<string>();
  for (const t of Object.values(index.tombstones)) {
    for (const id of t.experiments) goneExp.add(id);
    for (const id of t.checkpoints) goneCk.add(id);
  }
  const out: ExperimentView[] = [];
  for (const [id, e] of Object.entries(index.experiments)) {
    if (!e.record || goneExp.has(id)) continue;
    let status: Status;
    if (e.status) status = e.status.status;
    else if (e.heartbeat) status = heartbeatDeadline(e.heartbeat) >= now ? "running" : "crashed";
    else status = Date.parse(e.record.created) + 120_000 >= now ? "running" : "crashed";
    const base = {
      id,
      record: e.record,
      status,
      statusRecord: e.status,
      heartbeat: e.heartbeat,
      corrupt: e.corrupt,
    };
    if (e.summary && goneCk.size === 0) {
      // From the cached summary; the checkpoint list itself is parsed only if someone reads it.
      const view = {
        ...base,
        numCheckpoints: e.summary.count,
        best: e.summary.best,
        latest: e.summary.latest,
      } as ExperimentView;
      Object.defineProperty(view, "checkpoints", {
        get: () => e.checkpoints,
        enumerable: true,
        configurable: true,
      });
      out.push(view);
      continue;
    }
    const checkpoints = e.checkpoints.filter((c) => !goneCk.has(c.id));
    out.push({
      ...base,
      checkpoints,
      numCheckpoints: checkpoints.length,
      best: bestCheckpoint(checkpoints, e.record.primary_metric),
      latest: checkpoints[checkpoints.length - 1] ?? null,
    });
  }
  out.sort((a, b) => (a.record.created < b.record.created ? 1 : -1));
  return out;
}
