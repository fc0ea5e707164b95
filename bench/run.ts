/**
 * The benchmark suite: `deno task bench`. Generates its data in a temporary directory (removed at
 * the end), measures each figure against a baseline timed in the same run, prints the table and
 * writes `bench/RESULTS.md`.
 *
 * Options:
 *  - `--only a,b`: run only these figures (keys: checkpoint, tools, checkout, change, throughput,
 *    stages, worker, unchanged, finetune, code, run, memory, ls, s3, sweep, startup; the last two
 *    are in bench/dedup.ts); a full run writes bench/RESULTS.md (and RESULTS.json, its rows), a
 *    subset's table goes to `bench/out/RESULTS-only.md`;
 *  - `--merge` (with `--only`): put the subset's rows in place of those figures' rows in
 *    bench/RESULTS.md and RESULTS.json instead (to re-measure a few figures);
 *  - `--quick`: small sizes, to check the harness (RESULTS.md is not written);
 *  - `--runs N`: timed runs per figure (default 3);
 *  - `--ls-experiments N`: the listing figure's repository size (default 100000, via
 *    bench/ls_scale.ts);
 *  - `--ls-repo DIR`: generate the listing figure's repository in DIR once and reuse it in later
 *    runs (bench/ls_scale.ts `--repo`; generating 100k experiments takes minutes);
 *  - `--s3-servers a,b`: S3 implementations for the S3 figures (default `s3rver,moto`);
 *  - `--render`: only rewrite bench/RESULTS.md from bench/RESULTS.json;
 *  - `--keep`: leave the temporary directory.
 *
 * Before timing, every figure checks what it built (file sizes, the number of distinct chunks of
 * the generated data, the bytes a checkout wrote, the number of experiments generated) and fails
 * loudly when the data is not what the figure claims to measure. Each row's notes give the load
 * average when its figure started (the machine is shared).
 *
 * In-process figures call the library (Recorder, Repository) directly; whole-process figures spawn
 * the CLI (`deno run … main.ts`), so they include Deno's startup. Baselines are timed as whole
 * processes (`cp`, `true`) or with the bare AWS SDK in-process. Runs alternate rep and baseline,
 * and medians are reported; this machine is shared, so single runs are noisy.
 *
 * @module
 */
import { createCipheriv, createHash, hash, randomFillSync } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { Repository } from "../src/repository.ts";
import { Recorder } from "../src/writer/recorder.ts";
import { walkFiles } from "../src/walk.ts";
import type { Tree } from "../src/format/records.ts";
import { pool } from "../src/util.ts";
import {
  Chunker,
  CutKernel,
  KERNEL_DATA,
  MAX_CHUNK,
  MIN_CHUNK,
  SIMD_BY_DEFAULT,
} from "../src/format/chunker.ts";
import { Packer } from "../src/writer/packer.ts";
import { snapshotFiles } from "../src/writer/snapshot.ts";
import { checkoutWorkerByDefault, Hasher, workerByDefault } from "../src/hashing/hasher.ts";
import process from "node:process";
import { dedupFigures } from "./dedup.ts";
import { measureS3, type S3Figures } from "./s3_throughput.ts";

const ROOT = dirname(dirname(fromFileUrl(import.meta.url)));
const MAIN = join(ROOT, "main.ts");
/** The child process of whole-process figures (bench/child.ts: imports only what it runs). */
const CHILD = join(ROOT, "bench", "child.ts");
const FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-net",
  "--allow-run",
  "--allow-sys",
];
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

// ---- options -------------------------------------------------------------------------------------

const argv = Deno.args;
const QUICK = argv.includes("--quick");
const KEEP = argv.includes("--keep");
/** The value of option `--name v` or `--name=v`, or undefined. */
function option(name: string): string | undefined {
  const at = argv.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (at < 0) return undefined;
  const a = argv[at]!;
  return a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[at + 1];
}
const onlyArg = option("--only");
const ONLY = onlyArg ? new Set(onlyArg.split(",")) : null;
const RUNS = Number(option("--runs") ?? 3);
const want = (k: string) => !ONLY || ONLY.has(k);
/** The figure keys, in the order a full run measures them (and RESULTS.md lists them). */
const KEYS = [
  "checkpoint",
  "checkout",
  "tools",
  "change",
  "throughput",
  "stages",
  "worker",
  "unchanged",
  "finetune",
  "code",
  "run",
  "memory",
  "ls",
  "s3",
  "sweep",
  "startup",
];
/** With `--only`: replace those figures' rows in bench/RESULTS.md and RESULTS.json. */
const MERGE = argv.includes("--merge");
const S3_SERVERS = (option("--s3-servers") ?? "s3rver,moto").split(",");

const SIZE = QUICK ? 64 * MiB : GiB; // "1 GiB" figures
const BIG = QUICK ? 256 * MiB : 4 * GiB; // peak-memory figure
const DIR_TOTAL = QUICK ? 1 * GiB : 10 * GiB; // unchanged-output figure
const CHANGED = QUICK ? 16 * MiB : 100 * MiB;
const CODE_FILES = QUICK ? 500 : 5000;
const LS_EXPERIMENTS = Number(option("--ls-experiments") ?? (QUICK ? 500 : 100_000));
const LS_CHECKPOINTS = 10;
const LS_REPO = option("--ls-repo");
const FINETUNE_STEPS = QUICK ? 5 : 20;

// ---- helpers -------------------------------------------------------------------------------------

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const sec = (x: number) => `${x.toFixed(2)} s`;
const fmtBytes = (n: number) =>
  n >= GiB ? `${(n / GiB).toFixed(2)} GiB` : `${(n / MiB).toFixed(1)} MiB`;

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const v = await fn();
  return [(performance.now() - t0) / 1000, v];
}

/** Run a command to completion; returns wall seconds (throws on failure). */
async function proc(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<{ seconds: number; stdout: string; stderr: string }> {
  const t0 = performance.now();
  const out = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(options.cwd ? { cwd: options.cwd } : {}),
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...options.env },
  }).output();
  const seconds = (performance.now() - t0) / 1000;
  const dec = new TextDecoder();
  const stdout = dec.decode(out.stdout);
  const stderr = dec.decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed: ${stderr || stdout}`);
  return { seconds, stdout, stderr };
}

const cp = (src: string, dst: string) => proc("cp", [src, dst]).then((r) => r.seconds);
const rmrf = (p: string) => Deno.remove(p, { recursive: true }).catch(() => {});

/** Deterministic incompressible bytes (AES-128-CTR keystream of a seed): fast to generate. */
function keystream(seed: number) {
  const key = new Uint8Array(16);
  new DataView(key.buffer).setUint32(0, seed);
  const c = createCipheriv("aes-128-ctr", key, new Uint8Array(16));
  return (n: number) => new Uint8Array(c.update(new Uint8Array(n)));
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let o = 0;
  while (o < data.length) o += await file.write(data.subarray(o));
}

/** Write `size` pseudo-random bytes to `path`. */
async function randomFile(path: string, size: number, seed: number): Promise<void> {
  const next = keystream(seed);
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let o = 0; o < size; o += 16 * MiB) await writeAll(f, next(Math.min(16 * MiB, size - o)));
}

/** Overwrite `len` bytes at `offset` of `path` with pseudo-random bytes. */
async function overwrite(path: string, offset: number, len: number, seed: number): Promise<void> {
  const next = keystream(seed);
  using f = await Deno.open(path, { write: true });
  await f.seek(offset, Deno.SeekMode.Start);
  for (let o = 0; o < len; o += 16 * MiB) await writeAll(f, next(Math.min(16 * MiB, len - o)));
}

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const rel of await walkFiles(dir)) n += (await Deno.stat(join(dir, rel))).size;
  return n;
}

/** Check out a Recorder-written checkpoint: snapshot `files` of `root`, commit, wait for the store. */
async function checkpoint(
  rec: Recorder,
  root: string,
  files: string[],
): Promise<{ tree: Tree; bytesRead: number; treeHash: string }> {
  const snap = await rec.snapshot(root, files);
  const ck = await rec.commit({ tree: snap.tree });
  await rec.outbox.drain();
  return { tree: snap.tree, bytesRead: snap.bytesRead, treeHash: ck.files!.tree };
}

interface Row {
  figure: string;
  rep: string;
  baseline: string;
  ratio: string;
  target: string;
  met: boolean | null;
  notes: string;
  /** The `--only` key of the figure that measured it. */
  key?: string;
}
const rows: Row[] = [];
/** The load average when the current figure started (set by {@link figure}). */
let figureLoad = "";
/** The `--only` key of the figure running (set by {@link figure}): rows carry it for `--merge`. */
let figureKey = "";
function row(r: Row): void {
  r = {
    ...r,
    key: r.key ?? figureKey,
    notes: `${r.notes ? `${r.notes}; ` : ""}load average at the figure's start ${figureLoad}`,
  };
  rows.push(r);
  const mark = r.met === null ? "n/a" : r.met ? "yes" : "NO";
  console.log(
    `\n== ${r.figure}\n   rep: ${r.rep} | baseline: ${r.baseline} | ratio: ${r.ratio} | target: ${r.target} | met: ${mark}${
      r.notes ? `\n   ${r.notes}` : ""
    }`,
  );
}

/** Alternate rep and baseline `runs` times; medians of each and of the pairwise ratios. */
async function pairs(
  runs: number,
  repRun: (i: number) => Promise<number>,
  baseRun: (i: number) => Promise<number>,
): Promise<{ rep: number; base: number; ratio: number; reps: number[]; bases: number[] }> {
  const reps: number[] = [];
  const bases: number[] = [];
  for (let i = 0; i < runs; i++) {
    reps.push(await repRun(i));
    bases.push(await baseRun(i));
  }
  return {
    rep: median(reps),
    base: median(bases),
    ratio: median(reps.map((r, i) => r / bases[i]!)),
    reps,
    bases,
  };
}
const list = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(", ");

/** The hex sha256 of a file's bytes. */
async function fileSha(path: string): Promise<string> {
  const h = createHash("sha256");
  using f = await Deno.open(path);
  const buf = new Uint8Array(16 * MiB);
  for (let n; (n = await f.read(buf)) !== null;) h.update(buf.subarray(0, n));
  return h.digest("hex");
}

/** Throw unless `path` holds exactly the bytes of `original` (sha256 `want`). */
async function checkSame(path: string, original: string, want: string): Promise<void> {
  const got = await fileSha(path);
  if (got !== want) throw new Error(`${path} does not hold the bytes of ${original}`);
}

let weightsHash: Promise<string> | null = null;
/** The sha256 of the generated 1 GiB file (computed once). */
const weightsSha = (path: string) => weightsHash ??= fileSha(path);

/** Run one figure, noting the load average when it starts (rows carry it in their notes). */
async function figure(key: string, fn: () => Promise<void>): Promise<void> {
  figureLoad = await loadAverage();
  figureKey = key;
  await fn();
}

/**
 * Check the generated data before timing anything with it: `size` bytes, and chunks that are all
 * distinct (incompressible, non-repeating data: nothing for dedup to skip), each within the
 * format's chunk sizes. Throws when the data is not what the figures claim to measure.
 */
async function checkData(path: string, size: number): Promise<void> {
  const st = await Deno.stat(path);
  if (st.size !== size) throw new Error(`${path}: ${st.size} bytes generated, not ${size}`);
  const chunker = new Chunker();
  const ids = new Set<string>();
  let chunks = 0;
  let bytes = 0;
  let smallest = Infinity;
  let largest = 0;
  const add = (cs: Uint8Array[], last: boolean) => {
    for (let i = 0; i < cs.length; i++) {
      const c = cs[i]!;
      ids.add(hash("sha256", c, "hex"));
      chunks++;
      bytes += c.length;
      if (!(last && i === cs.length - 1)) smallest = Math.min(smallest, c.length);
      largest = Math.max(largest, c.length);
    }
  };
  using f = await Deno.open(path);
  const buf = new Uint8Array(16 * MiB);
  for (;;) {
    const n = await f.read(buf);
    if (n === null) break;
    add(chunker.push(buf.subarray(0, n)), false);
  }
  add(chunker.finish(), true);
  if (bytes !== size || ids.size !== chunks || smallest < MIN_CHUNK || largest > MAX_CHUNK) {
    throw new Error(
      `${path}: ${chunks} chunks (${ids.size} distinct), ${bytes} bytes, sizes ` +
        `${smallest}..${largest}: not ${size} bytes of distinct chunks`,
    );
  }
  console.log(
    `(checked: ${fmtBytes(size)}, ${chunks} chunks, all distinct, ${smallest}..${largest} bytes)`,
  );
}

// ---- machine ---------------------------------------------------------------------------------------

/** The load averages (1, 5, 15 minutes): this machine is shared, so say how busy it was. */
async function loadAverage(): Promise<string> {
  const text = await proc("cat", ["/proc/loadavg"]).then((r) => r.stdout, () => "");
  return text.split(" ").slice(0, 3).join(", ") || "unknown";
}

async function machine(tmp: string): Promise<string[]> {
  // Deno needs --allow-all to read /proc directly; cat it.
  const cpuinfo = await proc("cat", ["/proc/cpuinfo"]).then((r) => r.stdout, () => "");
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? "unknown";
  const mem = Deno.systemMemoryInfo();
  let disk = "unknown";
  try {
    const fm = (await proc("findmnt", ["-no", "SOURCE,FSTYPE", "-T", tmp])).stdout.trim();
    const dev = fm.split(/\s+/)[0]?.replace(/^\/dev\//, "") ?? "";
    const base = dev.replace(/p?\d+$/, "");
    const rot = await Deno.readTextFile(`/sys/block/${base}/queue/rotational`).catch(() => "");
    const kind = rot.trim() === "0" ? "non-rotational" : rot.trim() === "1" ? "rotational" : "";
    disk = `${fm}${
      kind ? ` (${kind}${base.startsWith("vd") ? ", virtio block device" : ""})` : ""
    }`;
  } catch {
    // keep unknown
  }
  return [
    `CPU: ${model}, ${navigator.hardwareConcurrency} cores`,
    `Load average at the start (1, 5, 15 min): ${await loadAverage()}`,
    `Memory: ${(mem.total / GiB).toFixed(1)} GiB`,
    `Kernel: ${Deno.build.os} ${Deno.osRelease()} (${Deno.build.arch})`,
    `Disk (temp dir ${tmp}): ${disk}`,
    `Deno: ${Deno.version.deno} (V8 ${Deno.version.v8})`,
    `Date: ${new Date().toISOString()}`,
  ];
}

// ---- figures -----------------------------------------------------------------------------------------

async function figCheckpointAndCheckout(tmp: string, weights: string): Promise<void> {
  const data = dirname(weights);
  const name = weights.slice(data.length + 1);
  let last: { repo: string; tree: Tree; treeHash: string } | null = null;
  if (want("checkpoint")) {
    const cpu: number[] = [];
    const cpCpu: number[] = [];
    const r = await pairs(RUNS, async (i) => {
      const repoDir = join(tmp, `ck-repo-${i}`);
      const repo = await Repository.open(repoDir, { cache: false });
      const rec = await Recorder.start(repo, { code: null });
      const c0 = process.cpuUsage();
      const [s, res] = await timed(async () => {
        const res = await checkpoint(rec, data, [name]);
        await rec.stop("succeeded");
        return res;
      });
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1e6);
      if (last) await rmrf(last.repo);
      last = { repo: repoDir, tree: res.tree, treeHash: res.treeHash };
      return s;
    }, async () => {
      const copy = join(tmp, "cp-copy");
      try {
        // cp under /usr/bin/time for its CPU time (user + system); then an fsync of the copy.
        const t = await proc("/usr/bin/time", ["-f", "%U %S", "cp", weights, copy]);
        const [u, sy] = t.stderr.trim().split("\n").pop()!.split(" ").map(Number);
        cpCpu.push(u! + sy!);
        return t.seconds + (await proc("sync", [copy])).seconds;
      } finally {
        await rmrf(copy);
      }
    });
    row({
      figure: `checkpoint of a new ${
        fmtBytes(SIZE)
      } weights file into the local store (in-process)`,
      rep: sec(r.rep),
      baseline: `${sec(r.base)} (cp + fsync)`,
      ratio: `${r.ratio.toFixed(2)}×`,
      target: "≤ 1.5× cp + fsync",
      met: r.ratio <= 1.5,
      notes: `runs rep [${list(r.reps)}] cp + fsync [${list(r.bases)}]; includes chunking, ` +
        `hashing, pack writes, fsync and the move into the store; CPU time (user + system, all ` +
        `threads): rep [${list(cpu)}], cp [${list(cpCpu)}] (cp copies inside the kernel)`,
    });
  }
  if (want("checkout")) {
    figureKey = "checkout";
    if (!last) {
      const repoDir = join(tmp, "ck-repo-x");
      const repo = await Repository.open(repoDir, { cache: false });
      const rec = await Recorder.start(repo, { code: null });
      const res = await checkpoint(rec, data, [name]);
      await rec.stop("succeeded");
      last = { repo: repoDir, tree: res.tree, treeHash: res.treeHash };
    }
    const src = last as { repo: string; tree: Tree; treeHash: string };
    const repo = await Repository.open(src.repo, { cache: false });
    const repoView = await repo.list();
    const ckId = repoView[0]!.checkpoints[0]!.id;
    const cacheDir = join(tmp, "checkout-cache");
    const r = await pairs(RUNS, async (i) => {
      const out = join(tmp, `co-${i}`);
      const { seconds } = await proc(Deno.execPath(), [
        "run",
        "--quiet",
        ...FLAGS,
        MAIN,
        "-R",
        src.repo,
        "checkout",
        ckId,
        "--no-code",
        "-o",
        out,
      ], { env: { REP_CACHE_DIR: cacheDir } });
      const st = await Deno.stat(join(out, name));
      if (st.size !== SIZE) throw new Error("checkout wrote the wrong size");
      if (i === 0) await checkSame(join(out, name), weights, await weightsSha(weights));
      await rmrf(out);
      return seconds;
    }, () => cp(weights, join(tmp, "cp-copy")).finally(() => rmrf(join(tmp, "cp-copy"))));
    row({
      figure: `\`rep checkout\` of a ${
        fmtBytes(SIZE)
      } checkpoint from the local store (CLI process)`,
      rep: sec(r.rep),
      baseline: `${sec(r.base)} (cp)`,
      ratio: `${r.ratio.toFixed(2)}×`,
      target: "≤ 2× cp",
      met: r.ratio <= 2,
      notes: `runs rep [${list(r.reps)}] cp [${list(r.bases)}]; every chunk hash verified; ` +
        `whole process, Deno startup included`,
    });
    const r2 = await pairs(Math.max(1, RUNS - 1), async (i) => {
      const out = join(tmp, `co-lib-${i}`);
      const [s] = await timed(() => repo.checkout(src.tree.files, out));
      if (i === 0) await checkSame(join(out, name), weights, await weightsSha(weights));
      await rmrf(out);
      return s;
    }, () => cp(weights, join(tmp, "cp-copy")).finally(() => rmrf(join(tmp, "cp-copy"))));
    row({
      figure: `checkout of the same checkpoint (in-process, Repository.checkout)`,
      rep: sec(r2.rep),
      baseline: `${sec(r2.base)} (cp)`,
      ratio: `${r2.ratio.toFixed(2)}×`,
      target: "≤ 2× cp",
      met: r2.ratio <= 2,
      notes: `runs rep [${list(r2.reps)}] cp [${list(r2.bases)}]`,
    });
  }
  if (last) await rmrf((last as { repo: string }).repo);
}

// ---- restic and borg ------------------------------------------------------------------------------

/** A backup tool timed against rep: one repository per `dir`, backups of files in `cwd`. */
interface Tool {
  name: string;
  version: string;
  /** How it was run (settings that matter for speed). */
  how: string;
  init(dir: string): Promise<void>;
  /** Back up `file` (relative to `cwd`) into `dir`; returns wall seconds of the whole process. */
  backup(dir: string, cwd: string, file: string, tag: string): Promise<number>;
}

let toolsFound: Promise<{ tools: Tool[]; missing: string[] }> | null = null;

/** restic and borg, found on PATH or installed with apt-get (Debian packages) when missing. */
function findTools(tmp: string): Promise<{ tools: Tool[]; missing: string[] }> {
  return toolsFound ??= (async () => {
    const version = (cmd: string, args: string[]) =>
      proc(cmd, args).then((r) => (r.stdout || r.stderr).trim().split("\n")[0]!, () => null);
    let restic = await version("restic", ["version"]);
    let borg = await version("borg", ["--version"]);
    if (!restic || !borg) {
      const pkgs = [...(restic ? [] : ["restic"]), ...(borg ? [] : ["borgbackup"])];
      console.log(`   (installing ${pkgs.join(", ")} with apt-get)`);
      await proc("apt-get", ["install", "-y", "--no-install-recommends", ...pkgs], {
        env: { DEBIAN_FRONTEND: "noninteractive", PATH: Deno.env.get("PATH") ?? "" },
      }).catch((e) => console.log(`   (apt-get failed: ${String(e).slice(0, 200)})`));
      restic ??= await version("restic", ["version"]);
      borg ??= await version("borg", ["--version"]);
    }
    const tools: Tool[] = [];
    const missing: string[] = [];
    if (restic) {
      const env = {
        RESTIC_PASSWORD: "bench",
        RESTIC_CACHE_DIR: join(tmp, "restic-cache"),
        PATH: Deno.env.get("PATH") ?? "",
      };
      tools.push({
        name: "restic",
        version: restic,
        how: "`restic backup --compression off` (restic always encrypts)",
        init: (dir) => proc("restic", ["-r", dir, "init"], { env }).then(() => {}),
        backup: (dir, cwd, file) =>
          proc("restic", ["-r", dir, "backup", "--compression", "off", "--host", "bench", file], {
            cwd,
            env,
          }).then((r) => r.seconds),
      });
    } else missing.push("restic (apt-get install restic)");
    if (borg) {
      const env = {
        BORG_BASE_DIR: join(tmp, "borg-base"),
        BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: "yes",
        BORG_RELOCATED_REPO_ACCESS_IS_OK: "yes",
        PATH: Deno.env.get("PATH") ?? "",
      };
      tools.push({
        name: "borg",
        version: borg,
        how: "`borg init -e none`, `borg create --compression none`",
        init: (dir) => proc("borg", ["init", "-e", "none", dir], { env }).then(() => {}),
        backup: (dir, cwd, file, tag) =>
          proc("borg", ["create", "--compression", "none", `${dir}::${tag}`, file], { cwd, env })
            .then((r) => r.seconds),
      });
    } else missing.push("borg (apt-get install borgbackup)");
    return { tools, missing };
  })();
}

/** Bytes of every file under `dir` (a repository's size on disk, apparent). */
async function treeBytes(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) n += await treeBytes(p);
    else if (e.isFile) n += (await Deno.stat(p)).size;
  }
  return n;
}

/** Run the checkpoint child (a whole rep process: Deno startup, open, snapshot, commit). */
async function repProcessCheckpoint(repoDir: string, data: string, name: string, tmp: string) {
  const r = await proc(Deno.execPath(), [
    "run",
    "--quiet",
    "-A", // the child reads /proc/self/status
    CHILD,
    "checkpoint",
    repoDir,
    data,
    name,
  ], { env: { REP_CACHE_DIR: join(tmp, "child-cache") } });
  return r.seconds;
}

/** A new file into an empty repository: rep (whole process) against restic and borg. */
async function figToolsNew(tmp: string, weights: string): Promise<void> {
  const { tools, missing } = await findTools(tmp);
  const data = dirname(weights);
  const name = weights.slice(data.length + 1);
  for (const m of missing) {
    row({
      figure: `checkpoint of a new ${fmtBytes(SIZE)} file: rep against ${m.split(" ")[0]}`,
      rep: "",
      baseline: "not installed",
      ratio: "",
      target: "≥ 2× faster",
      met: null,
      notes: `skipped: ${m} is not installed and could not be installed`,
    });
  }
  for (const tool of tools) {
    const r = await pairs(RUNS, async (i) => {
      const repoDir = join(tmp, `ckp-repo-${i}`);
      try {
        return await repProcessCheckpoint(repoDir, data, name, tmp);
      } finally {
        await rmrf(repoDir);
      }
    }, async (i) => {
      const dir = join(tmp, `${tool.name}-new-${i}`);
      await tool.init(dir);
      try {
        return await tool.backup(dir, data, name, `a${i}`);
      } finally {
        await rmrf(dir);
      }
    });
    row({
      figure: `checkpoint of a new ${
        fmtBytes(SIZE)
      } file, whole processes: rep against ${tool.name}`,
      rep: sec(r.rep),
      baseline: `${sec(r.base)} (${tool.name})`,
      ratio: `${(r.base / r.rep).toFixed(2)}× faster`,
      target: `≥ 2× faster than ${tool.name}`,
      met: r.base / r.rep >= 2,
      notes: `runs rep [${list(r.reps)}] ${tool.name} [${list(r.bases)}]; ${tool.version}, ` +
        `${tool.how}; empty repository each run; both include process startup (rep: Deno ` +
        `startup and module loading)`,
    });
  }
}

/**
 * 5% of a 1 GiB file changed (a contiguous region, like one layer's weights), checkpointed again:
 * rep (in-process, the second checkpoint of a run) against restic and borg (their second backup
 * of the file), each run changing a different region; and what each stored for the change.
 */
async function figChange(tmp: string, weights: string): Promise<void> {
  const work = join(tmp, "change");
  await Deno.mkdir(work);
  const file = join(work, "model.bin");
  await Deno.copyFile(weights, file);
  const region = Math.floor(SIZE * 0.05);
  const { tools, missing } = await findTools(tmp);
  const repoDir = join(tmp, "change-repo");
  const repo = await Repository.open(repoDir, { cache: false });
  const rec = await Recorder.start(repo, { code: null });
  await checkpoint(rec, work, ["model.bin"]);
  const dirs = new Map<string, string>();
  for (const tool of tools) {
    const dir = join(tmp, `${tool.name}-change`);
    await tool.init(dir);
    await tool.backup(dir, work, "model.bin", "first");
    dirs.set(tool.name, dir);
  }
  const times = new Map<string, number[]>([
    ["rep", []],
    ...tools.map((t) =>
      [t.name, []] as [
        string,
        number[],
      ]
    ),
  ]);
  const stored = new Map<string, number[]>([...times.keys()].map((k) => [k, []]));
  for (let i = 0; i < RUNS; i++) {
    const slot = (7 * (i + 1)) % 20;
    const probe = async () => {
      using f = await Deno.open(file);
      await f.seek(slot * region, Deno.SeekMode.Start);
      const b = new Uint8Array(64 * 1024);
      await f.read(b);
      return hash("sha256", b, "hex");
    };
    const was = await probe();
    await overwrite(file, slot * region, region, 9000 + i); // untimed: the training writes it
    if ((await probe()) === was || (await Deno.stat(file)).size !== SIZE) {
      throw new Error("the 5% change did not change the file as intended");
    }
    const before = await treeBytes(repoDir);
    const [s] = await timed(() => checkpoint(rec, work, ["model.bin"]));
    times.get("rep")!.push(s);
    stored.get("rep")!.push((await treeBytes(repoDir)) - before);
    for (const tool of tools) {
      const dir = dirs.get(tool.name)!;
      const b = await treeBytes(dir);
      times.get(tool.name)!.push(await tool.backup(dir, work, "model.bin", `c${i}`));
      stored.get(tool.name)!.push((await treeBytes(dir)) - b);
    }
  }
  await rec.stop("succeeded");
  const repTime = median(times.get("rep")!);
  const repStored = median(stored.get("rep")!);
  const storedNote = [...stored].map(([k, v]) => `${k} ${v.map(fmtBytes).join(", ")}`).join("; ");
  row({
    figure: `5% of a ${fmtBytes(SIZE)} file changed, checkpointed again: bytes stored`,
    rep: fmtBytes(repStored),
    baseline: `${fmtBytes(region)} (the change)`,
    ratio: `${(repStored / region).toFixed(3)}×`,
    target: "≤ 1.1× the change",
    met: repStored <= 1.1 * region,
    notes: `stored per checkpoint (repository growth: packs, trees, records): ${storedNote}`,
  });
  for (const m of missing) {
    row({
      figure: `5% changed, checkpointed again: rep against ${m.split(" ")[0]}`,
      rep: sec(repTime),
      baseline: "not installed",
      ratio: "",
      target: "≤ 1.5× its time",
      met: null,
      notes: `skipped: ${m} is not installed`,
    });
  }
  for (const tool of tools) {
    const ts = times.get(tool.name)!;
    const ratios = times.get("rep")!.map((r, i) => r / ts[i]!);
    row({
      figure: `5% of a ${
        fmtBytes(SIZE)
      } file changed, checkpointed again: rep against ${tool.name}`,
      rep: sec(repTime),
      baseline: `${sec(median(ts))} (${tool.name})`,
      ratio: `${median(ratios).toFixed(2)}×`,
      target: `≤ 1.5× ${tool.name}'s time`,
      met: median(ratios) <= 1.5,
      notes: `runs rep [${list(times.get("rep")!)}] ${tool.name} [${list(ts)}]; rep in-process ` +
        `(the next checkpoint of a run), ${tool.name} a whole process; all re-read and re-chunk ` +
        `the whole file`,
    });
  }
  for (const dir of [repoDir, work, ...dirs.values()]) await rmrf(dir);
}

/**
 * Per-core throughput of rep's chunking (the WebAssembly gear kernel) and hashing (node:crypto
 * sha256), in-process over bytes in memory, beside borg's chunker (buzhash, driven from Python over
 * bytes in memory; `borg benchmark cpu` only exists from borg 2) and `sha256sum` of a cached file.
 * Then the stages of a checkpoint one after the other, to show where its time goes.
 */
async function figThroughput(tmp: string, weights: string): Promise<void> {
  const n = Math.min(SIZE, 256 * MiB);
  const k = new CutKernel(n);
  const bytes = k.bytes.subarray(KERNEL_DATA, KERNEL_DATA + n);
  {
    using f = await Deno.open(weights);
    let o = 0;
    while (o < n) o += (await f.read(bytes.subarray(o)))!;
  }
  /** Best wall time of `reps` runs, and the CPU time of that run (this thread does the work). */
  const cpuOf: number[] = [];
  const best = async (fn: () => void, reps = 3) => {
    let t = Infinity;
    let cpu = Infinity;
    for (let i = 0; i < reps; i++) {
      const c0 = process.cpuUsage();
      const [s] = await timed(() => Promise.resolve(fn()));
      const c = process.cpuUsage(c0);
      if (s < t) [t, cpu] = [s, (c.user + c.system) / 1e6];
    }
    cpuOf.push(cpu);
    return t;
  };
  // The SIMD variant of the kernel on a copy of the same bytes, alternating with the scalar one.
  const ks = new CutKernel(n, { simd: true });
  ks.bytes.set(bytes, KERNEL_DATA);
  const cuts: number[] = [];
  const cutsSimd: number[] = [];
  let cutS = Infinity;
  let simdS = Infinity;
  let cutCpu = Infinity;
  let simdCpu = Infinity;
  for (let r = 0; r < 3; r++) {
    cutS = Math.min(
      cutS,
      await best(() => {
        cuts.length = 0;
        k.cuts(KERNEL_DATA, KERNEL_DATA + n, true, cuts);
      }, 1),
    );
    cutCpu = Math.min(cutCpu, cpuOf.pop()!);
    simdS = Math.min(
      simdS,
      await best(() => {
        cutsSimd.length = 0;
        ks.cuts(KERNEL_DATA, KERNEL_DATA + n, true, cutsSimd);
      }, 1),
    );
    simdCpu = Math.min(simdCpu, cpuOf.pop()!);
  }
  if (cuts.length !== cutsSimd.length || cuts.some((c, i) => c !== cutsSimd[i])) {
    throw new Error("the SIMD kernel's cuts differ from the scalar kernel's");
  }
  const hashS = await best(() => {
    let s = KERNEL_DATA;
    for (const c of cuts) {
      hash("sha256", k.bytes.subarray(s, c), "hex");
      s = c;
    }
  });
  const gbs = (s: number) => `${(n / 1e9 / s).toFixed(2)} GB/s`;
  let borg = "n/a";
  try {
    const py = [
      "import io, sys, time",
      "sys.path.insert(0, '/usr/lib/python3/dist-packages')",
      "from borg.chunker import Chunker",
      "from borg.constants import CHUNK_MIN_EXP, CHUNK_MAX_EXP, HASH_MASK_BITS, HASH_WINDOW_SIZE",
      `data = open(sys.argv[1], 'rb').read(${n})`,
      "best = 1e9",
      "for _ in range(3):",
      "    c = Chunker(0, CHUNK_MIN_EXP, CHUNK_MAX_EXP, HASH_MASK_BITS, HASH_WINDOW_SIZE)",
      "    t = time.perf_counter()",
      "    for _x in c.chunkify(io.BytesIO(data)): pass",
      "    best = min(best, time.perf_counter() - t)",
      "print(len(data) / best / 1e9)",
    ].join("\n");
    const r = await proc("/usr/bin/python3", ["-c", py, weights]);
    borg = `${Number(r.stdout.trim()).toFixed(2)} GB/s`;
  } catch (e) {
    borg = `n/a (${String(e).slice(0, 80)})`;
  }
  // borg 2 has `borg benchmark cpu` (its chunkers and hashes timed in C): use it where it exists.
  const borgCpu = await proc("borg", ["benchmark", "cpu"]).then(
    (r) => r.stdout.split("\n").filter((l) => /buzhash|fastcdc|sha256/i.test(l)).join("; "),
    () => null,
  );
  let shaSum = "n/a";
  try {
    const part = join(tmp, "sha-part.bin");
    await Deno.writeFile(part, bytes);
    await proc("sha256sum", [part]); // warm
    let t = Infinity;
    for (let i = 0; i < 3; i++) t = Math.min(t, (await proc("sha256sum", [part])).seconds);
    shaSum = gbs(t);
    await rmrf(part);
  } catch {
    // keep n/a
  }
  row({
    figure: "chunk + hash throughput, one core, in-process (bytes in memory)",
    rep: `${gbs(cutS + hashS)} (chunk ${gbs(cutS)}, sha256 ${gbs(hashS)}; SIMD chunk ${
      gbs(simdS)
    })`,
    baseline: `borg's chunker ${borg}; sha256sum ${shaSum}`,
    ratio: "",
    target: "reported",
    met: null,
    notes: `${fmtBytes(n)}, best of 3; rep's chunker: the WebAssembly gear kernel ` +
      `(src/format/gear/gear.c; by CPU time: scalar ${gbs(cutCpu)}, SIMD ${gbs(simdCpu)}, ` +
      `the same ${cuts.length} cuts; in use: ${SIMD_BY_DEFAULT ? "SIMD" : "scalar"}), ` +
      `sha256: node:crypto (SHA-NI where the CPU has it; by CPU time ${gbs(cpuOf[0]!)}); borg's: ` +
      `buzhash (C) driven from Python over bytes in memory; ` +
      (borgCpu
        ? `\`borg benchmark cpu\`: ${borgCpu}; `
        : "`borg benchmark cpu`: not in this borg (it exists from borg 2); ") +
      `sha256sum: whole process on a cached file`,
  });
}

/**
 * Why hashing on the second core did or did not pay: the same snapshot of the 1 GiB file with and
 * without the hashing worker, with packs written directly (O_DIRECT, as for a local store) and
 * through the page cache (as when staging for a remote store); wall time and the process's CPU
 * time (all threads: user, and system, where the kernel's copies into the page cache show).
 */
async function figWorker(tmp: string, weights: string): Promise<void> {
  const data = dirname(weights);
  const name = weights.slice(data.length + 1);
  const configs = [
    { worker: false, direct: true },
    { worker: true, direct: true },
    { worker: false, direct: false },
    { worker: true, direct: false },
  ];
  const results = configs.map(() => ({
    wall: [] as number[],
    user: [] as number[],
    sys: [] as number[],
  }));
  for (let i = 0; i < RUNS; i++) {
    for (let c = 0; c < configs.length; c++) {
      const { worker, direct } = configs[c]!;
      const dir = join(tmp, `worker-${c}-${i}`);
      const cpu0 = process.cpuUsage();
      const [s] = await timed(async () => {
        const packer = new Packer(dir, new Map(), () => {}, { direct });
        await snapshotFiles(data, [name], packer, undefined, { worker });
        await packer.seal();
      });
      const cpu = process.cpuUsage(cpu0);
      results[c]!.wall.push(s);
      results[c]!.user.push(cpu.user / 1e6);
      results[c]!.sys.push(cpu.system / 1e6);
      await rmrf(dir);
    }
  }
  const label = (c: { worker: boolean; direct: boolean }) =>
    `${c.worker ? "worker" : "in-thread"}, ${c.direct ? "direct" : "page cache"}`;
  const line = (k: number) => {
    const r = results[k]!;
    return `${label(configs[k]!)}: ${sec(median(r.wall))} wall, CPU ${
      sec(median(r.user))
    } user + ` +
      `${sec(median(r.sys))} system`;
  };
  const capacity = await secondCore(RUNS);
  const withW = median(results[1]!.wall);
  const without = median(results[0]!.wall);
  row({
    figure: `hashing worker on ${navigator.hardwareConcurrency} cores: snapshot of ${
      fmtBytes(SIZE)
    } with and without it (in-process)`,
    rep: `${sec(withW)} with the worker`,
    baseline: `${sec(without)} in-thread`,
    ratio: `${(without / withW).toFixed(2)}× faster with it`,
    target: "reported (decides the default)",
    met: null,
    notes: `medians of ${RUNS}: ${configs.map((_, k) => line(k)).join("; ")}. Default here: ` +
      `${workerByDefault() ? "worker" : "in-thread"}`,
  });
  row({
    figure: "the second core as this run found it: sha256 in the main thread and in a hashing " +
      "worker at the same time, against one after the other",
    rep: `${sec(capacity.together)} together`,
    baseline: `${sec(capacity.apart)} one after the other`,
    ratio: `${(capacity.apart / capacity.together).toFixed(2)}× (2 = a free second core)`,
    target: "reported (why the worker does or does not pay)",
    met: null,
    notes: `${fmtBytes(capacity.bytes)} per thread, medians of ${RUNS}: runs together ` +
      `[${list(capacity.togethers)}], apart [${list(capacity.aparts)}]; the bytes in a shared ` +
      `WebAssembly memory, hashed by src/hashing/hasher.ts's worker (what a checkpoint uses)`,
  });
  // Checkout of the same file, verified with and without the worker.
  const repoDir = join(tmp, "worker-co-repo");
  const repo = await Repository.open(repoDir, { cache: false });
  const rec = await Recorder.start(repo, { code: null });
  const { tree } = await checkpoint(rec, data, [name]);
  await rec.stop("succeeded");
  const co = [false, true].map(() => ({
    wall: [] as number[],
    user: [] as number[],
    sys: [] as number[],
  }));
  for (let i = 0; i <= RUNS; i++) {
    for (const worker of [false, true]) {
      const out = join(tmp, `worker-co-${i}`);
      const cpu0 = process.cpuUsage();
      const [s] = await timed(() => repo.checkout(tree.files, out, { worker }));
      const cpu = process.cpuUsage(cpu0);
      await rmrf(out);
      if (i === 0) continue; // the first reads the packs from disk (they were written directly)
      const r = co[worker ? 1 : 0]!;
      r.wall.push(s);
      r.user.push(cpu.user / 1e6);
      r.sys.push(cpu.system / 1e6);
    }
  }
  await repo.close();
  await rmrf(repoDir);
  const coLine = (k: number) =>
    `${k ? "worker" : "in-thread"}: ${sec(median(co[k]!.wall))} wall, CPU ${
      sec(median(co[k]!.user))
    } user + ${sec(median(co[k]!.sys))} system`;
  row({
    figure: `hashing worker on ${navigator.hardwareConcurrency} cores: checkout of ${
      fmtBytes(SIZE)
    } with and without it (in-process)`,
    rep: `${sec(median(co[1]!.wall))} with the worker`,
    baseline: `${sec(median(co[0]!.wall))} in-thread`,
    ratio: `${(median(co[0]!.wall) / median(co[1]!.wall)).toFixed(2)}× faster with it`,
    target: "reported (decides the default)",
    met: null,
    notes: `medians of ${RUNS} after one untimed checkout (packs in the page cache): ` +
      `${coLine(0)}; ${coLine(1)}. Default here: ` +
      `${checkoutWorkerByDefault() ? "worker" : "in-thread"}`,
  });
}

/**
 * How much of a second core a hashing worker gets here: `bytes` hashed in the main thread and
 * another `bytes` in a {@link Hasher} worker, at the same time and one after the other. On an idle
 * two-core machine together takes half as long; on a loaded one (other processes on both cores)
 * as long as apart, and then a worker cannot pay.
 */
async function secondCore(runs: number) {
  const bytes = QUICK ? 32 * MiB : 256 * MiB;
  const k = new CutKernel(2 * bytes);
  for (let o = 0; o < 2 * bytes; o += 64 * 1024) {
    randomFillSync(k.bytes, KERNEL_DATA + o, 64 * 1024);
  }
  const ranges = (at: number) => {
    const r: number[] = [];
    for (let o = 0; o < bytes; o += 64 * 1024) r.push(at + o, at + o + 64 * 1024);
    return r;
  };
  const a = ranges(KERNEL_DATA);
  const b = ranges(KERNEL_DATA + bytes);
  const hasher = new Hasher(k.memory, { recycleBytes: Infinity });
  await hasher.whenReady();
  const inThread = () => {
    for (let i = 0; i < a.length; i += 2) hash("sha256", k.bytes.subarray(a[i]!, a[i + 1]!), "hex");
  };
  const togethers: number[] = [];
  const aparts: number[] = [];
  try {
    await hasher.hash(b); // warm
    for (let i = 0; i < runs; i++) {
      const [t] = await timed(async () => {
        const w = hasher.hash(b);
        inThread();
        await w;
      });
      togethers.push(t);
      const [s] = await timed(async () => {
        inThread();
        await hasher.hash(b);
      });
      aparts.push(s);
    }
  } finally {
    hasher.close();
  }
  return { bytes, together: median(togethers), apart: median(aparts), togethers, aparts };
}

/** The stages of a checkpoint of the 1 GiB file, one after the other on one thread. */
async function figStages(tmp: string, weights: string): Promise<void> {
  const READ = 4 * MiB;
  const k = new CutKernel(256 * 1024 + READ);
  const dir = join(tmp, "stages");
  const t = { read: 0, chunk: 0, hash: 0, copy: 0, wait: 0, write: 0 };
  const packer = new Packer(dir, new Map(), () => {}, { direct: true });
  const tail = new Uint8Array(256 * 1024);
  let tailLen = 0;
  const now = () => performance.now() / 1000;
  const t0 = now();
  using f = Deno.openSync(weights);
  for (;;) {
    let a = now();
    const at = KERNEL_DATA + 256 * 1024;
    let n = 0;
    while (n < READ) {
      const r = f.readSync(k.bytes.subarray(at + n, at + READ));
      if (!r) break;
      n += r;
    }
    t.read += now() - a;
    a = now();
    let start = at - tailLen;
    k.bytes.set(tail.subarray(0, tailLen), start);
    const cuts: number[] = [];
    const rest = k.cuts(start, at + n, n < READ, cuts);
    t.chunk += now() - a;
    a = now();
    const hashes: string[] = [];
    let s = start;
    for (const c of cuts) {
      hashes.push(hash("sha256", k.bytes.subarray(s, c), "hex"));
      s = c;
    }
    t.hash += now() - a;
    a = now();
    for (let i = 0; i < cuts.length; i++) {
      const added = packer.add(k.bytes.subarray(start, cuts[i]!), hashes[i]);
      const b = now();
      t.copy += b - a;
      await added;
      a = now();
      t.wait += a - b;
      start = cuts[i]!;
    }
    tailLen = at + n - rest;
    tail.set(k.bytes.subarray(rest, at + n));
    if (n < READ) break;
  }
  const a = now();
  await packer.seal();
  t.write = now() - a;
  const total = now() - t0;
  await rmrf(dir);
  const parts = Object.entries(t).map(([name, s]) => `${name} ${sec(s)}`).join(", ");
  // The disk alone: the same bytes written with direct I/O in 4 MiB blocks, then synced.
  const dd = await proc("dd", [
    `if=${weights}`,
    `of=${join(tmp, "dd-copy")}`,
    "bs=4M",
    "oflag=direct",
    "conv=fsync",
  ]).then((r) => sec(r.seconds), (e) => `n/a (${String(e).slice(0, 80)})`);
  await rmrf(join(tmp, "dd-copy"));
  row({
    figure: `where a checkpoint's time goes: its stages one after the other (${fmtBytes(SIZE)})`,
    rep: sec(total),
    baseline: "",
    ratio: "",
    target: "reported",
    met: null,
    notes: `${parts}; \`dd bs=4M oflag=direct conv=fsync\` of the file: ${dd}. read: into ` +
      `the kernel's memory from the page cache; chunk: the gear kernel; hash: sha256 of every ` +
      `chunk; copy: Packer.add copying chunks into write buffers; wait: waiting for the direct ` +
      `writes in flight (up to four of 4 MiB; nothing else runs meanwhile here); write: the last ` +
      `writes and the fsync of every pack. A checkpoint overlaps these (reads and chunking on the main thread, hashing in a ` +
      `worker, writes on I/O threads), so its time is near the largest, not the sum`,
  });
}

async function figUnchanged(tmp: string): Promise<void> {
  const out = join(tmp, "outdir");
  await Deno.mkdir(out);
  // The unchanged bulk: sparse files (no data blocks). rep reads them once, in the first
  // (untimed) checkpoint; the timed checkpoints must not read them at all (checked below).
  const bulkFiles = 99;
  const bulkSize = Math.floor((DIR_TOTAL - CHANGED) / bulkFiles);
  for (let i = 0; i < bulkFiles; i++) {
    const f = await Deno.open(join(out, `shard-${String(i).padStart(3, "0")}.bin`), {
      write: true,
      create: true,
    });
    await f.truncate(bulkSize);
    f.close();
  }
  const changed = join(out, "model.bin");
  await randomFile(changed, CHANGED, 1000);
  const total = await dirBytes(out);
  const repo = await Repository.open(join(tmp, "unchanged-repo"), { cache: false });
  const rec = await Recorder.start(repo, { code: null });
  const files = await walkFiles(out);
  const [first, firstRes] = await timed(() => checkpoint(rec, out, files));
  console.log(
    `   (setup: first checkpoint of the ${fmtBytes(total)} folder read ${
      fmtBytes(firstRes.bytesRead)
    } in ${sec(first)})`,
  );
  const reads: number[] = [];
  const r = await pairs(RUNS, async (i) => {
    await randomFile(changed, CHANGED, 2000 + i); // untimed: the training job writes it
    const [s, res] = await timed(() => checkpoint(rec, out, files));
    reads.push(res.bytesRead);
    return s;
  }, () => cp(changed, join(tmp, "cp-copy")).finally(() => rmrf(join(tmp, "cp-copy"))));
  await rec.stop("succeeded");
  await rmrf(join(tmp, "unchanged-repo"));
  await rmrf(out);
  const onlyChanged = reads.every((n) => n === CHANGED);
  row({
    figure: `checkpoint of a ${fmtBytes(total)} output folder where one ${
      fmtBytes(CHANGED)
    } file changed (in-process)`,
    rep: sec(r.rep),
    baseline: `${sec(r.base)} (cp of the changed file)`,
    ratio: `${r.ratio.toFixed(2)}×`,
    target: "≤ 2× cp of that file",
    met: r.ratio <= 2 && onlyChanged,
    notes:
      `runs rep [${list(r.reps)}] cp [${list(r.bases)}]; bytes read per checkpoint: ${
        reads.map(fmtBytes).join(", ")
      } (${onlyChanged ? "only the changed file" : "MORE than the changed file"}); the other ` +
      `${bulkFiles} files (${fmtBytes(bulkSize)} each) are sparse files, read once by the ` +
      `untimed first checkpoint (${sec(first)}) and skipped by the stat cache afterwards`,
  });
}

async function figFinetune(tmp: string, weights: string): Promise<void> {
  const work = join(tmp, "finetune");
  await Deno.mkdir(work);
  const file = join(work, "model.bin");
  await Deno.copyFile(weights, file);
  const repoDir = join(tmp, "finetune-repo");
  const repo = await Repository.open(repoDir, { cache: false });
  const rec = await Recorder.start(repo, { code: null });
  const region = Math.floor(SIZE * 0.05);
  const times: number[] = [];
  for (let k = 0; k < FINETUNE_STEPS; k++) {
    if (k > 0) {
      // A different 5% each time: slot (7k mod 20) of twenty, contiguous like a layer's weights.
      const slot = (7 * k) % 20;
      await overwrite(file, slot * region, region, 5000 + k);
    }
    const [s] = await timed(() => checkpoint(rec, work, ["model.bin"]));
    times.push(s);
  }
  await rec.stop("succeeded");
  let stored = 0;
  for await (const e of Deno.readDir(join(repoDir, "packs"))) {
    stored += (await Deno.stat(join(repoDir, "packs", e.name))).size;
  }
  const logical = SIZE * FINETUNE_STEPS;
  const limit = QUICK ? 3 * SIZE : 3 * GiB;
  row({
    figure: `${FINETUNE_STEPS} checkpoints of a ${
      fmtBytes(SIZE)
    } file, a different 5% changed each time`,
    rep: `${fmtBytes(stored)} stored`,
    baseline: `${fmtBytes(logical)} (${FINETUNE_STEPS} full copies)`,
    ratio: `${(stored / logical).toFixed(3)}×`,
    target: `stored ≤ ${fmtBytes(limit)}`,
    met: stored <= limit,
    notes: `median checkpoint time ${sec(median(times.slice(1)))} (first ${sec(times[0]!)}); ` +
      `ideal: ${fmtBytes(SIZE + (FINETUNE_STEPS - 1) * region)}`,
  });
  await rmrf(repoDir);
  await rmrf(work);
}

async function figCode(tmp: string): Promise<void> {
  const proj = join(tmp, "project");
  const next = keystream(77);
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  await pool(Array.from({ length: CODE_FILES }, (_, i) => i), 32, async (i) => {
    const dir = join(proj, `pkg${i % 50}`, `mod${i % 7}`);
    await Deno.mkdir(dir, { recursive: true });
    const body = `# file ${i}\n` +
      Array.from({ length: 20 + (i % 60) }, (_, j) => `x_${j} = "${hex(next(16))}"\n`).join("");
    await Deno.writeTextFile(join(dir, `file${i}.py`), body);
  });
  const projBytes = await dirBytes(proj);
  const repoDir = join(tmp, "code-repo");
  const repo = await Repository.open(repoDir, { cache: false });
  const snap = async () => {
    const files = await walkFiles(proj);
    const rec = await Recorder.start(repo, { code: { root: proj, files }, cwd: proj });
    const written = rec.packer.written;
    await rec.stop("succeeded");
    return written;
  };
  const storedBytes = async () => {
    let n = 0;
    for (const sub of ["packs", "trees"]) {
      for await (const e of Deno.readDir(join(repoDir, sub))) {
        n += (await Deno.stat(join(repoDir, sub, e.name))).size;
      }
    }
    return n;
  };
  const [first, firstWritten] = await timed(snap);
  const afterFirst = await storedBytes();
  const written: number[] = [];
  const r = await pairs(
    RUNS,
    async () => {
      const [s, w] = await timed(snap);
      written.push(w);
      return s;
    },
    () =>
      proc("cp", ["-r", proj, join(tmp, "proj-copy")]).then((x) => x.seconds).finally(() =>
        rmrf(join(tmp, "proj-copy"))
      ),
  );
  const afterAll = await storedBytes();
  const once = afterAll === afterFirst && written.every((w) => w === 0);
  row({
    figure: `code snapshot of a ${CODE_FILES}-file project (${
      fmtBytes(projBytes)
    }; walk + read + chunk + store, in-process)`,
    rep: `${sec(r.rep)} (first, empty repo: ${sec(first)})`,
    baseline: `${sec(r.base)} (cp -r)`,
    ratio: `${r.ratio.toFixed(2)}×`,
    target: "≤ 1 s, unchanged snapshots stored once",
    met: r.rep <= 1 && first <= 1 && once,
    notes: `runs rep [${list(r.reps)}] cp -r [${list(r.bases)}]; stored after the first ` +
      `snapshot ${fmtBytes(afterFirst)} (${fmtBytes(firstWritten)} of chunks), after ${
        RUNS + 1
      } snapshots ${fmtBytes(afterAll)}: ${once ? "stored once" : "NOT deduplicated"}; the ` +
      `time covers Recorder.start (chunk-cache refresh, snapshot, queue) and stop`,
  });
  await rmrf(repoDir);
  await rmrf(proj);
}

async function figRun(tmp: string): Promise<void> {
  const cwd = join(tmp, "run-cwd");
  await Deno.mkdir(cwd);
  const repoDir = join(tmp, "run-repo");
  const env = { REP_CACHE_DIR: join(tmp, "run-cache"), HOME: tmp };
  const repArgs = (code: boolean) => [
    "run",
    "--quiet",
    ...FLAGS,
    MAIN,
    "-R",
    repoDir,
    "run",
    ...(code ? [] : ["--no-code"]),
    "--",
    "true",
  ];
  const deno = Deno.execPath();
  await proc(deno, repArgs(false), { cwd, env }); // warm-up (module cache)
  const runs = Math.max(RUNS, 5);
  const r = await pairs(
    runs,
    () => proc(deno, repArgs(false), { cwd, env }).then((x) => x.seconds),
    () => proc("true", [], { cwd }).then((x) => x.seconds),
  );
  const startup = await pairs(
    runs,
    () =>
      proc(deno, ["run", "--quiet", ...FLAGS, MAIN, "--version"], { cwd, env }).then((x) =>
        x.seconds
      ),
    () => proc("true", [], { cwd }).then((x) => x.seconds),
  );
  row({
    figure: "`rep run --no-code -- true` versus `true` (whole processes)",
    rep: sec(r.rep),
    baseline: `${sec(r.base)} (true)`,
    ratio: `+${sec(r.rep - r.base)}`,
    target: "≤ 0.3 s added",
    met: r.rep - r.base <= 0.3,
    notes: `runs rep [${list(r.reps)}]; includes Deno startup and module loading: ` +
      `\`rep --version\` alone takes ${sec(startup.rep)}`,
  });
  // With a small code snapshot (a few files in the working directory).
  for (let i = 0; i < 20; i++) await Deno.writeTextFile(join(cwd, `f${i}.py`), `x = ${i}\n`);
  await proc(deno, repArgs(true), { cwd, env });
  const r2 = await pairs(
    runs,
    () => proc(deno, repArgs(true), { cwd, env }).then((x) => x.seconds),
    () => proc("true", [], { cwd }).then((x) => x.seconds),
  );
  row({
    figure: "`rep run -- true` with a 20-file code snapshot versus `true`",
    rep: sec(r2.rep),
    baseline: `${sec(r2.base)} (true)`,
    ratio: `+${sec(r2.rep - r2.base)}`,
    target: "≤ 0.3 s added",
    met: r2.rep - r2.base <= 0.3,
    notes: `runs rep [${list(r2.reps)}]`,
  });
  await rmrf(repoDir);
  await rmrf(cwd);
}

async function figMemory(tmp: string): Promise<void> {
  const data = join(tmp, "big");
  await Deno.mkdir(data);
  const file = join(data, "big.bin");
  await randomFile(file, BIG, 4242);
  if ((await Deno.stat(file)).size !== BIG) throw new Error(`${file}: not ${BIG} bytes`);
  const repoDir = join(tmp, "mem-repo");
  const child = async (...args: string[]) => {
    const { stdout } = await proc(Deno.execPath(), [
      "run",
      "--quiet",
      "-A", // reading /proc/self/status needs it
      CHILD,
      ...args,
    ], { env: { REP_CACHE_DIR: join(tmp, "mem-cache") } });
    return JSON.parse(stdout.trim().split("\n").pop()!) as {
      peakKiB: number;
      seconds: number;
      tree?: string;
    };
  };
  const idle = await child("idle");
  const ck = await child("checkpoint", repoDir, data, "big.bin");
  const co = await child("checkout", repoDir, ck.tree!, join(tmp, "mem-out"));
  const outSize = (await Deno.stat(join(tmp, "mem-out", "big.bin"))).size;
  if (outSize !== BIG) throw new Error(`the ${fmtBytes(BIG)} checkout wrote ${outSize} bytes`);
  await rmrf(join(tmp, "mem-out"));
  let cpPeak = "";
  try {
    const { stderr } = await proc("/usr/bin/time", ["-f", "%M", "cp", file, join(tmp, "cp-big")]);
    cpPeak = `${(Number(stderr.trim().split("\n").pop()) / 1024).toFixed(1)} MiB`;
  } catch {
    cpPeak = "n/a";
  }
  await rmrf(join(tmp, "cp-big"));
  const mib = (k: number) => k / 1024;
  for (const [what, m] of [["checkpointing", ck], ["checking out", co]] as const) {
    row({
      figure: `peak memory ${what} a ${fmtBytes(BIG)} file (child process VmHWM)`,
      rep: `${mib(m.peakKiB).toFixed(0)} MiB (${sec(m.seconds)})`,
      baseline: `${mib(idle.peakKiB).toFixed(0)} MiB (same process idle); cp: ${cpPeak}`,
      ratio: "",
      target: "≤ 200 MiB",
      met: mib(m.peakKiB) <= 200,
      notes: "peak resident set of the whole Deno process, runtime included",
    });
  }
  await rmrf(repoDir);
  await rmrf(data);
}

/**
 * S3 upload and download of the 1 GiB file through rep against the bare SDK, on each of
 * {@link S3_SERVERS} (each in its own process): bench/s3_throughput.ts, which checks that each
 * download wrote exactly the uploaded bytes.
 */
async function figS3(tmp: string, weights: string): Promise<void> {
  const data = dirname(weights);
  const name = weights.slice(data.length + 1);
  const runs = Math.max(1, RUNS - 1);
  for (const server of S3_SERVERS) {
    let f: S3Figures;
    try {
      f = await measureS3(server, data, name, runs, tmp);
    } catch (e) {
      row({
        figure: `S3 (${server}): upload and download of a ${fmtBytes(SIZE)} file`,
        rep: "failed",
        baseline: "",
        ratio: "",
        target: "≥ 1× (upload), ≥ 0.8× (download) SDK throughput",
        met: false,
        notes: `the run failed: ${String(e).slice(0, 300)}`,
      });
      continue;
    }
    const mbps = (s: number) => `${(SIZE / MiB / s).toFixed(0)} MiB/s`;
    for (
      const [dir, what, target, d] of [
        [
          "upload",
          "rep checkpoint vs SDK Upload (lib-storage, 16 MiB parts, 4 in flight)",
          1,
          f.upload,
        ],
        [
          "download",
          "rep checkout vs SDK GetObject (one object streamed to a file)",
          0.8,
          f.download,
        ],
      ] as const
    ) {
      const rep = median(d.rep);
      const sdk = median(d.sdk);
      row({
        figure: `S3 (${server}, separate process): ${dir} of a ${fmtBytes(SIZE)} file: ${what}`,
        rep: `${sec(rep)} (${mbps(rep)})`,
        baseline: `${sec(sdk)} (${mbps(sdk)})`,
        ratio: `${(sdk / rep).toFixed(2)}× SDK throughput`,
        target: `≥ ${target}× SDK throughput`,
        met: sdk / rep >= target,
        notes: `runs rep [${list(d.rep)}] SDK [${list(d.sdk)}]; ` +
          (dir === "upload"
            ? "rep includes chunking, hashing and staging packs locally"
            : "rep verifies every chunk's hash; both downloads checked byte for byte"),
      });
    }
  }
}

/**
 * `rep ls` at {@link LS_EXPERIMENTS} × {@link LS_CHECKPOINTS} on a local store: bench/ls_scale.ts
 * (owned by the catalog work) as a child process, which generates the repository, checks the
 * number of experiments it wrote, and measures whole `rep ls` processes (time, peak memory).
 */
async function figLs(_tmp: string): Promise<void> {
  const r = await proc(Deno.execPath(), [
    "run",
    "-A",
    join(ROOT, "bench", "ls_scale.ts"),
    "--experiments",
    String(LS_EXPERIMENTS),
    "--checkpoints",
    String(LS_CHECKPOINTS),
    "--backends",
    "local",
    "--repeat",
    String(Math.max(1, RUNS - 1)),
    ...(LS_REPO ? ["--repo", LS_REPO] : []),
  ]).catch((e) => ({ seconds: NaN, stdout: "", stderr: String(e) }));
  // | backend | impl | N × M | objects | cold | cold + segments | warm | warm -f -f -s | show | incr |
  const line = r.stdout.split("\n").find((l) => l.startsWith("| local | rep |"));
  const cells = line?.split("|").slice(1, -1).map((c) => c.trim()) ?? [];
  const startup = /runtime start \(rep --version\): (.*)/.exec(r.stdout)?.[1] ?? "n/a";
  const parse = (c: string | undefined) => {
    const m = /([\d.]+) s, ([\d.]+) MiB/.exec(c ?? "");
    return m ? { s: Number(m[1]), mib: Number(m[2]) } : null;
  };
  const warm = parse(cells[6]);
  const cold = parse(cells[5]);
  const size = `${LS_EXPERIMENTS} experiments × ${LS_CHECKPOINTS} checkpoints`;
  if (!warm || !cold) {
    row({
      figure: `\`rep ls\` at ${size}, local store`,
      rep: "failed",
      baseline: "",
      ratio: "",
      target: "warm ≤ 1 s and ≤ 200 MiB; cold with segments ≤ 3 s",
      met: false,
      notes: `bench/ls_scale.ts gave no local row: ${(r.stderr || r.stdout).slice(-400)}`,
    });
    return;
  }
  const base = `${startup} (\`rep --version\`: runtime start)`;
  row({
    figure: `\`rep ls\` warm at ${size}, local store (CLI process)`,
    rep: `${sec(warm.s)}, ${warm.mib.toFixed(0)} MiB peak`,
    baseline: base,
    ratio: "",
    target: "≤ 1 s and ≤ 200 MiB peak",
    met: warm.s <= 1 && warm.mib <= 200,
    notes: `bench/ls_scale.ts (checks it generated ${LS_EXPERIMENTS} experiment folders): ` +
      `${cells[3]} objects; best of ${Math.max(1, RUNS - 1)}; with -f -f -s: ${cells[7]}; ` +
      `\`rep show PREFIX\`: ${cells[8]}; incremental (+1): ${cells[9]}; cold, no segments: ` +
      `${cells[4]}`,
  });
  row({
    figure: `\`rep ls\` cold with shared segments at ${size}, local store (CLI process)`,
    rep: `${sec(cold.s)}, ${cold.mib.toFixed(0)} MiB peak`,
    baseline: base,
    ratio: "",
    target: "≤ 3 s",
    met: cold.s <= 3,
    notes: "a fresh cache; the index segments written by an earlier listing",
  });
}

// `--render`: rewrite bench/RESULTS.md from bench/RESULTS.json (rows in the order of a full run).
if (argv.includes("--render")) {
  const json = join(ROOT, "bench", "RESULTS.json");
  const res = JSON.parse(await Deno.readTextFile(json)) as Results;
  const order = (r: Row) => KEYS.indexOf(r.key ?? "");
  res.rows = res.rows.map((r, i) => [r, i] as const)
    .sort(([a, i], [b, j]) => order(a) - order(b) || i - j).map(([r]) => r);
  const md = join(ROOT, "bench", "RESULTS.md");
  await Deno.writeTextFile(md, resultsMarkdown(res));
  await Deno.writeTextFile(json, JSON.stringify(res, null, 2) + "\n");
  await proc(Deno.execPath(), ["fmt", "--quiet", md, json]);
  console.log("wrote bench/RESULTS.md from bench/RESULTS.json");
  Deno.exit(0);
}

// ---- main --------------------------------------------------------------------------------------------

const T0 = performance.now();
const tmp = await Deno.makeTempDir({ prefix: "rep-bench-" });
let machineLines: string[] = [];
try {
  machineLines = await machine(tmp);
  console.log(machineLines.join("\n"));
  console.log(`runs per figure: ${RUNS}${QUICK ? " (quick mode: small sizes)" : ""}`);
  const data = join(tmp, "data");
  await Deno.mkdir(data);
  const weights = join(data, "weights.bin");
  const big = ["checkpoint", "tools", "checkout", "change", "throughput", "stages", "worker"];
  if ([...big, "finetune", "s3"].some(want)) {
    const [g] = await timed(() => randomFile(weights, SIZE, 1));
    console.log(`(generated ${fmtBytes(SIZE)} of test data in ${sec(g)})`);
    await checkData(weights, SIZE);
  }
  if (want("checkpoint") || want("checkout")) {
    await figure("checkpoint", () => figCheckpointAndCheckout(tmp, weights));
  }
  if (want("tools")) await figure("tools", () => figToolsNew(tmp, weights));
  if (want("change")) await figure("change", () => figChange(tmp, weights));
  if (want("throughput")) await figure("throughput", () => figThroughput(tmp, weights));
  if (want("stages")) await figure("stages", () => figStages(tmp, weights));
  if (want("worker")) await figure("worker", () => figWorker(tmp, weights));
  if (want("unchanged")) await figure("unchanged", () => figUnchanged(tmp));
  if (want("finetune")) await figure("finetune", () => figFinetune(tmp, weights));
  if (want("code")) await figure("code", () => figCode(tmp));
  if (want("run")) await figure("run", () => figRun(tmp));
  if (want("memory")) await figure("memory", () => figMemory(tmp));
  if (want("ls")) await figure("ls", () => figLs(tmp));
  if (want("s3")) await figure("s3", () => figS3(tmp, weights));
  for (const key of ["sweep", "startup"]) {
    if (!want(key)) continue;
    await figure(key, async () => {
      for (
        const r of await dedupFigures(tmp, {
          quick: QUICK,
          runs: RUNS,
          want: (k) => k === key,
        })
      ) {
        row(r);
      }
    });
  }
} finally {
  if (!KEEP) await rmrf(tmp);
}
const total = (performance.now() - T0) / 1000;
const endLoad = await loadAverage();
console.log(`\ntotal ${sec(total)}; load average at the end: ${endLoad}`);

/** What bench/RESULTS.json holds: the rows of RESULTS.md and the runs that measured them. */
interface Results {
  rows: Row[];
  /** One entry per run that measured rows: its keys (or "all"), machine lines, load, time. */
  runs: { keys: string; machine: string[]; endLoad: string; seconds: number }[];
}

/** The markdown of bench/RESULTS.md for `res`. */
function resultsMarkdown(res: Results): string {
  return [
    "# Benchmark results",
    "",
    "Written by `deno task bench` (bench/run.ts). Each figure alternates rep and its baseline in the",
    "same run; times are medians. In-process figures call the library; CLI figures are whole",
    "processes including Deno startup. The machine is shared: each row's notes give the load",
    "average (1, 5, 15 min) when its figure started. Rows re-measured with `--only KEYS --merge`",
    "say so under Runs.",
    "",
    "| figure | rep | baseline | ratio | target | met? |",
    "| --- | --- | --- | --- | --- | --- |",
    ...res.rows.map((r) =>
      `| ${r.figure} | ${r.rep} | ${r.baseline} | ${r.ratio} | ${r.target} | ${
        r.met === null ? "reported" : r.met ? "yes" : "**no**"
      } |`
    ),
    "",
    "## Notes",
    "",
    ...res.rows.filter((r) => r.notes).map((r) => `- ${r.figure}: ${r.notes}`),
    "",
    "## Runs",
    "",
    ...res.runs.flatMap((run) => [
      `### ${run.keys === "all" ? "Full run" : `Re-measured: ${run.keys}`}`,
      "",
      ...run.machine.map((l) => `- ${l}`),
      `- Load average at the end: ${run.endLoad}`,
      `- Total bench time: ${sec(run.seconds)}`,
      "",
    ]),
  ].join("\n");
}

if (!QUICK) {
  const run = {
    keys: ONLY ? [...ONLY].join(",") : "all",
    machine: machineLines,
    endLoad,
    seconds: total,
  };
  const json = join(ROOT, "bench", "RESULTS.json");
  let res: Results = { rows, runs: [run] };
  if (ONLY && MERGE) {
    // Replace the rows of the keys just measured, keep the rest; in the order of a full run.
    const old = JSON.parse(await Deno.readTextFile(json)) as Results;
    const order = (r: Row) => KEYS.indexOf(r.key ?? "");
    const merged = [...old.rows.filter((r) => !ONLY.has(r.key ?? "")), ...rows]
      .map((r, i) => [r, i] as const)
      .sort(([a, i], [b, j]) => order(a) - order(b) || i - j)
      .map(([r]) => r);
    res = { rows: merged, runs: [...old.runs, run] };
  }
  const path = ONLY && !MERGE
    ? join(ROOT, "bench", "out", "RESULTS-only.md")
    : join(ROOT, "bench", "RESULTS.md");
  await Deno.mkdir(dirname(path), { recursive: true });
  await Deno.writeTextFile(path, resultsMarkdown(res));
  if (!ONLY || MERGE) await Deno.writeTextFile(json, JSON.stringify(res, null, 2) + "\n");
  // In the repository's format (what `deno task ok` checks).
  await proc(Deno.execPath(), ["fmt", "--quiet", path, ...(!ONLY || MERGE ? [json] : [])])
    .catch((e) => console.log(`(deno fmt of the results failed: ${e})`));
  console.log(`wrote ${path.slice(ROOT.length + 1)}`);
}
