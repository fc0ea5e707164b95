/**
 * An in-process Cloud Storage server for tests: the Storage emulator from `npm:firebase-tools`,
 * constructed directly (no CLI, no emulator hub) and served by our own `node:http` server on
 * 127.0.0.1 with a random free port.
 *
 * What we change around the emulator:
 *  - Security rules are never loaded: `StorageEmulator.start()` would download and spawn the Java
 *    rules runtime. We skip `start()`, stub the rules manager, and build the Express app with
 *    `createApp()`. The GCS JSON API routes use the admin storage layer, which never consults rules.
 *  - The emulator creates any bucket named in a request on the fly, so real GCS's "bucket does not
 *    exist" could never be tested. A thin front handler makes buckets explicit: `bucket()` (or a
 *    JSON-API `POST /storage/v1/b`, as `bucket.create()` sends) creates one, `GET
 *    /storage/v1/b/NAME` answers for it, and requests naming any other bucket get GCS's 404
 *    "The specified bucket does not exist.".
 *  - Blobs go to a per-instance temp directory (upstream uses one fixed path under the OS temp dir,
 *    shared by every emulator on the machine); metadata stays in memory.
 *  - `pause()` closes the listener and destroys open sockets but keeps the emulator (and so the
 *    data); `restart()` listens again on the same port.
 *
 * Uploads: the emulator finalizes a resumable upload on its first PUT, so chunked resumable uploads
 * (`chunkSize`, i.e. several PUTs with `Content-Range`) never complete. A resumable upload sent as a
 * single streamed PUT (no `chunkSize`) works, as do multipart (`resumable: false`) uploads. Request
 * bodies are capped at 130 MB by the emulator.
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { createApp, EmulatorRegistry, StorageEmulator } from "./deps.ts";
import { freePort, randomBucket, type TestServer } from "./s3.ts";

export type { TestServer };

/** Options for {@link startGcs}. */
export interface GcsServerOptions {
  /** Port to listen on; a random free one by default. */
  port?: number;
  /** The project id reported in `env` (default `rep-test`). */
  projectId?: string;
}

/** Live servers; the emulator registry (one "storage" slot per process) reports the oldest. */
const live: { host: string; port: number }[] = [];
const registered = {
  getName: () => "storage",
  getInfo: () => ({ name: "storage", ...(live[0] ?? { host: "127.0.0.1", port: 9199 }) }),
};

const BUCKET_IN_PATH = /^\/(?:(?:download|upload)\/)?(?:storage\/v1\/)?b\/([^/?]+)/;

/** Start the Cloud Storage emulator on 127.0.0.1. */
export async function startGcs(options: GcsServerOptions = {}): Promise<TestServer> {
  const projectId = options.projectId ?? "rep-test";
  const port = options.port ?? freePort();
  const host = "127.0.0.1";
  const endpoint = `http://${host}:${port}`;
  const blobDir = await Deno.makeTempDir({ prefix: "rep-gcs-emulator-" });

  class Emulator extends StorageEmulator {
    override getPersistenceTmpDir(): string {
      return blobDir;
    }
  }
  const me = { host, port };
  live.push(me);
  EmulatorRegistry.set("storage", registered);
  const emu = new Emulator({ projectId, host, port, auto_download: false });
  // Drop the default rules manager (it owns a chokidar watcher) for a stub that allows nothing to
  // load: only the admin (GCS API) path is used.
  // deno-lint-ignore no-explicit-any
  const e = emu as any;
  await e._rulesManager?.stop?.().catch(() => {});
  e._rulesManager = {
    start: () => Promise.resolve({ errors: [], warnings: [] }),
    stop: () => Promise.resolve(),
    getRuleset: () => undefined,
  };
  const app = await createApp(projectId, emu);
  const buckets = new Set<string>();

  const createBucket = (name: string) => {
    buckets.add(name);
    emu.adminStorageLayer.createBucket(name);
  };

  const requests: string[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    requests.push(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? "/", endpoint);
    const path = url.pathname;
    if (req.method === "POST" && (path === "/storage/v1/b" || path === "/b")) {
      readJson(req).then((body) => {
        const name = typeof body?.name === "string" ? body.name : "";
        if (!name) return sendJson(res, 400, gcsError(400, "Bucket name is required.", "invalid"));
        if (buckets.has(name)) {
          return sendJson(
            res,
            409,
            gcsError(
              409,
              "Your previous request to create the named bucket succeeded and you already own it.",
              "conflict",
            ),
          );
        }
        createBucket(name);
        sendJson(res, 200, bucketJson(name, projectId));
      }, () => sendJson(res, 400, gcsError(400, "Invalid JSON.", "parseError")));
      return;
    }
    const m = BUCKET_IN_PATH.exec(path);
    if (m) {
      const name = decodeURIComponent(m[1]!);
      if (!buckets.has(name)) {
        req.resume();
        return sendJson(
          res,
          404,
          gcsError(404, "The specified bucket does not exist.", "notFound"),
        );
      }
      if (req.method === "GET" && /^\/(?:storage\/v1\/)?b\/[^/]+\/?$/.test(path)) {
        return sendJson(res, 200, bucketJson(name, projectId));
      }
    }
    app(req, res);
  };

  let server: Server | null = null;
  const sockets = new Set<Socket>();
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer(handler);
      s.on("connection", (sock: Socket) => {
        sockets.add(sock);
        sock.on("close", () => sockets.delete(sock));
      });
      s.once("error", reject);
      s.listen(port, host, () => {
        s.off("error", reject);
        server = s;
        resolve();
      });
    });
  const close = async () => {
    const s = server;
    if (!s) return;
    server = null;
    const done = new Promise<void>((r) => s.close(() => r()));
    for (const sock of sockets) sock.destroy();
    sockets.clear();
    await done;
  };

  await listen();

  return {
    endpoint,
    env: {
      STORAGE_EMULATOR_HOST: endpoint,
      GCLOUD_PROJECT: projectId,
      GOOGLE_CLOUD_PROJECT: projectId,
    },
    requests,
    requestLog: () => Promise.resolve([...requests]),
    bucket(name?: string): Promise<string> {
      const b = name ?? randomBucket();
      createBucket(b);
      return Promise.resolve(b);
    },
    pause: close,
    async restart() {
      await close();
      await listen();
    },
    async stop() {
      await close();
      emu.reset();
      live.splice(live.indexOf(me), 1);
      if (live.length === 0) EmulatorRegistry.clear("storage");
      await Deno.remove(blobDir, { recursive: true }).catch(() => {});
    },
  };
}

function gcsError(code: number, message: string, reason: string) {
  return { error: { code, message, errors: [{ message, domain: "global", reason }] } };
}

function bucketJson(name: string, projectId: string) {
  return {
    kind: "storage#bucket",
    id: name,
    name,
    projectNumber: "0",
    location: "US",
    storageClass: "STANDARD",
    metageneration: "1",
    etag: "CAE=",
    timeCreated: new Date().toISOString(),
    updated: new Date().toISOString(),
    selfLink: `storage/v1/b/${name}`,
    project: projectId,
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=UTF-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown> | null> {
  const chunks: Uint8Array[] = [];
  for await (const c of req) chunks.push(c as Uint8Array);
  const text = Buffer.concat(chunks).toString("utf8");
  return text ? JSON.parse(text) : null;
}

if (import.meta.main) {
  const port = Deno.args[0] ? Number(Deno.args[0]) : undefined;
  const srv = await startGcs(port !== undefined ? { port } : {});
  console.log(JSON.stringify(srv.env));
  const quit = () => srv.stop().then(() => Deno.exit(0));
  Deno.addSignalListener("SIGINT", quit);
  Deno.addSignalListener("SIGTERM", quit);
}
