/**
 * The Amazon S3 driver (and S3-compatible services: MinIO, Ceph, R2, moto, s3rver, …).
 *
 * Configuration comes from where AWS users keep it: the credential chain (env keys, `AWS_PROFILE`
 * and `~/.aws/*`, SSO, web identity, container and instance roles), and endpoint, region and
 * addressing style from the environment or the profile (see `s3_config.ts`): a profile with
 * `endpoint_url` works as well as `AWS_ENDPOINT_URL_S3`, and any custom endpoint gets path-style
 * requests unless the profile's `s3 = addressing_style` says otherwise. Checksums are the SDK's
 * defaults (`AWS_REQUEST_CHECKSUM_CALCULATION`, `AWS_RESPONSE_CHECKSUM_VALIDATION` and the
 * profile's `request_checksum_calculation` / `response_checksum_validation` are honoured).
 *
 * Retries, timeouts and resumed downloads follow `retry.ts`: a request attempt that makes no
 * progress for 5 s fails and is retried with backoff, and no retry starts more than 10 s after
 * the first attempt, so a dead endpoint fails within about 15 s; downloads that break resume from
 * the last byte received (pinned to the ETag). The SDK's own log lines are not printed: what went
 * wrong is in the error a failed call throws.
 *
 * Reads (GetObject) go through the runtime's `fetch`, whose bodies are byte streams: a ranged read
 * lands straight in the caller's buffer. Everything else goes through Node's HTTP stack, which
 * streams request bodies.
 *
 * @module
 */
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  FetchHttpHandler,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NodeHttpHandler,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  Upload,
} from "../deps/s3.ts";
import { NotFoundError, StorageError } from "../errors.ts";
import { createReadStream } from "node:fs";
import zlib from "node:zlib";
import { KeyPrefix } from "./prefix.ts";
import {
  errorText,
  isNetworkError,
  MAX_ATTEMPTS,
  retryDelay,
  STALL_TIMEOUT_MS,
  unreachable,
} from "./retry.ts";
import { type ResolvedS3Config, resolveS3Config } from "./s3_config.ts";

export type { ResolvedS3Config };
import { StallGuard } from "./stall_guard.ts";
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

/** Bodies up to this size go up in one PutObject; larger ones as a parallel multipart upload. */
const SINGLE_PUT_MAX = 16 * 1024 * 1024;
/** Files up to this size are uploaded in one streamed request by putFile. */
const FILE_PUT_MAX = 512 * 1024 * 1024;
/** Multipart part size and how many parts are in flight at once. */
const PART_SIZE = 16 * 1024 * 1024;
const QUEUE_SIZE = 4;
/** DeleteObjects takes at most this many keys. */
const DELETE_BATCH = 1000;

/** How the SDK computes and checks checksums (its names; the default is its own default). */
export type ChecksumMode = "WHEN_SUPPORTED" | "WHEN_REQUIRED";

/** Overrides for tests and embedders; everything defaults to the environment and profile. */
export interface S3StoreOptions {
  /** Endpoint URL (default: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile, else AWS). */
  endpoint?: string;
  /** Region (default: env, the profile, else `us-east-1`). */
  region?: string;
  /** Path-style addressing (default: see the module doc). */
  forcePathStyle?: boolean;
  /** Static credentials instead of the default chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Attempts per request (default 5). */
  maxAttempts?: number;
  /** Request checksums (default: the SDK's, i.e. `AWS_REQUEST_CHECKSUM_CALCULATION` or all). */
  requestChecksumCalculation?: ChecksumMode;
  /** Response validation (default: the SDK's, i.e. `AWS_RESPONSE_CHECKSUM_VALIDATION` or all). */
  responseChecksumValidation?: ChecksumMode;
}

interface Clients {
  /** Node's HTTP stack: uploads, listings, deletes, HEADs. */
  main: S3Client;
  /** fetch: object reads. */
  reader: S3Client;
  config: ResolvedS3Config;
}

/** The SDK's log lines (one per failed streamed upload during an outage) go nowhere. */
const QUIET = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** A {@link Store} on an S3 bucket, under an optional key prefix. */
export class S3Store implements Store {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly #keys: KeyPrefix;
  readonly #options: S3StoreOptions;
  #clients: Promise<Clients> | null = null;
  #resolved: ResolvedS3Config | null = null;
  #bucketChecked = false;

  constructor(bucket: string, prefix: string, options: S3StoreOptions = {}) {
    this.bucket = bucket;
    this.#keys = new KeyPrefix(prefix);
    this.prefix = this.#keys.prefix;
    this.url = this.#keys.url("s3", bucket);
    this.#options = options;
  }

  /** What this store connects with: endpoint, region and addressing style, once resolved. */
  async configuration(): Promise<ResolvedS3Config> {
    return (await this.#getClients()).config;
  }

  /** The custom endpoint in use (known once the first request was prepared), or undefined. */
  get endpoint(): string | undefined {
    return this.#resolved?.endpoint ?? this.#options.endpoint;
  }

  /** The path-style setting in use (known once the first request was prepared). */
  get forcePathStyle(): boolean | undefined {
    return this.#resolved?.forcePathStyle;
  }

  #getClients(): Promise<Clients> {
    this.#clients ??= this.#makeClients();
    return this.#clients;
  }

  #client(): Promise<S3Client> {
    return this.#getClients().then((c) => c.main);
  }

  async #makeClients(): Promise<Clients> {
    const o = this.#options;
    const base: S3ClientConfig = {
      followRegionRedirects: true,
      retryStrategy: retryStrategy(o.maxAttempts ?? MAX_ATTEMPTS),
      logger: QUIET,
      ...(o.credentials ? { credentials: o.credentials } : {}),
      ...(o.requestChecksumCalculation
        ? { requestChecksumCalculation: o.requestChecksumCalculation }
        : {}),
      ...(o.responseChecksumValidation
        ? { responseChecksumValidation: o.responseChecksumValidation }
        : {}),
    };
    const config = await resolveS3Config(o, base);
    this.#resolved = config;
    const resolved: S3ClientConfig = {
      ...base,
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      ...(config.endpoint !== undefined ? { endpoint: config.endpoint } : {}),
    };
    const main = new S3Client({
      ...resolved,
      requestHandler: new StallGuard(new NodeHttpHandler({ connectionTimeout: STALL_TIMEOUT_MS })),
    });
    // rep checks every chunk it reads against its sha256: unless validation is asked for (the
    // option, AWS_RESPONSE_CHECKSUM_VALIDATION), reads skip the SDK's CRC32 of whole objects.
    const validate = o.responseChecksumValidation ??
      (env("AWS_RESPONSE_CHECKSUM_VALIDATION") ? undefined : "WHEN_REQUIRED");
    const reader = new S3Client({
      ...resolved,
      ...(validate ? { responseChecksumValidation: validate } : {}),
      credentials: main.config.credentials,
      requestHandler: new StallGuard(new FetchHttpHandler()),
    });
    return { main, reader, config };
  }

  /** Run one SDK command, mapping its errors. */
  async #send<T>(what: string, key: string | null, fn: (c: S3Client) => Promise<T>): Promise<T> {
    const client = await this.#client();
    try {
      return await fn(client);
    } catch (e) {
      throw this.#error(e, what, key);
    }
  }

  /** Create the bucket when it does not exist (tests, and `rep init` on an empty account). */
  async ensureBucket(): Promise<void> {
    const client = await this.#client();
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
    const full = this.#keys.full(key);
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
        params: { Bucket: this.bucket, Key: full, Body: data },
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
   * memory. Larger files use the multipart path. The file is left in place.
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
    const full = this.#keys.full(key);
    await this.#send("write", key, async (client) => {
      // The SDK's default checksum for a stream is a trailer in an aws-chunked body, which some
      // S3-compatible services decode slowly (moto: 4× the time) or not at all: the same CRC32,
      // computed from the file first, goes in a header instead.
      const crc = (await client.config.requestChecksumCalculation()) === "WHEN_SUPPORTED"
        ? await fileCrc32(path)
        : undefined;
      const body = createReadStream(path, { highWaterMark: 1 << 20 });
      try {
        await client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: full,
            Body: body,
            ContentLength: size,
            ...(crc !== undefined ? { ChecksumCRC32: crc } : {}),
          }),
        );
      } finally {
        body.destroy();
      }
    });
  }

  /**
   * Opens a download of `full` from `pos`, pinned to the ETag of the first response. The body,
   * and the object offset of its first byte (0 when a server ignores Range), or null when `pos`
   * is at or past the end of the object.
   */
  #opener(full: string, key: string, end: number | undefined): Opener {
    let etag: string | undefined;
    return async (pos) => {
      const { reader } = await this.#getClients();
      const rangeHeader = pos > 0 || end !== undefined
        ? `bytes=${pos}-${end !== undefined ? end - 1 : ""}`
        : undefined;
      try {
        const res = await reader.send(
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
          body: body ? body.transformToWebStream() : emptyStream(),
          at: cr ? Number(cr[1]) : 0,
        };
      } catch (e) {
        // Offset at or past the end: an empty read, as with local files.
        if (status(e) === 416 || errName(e) === "InvalidRange") return null;
        throw this.#error(e, "read", key);
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
    const full = this.#keys.full(key);
    const end = offset + into.byteLength;
    if (into.byteLength === 0) return await this.getBytes(key, { offset, length: 0 });
    return await downloadInto(offset, into, this.#opener(full, key, end), this.#giveUp(key));
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const full = this.#keys.full(key);
    const client = await this.#client();
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
    const client = await this.#client();
    const full = this.#keys.listing(prefix);
    let token: string | undefined;
    const startAfter = options?.startAfter !== undefined
      ? this.#keys.listing(options.startAfter)
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
          key: this.#keys.strip(o.Key),
          size: o.Size ?? 0,
          ...(o.LastModified ? { mtime: o.LastModified } : {}),
        };
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  async *listPrefixes(prefix: string): AsyncIterable<string> {
    const client = await this.#client();
    const full = this.#keys.listing(prefix);
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
        yield this.#keys.strip(p);
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    const full = keys.map((k) => this.#keys.full(k));
    const client = await this.#client();
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
              this.#keys.strip(e.Key ?? ""),
            );
          }
        }),
      );
    }
  }

  async close(): Promise<void> {
    const c = this.#clients;
    this.#clients = null;
    const clients = c ? await c.catch(() => null) : null;
    clients?.main.destroy();
    clients?.reader.destroy();
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
  #error(
    e: unknown,
    what: string,
    key: string | null,
    attempts?: number,
    elapsedMs?: number,
  ): Error {
    if (e instanceof NotFoundError || e instanceof StorageError) return e;
    const name = errName(e);
    const code = status(e);
    const msg = errorText(e);
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
        "Check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile in AWS_PROFILE" +
          (this.endpoint ? `, and the endpoint (${this.#resolved?.endpointSetting})` : ""),
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
      const meta = (e as { $metadata?: { attempts?: number; totalRetryDelay?: number } })
        .$metadata;
      return unreachable(
        {
          name: "S3",
          endpoint: this.endpoint,
          endpointSetting: this.#resolved?.endpointSetting ?? "AWS_ENDPOINT_URL_S3",
        },
        what,
        where,
        e,
        attempts ?? meta?.attempts,
        elapsedMs,
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
 * The SDK's retries with the policy of `retry.ts` (backoff, attempts, window), without the SDK's
 * client-wide retry quota: under an outage, every request gets its own bounded retries.
 */
function retryStrategy(maxAttempts: number): RetryStrategyV2 {
  const token = (count: number, delay: number, startedAt: number) => ({
    getRetryCount: () => count,
    getRetryDelay: () => delay,
    startedAt,
  });
  return {
    acquireInitialRetryToken: () => Promise.resolve(token(0, 0, Date.now())),
    refreshRetryTokenForRetry: (prev, info) => {
      const count = prev.getRetryCount() + 1;
      const startedAt = (prev as { startedAt?: number }).startedAt ?? Date.now();
      const delay = info.errorType === "CLIENT_ERROR"
        ? null
        : retryDelay(count, startedAt, maxAttempts);
      if (delay === null) return Promise.reject(new Error("no more retries"));
      const hint = info.retryAfterHint ? info.retryAfterHint.getTime() - Date.now() : 0;
      return Promise.resolve(token(count, Math.max(hint, delay), startedAt));
    },
    recordSuccess: () => {},
  };
}

/** The CRC32 of a file, as S3's `x-amz-checksum-crc32` header spells it (base64, big-endian). */
async function fileCrc32(path: string): Promise<string> {
  const crc32 = (zlib as unknown as { crc32(data: Uint8Array, value?: number): number }).crc32;
  using file = await Deno.open(path);
  const buf = new Uint8Array(8 * 1024 * 1024);
  let crc = 0;
  for (;;) {
    const n = await file.read(buf);
    if (n === null) break;
    crc = crc32(buf.subarray(0, n), crc);
  }
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, crc >>> 0);
  return btoa(String.fromCharCode(...out));
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined; // no --allow-env: behave as if unset
  }
}

function errName(e: unknown): string {
  if (e && typeof e === "object") {
    const o = e as { name?: unknown; Code?: unknown };
    if (typeof o.Code === "string") return o.Code;
    if (typeof o.name === "string") return o.name;
  }
  return "Error";
}

function status(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}
