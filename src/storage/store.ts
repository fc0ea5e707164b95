/**
 * The byte-store interface every storage driver implements. Keys are POSIX strings relative to the
 * store's root (no leading slash, no `.` or `..` segments). Objects are immutable once written unless a
 * caller deliberately rewrites a key (heartbeats only).
 *
 * @module
 */

/** What a store knows about one object. */
export interface ObjectInfo {
  /** The object's key, relative to the store root. */
  key: string;
  /** Size in bytes. */
  size: number;
  /** Last modification time, when the backend reports it. */
  mtime?: Date;
}

/** A byte range: `length` bytes starting at `offset` (to the end when `length` is omitted). */
export interface ByteRange {
  offset: number;
  length?: number;
}

/** Options for {@link Store.list}. */
export interface ListOptions {
  /** Only keys strictly greater than this one (lexicographic), when the backend supports it. */
  startAfter?: string;
}

/** A part of an object read in order, block by block, over as few requests as possible. */
export interface ObjectRange {
  /**
   * Read the next bytes into `into`, up to its length or the end of the range. Returns them as a
   * view of `into`'s memory: a BYOB read transfers that memory, leaving `into` detached, so use
   * only the returned view afterwards (and reuse it for the next read). An empty view: the end.
   * Throws `NotFoundError` when the object is missing.
   */
  read(into: Uint8Array): Promise<Uint8Array>;
  /** Release the connection (or file). */
  close(): Promise<void>;
}

/** A storage backend: local directory, S3 or GCS. */
export interface Store {
  /** The URL this store was opened from (`file:///abs/path`, `s3://bucket/prefix`, `gs://…`). */
  readonly url: string;
  /**
   * Write an object atomically: readers see either nothing or the whole object. `data` may be bytes or
   * a stream; `size` helps drivers pick single-shot versus multipart uploads.
   */
  put(key: string, data: Uint8Array | ReadableStream<Uint8Array>, size?: number): Promise<void>;
  /** Read an object (or a range of it) as a stream. Throws `NotFoundError` when missing. */
  get(key: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>>;
  /** Read an object (or a range of it) into memory. Throws `NotFoundError` when missing. */
  getBytes(key: string, range?: ByteRange): Promise<Uint8Array>;
  /**
   * Optional: read the bytes at `offset` into `into` (up to its length, or the end of the object)
   * and return them as a view of `into`'s memory. The memory may be transferred to the driver
   * and back (a BYOB read), leaving `into` detached: use only the returned view afterwards, e.g.
   * to reuse the memory for the next read. Throws `NotFoundError` when missing.
   */
  getInto?(key: string, offset: number, into: Uint8Array): Promise<Uint8Array>;
  /**
   * Optional: the bytes `[offset, offset + length)` of an object as an {@link ObjectRange}, read
   * over one download (cloud) or one open file (local), resumed when it breaks. Nothing is
   * requested until the first read.
   */
  openRange?(key: string, offset: number, length: number): ObjectRange;
  /** Size and time of an object, or `null` when it does not exist. */
  head(key: string): Promise<ObjectInfo | null>;
  /** Every object whose key starts with `prefix`, in lexicographic key order. */
  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo>;
  /**
   * The distinct "sub-folders" directly under `prefix` (which should end with `/`): each returned
   * string is the full prefix up to and including the next `/`, in lexicographic order.
   */
  listPrefixes(prefix: string): AsyncIterable<string>;
  /**
   * Optional: a mark that changes whenever the entries directly under `prefix` change (a
   * sub-folder or an object added or removed), read without listing them, or `null` when no such
   * mark can be trusted now. A reader that listed them after reading mark M may skip the next
   * listing while the mark is still M.
   */
  foldersMark?(prefix: string): Promise<string | null>;
  /** Delete objects. Missing keys are not an error. */
  delete(keys: string[]): Promise<void>;
  /**
   * Optional: store a local file under `key`. The file may be moved (local stores rename it); callers
   * must not use `path` afterwards.
   */
  putFile?(key: string, path: string): Promise<void>;
  /** Release connections and timers. */
  close(): Promise<void>;
}
