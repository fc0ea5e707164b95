/**
 * S3 throughput of one large checkpoint through rep versus the bare AWS SDK, against s3rver running
 * in its own process (so the server does not share this process's event loop).
 *
 *     deno run -A bench/s3_throughput.ts [--size-mib 1024]
 *
 * Upload, rep: Recorder.start → snapshot (chunk into 64 MiB packs in the outbox) → commit → stop
 * (waits until the outbox has uploaded everything), timed end to end. SDK: `@aws-sdk/lib-storage`
 * Upload of the same file (16 MiB parts, 4 in flight: what S3Store uses per object).
 * Download, rep: Repository.checkout of the file (ranged GETs of the packs, 4 in flight, every
 * chunk's hash checked). SDK: one GetObject streamed to a file. Prints MB/s and rep/SDK ratios.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { GetObjectCommand, S3Client, Upload } from "../src/deps/s3.ts";
import { Repository } from "../src/repository.ts";
import { Recorder } from "../src/writer/recorder.ts";
import { ROOT } from "../tests/helpers.ts";
import { freePort } from "../tests/servers/s3.ts";

const { values: opts } = parseArgs({
  args: Deno.args,
  options: { "size-mib": { type: "string", default: "1024" } },
});
const MiB = 1024 * 1024;
const SIZE = Number(opts["size-mib"]) * MiB;

const tmp = await Deno.makeTempDir({ prefix: "rep-s3-throughput-" });
const port = freePort();
const server = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", join(ROOT, "tests/servers/s3.ts"), String(port), join(tmp, "s3")],
  stdout: "piped",
  stderr: "inherit",
}).spawn();

async function peak(pid: number): Promise<number> {
  const m = /VmHWM:\s+(\d+)/.exec(await Deno.readTextFile(`/proc/${pid}/status`));
  return m ? Number(m[1]) / 1024 : 0;
}

try {
  // The server prints its env as one JSON line once it listens.
  const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) {
    const r = await reader.read();
    if (r.done) throw new Error("s3rver did not start");
    line += r.value;
  }
  reader.releaseLock();
  server.stdout.cancel().catch(() => {});
  const env = JSON.parse(line.trim()) as Record<string, string>;
  for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
  Deno.env.set("REP_CACHE_DIR", join(tmp, "cache"));
  const bucket = "throughput";
  await (await fetch(`${env.AWS_ENDPOINT_URL_S3}/${bucket}`, { method: "PUT" })).body?.cancel();

  // The file: incompressible, no repeated chunks.
  const src = join(tmp, "data");
  await Deno.mkdir(src);
  {
    using f = await Deno.open(join(src, "big.bin"), { write: true, create: true });
    const buf = new Uint8Array(16 * MiB);
    const words = new Uint32Array(buf.buffer);
    let x = 2463534242;
    for (let done = 0; done < SIZE; done += buf.length) {
      for (let i = 0; i < words.length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        words[i] = x;
      }
      const n = Math.min(buf.length, SIZE - done);
      let o = 0;
      while (o < n) o += await f.write(buf.subarray(o, n));
    }
  }
  const mbps = (s: number) => SIZE / MiB / s;
  const client = new S3Client({
    endpoint: env.AWS_ENDPOINT_URL_S3!,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });

  // --- SDK upload
  let t0 = performance.now();
  {
    using f = await Deno.open(join(src, "big.bin"));
    await new Upload({
      client,
      params: { Bucket: bucket, Key: "sdk/big.bin", Body: f.readable },
      partSize: 16 * MiB,
      queueSize: 4,
    }).done();
  }
  const sdkUp = (performance.now() - t0) / 1000;
  console.error(`SDK upload: ${mbps(sdkUp).toFixed(0)} MB/s`);

  // --- rep upload
  const repo = await Repository.open(`s3://${bucket}/rep`, { cache: false });
  t0 = performance.now();
  const rec = await Recorder.start(repo, { params: {}, command: [], code: null });
  const snap = await rec.snapshot(src, ["big.bin"]);
  const chunked = (performance.now() - t0) / 1000;
  const ck = await rec.commit({ tree: snap.tree, step: 0, metrics: { loss: 1 } });
  await rec.stop("succeeded", { exitCode: 0 });
  const repUp = (performance.now() - t0) / 1000;
  console.error(
    `rep upload: ${mbps(repUp).toFixed(0)} MB/s (checkpoint ${ck.id.slice(0, 7)}; ` +
      `snapshot done after ${chunked.toFixed(1)} s, uploads meanwhile)`,
  );
  await Deno.remove(join(src, "big.bin"));

  // --- SDK download
  t0 = performance.now();
  {
    const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: "sdk/big.bin" }));
    using out = await Deno.open(join(tmp, "sdk.bin"), { write: true, create: true });
    const body = (res.Body as { transformToWebStream(): ReadableStream<Uint8Array> })
      .transformToWebStream();
    for await (const c of body) {
      let o = 0;
      while (o < c.length) o += await out.write(c.subarray(o));
    }
  }
  const sdkDown = (performance.now() - t0) / 1000;
  console.error(`SDK download: ${mbps(sdkDown).toFixed(0)} MB/s`);
  await Deno.remove(join(tmp, "sdk.bin"));

  // --- rep download
  t0 = performance.now();
  await repo.checkout(snap.tree.files, join(tmp, "restored"));
  const repDown = (performance.now() - t0) / 1000;
  console.error(`rep download: ${mbps(repDown).toFixed(0)} MB/s`);
  await repo.close();
  client.destroy();

  const row = (what: string, rep: number, sdk: number) =>
    `| ${what} | ${mbps(rep).toFixed(0)} MB/s (${rep.toFixed(1)} s) | ${
      mbps(sdk).toFixed(0)
    } MB/s (${sdk.toFixed(1)} s) | ${(sdk / rep).toFixed(2)}× |`;
  console.log(
    [
      `S3 throughput, ${SIZE / MiB} MiB checkpoint, s3rver on 127.0.0.1 (own process); ` +
      `peak RSS of this process ${(await peak(Deno.pid)).toFixed(0)} MB`,
      "",
      "| direction | rep | bare SDK | rep / SDK |",
      "| --- | --- | --- | --- |",
      row("upload", repUp, sdkUp),
      row("download", repDown, sdkDown),
      "",
      `rep's upload includes chunking and hashing (the snapshot returned after ${
        chunked.toFixed(1)
      } s; packs upload while later ones are cut).`,
    ].join("\n"),
  );
} finally {
  try {
    server.kill("SIGTERM");
  } catch {
    // gone
  }
  await server.status;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
}
