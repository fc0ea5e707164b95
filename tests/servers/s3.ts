/**
 * An in-process S3 server for tests: `npm:s3rver` (a Koa app that keeps objects as files) on
 * 127.0.0.1 with a random free port.
 *
 * Quirks handled here:
 *  - s3rver encrypts ListObjectsV2 continuation tokens with DES, which Deno's `node:crypto` does not
 *    implement ("Unknown cipher"), so every list past the first page of 1000 keys would fail. We patch
 *    `crypto.createCipheriv/createDecipheriv` so the `des` family maps to AES-128-CBC with the
 *    8-byte key and IV zero-padded to 16 bytes. The tokens are opaque to clients and only this
 *    process decrypts them, so any reversible cipher works.
 *  - `http.Server.close()` waits for keep-alive connections to end, and the AWS SDK keeps them
 *    open; we track sockets and destroy them so `stop()`/`pause()` return at once (as a crash would)
 *    and `deno test` sees no leaked resources.
 *  - s3rver's delimiter listing prunes directories two or more levels below the prefix, so
 *    `a/b/c/obj` never yields the common prefix `a/b/` for prefix `a/`. We patch the store's
 *    `listObjects` to list without the delimiter and fold keys into common prefixes itself.
 *  - s3rver ignores conditional writes (If-None-Match); nothing here relies on them.
 *  - s3rver does not decode `aws-chunked` bodies: a streamed upload with the SDK's default
 *    checksums (a trailing CRC32) would be stored with its chunk framing. So clients of s3rver,
 *    and only they, compute checksums only where an operation requires one: `env` sets
 *    `AWS_REQUEST_CHECKSUM_CALCULATION` / `AWS_RESPONSE_CHECKSUM_VALIDATION` to `when_required`,
 *    and {@link s3rverOptions} does the same for in-process stores. Moto (`moto.ts`) takes the
 *    SDK's defaults.
 *
 * Run standalone with `deno run -A tests/servers/s3.ts [port] [dir]`: prints the env as JSON.
 *
 * @module
 */
import crypto from "node:crypto";
import fsp from "node:fs/promises";
import { dirname } from "node:path";
import type { Server, Socket } from "node:net";
import { S3rver } from "./deps.ts";

/** A running test server; the same shape for S3 and GCS. */
export interface TestServer {
  /** The base URL, e.g. `http://127.0.0.1:41234`. */
  endpoint: string;
  /** What a child process needs in its environment to reach this server. */
  env: Record<string, string>;
  /** Create a bucket (a fresh random name when omitted) and return its name. */
  bucket(name?: string): Promise<string>;
  /** Every request served so far, as `METHOD /path?query` (for asserting what a client sent). */
  readonly requests: string[];
  /** {@link requests}, once every request answered so far is in it (moto logs them late). */
  requestLog(): Promise<string[]>;
  /** Stop serving and drop every connection, keeping the data; {@link restart} brings it back. */
  pause(): Promise<void>;
  /** Serve again on the same port with the same data (pausing first when running). */
  restart(): Promise<void>;
  /** Shut down for good and delete the data the server created. */
  stop(): Promise<void>;
}

/** Options for {@link startS3}. */
export interface S3ServerOptions {
  /** Port to listen on; a random free one by default. */
  port?: number;
  /** Where objects are kept; a fresh temporary directory (deleted by `stop()`) by default. */
  directory?: string;
}

let shimmed = false;
let listPatched = false;

interface ListOptions {
  delimiter?: string;
  prefix?: string;
  maxKeys?: number;
  startAfter?: string;
}
interface ListResult {
  objects: { key: string }[];
  commonPrefixes: string[];
  isTruncated: boolean;
}

/** Fix s3rver's delimiter listing (see the module doc) on its store class. Idempotent. */
let putPatched = false;

/**
 * s3rver writes an object's body straight to its final file as it streams in, so a client killed
 * mid-request leaves a truncated object and readers see partial bodies. S3 (and GCS) store a PUT
 * atomically: nothing, or the whole body. Patch the store to write a temporary file and rename it
 * into place only when the body completed, as S3 behaves.
 */
function patchAtomicPut(store: object): void {
  if (putPatched) return;
  putPatched = true;
  type Obj = { bucket: string; key: string; content: unknown; metadata: unknown };
  const proto = Object.getPrototypeOf(store) as {
    getResourcePath(bucket: string, key: string, resource: string): string;
    putMetadata(b: string, k: string, m: unknown, md5: string): Promise<void>;
    putObject(this: unknown, object: Obj): Promise<{ size: number; md5: string }>;
  };
  proto.putObject = async function (this: typeof proto, object: Obj) {
    const objectPath = this.getResourcePath(object.bucket, object.key, "object");
    await fsp.mkdir(dirname(objectPath), { recursive: true });
    const tmp = `${objectPath}.${crypto.randomUUID()}.partial`;
    const md5 = crypto.createHash("md5");
    let size = 0;
    try {
      if (object.content instanceof Uint8Array) {
        md5.update(object.content);
        size = object.content.length;
        await fsp.writeFile(tmp, object.content);
      } else {
        const out = await fsp.open(tmp, "w");
        try {
          for await (const chunk of object.content as AsyncIterable<Uint8Array>) {
            md5.update(chunk);
            size += chunk.length;
            await out.write(chunk);
          }
        } finally {
          await out.close();
        }
      }
      await fsp.rename(tmp, objectPath);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    const digest = md5.digest("hex");
    await this.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
}

function patchDelimiterListing(store: object): void {
  if (listPatched) return;
  listPatched = true;
  const proto = Object.getPrototypeOf(store) as {
    listObjects(this: unknown, bucket: string, o: ListOptions): Promise<ListResult>;
  };
  const orig = proto.listObjects;
  proto.listObjects = async function (bucket, options) {
    const { delimiter, prefix = "", maxKeys = Infinity } = options;
    if (!delimiter) return orig.call(this, bucket, options);
    const all = await orig.call(this, bucket, { ...options, delimiter: "", maxKeys: Infinity });
    const common = new Set<string>();
    const objects: { key: string }[] = [];
    let isTruncated = false;
    for (const o of all.objects) {
      const idx = o.key.slice(prefix.length).indexOf(delimiter);
      if (idx !== -1) {
        common.add(o.key.slice(0, prefix.length + idx + 1));
      } else if (objects.length < maxKeys) {
        objects.push(o);
      } else {
        isTruncated = true;
        break;
      }
    }
    return { objects, commonPrefixes: [...common].sort(), isTruncated };
  };
}

/** Make `crypto.createCipheriv("des", …)` work under Deno (see the module doc). Idempotent. */
export function installDesShim(): void {
  if (shimmed) return;
  shimmed = true;
  // deno-lint-ignore no-explicit-any
  const c = crypto as any;
  const origCipher = c.createCipheriv;
  const origDecipher = c.createDecipheriv;
  const isDes = (alg: unknown) => typeof alg === "string" && /^des(-|$)/i.test(alg);
  const pad16 = (b: Uint8Array) => {
    const out = new Uint8Array(16);
    out.set(b.subarray(0, 16));
    return out;
  };
  c.createCipheriv = (alg: string, key: Uint8Array, iv: Uint8Array, ...rest: unknown[]) =>
    isDes(alg)
      ? origCipher.call(c, "aes-128-cbc", pad16(key), pad16(iv), ...rest)
      : origCipher.call(c, alg, key, iv, ...rest);
  c.createDecipheriv = (alg: string, key: Uint8Array, iv: Uint8Array, ...rest: unknown[]) =>
    isDes(alg)
      ? origDecipher.call(c, "aes-128-cbc", pad16(key), pad16(iv), ...rest)
      : origDecipher.call(c, alg, key, iv, ...rest);
}

/** What an in-process `S3Store` needs to talk to s3rver at `server` (see the module doc). */
export function s3rverOptions(server: { endpoint: string }): {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  requestChecksumCalculation: "WHEN_REQUIRED";
  responseChecksumValidation: "WHEN_REQUIRED";
} {
  return {
    endpoint: server.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  };
}

/** A free TCP port on 127.0.0.1 (the OS picks; a tiny race with other processes is accepted). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A random bucket name valid on S3 and GCS. */
export function randomBucket(): string {
  return `rep-test-${crypto.randomUUID().slice(0, 8)}`;
}

/** Start s3rver on 127.0.0.1. */
export async function startS3(options: S3ServerOptions = {}): Promise<TestServer> {
  installDesShim();
  const ownDir = options.directory === undefined;
  const directory = options.directory ?? await Deno.makeTempDir({ prefix: "rep-s3rver-" });
  const port = options.port ?? freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  // deno-lint-ignore no-explicit-any
  let app: any = null;
  let sockets = new Set<Socket>();
  const requests: string[] = [];

  const listen = async () => {
    const s3 = new S3rver({
      address: "127.0.0.1",
      port,
      silent: true,
      directory,
      // Path-style only: clients use path style with a custom endpoint.
      vhostBuckets: false,
      // The SDK signs with the real secret; s3rver accepts S3RVER/S3RVER.
      allowMismatchedSignatures: true,
    });
    // Swallow per-request errors (client disconnects during fault tests) instead of printing them.
    s3.on("error", () => {});
    patchDelimiterListing(s3.store);
    patchAtomicPut(s3.store);
    const conns = new Set<Socket>();
    // s3rver.listen() creates the http.Server inside run(); hook connection tracking onto it.
    const origListen = s3.listen.bind(s3);
    // deno-lint-ignore no-explicit-any
    s3.listen = (...args: any[]) => {
      const p = origListen(...args) as Promise<Server>;
      return p.then((server: Server) => {
        server.on("request", (req: { method?: string; url?: string }) => {
          requests.push(`${req.method} ${req.url}`);
        });
        server.on("connection", (sock: Socket) => {
          conns.add(sock);
          sock.on("close", () => conns.delete(sock));
        });
        return server;
      });
    };
    await s3.run();
    app = s3;
    sockets = conns;
  };

  const close = async () => {
    if (!app) return;
    const s3 = app;
    app = null;
    const done = s3.close();
    for (const sock of sockets) sock.destroy();
    sockets.clear();
    await done;
  };

  await listen();

  const env: Record<string, string> = {
    AWS_ENDPOINT_URL_S3: endpoint,
    AWS_ACCESS_KEY_ID: "S3RVER",
    AWS_SECRET_ACCESS_KEY: "S3RVER",
    AWS_REGION: "us-east-1",
    // s3rver cannot store aws-chunked uploads (see the module doc).
    AWS_REQUEST_CHECKSUM_CALCULATION: "when_required",
    AWS_RESPONSE_CHECKSUM_VALIDATION: "when_required",
  };

  return {
    endpoint,
    env,
    requests,
    requestLog: () => Promise.resolve([...requests]),
    async bucket(name?: string): Promise<string> {
      const b = name ?? randomBucket();
      const res = await fetch(`${endpoint}/${b}`, { method: "PUT" });
      await res.body?.cancel();
      if (!res.ok && res.status !== 409) {
        throw new Error(`Cannot create bucket ${b}: ${res.status}`);
      }
      return b;
    },
    pause: close,
    async restart() {
      await close();
      await listen();
    },
    async stop() {
      await close();
      if (ownDir) await Deno.remove(directory, { recursive: true }).catch(() => {});
    },
  };
}

if (import.meta.main) {
  const port = Deno.args[0] ? Number(Deno.args[0]) : undefined;
  const dir = Deno.args[1];
  const srv = await startS3({
    ...(port !== undefined ? { port } : {}),
    ...(dir !== undefined ? { directory: dir } : {}),
  });
  console.log(JSON.stringify(srv.env));
  const quit = () => srv.stop().then(() => Deno.exit(0));
  Deno.addSignalListener("SIGINT", quit);
  Deno.addSignalListener("SIGTERM", quit);
}
