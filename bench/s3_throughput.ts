/**
 * S3 throughput of one large checkpoint through rep versus the bare AWS SDK, on two S3
 * implementations, each in its own process (so the server does not share this process's event
 * loop): s3rver (`tests/servers/s3.ts`) and moto (`tests/servers/moto_s3.py`, configured through
 * a profile in a shared config file, SDK default checksums).
 *
 *     deno run -A bench/s3_throughput.ts [--size-mib 1024] [--runs 2] [--servers s3rver,moto]
 *
 * A full run (1 GiB, both servers) also writes bench/RESULTS_s3.md.
 *
 * Upload, rep: Recorder.start → snapshot (chunk into 64 MiB packs in the outbox) → commit → stop
 * (waits until the outbox has uploaded everything), timed end to end. SDK: `@aws-sdk/lib-storage`
 * Upload of the same file (16 MiB parts, 4 in flight).
 * Download, rep: Repository.checkout of the file (ranged GETs of the packs, 4 in flight, every
 * chunk's hash checked). SDK: one GetObject streamed to a file.
 *
 * The first run checks that both downloads wrote exactly the file's bytes (sha256, untimed).
 * Each run times rep and the SDK back to back on the same server; the table gives medians, the
 * ratio is SDK time / rep time (above 1: rep is faster), and every run's figures are listed.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createReadStream } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { CreateBucketCommand, GetObjectCommand, S3Client, Upload } from "../src/deps/s3.ts";
import { Repository } from "../src/repository.ts";
import { Recorder } from "../src/writer/recorder.ts";
import { ROOT } from "../tests/helpers.ts";
import { freePort } from "../tests/servers/s3.ts";

const MiB = 1024 * 1024;

/** One server's figures: seconds per run, rep and SDK, each direction. */
export interface S3Figures {
  server: string;
  upload: { rep: number[]; sdk: number[] };
  download: { rep: number[]; sdk: number[] };
}

/** A server process that printed its client env as one JSON line. */
interface Spawned {
  env: Record<string, string>;
  stop(): Promise<void>;
}

async function spawnServer(cmd: string, args: string[]): Promise<Spawned> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) {
    const r = await reader.read();
    if (r.done) throw new Error(`${cmd} ${args.join(" ")} did not start`);
    line += r.value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return {
    env: JSON.parse(line.slice(0, line.indexOf("\n"))),
    async stop() {
      await child.stdin.close().catch(() => {});
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
    },
  };
}

/** Start `name` ("s3rver" or "moto") in its own process, keeping data under `dir`. */
function startServer(name: string, dir: string): Promise<Spawned> {
  if (name === "s3rver") {
    return spawnServer(Deno.execPath(), [
      "run",
      "-A",
      join(ROOT, "tests/servers/s3.ts"),
      String(freePort()),
      join(dir, "s3rver"),
    ]);
  }
  if (name === "moto") {
    return spawnServer("python3", [join(ROOT, "tests/servers/moto_s3.py"), "--dir", dir]);
  }
  throw new Error(`unknown server ${name}: use s3rver or moto`);
}

/** Set `vars` in this process's environment; returns what restores it. */
function setEnv(vars: Record<string, string>): () => void {
  const saved = Object.keys(vars).map((k) => [k, Deno.env.get(k)] as const);
  for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
  return () => {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  };
}

async function writeAll(f: Deno.FsFile, b: Uint8Array): Promise<void> {
  let o = 0;
  while (o < b.length) o += await f.write(b.subarray(o));
}

/** Write `size` bytes of incompressible, non-repeating data to `path`. */
export async function noiseFile(path: string, size: number): Promise<void> {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  const buf = new Uint8Array(16 * MiB);
  const words = new Uint32Array(buf.buffer);
  let x = 2463534242;
  for (let done = 0; done < size; done += buf.length) {
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x;
    }
    await writeAll(f, buf.subarray(0, Math.min(buf.length, size - done)));
  }
}

/** The hex sha256 of a file (untimed checks that a download wrote exactly the bytes sent). */
async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  using f = await Deno.open(path);
  const buf = new Uint8Array(16 * MiB);
  for (let n; (n = await f.read(buf)) !== null;) h.update(buf.subarray(0, n));
  return h.digest("hex");
}

const seconds = async (fn: () => Promise<unknown>): Promise<number> => {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
};

/**
 * Upload and download `file` (in folder `src`) through rep and through the bare SDK, `runs`
 * times, on server `name`, started in its own process with data under `tmp`.
 */
export async function measureS3(
  name: string,
  src: string,
  file: string,
  runs: number,
  tmp: string,
): Promise<S3Figures> {
  const dir = await Deno.makeTempDir({ dir: tmp, prefix: `${name}-` });
  const server = await startServer(name, dir);
  const restore = setEnv({ ...server.env, REP_CACHE_DIR: join(dir, "cache") });
  // The same configuration for the SDK baseline as for rep: what the environment (and, for
  // moto, the profile) says.
  const client = new S3Client({ forcePathStyle: true });
  const figures: S3Figures = {
    server: name,
    upload: { rep: [], sdk: [] },
    download: { rep: [], sdk: [] },
  };
  try {
    const bucket = "throughput";
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    for (let i = 0; i < runs; i++) {
      figures.upload.sdk.push(
        await seconds(() =>
          new Upload({
            client,
            params: { Bucket: bucket, Key: `sdk/${i}`, Body: createReadStream(join(src, file)) },
            partSize: 16 * MiB,
            queueSize: 4,
          }).done()
        ),
      );
      const repo = await Repository.open(`s3://${bucket}/rep-${i}`, { cache: false });
      let files: Awaited<ReturnType<Recorder["snapshot"]>>["tree"]["files"] = [];
      figures.upload.rep.push(
        await seconds(async () => {
          const rec = await Recorder.start(repo, { params: {}, command: [], code: null });
          const snap = await rec.snapshot(src, [file]);
          await rec.commit({ tree: snap.tree, step: 0, metrics: { loss: 1 } });
          await rec.stop("succeeded", { exitCode: 0 });
          files = snap.tree.files;
        }),
      );
      const sdkOut = join(dir, `sdk-${i}.bin`);
      figures.download.sdk.push(
        await seconds(async () => {
          const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: `sdk/${i}` }));
          using out = await Deno.open(sdkOut, { write: true, createNew: true });
          const body = (r.Body as { transformToWebStream(): ReadableStream<Uint8Array> })
            .transformToWebStream();
          for await (const c of body) await writeAll(out, c);
        }),
      );
      const want = i === 0 ? await sha256File(join(src, file)) : "";
      if (i === 0 && await sha256File(sdkOut) !== want) {
        throw new Error(`${name}: the SDK download differs from the uploaded file`);
      }
      await Deno.remove(sdkOut);
      const repOut = join(dir, `rep-${i}`);
      figures.download.rep.push(await seconds(() => repo.checkout(files, repOut)));
      if (i === 0 && await sha256File(join(repOut, file)) !== want) {
        throw new Error(`${name}: rep's checkout differs from the checkpointed file`);
      }
      await Deno.remove(repOut, { recursive: true });
      await repo.close();
    }
  } finally {
    client.destroy();
    restore();
    await server.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return figures;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Markdown rows for `figures` of a `size`-byte file. */
export function s3Rows(figures: S3Figures, size: number): string[] {
  const mbps = (s: number) => (size / MiB / s).toFixed(0);
  const row = (what: string, target: number, d: { rep: number[]; sdk: number[] }) => {
    const rep = median(d.rep);
    const sdk = median(d.sdk);
    const ratio = sdk / rep;
    const list = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(", ");
    return `| ${figures.server} | ${what} | ${mbps(rep)} MiB/s (${rep.toFixed(2)} s) | ${
      mbps(sdk)
    } MiB/s (${sdk.toFixed(2)} s) | ${ratio.toFixed(2)}× | ≥ ${target}× | ${
      ratio >= target ? "yes" : "**no**"
    } | rep [${list(d.rep)}] SDK [${list(d.sdk)}] |`;
  };
  return [
    row("upload: rep checkpoint vs SDK Upload", 1, figures.upload),
    row("download: rep checkout vs SDK GetObject", 0.8, figures.download),
  ];
}

if (import.meta.main) {
  const { values: opts } = parseArgs({
    args: Deno.args,
    options: {
      "size-mib": { type: "string", default: "1024" },
      runs: { type: "string", default: "2" },
      servers: { type: "string", default: "s3rver,moto" },
    },
  });
  const size = Number(opts["size-mib"]) * MiB;
  const tmp = await Deno.makeTempDir({ prefix: "rep-s3-throughput-" });
  try {
    const src = join(tmp, "data");
    await Deno.mkdir(src);
    await noiseFile(join(src, "big.bin"), size);
    const rows: string[] = [];
    for (const name of opts.servers.split(",")) {
      const f = await measureS3(name, src, "big.bin", Number(opts.runs), tmp);
      rows.push(...s3Rows(f, size));
      console.error(rows.slice(-2).join("\n"));
    }
    const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
    const table = [
      `S3 throughput, ${size / MiB} MiB checkpoint, each server in its own process on ` +
      `127.0.0.1; ${opts.runs} run(s), medians; load average at the end ${load}`,
      "",
      "| server | figure | rep | bare SDK | SDK time / rep time | target | met? | runs (s) |",
      "| --- | --- | --- | --- | --- | --- | --- | --- |",
      ...rows,
    ].join("\n");
    console.log(table);
    if (size === 1024 * MiB && opts.servers === "s3rver,moto") {
      await Deno.writeTextFile(
        join(ROOT, "bench/RESULTS_s3.md"),
        `# S3 throughput\n\nWritten by \`deno run -A bench/s3_throughput.ts\` on ${
          new Date().toISOString().slice(0, 10)
        } (${Deno.build.os}, ${navigator.hardwareConcurrency} cores).\n\n${table}\n`,
      );
    }
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}
