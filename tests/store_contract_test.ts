/**
 * One contract suite for every storage driver, run against real servers: a temp directory (local),
 * s3rver (S3, in-process), moto (S3, its own Python process, configured through a profile in a
 * shared config file, with the SDK's default checksums) and the Firebase Storage emulator (GCS,
 * in-process), all on 127.0.0.1. Plus configuration, error-clarity and fault tests for the cloud
 * drivers.
 *
 * Each backend is one `Deno.test` whose steps are the contract (so its server starts once and the
 * resource sanitizer checks that everything was shut down at the end).
 */
import nodeAssert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ConfigError, NotFoundError, StorageError, UsageError } from "../src/errors.ts";
import { GcsStore } from "../src/storage/gcs.ts";
import { LocalStore } from "../src/storage/local.ts";
import { openStore } from "../src/storage/open.ts";
import { S3Store } from "../src/storage/s3.ts";
import type { Store } from "../src/storage/store.ts";
import { uploadFile } from "../src/writer/outbox.ts";
import { startGcs } from "./servers/gcs.ts";
import { startMoto } from "./servers/moto.ts";
import { freePort, s3rverOptions, startS3, type TestServer } from "./servers/s3.ts";
import { deadEndpoint, slowProxy } from "./servers/tcp.ts";

const MiB = 1024 * 1024;

// Assertions (node:assert; JSR's @std/assert is not reachable from this environment).
function assert(cond: unknown, msg?: string): asserts cond {
  nodeAssert.ok(cond, msg ?? "assertion failed");
}
function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  if (msg === undefined) nodeAssert.deepStrictEqual(actual, expected);
  else nodeAssert.deepStrictEqual(actual, expected, msg);
}
// deno-lint-ignore no-explicit-any
async function assertRejects<E extends Error>(fn: () => unknown, cls: new (...a: any[]) => E) {
  try {
    await fn();
  } catch (e) {
    if (e instanceof cls) return e;
    throw new Error(`expected ${cls.name}, got ${e instanceof Error ? e.stack : e}`);
  }
  throw new Error(`expected ${cls.name}, but it resolved`);
}
const enc = new TextEncoder();
const dec = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// Helpers

/** Deterministic pseudo-random bytes: `size` bytes from `seed`, in chunks of at most 1 MiB. */
function patternStream(size: number, seed: number): ReadableStream<Uint8Array> {
  let left = size;
  let x = seed >>> 0 || 1;
  return new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (left <= 0) {
        ctl.close();
        return;
      }
      // Odd-sized chunks, so part boundaries never line up with chunk boundaries.
      const n = Math.min(left, MiB - 7);
      const buf = new Uint8Array(n);
      const words = new Uint32Array(buf.buffer, 0, n >>> 2);
      for (let i = 0; i < words.length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        words[i] = x;
      }
      for (let i = words.length * 4; i < n; i++) buf[i] = i & 0xff;
      left -= n;
      ctl.enqueue(buf);
    },
  });
}

async function sha256(stream: ReadableStream<Uint8Array>): Promise<{ hex: string; size: number }> {
  const h = createHash("sha256");
  let size = 0;
  for await (const c of stream) {
    h.update(c);
    size += c.byteLength;
  }
  return { hex: h.digest("hex"), size };
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function streamOf(...parts: string[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(parts.map((p) => enc.encode(p)));
}

async function keys(it: AsyncIterable<{ key: string }>): Promise<string[]> {
  const out: string[] = [];
  for await (const o of it) out.push(o.key);
  return out;
}

async function putMany(store: Store, names: string[], concurrency = 32): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (i < names.length) {
        const k = names[i++]!;
        await store.put(k, enc.encode(k));
      }
    }),
  );
}

const sorted = (a: string[]) => [...a].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));

// ---------------------------------------------------------------------------------------------
// Backends

interface Backend {
  /** Class name used in step names, e.g. `S3Store`. */
  name: string;
  /** Start the server (if any); returns a factory of fresh, isolated stores and a cleanup. */
  setup(): Promise<{
    fresh(): Promise<Store>;
    server: TestServer | null;
    bucket: string | null;
    teardown(): Promise<void>;
  }>;
}

let counter = 0;
const uniq = () => `t${Date.now().toString(36)}-${(counter++).toString(36)}`;

const backends: Backend[] = [
  {
    name: "LocalStore",
    async setup() {
      const root = await Deno.makeTempDir({ prefix: "rep-contract-" });
      return {
        server: null,
        bucket: null,
        fresh: () => Promise.resolve(new LocalStore(`${root}/${uniq()}`)),
        teardown: () => Deno.remove(root, { recursive: true }),
      };
    },
  },
  {
    name: "S3Store",
    async setup() {
      const server = await startS3();
      const bucket = await server.bucket();
      const stores: Store[] = [];
      return {
        server,
        bucket,
        fresh() {
          const s = new S3Store(bucket, `root/${uniq()}`, s3rverOptions(server));
          stores.push(s);
          return Promise.resolve(s);
        },
        async teardown() {
          for (const s of stores) await s.close();
          await server.stop();
        },
      };
    },
  },
  {
    name: "S3Store on moto",
    async setup() {
      const server = await startMoto();
      const bucket = await server.bucket();
      const stores: Store[] = [];
      // Configured only by the profile: no endpoint, keys or checksum settings in the env.
      const restore = setEnv(server.env);
      return {
        server,
        bucket,
        fresh() {
          const s = new S3Store(bucket, `root/${uniq()}`);
          stores.push(s);
          return Promise.resolve(s);
        },
        async teardown() {
          for (const s of stores) await s.close();
          restore();
          await server.stop();
        },
      };
    },
  },
  {
    name: "GcsStore",
    async setup() {
      const server = await startGcs();
      const bucket = await server.bucket();
      const stores: Store[] = [];
      return {
        server,
        bucket,
        fresh() {
          const s = new GcsStore(bucket, `root/${uniq()}`, { apiEndpoint: server.endpoint });
          stores.push(s);
          return Promise.resolve(s);
        },
        async teardown() {
          for (const s of stores) await s.close();
          await server.stop();
        },
      };
    },
  },
];

/** Set environment variables in this process; returns what puts them back. */
function setEnv(vars: Record<string, string>): () => void {
  const saved = new Map(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
  return () => {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  };
}

const isS3 = (name: string) => name.startsWith("S3Store");

// ---------------------------------------------------------------------------------------------
// The contract

for (const backend of backends) {
  Deno.test(`${backend.name} storage contract`, async (t) => {
    const env = await backend.setup();
    const N = backend.name;
    try {
      await t.step(`${N} put()/getBytes() round-trips bytes, including empty objects`, async () => {
        const s = await env.fresh();
        await s.put("hello.txt", enc.encode("hello world"));
        assertEquals(dec.decode(await s.getBytes("hello.txt")), "hello world");
        await s.put("empty", new Uint8Array(0));
        assertEquals((await s.getBytes("empty")).length, 0);
        assertEquals((await s.head("empty"))?.size, 0);
        const bin = new Uint8Array(256).map((_, i) => i);
        await s.put("bin", bin);
        assertEquals(await s.getBytes("bin"), bin);
      });

      await t.step(`${N} put() accepts a stream and get() returns one`, async () => {
        const s = await env.fresh();
        await s.put("s.txt", streamOf("strea", "med ", "body"));
        assertEquals(dec.decode(await readAll(await s.get("s.txt"))), "streamed body");
        await s.put("empty-stream", streamOf());
        assertEquals((await s.getBytes("empty-stream")).length, 0);
      });

      await t.step(`${N} put() of a 40 MiB stream (multipart) round-trips`, async () => {
        const s = await env.fresh();
        const size = 40 * MiB + 123;
        const want = await sha256(patternStream(size, 42));
        await s.put("big/blob.bin", patternStream(size, 42), size);
        assertEquals((await s.head("big/blob.bin"))?.size, size);
        const got = await sha256(await s.get("big/blob.bin"));
        assertEquals(got, want);
        // A range across the 16 MiB part boundary.
        const all = await readAll(patternStream(size, 42));
        const r = await s.getBytes("big/blob.bin", { offset: 16 * MiB - 10, length: 20 });
        assertEquals(r, all.subarray(16 * MiB - 10, 16 * MiB + 10));
        if (isS3(N)) {
          // A multipart upload of three 16 MiB parts (the last one partial).
          const parts = (await env.server!.requestLog()).filter((r) =>
            r.startsWith("PUT ") && r.includes("big/blob.bin") && r.includes("partNumber=")
          );
          assertEquals(parts.length, 3, parts.join("\n"));
        }
        if (N === "GcsStore") {
          // A resumable upload (one streamed PUT), not a multipart POST.
          const reqs = (await env.server!.requestLog()).filter((r) => r.includes("big%2Fblob.bin"));
          assert(reqs.some((r) => r.startsWith("POST ") && r.includes("uploadType=resumable")));
          assertEquals(reqs.filter((r) => r.startsWith("PUT ")).length, 1, reqs.join("\n"));
        }
      });

      await t.step(`${N} put() of a large Uint8Array round-trips`, async () => {
        const s = await env.fresh();
        const data = await readAll(patternStream(17 * MiB, 7));
        await s.put("u8.bin", data);
        const got = await s.getBytes("u8.bin");
        assertEquals(got.length, data.length);
        assert(got.every((b, i) => b === data[i]));
      });

      await t.step(`${N} ranged reads: offset only, offset+length, past the end`, async () => {
        const s = await env.fresh();
        await s.put("r", enc.encode("0123456789"));
        const text = async (range: { offset: number; length?: number }) =>
          dec.decode(await s.getBytes("r", range));
        assertEquals(await text({ offset: 0 }), "0123456789");
        assertEquals(await text({ offset: 4 }), "456789");
        assertEquals(await text({ offset: 2, length: 3 }), "234");
        assertEquals(await text({ offset: 0, length: 1 }), "0");
        assertEquals(await text({ offset: 7, length: 100 }), "789");
        assertEquals(await text({ offset: 9, length: 1 }), "9");
        assertEquals(await text({ offset: 10 }), "");
        assertEquals(await text({ offset: 50 }), "");
        assertEquals(await text({ offset: 50, length: 5 }), "");
        assertEquals(await text({ offset: 3, length: 0 }), "");
        assertEquals(dec.decode(await readAll(await s.get("r", { offset: 5, length: 2 }))), "56");
        assertEquals(dec.decode(await readAll(await s.get("r", { offset: 8 }))), "89");
      });

      await t.step(`${N} head() reports size and time, or null when missing`, async () => {
        const s = await env.fresh();
        const before = Date.now();
        await s.put("h/obj", enc.encode("12345"));
        const info = await s.head("h/obj");
        assertEquals(info?.key, "h/obj");
        assertEquals(info?.size, 5);
        assert(info?.mtime instanceof Date);
        // Second-resolution clocks (S3 Last-Modified), generous slack.
        assert(Math.abs(info.mtime.getTime() - before) < 60_000, `mtime ${info.mtime}`);
        assertEquals(await s.head("h/missing"), null);
        assertEquals(await s.head("h"), null); // a "folder" is not an object
      });

      await t.step(`${N} get() of a missing key throws NotFoundError`, async () => {
        const s = await env.fresh();
        await assertRejects(() => s.get("nope/x"), NotFoundError);
        await assertRejects(() => s.getBytes("nope/x"), NotFoundError);
        await assertRejects(() => s.getBytes("nope/x", { offset: 3, length: 2 }), NotFoundError);
        await assertRejects(() => s.getBytes("nope/x", { offset: 3, length: 0 }), NotFoundError);
      });

      await t.step(`${N} rejects invalid keys`, async () => {
        const s = await env.fresh();
        for (const bad of ["", "/abs", "a//b", "a/../b", "./a", "a\\b"]) {
          await assertRejects(() => s.put(bad, new Uint8Array(1)), UsageError);
        }
      });

      await t.step(`${N} list() filters by prefix, in key order, with nested folders`, async () => {
        const s = await env.fresh();
        const names = [
          "objects/ab/cdef",
          "objects/ab/0000",
          "objects/a0/zz",
          "objects/ff/1/2/3/deep",
          "objectsX",
          "refs/main",
          "z",
        ];
        await putMany(s, names);
        const all = await Array.fromAsync(s.list(""));
        assertEquals(all.map((o) => o.key), sorted(names));
        assertEquals(all.find((o) => o.key === "refs/main")?.size, "refs/main".length);
        assertEquals(await keys(s.list("objects/")), sorted(names.slice(0, 4)));
        assertEquals(await keys(s.list("objects")), sorted(names.slice(0, 5)));
        assertEquals(await keys(s.list("objects/ab/")), ["objects/ab/0000", "objects/ab/cdef"]);
        assertEquals(await keys(s.list("objects/ab/c")), ["objects/ab/cdef"]);
        assertEquals(await keys(s.list("objects/ff/1/2/")), ["objects/ff/1/2/3/deep"]);
        assertEquals(await keys(s.list("nothing/")), []);
        assertEquals(
          dec.decode(await s.getBytes("objects/ff/1/2/3/deep")),
          "objects/ff/1/2/3/deep",
        );
      });

      await t.step(`${N} keys with spaces, unicode and URL-special characters`, async () => {
        const s = await env.fresh();
        const names = ["sp ace/ü-ñ/a+b=c.bin", "q/100%/x#y;z", "q/é"];
        await putMany(s, names);
        for (const k of names) assertEquals(dec.decode(await s.getBytes(k)), k);
        assertEquals(dec.decode(await s.getBytes(names[0]!, { offset: 3, length: 4 })), "ace/");
        assertEquals(await keys(s.list("q/")), ["q/100%/x#y;z", "q/é"]);
        assertEquals(await Array.fromAsync(s.listPrefixes("q/")), ["q/100%/"]);
        await s.delete(names);
        assertEquals(await keys(s.list("")), []);
      });

      await t.step(`${N} list() startAfter skips keys up to and including it`, async () => {
        const s = await env.fresh();
        const names = ["p/a", "p/b", "p/c/1", "p/c/2", "p/d"];
        await putMany(s, names);
        assertEquals(await keys(s.list("p/", { startAfter: "p/b" })), ["p/c/1", "p/c/2", "p/d"]);
        assertEquals(await keys(s.list("p/", { startAfter: "p/bb" })), ["p/c/1", "p/c/2", "p/d"]);
        assertEquals(await keys(s.list("p/", { startAfter: "p/c/1" })), ["p/c/2", "p/d"]);
        assertEquals(await keys(s.list("p/", { startAfter: "a" })), names);
        assertEquals(await keys(s.list("p/", { startAfter: "p/d" })), []);
        assertEquals(await keys(s.list("p/", { startAfter: "q" })), []);
      });

      await t.step(`${N} list() paginates past 1000 keys`, async () => {
        const s = await env.fresh();
        const names = Array.from({ length: 1100 }, (_, i) => `many/${String(i).padStart(5, "0")}`);
        await putMany(s, names, 32);
        await s.put("many-other", enc.encode("x"));
        const got = await keys(s.list("many/"));
        assertEquals(got.length, 1100);
        assertEquals(got, names);
        // startAfter beyond the first page, and a later page boundary.
        assertEquals(await keys(s.list("many/", { startAfter: names[1049]! })), names.slice(1050));
        assertEquals((await keys(s.list("many/", { startAfter: names[10]! }))).length, 1089);
        // delete() of more than one batch of 1000 keys.
        await s.delete(names);
        assertEquals(await keys(s.list("many/")), []);
        assertEquals(await keys(s.list("many")), ["many-other"]);
      });

      await t.step(`${N} listPrefixes() lists the folders directly under a prefix`, async () => {
        const s = await env.fresh();
        await putMany(s, [
          "exp/b/1",
          "exp/a/1",
          "exp/a/2",
          "exp/c/x/y",
          "exp/file",
          "other/q",
          "top",
        ]);
        assertEquals(await Array.fromAsync(s.listPrefixes("exp/")), ["exp/a/", "exp/b/", "exp/c/"]);
        assertEquals(await Array.fromAsync(s.listPrefixes("")), ["exp/", "other/"]);
        assertEquals(await Array.fromAsync(s.listPrefixes("exp/c/")), ["exp/c/x/"]);
        assertEquals(await Array.fromAsync(s.listPrefixes("exp/a/")), []);
        assertEquals(await Array.fromAsync(s.listPrefixes("missing/")), []);
      });

      await t.step(`${N} delete() removes objects and ignores missing keys`, async () => {
        const s = await env.fresh();
        await putMany(s, ["d/1", "d/2", "d/3"]);
        await s.delete(["d/1", "d/missing", "d/3"]);
        assertEquals(await keys(s.list("d/")), ["d/2"]);
        await s.delete([]);
        await s.delete(["never/existed"]);
        await assertRejects(() => s.get("d/1"), NotFoundError);
        assertEquals(await s.head("d/3"), null);
      });

      await t.step(`${N} overwrite of a key replaces it atomically`, async () => {
        const s = await env.fresh();
        const a = new Uint8Array(2 * MiB).fill(0xaa);
        const b = new Uint8Array(3 * MiB).fill(0xbb);
        await s.put("hb", a);
        // Readers racing the writers see a whole old or a whole new object, never a mix.
        let stop = false;
        const reader = (async () => {
          let reads = 0;
          while (!stop || reads === 0) {
            const got = await s.getBytes("hb");
            const v = got[0];
            assert(v === 0xaa || v === 0xbb);
            assertEquals(got.length, v === 0xaa ? a.length : b.length);
            assert(got.every((x) => x === v), "torn read");
            reads++;
          }
          return reads;
        })();
        for (let i = 0; i < 6; i++) await s.put("hb", i % 2 ? a : b);
        stop = true;
        assert((await reader) > 0);
        assertEquals((await s.getBytes("hb")).length, a.length);
        await s.put("hb", streamOf("final"));
        assertEquals(dec.decode(await s.getBytes("hb")), "final");
        assertEquals((await s.head("hb"))?.size, 5);
      });

      await t.step(`${N} concurrent put() of 50 objects`, async () => {
        const s = await env.fresh();
        const names = Array.from({ length: 50 }, (_, i) => `c/${i}/obj`);
        await Promise.all(names.map((k, i) => s.put(k, enc.encode(`${k}:${"x".repeat(i)}`))));
        const listed = await Array.fromAsync(s.list("c/"));
        assertEquals(listed.map((o) => o.key), sorted(names));
        for (const [i, k] of names.entries()) {
          assertEquals(dec.decode(await s.getBytes(k)), `${k}:${"x".repeat(i)}`);
        }
      });

      await t.step(`${N} a cancelled get() stream releases its connection`, async () => {
        const s = await env.fresh();
        await s.put("cancel.bin", patternStream(4 * MiB, 3));
        const stream = await s.get("cancel.bin");
        const reader = stream.getReader();
        await reader.read();
        await reader.cancel();
        assertEquals((await s.head("cancel.bin"))?.size, 4 * MiB);
      });
    } finally {
      await env.teardown();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Configuration from the environment (what a child `rep` process sees)

async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = new Map(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
  try {
    return await fn();
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
}

Deno.test("S3Store is configured from the environment via openStore('s3://…')", async () => {
  const server = await startS3();
  try {
    const bucket = await server.bucket();
    await withEnv({ ...server.env, AWS_REGION: "" }, async () => {
      // AWS_REGION empty: falls back to us-east-1. AWS_ENDPOINT_URL_S3 + path style from env.
      const store = await openStore(`s3://${bucket}/some/prefix/`);
      try {
        assert(store instanceof S3Store);
        assertEquals(store.url, `s3://${bucket}/some/prefix`);
        await store.put("k", enc.encode("v"));
        assertEquals(dec.decode(await store.getBytes("k")), "v");
        assertEquals(await keys(store.list("")), ["k"]);
      } finally {
        await store.close();
      }
      const root = new S3Store(bucket, "");
      try {
        assertEquals(await keys(root.list("some/")), ["some/prefix/k"]);
      } finally {
        await root.close();
      }
    });
  } finally {
    await server.stop();
  }
});

Deno.test("S3Store takes endpoint, region and path style from an AWS profile (AWS_PROFILE, no endpoint variable)", async () => {
  const server = await startMoto();
  const dir = await Deno.makeTempDir({ prefix: "rep-profile-" });
  try {
    const bucket = await server.bucket();
    const config = await Deno.readTextFile(server.env.AWS_CONFIG_FILE!);
    // The profile names http://localhost:PORT: virtual-hosted requests would go to
    // BUCKET.localhost, which does not resolve.
    assert(/^endpoint_url = http:\/\/localhost:\d+$/m.test(config), config);
    await withEnv(server.env, async () => {
      const store = await openStore(`s3://${bucket}/p`);
      try {
        assert(store instanceof S3Store);
        await store.put("k", enc.encode("v"));
        assertEquals(dec.decode(await store.getBytes("k")), "v");
        const c = await store.configuration();
        assertEquals(c, {
          endpoint: server.endpoint,
          endpointSetting: `endpoint_url in profile "rep-moto" of ${server.env.AWS_CONFIG_FILE}`,
          region: "us-east-1",
          forcePathStyle: true,
        });
        const log = await server.requestLog();
        assert(log.includes(`PUT /${bucket}/p/k?x-id=PutObject`), log.join("\n"));
      } finally {
        await store.close();
      }
    });
    // Each variant of the profile, in its own config file.
    const variant = async (text: string, extra: Record<string, string> = {}) => {
      const file = `${dir}/config-${uniq()}`;
      await Deno.writeTextFile(file, text);
      return await withEnv({ ...server.env, AWS_CONFIG_FILE: file, ...extra }, async () => {
        const store = new S3Store(bucket, "p");
        try {
          return await store.configuration();
        } finally {
          await store.close();
        }
      });
    };
    const noStyle = config.replace(/^s3 =\n {2}addressing_style = path\n/m, "");
    assert(!noStyle.includes("addressing_style"));
    // A custom endpoint alone means path style.
    assertEquals((await variant(noStyle)).forcePathStyle, true);
    // The profile's addressing style is honoured, and REP_S3_FORCE_PATH_STYLE overrides it.
    const virtual = config.replace("addressing_style = path", "addressing_style = virtual");
    assertEquals((await variant(virtual)).forcePathStyle, false);
    assertEquals((await variant(virtual, { REP_S3_FORCE_PATH_STYLE: "1" })).forcePathStyle, true);
    assertEquals((await variant(config, { REP_S3_FORCE_PATH_STYLE: "0" })).forcePathStyle, false);
    // An endpoint in the environment wins over the profile's.
    const env = await variant(config, { AWS_ENDPOINT_URL_S3: "http://127.0.0.1:1" });
    assertEquals([env.endpoint, env.endpointSetting], [
      "http://127.0.0.1:1",
      "AWS_ENDPOINT_URL_S3",
    ]);
    // No endpoint anywhere: AWS, virtual-hosted; the region from the profile.
    const aws = await variant(
      noStyle.replace(/^endpoint_url = .*\n/m, "").replace(
        "region = us-east-1",
        "region = eu-west-3",
      ),
    );
    assertEquals(aws, {
      endpoint: undefined,
      endpointSetting: "",
      region: "eu-west-3",
      forcePathStyle: false,
    });
    const bad = config.replace("addressing_style = path", "addressing_style = sideways");
    const e = await assertRejects(() => variant(bad), ConfigError);
    assert(e.message.includes('"sideways"') && e.message.includes('"rep-moto"'), e.message);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await server.stop();
  }
});

Deno.test("GcsStore is configured from STORAGE_EMULATOR_HOST (bare host:port) via openStore('gs://…')", async () => {
  const server = await startGcs();
  try {
    const bucket = await server.bucket();
    const bare = server.endpoint.replace(/^http:\/\//, "");
    await withEnv({ ...server.env, STORAGE_EMULATOR_HOST: bare }, async () => {
      const store = await openStore(`gs://${bucket}/pre`);
      try {
        assert(store instanceof GcsStore);
        await store.put("k", enc.encode("v"));
        assertEquals(dec.decode(await store.getBytes("k")), "v");
        assertEquals(await keys(store.list("")), ["k"]);
      } finally {
        await store.close();
      }
    });
  } finally {
    await server.stop();
  }
});

// ---------------------------------------------------------------------------------------------
// Error clarity

Deno.test("S3Store missing bucket gives StorageError naming the bucket", async () => {
  const server = await startS3();
  const store = new S3Store("rep-no-such-bucket", "p", s3rverOptions(server));
  try {
    for (
      const op of [
        () => store.put("k", enc.encode("v")),
        () => store.put("k", patternStream(100, 1)),
        () => store.get("k"),
        () => store.head("k"),
        () => Array.fromAsync(store.list("")),
        () => Array.fromAsync(store.listPrefixes("")),
        () => store.delete(["k"]),
      ]
    ) {
      const e = await assertRejects(op, StorageError);
      assert(e.message.includes('Bucket "rep-no-such-bucket" does not exist'), e.message);
      assert((e as StorageError).hint?.includes("s3://rep-no-such-bucket"));
    }
    await store.ensureBucket();
    await store.put("k", enc.encode("v"));
    assertEquals(dec.decode(await store.getBytes("k")), "v");
    await store.ensureBucket(); // idempotent
  } finally {
    await store.close();
    await server.stop();
  }
});

Deno.test("GcsStore missing bucket gives StorageError naming the bucket", async () => {
  const server = await startGcs();
  const store = new GcsStore("rep-no-such-bucket", "p", { apiEndpoint: server.endpoint });
  try {
    for (
      const op of [
        () => store.put("k", enc.encode("v")),
        () => store.put("k", patternStream(100, 1)),
        () => store.get("k"),
        () => store.head("k"),
        () => Array.fromAsync(store.list("")),
        () => Array.fromAsync(store.listPrefixes("")),
        () => store.delete(["k"]),
      ]
    ) {
      const e = await assertRejects(op, StorageError);
      assert(e.message.includes('Bucket "rep-no-such-bucket" does not exist'), e.message);
      assert((e as StorageError).hint?.includes("gs://rep-no-such-bucket"));
    }
    await store.ensureBucket();
    await store.put("k", enc.encode("v"));
    assertEquals(dec.decode(await store.getBytes("k")), "v");
    await store.ensureBucket(); // idempotent
  } finally {
    await store.close();
    await server.stop();
  }
});

Deno.test("S3Store without credentials gives StorageError with a credentials hint", async () => {
  const vars = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  ];
  const saved = new Map(vars.map((k) => [k, Deno.env.get(k)]));
  for (const k of vars) Deno.env.delete(k);
  const dir = await Deno.makeTempDir();
  // No files and no instance metadata service: the chain has nowhere left to look (and sends
  // nothing over the network).
  const store = await withEnv({
    AWS_SHARED_CREDENTIALS_FILE: `${dir}/credentials`,
    AWS_CONFIG_FILE: `${dir}/config`,
    AWS_EC2_METADATA_DISABLED: "true",
  }, async () => {
    const store = new S3Store("bucket", "p", {
      endpoint: `http://127.0.0.1:${freePort()}`,
      region: "us-east-1",
    });
    try {
      const e = await assertRejects(() => store.head("k"), StorageError);
      assert(/credentials/i.test(e.message), e.message);
      assert((e as StorageError).hint?.includes("AWS_ACCESS_KEY_ID"));
      assert((e as StorageError).hint?.includes("AWS_PROFILE"));
    } finally {
      await store.close();
    }
    return store;
  }).finally(async () => {
    for (const [k, v] of saved) if (v !== undefined) Deno.env.set(k, v);
    await Deno.remove(dir, { recursive: true });
  });
  assert(store);
});

for (const name of ["S3Store", "GcsStore"] as const) {
  Deno.test(`${name} dead endpoint fails within bounded time with StorageError`, async () => {
    const endpoint = `http://127.0.0.1:${freePort()}`; // nothing listens there
    const store = name === "S3Store"
      ? new S3Store("bucket", "p", {
        endpoint,
        region: "us-east-1",
        credentials: { accessKeyId: "x", secretAccessKey: "y" },
      })
      : new GcsStore("bucket", "p", { apiEndpoint: endpoint });
    try {
      const ops = [
        () => store.head("k"),
        () => store.put("k", enc.encode("v")),
        () => store.getBytes("k"),
        () => Array.fromAsync(store.list("")),
      ];
      // Concurrently: each op retries with backoff (up to ~15 s on GCS) before giving up.
      await Promise.all(ops.map(async (op) => {
        const t0 = Date.now();
        const e = await assertRejects(op, StorageError);
        const took = Date.now() - t0;
        assert(took < 30_000, `took ${took} ms`);
        assert(e.message.includes(endpoint), e.message);
        assert(/reach/i.test(e.message), e.message);
      }));
    } finally {
      await store.close();
    }
  });
}

// S3 only: the GCS SDK's own requests have no stall timeout yet (see gcs.ts).
{
  Deno.test("S3Store endpoint that accepts connections and never answers fails within 15 s and says so", async () => {
    const dead = deadEndpoint();
    const store = new S3Store("bucket", "p", {
      endpoint: dead.endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "x", secretAccessKey: "y" },
    });
    const file = await Deno.makeTempFile();
    try {
      await Deno.writeFile(file, await readAll(patternStream(20 * MiB, 5)));
      const ops: [string, () => Promise<unknown>][] = [
        ["head", () => store.head("k")],
        ["small put", () => store.put("k", enc.encode("v"))],
        ["20 MiB put", () => store.put("k", new Uint8Array(20 * MiB))],
        ["20 MiB file", () => uploadFile(store, "k", file)],
        ["ranged read", () => store.getBytes("k", { offset: 5, length: 100 })],
        ["list", () => Array.fromAsync(store.list(""))],
      ];
      const took = await Promise.all(ops.map(async ([what, op]) => {
        const t0 = Date.now();
        const e = await assertRejects(op, StorageError);
        const ms = Date.now() - t0;
        assert(e.message.includes(dead.endpoint), `${what}: ${e.message}`);
        assert(/stopped answering: 5 s without progress/.test(e.message), `${what}: ${e.message}`);
        return `${what} ${(ms / 1000).toFixed(1)} s`;
      }));
      console.log(took.join(", "));
      for (const t of took) assert(Number(/ ([\d.]+) s$/.exec(t)![1]) <= 15, took.join(", "));
    } finally {
      await store.close();
      await dead.close();
      await Deno.remove(file);
    }
  });
}

Deno.test("S3Store uploads through a slow link: the stall timeout counts no progress, not time", async () => {
  const server = await startS3();
  // 10 MiB at 1 MiB/s: twice the stall timeout, and a single streamed request.
  const proxy = slowProxy(server.endpoint, MiB);
  const store = new S3Store(await server.bucket(), "slow", {
    ...s3rverOptions(server),
    endpoint: proxy.endpoint,
  });
  const file = await Deno.makeTempFile();
  try {
    const data = await readAll(patternStream(10 * MiB + 17, 11));
    await Deno.writeFile(file, data);
    const t0 = Date.now();
    await store.putFile("pack", file);
    const took = Date.now() - t0;
    assert(took > 5_000, `the upload took only ${took} ms: the link was not slow`);
    assertEquals(await store.getBytes("pack"), data);
    const puts = (await server.requestLog()).filter((r) =>
      r.startsWith("PUT ") && r.includes("/slow/pack")
    );
    assertEquals(puts.length, 1, puts.join("\n"));
  } finally {
    await store.close();
    await proxy.close();
    await server.stop();
    await Deno.remove(file);
  }
});

// ---------------------------------------------------------------------------------------------
// Faults: the server goes away mid-run and comes back on the same port with the same data

for (const name of ["S3Store", "S3Store on moto", "GcsStore"] as const) {
  // s3rver and the GCS emulator drop every connection and refuse new ones; moto is stopped
  // (SIGSTOP): its connections hang.
  Deno.test(`${name} survives a server restart, resuming an interrupted download`, async () => {
    const server = name === "S3Store"
      ? await startS3()
      : name === "GcsStore"
      ? await startGcs()
      : await startMoto();
    const bucket = await server.bucket();
    const store = name === "S3Store"
      ? new S3Store(bucket, "r", s3rverOptions(server))
      : name === "GcsStore"
      ? new GcsStore(bucket, "r", { apiEndpoint: server.endpoint })
      : new S3Store(bucket, "r", {
        endpoint: server.endpoint,
        region: "us-east-1",
        credentials: { accessKeyId: "moto", secretAccessKey: "moto" },
      });
    try {
      const size = 24 * MiB;
      await store.put("blob", patternStream(size, 9));
      const want = await sha256(patternStream(size, 9));

      // A download in progress when the server drops every connection.
      const reader = (await store.get("blob")).getReader();
      const h = createHash("sha256");
      let got = 0;
      const first = await reader.read();
      h.update(first.value!);
      got += first.value!.byteLength;
      await server.pause();
      // A stopped moto keeps the connection open: the body stalls, and the reader gives up on it
      // after the 5 s stall timeout, then resumes.
      setTimeout(() => server.restart(), name === "S3Store on moto" ? 7_000 : 2_000);
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        h.update(value);
        got += value.byteLength;
      }
      assertEquals({ hex: h.digest("hex"), size: got }, want);
      // The download was resumed with a second (ranged) GET.
      const gets = (await server.requestLog()).filter((r) =>
        r.startsWith("GET ") && /r(\/|%2F)blob/.test(r)
      );
      assert(gets.length >= 2, gets.join("\n"));

      // Requests issued while the server is down succeed once it is back.
      await server.pause();
      const back = new Promise((r) => setTimeout(() => server.restart().then(r), 2_000));
      await store.put("after", enc.encode("ok"));
      assertEquals(dec.decode(await store.getBytes("after")), "ok");
      await back;
    } finally {
      await store.close();
      await server.stop();
    }
  });
}
