/**
 * The Google Cloud Storage driver.
 *
 * Credentials are Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, `gcloud auth
 * application-default login`, or the metadata server on Google Cloud). The project comes from
 * `GOOGLE_CLOUD_PROJECT` / `GCLOUD_PROJECT` (only bucket creation needs one).
 *
 * `STORAGE_EMULATOR_HOST` points the driver at an emulator (the Firebase Storage emulator, or
 * fake-gcs-server). Both `http://host:port` and the Firebase-style bare `host:port` work: the SDK
 * itself would prefix a bare host with `https://` and use the raw variable as its request base, so
 * we normalise it to `http://host:port` and set the base URL ourselves. No credentials are used
 * with an emulator.
 *
 * Uploads: bodies up to 16 MiB (including streams that end within their first 16 MiB, which are
 * buffered) go in one multipart request, which the SDK can retry. Larger bodies use a resumable
 * upload without `chunkSize`, i.e. one streamed PUT. Chunked resumable uploads (`chunkSize` set:
 * several PUTs with `Content-Range`) never complete on the Firebase emulator, which finalises an
 * upload on its first PUT; the single-PUT form works on the emulator and on GCS.
 *
 * Retries follow `retry.ts`, shared with the S3 driver: transient failures (408/429/5xx,
 * connection reset/refused, timeouts) are retried with backoff, 5 attempts in all (the SDK retries
 * uploads, listings and deletes; downloads are ours). Downloads go through `fetch`: a response
 * that does not start within the stall timeout, or a body that stops, is retried, and a broken
 * body resumes from the last byte received, pinned to the same object generation; a ranged read
 * lands straight in the caller's buffer. Downloads skip the SDK's hash validation (it cannot span
 * resumed ranges); the repository verifies content hashes itself.
 *
 * @module
 */
import { type File, IdempotencyStrategy, Storage, type StorageOptions } from "../deps/gcs.ts";
import { NotFoundError, StorageError } from "../errors.ts";
import { KeyPrefix } from "./prefix.ts";
import {
  errorText,
  isNetworkError,
  MAX_ATTEMPTS,
  RETRY_WINDOW_MS,
  retryDelay,
  sleep,
  STALL_TIMEOUT_MS,
  StallError,
  unreachable,
} from "./retry.ts";
import {
  downloadInto,
  emptyStream,
  type GiveUp,
  type Opener,
  RangeReader,
  readAll,
  resumingStream,
} from "./streams.ts";
import type { ByteRange, ListOptions, ObjectInfo, ObjectRange, Store } from "./store.ts";

/** Bodies up to this size go in one (retryable) multipart request. */
const SINGLE_PUT_MAX = 16 * 1024 * 1024;
/** Seconds after which the SDK stops retrying a request (the retry window plus a last attempt). */
const RETRY_TOTAL_TIMEOUT = (RETRY_WINDOW_MS + STALL_TIMEOUT_MS) / 1000;
/** Page size for listings. */
const PAGE_SIZE = 1000;
/** Deletes in flight at once (GCS has no multi-object delete in its JSON API). */
const DELETE_CONCURRENCY = 16;

/** Overrides for tests and embedders; everything defaults to the environment. */
export interface GcsStoreOptions {
  /** API endpoint, e.g. an emulator's `http://127.0.0.1:9199` (default: `STORAGE_EMULATOR_HOST`). */
  apiEndpoint?: string;
  /** Project id (default: `GOOGLE_CLOUD_PROJECT`, `GCLOUD_PROJECT`). */
  projectId?: string;
  /** Path of a service-account key file (default: ADC). */
  keyFilename?: string;
  /** Attempts per request (default 5). */
  maxAttempts?: number;
}

/** A {@link Store} on a Cloud Storage bucket, under an optional key prefix. */
export class GcsStore implements Store {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  /** The custom endpoint (emulator), when one is used. */
  readonly endpoint: string | undefined;
  readonly #keys: KeyPrefix;
  readonly #options: GcsStoreOptions;
  #storage: Storage | null = null;

  constructor(bucket: string, prefix: string, options: GcsStoreOptions = {}) {
    this.bucket = bucket;
    this.#keys = new KeyPrefix(prefix);
    this.prefix = this.#keys.prefix;
    this.url = this.#keys.url("gs", bucket);
    this.#options = options;
    const ep = options.apiEndpoint ?? env("STORAGE_EMULATOR_HOST");
    this.endpoint = ep === undefined
      ? undefined
      : (/^https?:\/\//i.test(ep) ? ep : `http://${ep}`).replace(/\/+$/, "");
  }

  #client(): Storage {
    if (this.#storage) return this.#storage;
    const o = this.#options;
    const projectId = o.projectId ?? env("GOOGLE_CLOUD_PROJECT") ?? env("GCLOUD_PROJECT") ??
      (this.endpoint !== undefined ? "rep-emulator" : undefined);
    const opts: StorageOptions = {
      retryOptions: {
        autoRetry: true,
        maxRetries: (o.maxAttempts ?? MAX_ATTEMPTS) - 1,
        retryDelayMultiplier: 2,
        maxRetryDelay: 4,
        totalTimeout: RETRY_TOTAL_TIMEOUT,
        retryableErrorFn: isTransient,
        // Every write here replaces a whole object with the same bytes, so retrying is safe.
        idempotencyStrategy: IdempotencyStrategy.RetryAlways,
      },
      ...(this.endpoint !== undefined ? { apiEndpoint: this.endpoint } : {}),
      ...(projectId !== undefined ? { projectId } : {}),
      ...(o.keyFilename !== undefined ? { keyFilename: o.keyFilename } : {}),
    };
    const storage = new Storage(opts);
    if (this.endpoint !== undefined) {
      // With STORAGE_EMULATOR_HOST set, the SDK uses the raw variable as its base URL, which breaks
      // on a bare host:port; pin it to the normalised endpoint (the emulators serve /storage/v1).
      (storage as unknown as { baseUrl: string }).baseUrl = `${this.endpoint}/storage/v1`;
    }
    this.#storage = storage;
    return storage;
  }

  #file(full: string, generation?: number): File {
    const b = this.#client().bucket(this.bucket);
    return generation === undefined ? b.file(full) : b.file(full, { generation });
  }

  /** Create the bucket when it does not exist (tests, and `rep init` on an empty project). */
  async ensureBucket(): Promise<void> {
    const b = this.#client().bucket(this.bucket);
    try {
      const [exists] = await b.exists();
      if (exists) return;
      await b.create();
    } catch (e) {
      if (code(e) === 409) return;
      throw this.#error(e, "create bucket", null);
    }
  }

  async put(key: string, data: Uint8Array | ReadableStream<Uint8Array>): Promise<void> {
    const full = this.#keys.full(key);
    const file = this.#file(full);
    const meta = { contentType: "application/octet-stream" };
    try {
      if (data instanceof Uint8Array) {
        await file.save(data, { resumable: data.byteLength > SINGLE_PUT_MAX, metadata: meta });
        return;
      }
      // Buffer the head of the stream: small bodies go up in one retryable request.
      const reader = data.getReader();
      const head: Uint8Array[] = [];
      let headSize = 0;
      let ended = false;
      while (headSize <= SINGLE_PUT_MAX) {
        const { done, value } = await reader.read();
        if (done) {
          ended = true;
          break;
        }
        head.push(value);
        headSize += value.byteLength;
      }
      if (ended) {
        await file.save(concat(head, headSize), { resumable: false, metadata: meta });
        return;
      }
      await new Promise<void>((resolve, reject) => {
        const ws = file.createWriteStream({ resumable: true, metadata: meta });
        let failed = false;
        ws.on("error", (e: unknown) => {
          failed = true;
          reader.cancel(e).catch(() => {});
          reject(e);
        });
        ws.on("finish", () => resolve());
        const write = (chunk: Uint8Array) =>
          new Promise<void>((ok) => {
            if (ws.write(chunk)) ok();
            else ws.once("drain", () => ok());
          });
        (async () => {
          for (const c of head) {
            if (failed) return;
            await write(c);
          }
          head.length = 0;
          for (;;) {
            if (failed) return;
            const { done, value } = await reader.read();
            if (done) break;
            await write(value);
          }
          ws.end();
        })().catch((e) => {
          failed = true;
          ws.destroy(e instanceof Error ? e : new Error(String(e)));
          reject(e);
        });
      });
    } catch (e) {
      throw this.#error(e, "write", key);
    }
  }

  /**
   * Opens a download of `full` from `pos`, pinned to the generation of the first response: the
   * body and the offset its first byte is at (0 when a server ignores Range), or null when `pos`
   * is at or past the end of the object.
   */
  #opener(full: string, key: string, end: number | undefined): Opener {
    let generation: string | undefined;
    return async (pos) => {
      const startedAt = Date.now();
      for (let attempt = 1;; attempt++) {
        let res: Response;
        try {
          res = await this.#download(full, pos, end, generation);
        } catch (e) {
          const delay = isTransient(e) ? retryDelay(attempt, startedAt) : null;
          if (delay === null) throw this.#error(e, "read", key, attempt, Date.now() - startedAt);
          await sleep(delay);
          continue;
        }
        if (res.status === 416) {
          await res.body?.cancel();
          return null;
        }
        generation ??= res.headers.get("x-goog-generation") ?? undefined;
        const cr = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "");
        const at = res.status === 206 && cr ? Number(cr[1]) : 0;
        return { body: res.body ?? emptyStream(), at };
      }
    };
  }

  #giveUp(key: string): GiveUp {
    return (e, attempts, elapsed) => this.#error(e, "read", key, attempts, elapsed);
  }

  async get(key: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
    const full = this.#keys.full(key);
    const start = range?.offset ?? 0;
    const end = range?.length !== undefined ? start + range.length : undefined; // exclusive
    if (end !== undefined && end <= start) {
      if ((await this.head(key)) === null) throw this.#notFound(key);
      return emptyStream();
    }
    return await resumingStream(start, end, this.#opener(full, key, end), this.#giveUp(key));
  }

  /** One media GET (JSON API, `alt=media`); throws an `{ code, message }` error on failure. */
  async #download(
    full: string,
    pos: number,
    end: number | undefined,
    generation: string | undefined,
  ): Promise<Response> {
    const storage = this.#client();
    const base = this.endpoint ?? storage.apiEndpoint;
    const url = new URL(
      `${base}/storage/v1/b/${encodeURIComponent(this.bucket)}/o/${encodeURIComponent(full)}`,
    );
    url.searchParams.set("alt", "media");
    if (generation !== undefined) url.searchParams.set("generation", generation);
    const headers = new Headers();
    if (this.endpoint === undefined) {
      const auth = await storage.authClient.getRequestHeaders(url.toString());
      new Headers(auth as HeadersInit).forEach((v, k) => headers.set(k, v));
    }
    if (pos > 0 || end !== undefined) {
      headers.set("range", `bytes=${pos}-${end !== undefined ? end - 1 : ""}`);
    }
    // Time out while waiting for the response headers only: the body's readers watch it.
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(new StallError()), STALL_TIMEOUT_MS);
    let res: Response;
    try {
      res = await fetch(url, { headers, signal: ctl.signal });
    } finally {
      clearTimeout(timer);
    }
    if (res.ok || res.status === 416) return res;
    const text = await res.text().catch(() => "");
    let message = text || res.statusText;
    try {
      const j = JSON.parse(text);
      if (typeof j?.error?.message === "string") message = j.error.message;
    } catch { /* plain text */ }
    throw Object.assign(new Error(message), { code: res.status });
  }

  async getBytes(key: string, range?: ByteRange): Promise<Uint8Array> {
    if (range?.length !== undefined && range.length > 0) {
      return await this.getInto(key, range.offset, new Uint8Array(range.length));
    }
    const stream = await this.get(key, range);
    try {
      return await readAll(stream);
    } catch (e) {
      throw this.#error(e, "read", key);
    }
  }

  openRange(key: string, offset: number, length: number): ObjectRange {
    const full = this.#keys.full(key);
    const end = offset + length;
    return new RangeReader(offset, end, this.#opener(full, key, end), this.#giveUp(key));
  }

  async getInto(key: string, offset: number, into: Uint8Array): Promise<Uint8Array> {
    if (into.byteLength === 0) return await this.getBytes(key, { offset, length: 0 });
    const full = this.#keys.full(key);
    const end = offset + into.byteLength;
    return await downloadInto(offset, into, this.#opener(full, key, end), this.#giveUp(key));
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const full = this.#keys.full(key);
    try {
      const [md] = await this.#file(full).getMetadata();
      const updated = md.updated ? new Date(md.updated) : undefined;
      return { key, size: Number(md.size ?? 0), ...(updated ? { mtime: updated } : {}) };
    } catch (e) {
      if (code(e) === 404 && !isNoBucket(e)) return null;
      throw this.#error(e, "stat", key);
    }
  }

  async *list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo> {
    const bucket = this.#client().bucket(this.bucket);
    const full = this.#keys.listing(prefix);
    const startAfter = options?.startAfter !== undefined
      ? this.#keys.listing(options.startAfter)
      : undefined;
    let pageToken: string | undefined;
    do {
      let files: File[];
      let next: { pageToken?: string } | null | undefined;
      try {
        [files, next] = await bucket.getFiles({
          prefix: full,
          autoPaginate: false,
          maxResults: PAGE_SIZE,
          ...(pageToken ? { pageToken } : {}),
          // startOffset is inclusive; keys equal to startAfter are filtered below.
          ...(startAfter !== undefined ? { startOffset: startAfter } : {}),
        }) as unknown as [File[], { pageToken?: string } | null];
      } catch (e) {
        throw this.#error(e, "list", prefix || "/");
      }
      for (const f of files) {
        if (startAfter !== undefined && f.name <= startAfter) continue;
        const md = f.metadata;
        const updated = md.updated ? new Date(md.updated) : undefined;
        yield {
          key: this.#keys.strip(f.name),
          size: Number(md.size ?? 0),
          ...(updated ? { mtime: updated } : {}),
        };
      }
      pageToken = next?.pageToken;
    } while (pageToken);
  }

  async *listPrefixes(prefix: string): AsyncIterable<string> {
    const bucket = this.#client().bucket(this.bucket);
    const full = this.#keys.listing(prefix);
    let pageToken: string | undefined;
    let last = "";
    do {
      let next: { pageToken?: string } | null | undefined;
      let resp: { prefixes?: string[] } | undefined;
      try {
        [, next, resp] = await bucket.getFiles({
          prefix: full,
          delimiter: "/",
          autoPaginate: false,
          maxResults: PAGE_SIZE,
          ...(pageToken ? { pageToken } : {}),
        }) as unknown as [File[], { pageToken?: string } | null, { prefixes?: string[] }];
      } catch (e) {
        throw this.#error(e, "list", prefix || "/");
      }
      // Sorted, and deduplicated across pages.
      for (const p of [...(resp?.prefixes ?? [])].sort()) {
        if (p <= last) continue;
        last = p;
        yield this.#keys.strip(p);
      }
      pageToken = next?.pageToken;
    } while (pageToken);
  }

  async delete(keys: string[]): Promise<void> {
    const full = keys.map((k) => this.#keys.full(k));
    let i = 0;
    const worker = async () => {
      while (i < full.length) {
        const name = full[i++]!;
        try {
          await this.#file(name).delete();
        } catch (e) {
          if (code(e) === 404 && !isNoBucket(e)) continue;
          throw this.#error(e, "delete", this.#keys.strip(name));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, full.length) }, worker));
  }

  close(): Promise<void> {
    this.#storage = null;
    return Promise.resolve();
  }

  #notFound(key: string): NotFoundError {
    return new NotFoundError(`Object "${key}" does not exist in ${this.url}`);
  }

  /** Turn an SDK or network error into a {@link NotFoundError} or {@link StorageError}. */
  #error(
    e: unknown,
    what: string,
    key: string | null,
    attempts?: number,
    elapsedMs?: number,
  ): Error {
    if (e instanceof NotFoundError || e instanceof StorageError) return e;
    const status = code(e);
    const msg = errMessage(e);
    const where = key === null ? `gs://${this.bucket}` : `${this.url}/${key}`;
    if (isNoBucket(e) || (status === 404 && key === null)) {
      return new StorageError(
        `Bucket "${this.bucket}" does not exist` + (this.endpoint ? ` at ${this.endpoint}` : ""),
        `Create it (e.g. "gcloud storage buckets create gs://${this.bucket}"), or check the ` +
          "repository URL",
        { cause: e },
      );
    }
    if (status === 404) return key === null ? new NotFoundError(msg) : this.#notFound(key);
    if (/Could not load the default credentials|Unable to detect a Project Id/i.test(msg)) {
      return new StorageError(
        `No Google Cloud credentials found for ${this.url}`,
        'Run "gcloud auth application-default login", or set GOOGLE_APPLICATION_CREDENTIALS to ' +
          "a service-account key file (and GOOGLE_CLOUD_PROJECT)",
        { cause: e },
      );
    }
    if (status === 401 || status === 403) {
      return new StorageError(
        `Access denied: cannot ${what} ${where}`,
        `Grant the account in use (see "gcloud auth list" or GOOGLE_APPLICATION_CREDENTIALS) ` +
          `roles/storage.objectAdmin on gs://${this.bucket}`,
        { cause: e },
      );
    }
    if (isNetworkError(e)) {
      const service = {
        name: "Cloud Storage",
        endpoint: this.endpoint,
        endpointSetting: "STORAGE_EMULATOR_HOST",
      };
      return unreachable(service, what, where, e, attempts, elapsedMs);
    }
    return new StorageError(`Cannot ${what} ${where}: ${msg}`, undefined, { cause: e });
  }
}

function env(name: string): string | undefined {
  try {
    const v = Deno.env.get(name);
    return v === "" ? undefined : v;
  } catch {
    return undefined;
  }
}

function code(e: unknown): number | undefined {
  const c = (e as { code?: unknown; status?: unknown } | null)?.code ??
    (e as { status?: unknown } | null)?.status;
  if (typeof c === "number") return c;
  if (typeof c === "string" && /^\d{3}$/.test(c)) return Number(c);
  return undefined;
}

function errMessage(e: unknown): string {
  if (e instanceof Error) {
    // The SDK sometimes puts a whole JSON error body in the message.
    try {
      const j = JSON.parse(e.message);
      if (typeof j?.error?.message === "string") return j.error.message;
    } catch { /* not JSON */ }
  }
  return errorText(e);
}

function isNoBucket(e: unknown): boolean {
  return code(e) === 404 && /bucket does not exist/i.test(errMessage(e));
}

/** The SDK's retry predicate: throttling, 5xx, timeouts and connection failures. */
function isTransient(e: unknown): boolean {
  const c = code(e);
  if (c !== undefined) return [408, 429, 500, 502, 503, 504].includes(c);
  const reasons = (e as { errors?: { reason?: unknown }[] } | null)?.errors ?? [];
  if (
    reasons.some((r) => /rateLimitExceeded|backendError|internalError/i.test(String(r?.reason)))
  ) {
    return true;
  }
  return isNetworkError(e);
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}
