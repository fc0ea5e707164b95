/**
 * The Amazon S3 driver (and S3-compatible servers: MinIO, s3rver, R2, …).
 *
 * Configuration comes from the standard AWS places: the credential chain (env keys, `AWS_PROFILE`
 * and `~/.aws/*`, SSO, web identity, container and instance roles) and region (`AWS_REGION`,
 * `AWS_DEFAULT_REGION`, profile; `us-east-1` when none is set). A custom endpoint comes from
 * `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`.
 *
 * Path-style addressing (`http://host/bucket/key` instead of `http://bucket.host/key`) is used when
 * `REP_S3_FORCE_PATH_STYLE=1`, and automatically whenever a custom endpoint is set: S3-compatible
 * servers on a plain host:port (MinIO, s3rver, localstack) cannot serve virtual-hosted buckets.
 * Set `REP_S3_FORCE_PATH_STYLE=0` to keep virtual-hosted style with a custom endpoint.
 *
 * Retries: transient failures (5xx, throttling, connection reset/refused, timeouts) are retried by
 * the SDK with our strategy: 5 attempts in all, exponential backoff of about 1, 2, 4, 8 s (jittered),
 * so a request rides out a server that is away for up to ~10 s and a dead endpoint fails within
 * ~15 s. (The SDK's default waits only ~50 ms before each retry and shares a retry quota across the
 * client, which fails fast during an outage.) Connections time out after 5 s and idle sockets after
 * 20 s. Downloads that break mid-body resume from the last byte received (pinned to the ETag).
 *
 * @module
 */
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  Upload,
} from "../deps/s3.ts";
import { NotFoundError, StorageError } from "../errors.ts";
import { createReadStream } from "node:fs";
import { checkKey } from "./keys.ts";
import { emptyStream, type OpenedBody, readAll, resumingStream } from "./streams.ts";
import type { ByteRange, ListOptions, ObjectInfo, Store } from "./store.ts";

/** Bodies up to this size go up in one PutObject; larger ones as a parallel multipart upload. */
const SINGLE_PUT_MAX = 16 * 1024 * 1024;
/** Files up to this size are uploaded in one streamed request by putFile. */
const FILE_PUT_MAX = 512 * 1024 * 1024;
/** Multipart part size and how many parts are in flight at once. */
const PART_SIZE = 16 * 1024 * 1024;
const QUEUE_SIZE = 4;
/** Total attempts per request (the SDK's own retries), and per download including resumes. */
const MAX_ATTEMPTS = 5;
/** DeleteObjects takes at most this many keys. */
const DELETE_BATCH = 1000;

/** Overrides for tests and embedders; everything defaults to the environment. */
export interface S3StoreOptions {
  /** Endpoint URL (default: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, else AWS). */
  endpoint?: string;
  /** Region (default: the AWS chain, else `us-east-1`). */
  region?: string;
  /** Path-style addressing (default: `REP_S3_FORCE_PATH_STYLE`, else on with a custom endpoint). */
  forcePathStyle?: boolean;
  /** Static credentials instead of the default chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Attempts per request (default 5). */
  maxAttempts?: number;
}

/** A {@link Store} on an S3 bucket, under an optional key prefix. */
export class S3Store implements Store {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly endpoint: string | undefined;
  readonly #options: S3StoreOptions;
  #client: Promise<S3Client> | null = null;
  #bucketChecked = false;

  constructor(bucket: string, prefix: string, options: S3StoreOptions = {}) {
    this.bucket = bucket;
    this.prefix = prefix.replace(/^\/+|\/+$/g, "");
    this.url = `s3://${bucket}${this.prefix ? "/" + this.prefix : ""}`;
    this.#options = options;
    this.endpoint = options.endpoint ?? configuredEndpoint();
  }

  /** The full object key for a store key. */
  #key(key: string): string {
    checkKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  /** The full-key prefix for a store-relative prefix (which may be empty or end in `/`). */
  #keyPrefix(prefix: string): string {
    return this.prefix ? `${this.prefix}/${prefix}` : prefix;
  }

  /** The store key for a full object key. */
  #strip(full: string): string {
    return this.prefix ? full.slice(this.prefix.length + 1) : full;
  }

  #getClient(): Promise<S3Client> {
    this.#client ??= this.#makeClient();
    return this.#client;
  }

  async #makeClient(): Promise<S3Client> {
    const o = this.#options;
    const pathEnv = env("REP_S3_FORCE_PATH_STYLE");
    const forcePathStyle = o.forcePathStyle ??
      (pathEnv !== undefined && pathEnv !== "" ? truthy(pathEnv) : this.endpoint !== undefined);
    const config: S3ClientConfig = {
      forcePathStyle,
      followRegionRedirects: true,
      retryStrategy: retryStrategy(o.maxAttempts ?? MAX_ATTEMPTS),
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      requestHandler: { connectionTimeout: 5_000, socketTimeout: 20_000 },
      ...(this.endpoint !== undefined ? { endpoint: this.endpoint } : {}),
      ...(o.credentials ? { credentials: o.credentials } : {}),
    };
    let region = o.region ?? env("AWS_REGION") ?? env("AWS_DEFAULT_REGION");
    if (region === undefined) {
      // Let the SDK look in the shared config files (profile region); default to us-east-1.
      const probe = new S3Client(config);
      region = await probe.config.region().catch(() => "us-east-1");
      probe.destroy();
    }
    return new S3Client({ ...config, region });
  }

  /** Run one SDK command, mapping its errors. */
  async #send<T>(what: string, key: string | null, fn: (c: S3Client) => Promise<T>): Promise<T> {
    const client = await this.#getClient();
    try {
      return await fn(client);
    } catch (e) {
      throw this.#error(e, what, key);
    }
  }

  /** Create the bucket when it does not exist (tests, and `rep init` on an empty account). */
  async ensureBucket(): Promise<void> {
    const client = await this.#getClient();
    try {
      await client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      this.#bucketChecked = true;
      return;
    } catch (e) {
      if (status(e) !== 404 && errName(e) !== "NotFound" && errName(e) !== "NoSuchBucket") {
        throw this.#error(e, "check bucket", null);
      }
    }
    try {
      const region = await client.config.region();
      await client.send(
        new CreateBucketCommand({
          Bucket: this.bucket,
          ...(region && region !== "us-east-1" && this.endpoint === undefined
            ? { CreateBucketConfiguration: { LocationConstraint: region as never } }
            : {}),
        }),
      );
    } catch (e) {
      const n = errName(e);
      if (n !== "BucketAlreadyOwnedByYou" && n !== "BucketAlreadyExists") {
        throw this.#error(e, "create bucket", null);
      }
    }
    this.#bucketChecked = true;
  }

  async put(key: string, data: Uint8Array | ReadableStream<Uint8Array>): Promise<void> {
    const full = this.#key(key);
    await this.#send("write", key, async (client) => {
      if (data instanceof Uint8Array && data.byteLength <= SINGLE_PUT_MAX) {
        await client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: full,
            Body: data,
            ContentLength: data.byteLength,
          }),
        );
        return;
      }
      // lib-storage buffers one part at a time (so every request is retryable) and falls back to a
      // single PutObject when the whole body fits in the first part.
      const upload = new Upload({
        client,
        params: {
          Bucket: this.bucket,
          Key: full,
          Body: data,
        },
        queueSize: QUEUE_SIZE,
        partSize: PART_SIZE,
        leavePartsOnError: false,
      });
      await upload.done();
    });
  }

  /**
   * Upload a local file. Small files go up from memory in one request; files up to
   * {@link FILE_PUT_MAX} (every pack) as one PutObject streamed from disk: no part buffers in
   * memory, and each retry reopens the file. Larger files use the multipart path. The file is left
   * in place.
   */
  async putFile(key: string, path: string): Promise<void> {
    const size = (await Deno.stat(path)).size;
    // Small objects (records, trees) go as one in-memory body: a writer killed mid-request then
    // leaves nothing on servers that store bodies as they stream in (s3rver does; S3 does not).
    if (size <= SINGLE_PUT_MAX) return await this.put(key, await Deno.readFile(path));
    if (size > FILE_PUT_MAX) {
      const file = await Deno.open(path);
      return await this.put(key, file.readable);
    }
    const full = this.#key(key);
    await this.#send("write", key, async (client) => {
      const body = createReadStream(path, { highWaterMark: 1 << 20 });
      try {
        await client.send(
          new PutObjectCommand({ Bucket: this.bucket, Key: full, Body: body, ContentLength: size }),
        );
      } finally {
        body.destroy();
      }
    });
  }

  async get(key: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
    const full = this.#key(key);
    const start = range?.offset ?? 0;
    const end = range?.length !== undefined ? start + range.length : undefined; // exclusive
    if (end !== undefined && end <= start) {
      if ((await this.head(key)) === null) throw this.#notFound(key);
      return emptyStream();
    }
    const client = await this.#getClient();
    let etag: string | undefined;
    let attempts = 0;
    // Open the body from `pos`, pinned to the ETag of the first response. Returns the reader and
    // the object offset of its first byte (0 when a server ignores Range), or null when `pos` is
    // at or past the end of the object.
    const open = async (pos: number): Promise<OpenedBody | null> => {
      const rangeHeader = pos > 0 || end !== undefined
        ? `bytes=${pos}-${end !== undefined ? end - 1 : ""}`
        : undefined;
      try {
        const res = await client.send(
          new GetObjectCommand({
            Bucket: this.bucket,
            Key: full,
            ...(rangeHeader ? { Range: rangeHeader } : {}),
            ...(etag ? { IfMatch: etag } : {}),
          }),
        );
        etag ??= res.ETag;
        const cr = /^bytes (\d+)-/.exec(res.ContentRange ?? "");
        const body = res.Body as { transformToWebStream(): ReadableStream<Uint8Array> } | undefined;
        return {
          reader: (body ? body.transformToWebStream() : emptyStream()).getReader(),
          at: cr ? Number(cr[1]) : 0,
        };
      } catch (e) {
        // Offset at or past the end: an empty read, as with local files.
        if (status(e) === 416 || errName(e) === "InvalidRange") return null;
        throw this.#error(e, "read", key);
      }
    };
    return await resumingStream(start, end, open, async (e) => {
      // The connection broke mid-body: resume with backoff, boundedly.
      if (++attempts >= MAX_ATTEMPTS) throw this.#error(e, "read", key);
      await sleep(backoff(attempts));
    });
  }

  async getBytes(key: string, range?: ByteRange): Promise<Uint8Array> {
    const stream = await this.get(key, range);
    try {
      return await readAll(stream, range?.length);
    } catch (e) {
      throw this.#error(e, "read", key);
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const full = this.#key(key);
    const client = await this.#getClient();
    try {
      const res = await client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: full }));
      return {
        key,
        size: res.ContentLength ?? 0,
        ...(res.LastModified ? { mtime: res.LastModified } : {}),
      };
    } catch (e) {
      if (status(e) === 404 || errName(e) === "NotFound" || errName(e) === "NoSuchKey") {
        // HEAD responses carry no error body, so a missing bucket also looks like a 404: check once.
        await this.#checkBucket();
        return null;
      }
      throw this.#error(e, "stat", key);
    }
  }

  async #checkBucket(): Promise<void> {
    if (this.#bucketChecked) return;
    await this.#send(
      "check bucket",
      null,
      (c) => c.send(new HeadBucketCommand({ Bucket: this.bucket })),
    );
    this.#bucketChecked = true;
  }

  async *list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo> {
    const client = await this.#getClient();
    const full = this.#keyPrefix(prefix);
    let token: string | undefined;
    const startAfter = options?.startAfter !== undefined
      ? this.#keyPrefix(options.startAfter)
      : undefined;
    do {
      const res = await this.#send("list", prefix || "/", () =>
        client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: full,
            ...(token
              ? { ContinuationToken: token }
              : startAfter
              ? { StartAfter: startAfter }
              : {}),
          }),
        ));
      for (const o of res.Contents ?? []) {
        if (o.Key === undefined) continue;
        if (startAfter !== undefined && o.Key <= startAfter) continue;
        yield {
          key: this.#strip(o.Key),
          size: o.Size ?? 0,
          ...(o.LastModified ? { mtime: o.LastModified } : {}),
        };
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  async *listPrefixes(prefix: string): AsyncIterable<string> {
    const client = await this.#getClient();
    const full = this.#keyPrefix(prefix);
    let token: string | undefined;
    let last = "";
    do {
      const res = await this.#send("list", prefix || "/", () =>
        client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: full,
            Delimiter: "/",
            ...(token ? { ContinuationToken: token } : {}),
          }),
        ));
      // Sorted, and deduplicated across pages (some S3-compatible servers repeat them).
      const page = (res.CommonPrefixes ?? []).map((p) => p.Prefix).filter((p) => p !== undefined);
      for (const p of page.sort()) {
        if (p <= last) continue;
        last = p;
        yield this.#strip(p);
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    const full = keys.map((k) => this.#key(k));
    const client = await this.#getClient();
    const batches: string[][] = [];
    for (let i = 0; i < full.length; i += DELETE_BATCH) {
      batches.push(full.slice(i, i + DELETE_BATCH));
    }
    // A few batches at a time.
    for (let i = 0; i < batches.length; i += QUEUE_SIZE) {
      await Promise.all(
        batches.slice(i, i + QUEUE_SIZE).map(async (batch) => {
          const res = await this.#send("delete", batch[0]!, () =>
            client.send(
              new DeleteObjectsCommand({
                Bucket: this.bucket,
                Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
              }),
            ));
          const errors = (res.Errors ?? []).filter((e) => e.Code !== "NoSuchKey");
          if (errors.length > 0) {
            const e = errors[0]!;
            const err = Object.assign(new Error(e.Message ?? e.Code ?? "delete failed"), {
              name: e.Code ?? "Error",
            });
            throw this.#error(
              err,
              `delete (${errors.length} of ${batch.length} keys failed)`,
              this.#strip(e.Key ?? ""),
            );
          }
        }),
      );
    }
  }

  async close(): Promise<void> {
    const c = this.#client;
    this.#client = null;
    if (c) (await c.catch(() => null))?.destroy();
  }

  #notFound(key: string): NotFoundError {
    return new NotFoundError(`Object "${key}" does not exist in ${this.url}`);
  }

  #noBucket(cause: unknown): StorageError {
    return new StorageError(
      `Bucket "${this.bucket}" does not exist` +
        (this.endpoint ? ` at ${this.endpoint}` : ""),
      `Create it (e.g. "aws s3 mb s3://${this.bucket}"), or check the repository URL and the ` +
        `region (AWS_REGION)`,
      { cause },
    );
  }

  /** Turn an SDK or network error into a {@link NotFoundError} or {@link StorageError}. */
  #error(e: unknown, what: string, key: string | null): Error {
    if (e instanceof NotFoundError || e instanceof StorageError) return e;
    const name = errName(e);
    const code = status(e);
    const msg = errMessage(e);
    const where = key === null ? `s3://${this.bucket}` : `${this.url}/${key}`;
    if (name === "NoSuchBucket") return this.#noBucket(e);
    if (name === "NoSuchKey" || name === "NotFound" || (code === 404 && key !== null)) {
      return key === null ? this.#noBucket(e) : this.#notFound(key);
    }
    if (name === "CredentialsProviderError" || /Could not load credentials/i.test(msg)) {
      return new StorageError(
        `No AWS credentials found for ${this.url}`,
        "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (a profile in " +
          "~/.aws/credentials or ~/.aws/config, e.g. after `aws sso login`), or run where an IAM " +
          "role is attached",
        { cause: e },
      );
    }
    if (name === "InvalidAccessKeyId" || name === "SignatureDoesNotMatch") {
      return new StorageError(
        `S3 rejected the credentials for ${where} (${name})`,
        "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile in AWS_PROFILE, and " +
          "AWS_ENDPOINT_URL_S3 for S3-compatible servers",
        { cause: e },
      );
    }
    if (name === "AccessDenied" || name === "AllAccessDisabled" || code === 403) {
      return new StorageError(
        `Access denied: cannot ${what} ${where}`,
        `Grant the IAM identity in use s3:GetObject, s3:PutObject, s3:DeleteObject and ` +
          `s3:ListBucket on arn:aws:s3:::${this.bucket} and arn:aws:s3:::${this.bucket}/*`,
        { cause: e },
      );
    }
    if (isNetworkError(e)) {
      return new StorageError(
        `Cannot reach S3${this.endpoint ? ` at ${this.endpoint}` : ""} to ${what} ${where}: ${msg}`,
        "Check the network connection" +
          (this.endpoint ? " and AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL" : ""),
        { cause: e },
      );
    }
    return new StorageError(`Cannot ${what} ${where}: ${name}: ${msg}`, undefined, { cause: e });
  }
}

type RetryStrategyV2 = Extract<
  NonNullable<S3ClientConfig["retryStrategy"]>,
  { acquireInitialRetryToken: unknown }
>;

/**
 * Exponential backoff with jitter over `maxAttempts` attempts, without the SDK's client-wide retry
 * quota (under an outage, every request should get its own bounded retries).
 */
function retryStrategy(maxAttempts: number): RetryStrategyV2 {
  const token = (count: number, delay: number) => ({
    getRetryCount: () => count,
    getRetryDelay: () => delay,
  });
  return {
    acquireInitialRetryToken: () => Promise.resolve(token(0, 0)),
    refreshRetryTokenForRetry: (prev, info) => {
      const count = prev.getRetryCount() + 1;
      if (count >= maxAttempts || info.errorType === "CLIENT_ERROR") {
        return Promise.reject(new Error("no more retries"));
      }
      const hint = info.retryAfterHint ? info.retryAfterHint.getTime() - Date.now() : 0;
      return Promise.resolve(token(count, Math.max(hint, backoff(count))));
    },
    recordSuccess: () => {},
  };
}

function env(name: string): string | undefined {
  try {
    const v = Deno.env.get(name);
    return v === "" ? undefined : v;
  } catch {
    return undefined; // no --allow-env: behave as if unset
  }
}

function truthy(v: string): boolean {
  return !/^(0|false|no|off)$/i.test(v.trim());
}

function configuredEndpoint(): string | undefined {
  if (truthy(env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") ?? "0")) return undefined;
  return env("AWS_ENDPOINT_URL_S3") ?? env("AWS_ENDPOINT_URL");
}

function errName(e: unknown): string {
  if (e && typeof e === "object") {
    const o = e as { name?: unknown; Code?: unknown };
    if (typeof o.Code === "string") return o.Code;
    if (typeof o.name === "string") return o.name;
  }
  return "Error";
}

function errMessage(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}

function status(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ECONNABORTED",
]);

function isNetworkError(e: unknown): boolean {
  for (let cur = e, depth = 0; cur && depth < 5; depth++) {
    const o = cur as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown };
    if (typeof o.code === "string" && NETWORK_CODES.has(o.code)) return true;
    if (o.name === "TimeoutError" || o.name === "ConnectionRefused") return true;
    if (typeof o.message === "string" && /ECONNREFUSED|ECONNRESET|socket hang up/.test(o.message)) {
      return true;
    }
    cur = o.cause;
  }
  return false;
}

/** The delay before retry number `attempt` (1, 2, …): about 1, 2, 4, 8 s, jittered down by <50%. */
function backoff(attempt: number): number {
  return Math.min(8_000, 1_000 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
