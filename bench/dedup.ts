/**
 * Dedup figures, for `deno task bench` (bench/run.ts, figure keys `sweep` and `startup`) and
 * alone:
 *
 * - `sweep`: N experiments fine-tuning one base model file, each a `rep run` of a script that
 *   writes its weights into the output folder: the first the base itself, the second the base
 *   unchanged (an evaluation run), the others the base with a different 5% replaced (a fine-tuned
 *   layer). Beside it, in the same run, restic and borg back up the same project folder after the
 *   same script. Stored bytes (whole repository folders) and wall time of whole processes.
 * - `startup`: what the dedup lookup adds to `rep run` start-up on a 10k-experiment repository
 *   (made by bench/dedup_repo.ts): `rep run --no-code -- true` there with dedup versus the same
 *   run with `REP_DEDUP=off` (and an empty repository), alternated, whole processes; and
 *   in-process, the chunk-cache refresh warm and cold, beside the listing that the
 *   previous-experiment seed used to do at every start.
 *
 * Run alone (`deno run -A bench/dedup.ts [--quick] [sweep,startup]`) it writes
 * bench/RESULTS_dedup.md with the load average.
 *
 * @module
 */
import { createCipheriv, createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DatabaseSync } from "node:sqlite";
import { Dedup } from "../src/writer/dedup.ts";
import { chunkCachePath } from "../src/writer/chunk_cache.ts";
import { LocalStore } from "../src/storage/local.ts";
import { Repository } from "../src/repository.ts";
import { generateDedupRepo } from "./dedup_repo.ts";

/** A row of the results table (the shape bench/run.ts prints). */
export interface Row {
  figure: string;
  rep: string;
  baseline: string;
  ratio: string;
  target: string;
  met: boolean | null;
  notes: string;
}

/** Options from bench/run.ts. */
export interface DedupBenchOptions {
  quick: boolean;
  runs: number;
  want: (key: string) => boolean;
}

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const MAIN = join(ROOT, "main.ts");
const FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-net",
  "--allow-run",
  "--allow-sys",
];
const MiB = 1024 * 1024;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const sec = (x: number) => `${x.toFixed(2)} s`;
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const list = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(", ");

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

/** Deterministic incompressible bytes: an AES-128-CTR keystream of `seed`. */
function keystream(n: number, seed: number): Uint8Array {
  const key = new Uint8Array(16);
  new DataView(key.buffer).setUint32(0, seed);
  const c = createCipheriv("aes-128-ctr", key, new Uint8Array(16));
  return new Uint8Array(c.update(new Uint8Array(n)));
}

/** Bytes of every file under `dir` (apparent sizes), leaving out `skip` folder names. */
async function dirBytes(dir: string, skip: string[] = []): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) {
      if (!skip.includes(e.name)) n += await dirBytes(p, skip);
    } else if (e.isFile) n += (await Deno.stat(p)).size;
  }
  return n;
}

/** Writes $SRC into the output folder as model.bin (atomically), then one metrics line. */
const COPY_PY = `
import json, os, shutil
out = os.environ.get("REP_OUTPUT_DIR", "output")
os.makedirs(out, exist_ok=True)
shutil.copyfile(os.environ["SRC"], os.path.join(out, "model.bin.tmp"))
os.replace(os.path.join(out, "model.bin.tmp"), os.path.join(out, "model.bin"))
if "REP_METRICS_FILE" in os.environ:
    with open(os.environ["REP_METRICS_FILE"], "a") as m:
        m.write(json.dumps({"step": 1, "loss": 0.5}) + "\\n")
`;

async function project(dir: string): Promise<string> {
  await Deno.mkdir(join(dir, "output"), { recursive: true });
  await Deno.writeTextFile(join(dir, "train.py"), COPY_PY);
  return dir;
}

/** sha256 of a file, streamed. */
async function fileSha(path: string): Promise<string> {
  const h = createHash("sha256");
  await using f = await Deno.open(path);
  for await (const b of f.readable) h.update(b);
  return h.digest("hex");
}

/** Fail the benchmark: what it built is not what it meant to build. */
function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`bench/dedup.ts built the wrong thing: ${what}`);
}

/**
 * The inputs of the sweep: experiment 0 is the base, 1 the base unchanged, k ≥ 2 the base with
 * its k-th 5% region replaced. Checked: 0 and 1 equal, every other distinct, each differing from
 * the base in (nearly) exactly `region` bytes, all inside its region.
 */
function sweepInputs(base: Uint8Array, n: number, region: number): {
  content: (k: number) => Uint8Array;
  shas: string[];
} {
  const offset = (k: number) => ((7 * k) % 20) * region;
  const content = (k: number) => {
    const c = base.slice();
    if (k >= 2) c.set(keystream(region, 100 + k), offset(k));
    return c;
  };
  const shas: string[] = [];
  for (let k = 0; k < n; k++) {
    const c = content(k);
    shas.push(createHash("sha256").update(c).digest("hex"));
    if (k < 2) continue;
    let differ = 0;
    let outside = 0;
    const lo = offset(k);
    for (let i = 0; i < c.length; i++) {
      if (c[i] !== base[i]) {
        differ++;
        if (i < lo || i >= lo + region) outside++;
      }
    }
    check(outside === 0 && differ >= 0.99 * region, `input ${k}: ${differ} bytes changed`);
  }
  check(shas[0] === shas[1], "inputs 0 and 1 differ");
  check(new Set(shas).size === n - 1, "the changed inputs are not all distinct");
  return { content, shas };
}

async function figSweep(tmp: string, o: DedupBenchOptions): Promise<Row[]> {
  const SIZE = o.quick ? 32 * MiB : 256 * MiB;
  const N = o.quick ? 4 : 6;
  const region = Math.floor(SIZE * 0.05);
  const work = join(tmp, "sweep");
  const data = join(work, "data");
  await Deno.mkdir(data, { recursive: true });
  const base = keystream(SIZE, 1);
  const inputs = sweepInputs(base, N, region);
  const repProj = await project(join(work, "rep-proj"));
  const resticProj = await project(join(work, "restic-proj"));
  const borgProj = await project(join(work, "borg-proj"));
  const repRepo = join(work, "rep-repo");
  const resticRepo = join(work, "restic-repo");
  const borgRepo = join(work, "borg-repo");
  // HOME stays as it is: a fresh one would give Deno an empty module cache.
  const repEnv = { REP_CACHE_DIR: join(work, "rep-cache") };
  const resticEnv = { RESTIC_PASSWORD: "bench", RESTIC_CACHE_DIR: join(work, "restic-cache") };
  const borgEnv = {
    BORG_BASE_DIR: join(work, "borg-base"),
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: "yes",
    BORG_RELOCATED_REPO_ACCESS_IS_OK: "yes",
  };
  // Warm-up: Deno's module cache, Python's bytecode.
  await proc(Deno.execPath(), ["run", "--quiet", ...FLAGS, MAIN, "--version"]);
  await proc("restic", ["init", "--repo", resticRepo], { env: resticEnv });
  await proc("borg", ["init", "--encryption=none", borgRepo], { env: borgEnv });
  const stored = {
    rep: () => dirBytes(repRepo, ["staging"]),
    restic: () => dirBytes(resticRepo),
    borg: () => dirBytes(borgRepo),
  };
  const tools = ["rep", "restic", "borg"] as const;
  const added: Record<string, number[]> = { rep: [], restic: [], borg: [] };
  const times: Record<string, number[]> = { rep: [], restic: [], borg: [] };
  for (let k = 0; k < N; k++) {
    const src = join(data, `exp${k}.bin`);
    await Deno.writeFile(src, inputs.content(k));
    for (const tool of tools) {
      const before = k === 0 ? 0 : await stored[tool]();
      let s = 0;
      if (tool === "rep") {
        s = (await proc(Deno.execPath(), [
          "run",
          "--quiet",
          ...FLAGS,
          MAIN,
          "-R",
          repRepo,
          "run",
          "--",
          "python3",
          "train.py",
        ], { cwd: repProj, env: { ...repEnv, SRC: src } })).seconds;
      } else {
        const proj = tool === "restic" ? resticProj : borgProj;
        s = (await proc("python3", ["train.py"], { cwd: proj, env: { SRC: src } })).seconds;
        s += tool === "restic"
          ? (await proc("restic", ["backup", "--repo", resticRepo, "--host", "bench", "."], {
            cwd: proj,
            env: resticEnv,
          })).seconds
          : (await proc("borg", ["create", `${borgRepo}::exp${k}`, "."], {
            cwd: proj,
            env: borgEnv,
          })).seconds;
      }
      times[tool]!.push(s);
      added[tool]!.push((await stored[tool]()) - before);
    }
    await Deno.remove(src);
  }
  const checked = await checkSweep(work, {
    repRepo,
    repEnv,
    resticRepo,
    resticEnv,
    borgRepo,
    borgEnv,
  }, {
    n: N,
    size: SIZE,
    shas: inputs.shas,
  });
  const total = (t: string) => added[t]!.reduce((a, b) => a + b, 0);
  const changedAdds = (t: string) => added[t]!.slice(2).map((x) => x / SIZE);
  const worst = (t: string) => Math.max(...changedAdds(t));
  const ideal = SIZE + (N - 2) * region;
  const rows: Row[] = [];
  rows.push({
    figure: `second experiment, same ${mib(SIZE)} file (\`rep run\`): bytes added`,
    rep: `${mib(added.rep![1]!)} (${pct(added.rep![1]! / SIZE)})`,
    baseline: `restic ${mib(added.restic![1]!)}, borg ${mib(added.borg![1]!)}`,
    ratio: "",
    target: "≤ 15% of the file",
    met: added.rep![1]! <= 0.15 * SIZE,
    notes: `first experiment stored: rep ${mib(added.rep![0]!)}, restic ${
      mib(added.restic![0]!)
    }, borg ${mib(added.borg![0]!)}`,
  });
  rows.push({
    figure: `experiments 3–${N}: the base with a different 5% changed: bytes added (worst; median)`,
    rep: `${pct(worst("rep"))}; ${pct(median(changedAdds("rep")))}`,
    baseline: `restic ${pct(worst("restic"))}; ${pct(median(changedAdds("restic")))}, borg ${
      pct(worst("borg"))
    }; ${pct(median(changedAdds("borg")))}`,
    ratio: "",
    target: "≤ 15% of the file",
    met: worst("rep") <= 0.15,
    notes: `added per experiment (MiB): rep [${list(added.rep!.map((x) => x / MiB))}], restic [${
      list(added.restic!.map((x) => x / MiB))
    }], borg [${list(added.borg!.map((x) => x / MiB))}]`,
  });
  rows.push({
    figure: `${N} experiments fine-tuning one ${mib(SIZE)} base file: stored`,
    rep: mib(total("rep")),
    baseline: `restic ${mib(total("restic"))}, borg ${mib(total("borg"))}`,
    ratio: `${(total("rep") / total("restic")).toFixed(2)}× restic, ${
      (total("rep") / total("borg")).toFixed(2)
    }× borg`,
    target: "",
    met: null,
    notes: `logical ${mib(N * SIZE)}; ideal (base + ${N - 2} × 5%) ${mib(ideal)}; ` +
      "whole repository folders (rep: packs, pack indexes, trees, records, code snapshots). " +
      `Checked after the runs: ${checked}`,
  });
  const sum = (t: string) => times[t]!.reduce((a, b) => a + b, 0);
  rows.push({
    figure: `${N} experiments fine-tuning one ${mib(SIZE)} base file: time`,
    rep: sec(sum("rep")),
    baseline: `restic ${sec(sum("restic"))}, borg ${sec(sum("borg"))}`,
    ratio: `${(sum("rep") / sum("restic")).toFixed(2)}× restic, ${
      (sum("rep") / sum("borg")).toFixed(2)
    }× borg`,
    target: "",
    met: null,
    notes: `whole processes per experiment: rep = \`rep run\` (Deno start, code snapshot, the ` +
      `script, checkpoint, upload) [${list(times.rep!)}]; restic/borg = the script, then ` +
      `backup [${list(times.restic!)}] [${list(times.borg!)}]`,
  });
  await Deno.remove(work, { recursive: true });
  return rows;
}

/**
 * What the sweep stored, checked through each tool: rep holds `n` experiments with distinct ids,
 * each a checkpoint of one `size`-byte model.bin whose content ids match the inputs' pattern (0
 * and 1 equal, the rest distinct), the last checked out byte-exact; restic holds `n` snapshots
 * and borg `n` archives (distinct ids), the last holding model.bin of `size` bytes.
 */
async function checkSweep(
  work: string,
  r: {
    repRepo: string;
    repEnv: Record<string, string>;
    resticRepo: string;
    resticEnv: Record<string, string>;
    borgRepo: string;
    borgEnv: Record<string, string>;
  },
  want: { n: number; size: number; shas: string[] },
): Promise<string> {
  const repo = await Repository.open(r.repRepo, { cache: false });
  let last = "";
  try {
    const views = (await repo.list()).sort((a, b) =>
      a.record.created.localeCompare(b.record.created)
    );
    check(views.length === want.n, `rep holds ${views.length} experiments`);
    check(new Set(views.map((v) => v.record.id)).size === want.n, "rep experiment ids repeat");
    const contentIds: string[] = [];
    for (const v of views) {
      const ck = v.checkpoints.at(-1);
      check(!!ck?.files, `experiment ${v.record.id} has no checkpoint files`);
      const files = (await repo.tree(ck!.files!.tree)).files.filter((f) =>
        f.path.endsWith("model.bin")
      );
      check(files.length === 1 && files[0]!.size === want.size, `${v.record.id}: model.bin size`);
      contentIds.push(files[0]!.hash);
    }
    check(contentIds[0] === contentIds[1], "rep: experiments 1 and 2 differ");
    check(new Set(contentIds).size === want.n - 1, "rep: the changed files are not distinct");
    last = views.at(-1)!.record.id;
  } finally {
    await repo.close();
  }
  const dest = join(work, "checkout");
  await proc(Deno.execPath(), [
    "run",
    "--quiet",
    ...FLAGS,
    MAIN,
    "-R",
    r.repRepo,
    "checkout",
    last,
    "--no-code",
    "-o",
    dest,
  ], { env: r.repEnv });
  const got = await fileSha(join(dest, "output", "model.bin"))
    .catch(() => fileSha(join(dest, "model.bin")));
  check(got === want.shas.at(-1), "rep: the last checkout is not the last input");
  await Deno.remove(dest, { recursive: true });
  const snaps = JSON.parse(
    (await proc("restic", ["snapshots", "--json", "--repo", r.resticRepo], { env: r.resticEnv }))
      .stdout,
  ) as { id: string }[];
  check(snaps.length === want.n, `restic holds ${snaps.length} snapshots`);
  check(new Set(snaps.map((s) => s.id)).size === want.n, "restic snapshot ids repeat");
  const rls = (await proc("restic", ["ls", "--json", "--repo", r.resticRepo, "latest"], {
    env: r.resticEnv,
  })).stdout.trim().split("\n").map((l) => JSON.parse(l) as { path?: string; size?: number });
  check(
    rls.some((e) => e.path?.endsWith("/output/model.bin") && e.size === want.size),
    "restic: the latest snapshot has no model.bin of the right size",
  );
  const archives = (JSON.parse(
    (await proc("borg", ["list", "--json", r.borgRepo], { env: r.borgEnv })).stdout,
  ) as { archives: { id: string; name: string }[] }).archives;
  check(archives.length === want.n, `borg holds ${archives.length} archives`);
  check(new Set(archives.map((a) => a.id)).size === want.n, "borg archive ids repeat");
  const bls = (await proc("borg", ["list", "--json-lines", `${r.borgRepo}::exp${want.n - 1}`], {
    env: r.borgEnv,
  })).stdout.trim().split("\n").map((l) => JSON.parse(l) as { path: string; size: number });
  check(
    bls.some((e) => e.path.endsWith("output/model.bin") && e.size === want.size),
    "borg: the last archive has no model.bin of the right size",
  );
  return `rep ${want.n} experiments (distinct ids; content ids equal for 1–2, distinct for the ` +
    `rest; the last checked out byte-exact), restic ${want.n} snapshots, borg ${want.n} archives ` +
    `(distinct ids, model.bin ${mib(want.size)} in the last)`;
}

/** Seconds with their sign (a difference). */
const signed = (x: number) => `${x < 0 ? "-" : "+"}${sec(Math.abs(x))}`;

async function figStartup(tmp: string, o: DedupBenchOptions): Promise<Row[]> {
  const EXPERIMENTS = o.quick ? 500 : 10_000;
  const runs = Math.max(o.runs, 9);
  const work = join(tmp, "startup");
  const big = join(work, "big-repo");
  const gen = await generateDedupRepo(big, { experiments: EXPERIMENTS });
  console.log(
    `   (generated ${gen.experiments} experiments, ${gen.indexObjects} pack indexes, ` +
      `${gen.chunks} chunks in ${sec(gen.seconds)})`,
  );
  const rows: Row[] = [];
  // In-process: the chunk-cache refresh, cold then warm, and the listing the seed used to do.
  const store = new LocalStore(big);
  const cachePath = join(work, "cache.sqlite");
  const t0 = performance.now();
  const cold = await Dedup.open(store, { cachePath });
  await cold.refreshWait();
  const coldOpen = (performance.now() - t0) / 1000;
  await cold.ready;
  const coldFull = (performance.now() - t0) / 1000;
  if (!cold.refreshed?.complete || cold.refreshed.chunks !== gen.chunks) {
    throw new Error(`the cold refresh read ${cold.refreshed?.chunks} of ${gen.chunks} chunks`);
  }
  cold.close();
  const warm: number[] = [];
  const changed: number[] = [];
  const opened: number[] = [];
  const listed = { warm: new Set<number>(), changed: new Set<number>() };
  const listing: number[] = [];
  const repo = new Repository(store);
  const saved = Deno.env.get("REP_CACHE_DIR");
  Deno.env.set("REP_CACHE_DIR", join(work, "list-cache"));
  // A warm refresh of a repository in use: pack-index/ changed since the last refresh (its time
  // set to another settled time: what another writer's new index does), so it is listed again.
  const folder = join(big, "pack-index");
  const touch = (i: number) => Deno.utime(folder, new Date(), new Date(Date.now() - 3600e3 - i));
  const refresh = async (into: number[], kind: "warm" | "changed") => {
    const a = performance.now();
    const d = await Dedup.open(store, { cachePath });
    if (kind === "warm") opened.push((performance.now() - a) / 1000);
    await d.ready;
    into.push((performance.now() - a) / 1000);
    check(d.refreshed?.complete === true && d.refreshed.read === 0, "the warm refresh read");
    listed[kind].add(d.refreshed!.listed);
    d.close();
  };
  try {
    await repo.list(); // fills the listing cache
    await touch(0);
    await refresh([], "changed"); // notes the folder's mark
    for (let i = 0; i < runs; i++) {
      await refresh(warm, "warm");
      await touch(1000 * (i + 1));
      await refresh(changed, "changed");
      const b = performance.now();
      await repo.list();
      listing.push((performance.now() - b) / 1000);
    }
  } finally {
    if (saved === undefined) Deno.env.delete("REP_CACHE_DIR");
    else Deno.env.set("REP_CACHE_DIR", saved);
  }
  await store.close();
  rows.push({
    figure: `chunk-cache refresh at start, ${EXPERIMENTS} experiments (${gen.indexObjects} ` +
      `pack indexes, ${gen.chunks} chunks), in-process`,
    rep: `warm ${sec(median(warm))} (pack-index/ changed since: ${sec(median(changed))}); ` +
      `cold ${sec(coldOpen)} (all read after ${sec(coldFull)})`,
    baseline: `${sec(median(listing))} (warm \`repo.list()\`: what the removed seed did)`,
    ratio: `${(median(warm) / median(listing)).toFixed(2)}× ` +
      `(changed: ${(median(changed) / median(listing)).toFixed(2)}×)`,
    target: "warm ≤ 0.2 s",
    met: median(warm) <= 0.2 && median(changed) <= 0.2,
    notes: `warm runs [${list(warm)}], pack-index/ changed [${list(changed)}], listing runs ` +
      `[${list(listing)}], alternated; warm = the whole refresh (nothing read): pack-index/ ` +
      `(${gen.indexObjects} keys) unchanged since the last listing by its mark, so not listed ` +
      `(keys listed: ${[...listed.warm]}), and one listing of gc/; changed = the folder's time ` +
      "changed since (as a new index from another writer does): one listing of it after the " +
      `newest key less 2 h (keys listed: ${[...listed.changed]}); the refresh runs in the ` +
      `background: \`Dedup.open()\` returns after [${list(opened)}] and only a snapshot waits ` +
      "for the refresh, at most 1 s from open; cold = an empty cache: what that first snapshot " +
      "waits, the rest is read in the background (newest first) while the run goes on",
  });
  // Whole processes: `rep run` on the big repository with dedup, and the same run without it
  // (REP_DEDUP=off: no chunk cache read or filled), alternated; beside, an empty repository.
  const cwd = join(work, "cwd");
  await Deno.mkdir(cwd);
  const empty = join(work, "empty-repo");
  const env = { REP_CACHE_DIR: join(work, "run-cache") };
  const runIn = (r: string, extra: Record<string, string> = {}) =>
    proc(Deno.execPath(), [
      "run",
      "--quiet",
      ...FLAGS,
      MAIN,
      "-R",
      r,
      "run",
      "--no-code",
      "--",
      "true",
    ], { cwd, env: { ...env, ...extra } }).then((x) => x.seconds);
  const off = { REP_DEDUP: "off" };
  await runIn(empty);
  // REP_DEDUP=off must leave the chunk cache alone: a run with it on a fresh cache folder makes
  // no chunk cache.
  const offCache = join(work, "off-cache");
  await runIn(big, { ...off, REP_CACHE_DIR: offCache });
  const made = await Array.fromAsync(Deno.readDir(join(offCache))).catch(() => []);
  const chunkCaches = await Array.fromAsync(Deno.readDir(join(offCache, "chunks")))
    .catch(() => []);
  check(chunkCaches.length === 0, `REP_DEDUP=off made a chunk cache (${made.map((e) => e.name)})`);
  // This "machine" has run in this repository before: its chunk cache is complete (the run
  // reads in the background until it ends; a refresh here reads what it did not get to).
  const coldRun = await runIn(big);
  const savedDir = Deno.env.get("REP_CACHE_DIR");
  Deno.env.set("REP_CACHE_DIR", env.REP_CACHE_DIR);
  try {
    const bigStore = new LocalStore(big);
    const fill = await Dedup.open(bigStore);
    await fill.ready;
    check(fill.refreshed?.complete === true, "the chunk cache refresh did not complete");
    fill.close();
    const db = new DatabaseSync(chunkCachePath(bigStore.url), { readOnly: true });
    const row = db.prepare("SELECT count(*) AS n FROM chunks").get() as { n: number };
    db.close();
    check(row.n === gen.chunks, `the run's chunk cache holds ${row.n} of ${gen.chunks} chunks`);
    await bigStore.close();
  } finally {
    if (savedDir === undefined) Deno.env.delete("REP_CACHE_DIR");
    else Deno.env.set("REP_CACHE_DIR", savedDir);
  }
  const inBig: number[] = [];
  const noDedup: number[] = [];
  const inEmpty: number[] = [];
  for (let i = 0; i < runs; i++) {
    inBig.push(await runIn(big));
    noDedup.push(await runIn(big, off));
    inEmpty.push(await runIn(empty));
  }
  const d = median(inBig) - median(noDedup);
  const vsEmpty = median(inBig) - median(inEmpty);
  // Paired: each dedup run against the run without dedup right after it.
  const pairs = inBig.map((x, i) => x - noDedup[i]!);
  rows.push({
    figure: `dedup lookup's added \`rep run --no-code -- true\` start-up, ${EXPERIMENTS} ` +
      "experiments (whole processes, warm chunk cache)",
    rep: sec(median(inBig)),
    baseline: `${sec(median(noDedup))} (the same run, REP_DEDUP=off)`,
    ratio: `${signed(d)} (median of paired differences ${signed(median(pairs))}); ` +
      `${signed(vsEmpty)} versus an empty repository`,
    target: "≤ 0.2 s added (to both)",
    met: d <= 0.2 && vsEmpty <= 0.2,
    notes: `runs with dedup [${list(inBig)}], without [${list(noDedup)}], ` +
      `on an empty repository [${list(inEmpty)}] (median ${sec(median(inEmpty))}); the first ` +
      `run on this machine (empty chunk cache): ${sec(coldRun)}`,
  });
  await Deno.remove(work, { recursive: true });
  return rows;
}

/** The dedup figures that `want` selects. */
export async function dedupFigures(tmp: string, o: DedupBenchOptions): Promise<Row[]> {
  const rows: Row[] = [];
  if (o.want("sweep")) rows.push(...await figSweep(tmp, o));
  if (o.want("startup")) rows.push(...await figStartup(tmp, o));
  return rows;
}

const loadAverage = async () => (await Deno.readTextFile("/proc/loadavg")).trim();

/** bench/RESULTS_dedup.md: the rows as a table, with the load and what was run. */
function resultsMarkdown(rows: Row[], info: { date: string; loads: string[]; seconds: number }) {
  const cell = (x: string) => x.replaceAll("|", "\\|");
  return [
    "# Dedup results",
    "",
    `Written by \`deno run -A bench/dedup.ts\` on ${info.date} (${Deno.build.os}, ` +
    `${navigator.hardwareConcurrency} cores, shared with other helpers' builds and tests; load ` +
    `average (\`/proc/loadavg\`) ${info.loads.join(" → ")}; ${sec(info.seconds)} in all).`,
    "Every figure has its baseline measured in the same run: restic and borg do the same sweep " +
    "after each `rep run`; the start-up figure alternates `rep run` with dedup, the same run with " +
    "`REP_DEDUP=off`, and an empty repository. What was built is checked (counts, sizes, distinct " +
    "ids) before it is timed or reported.",
    "",
    "| figure | rep | baseline | ratio | target | met? |",
    "| --- | --- | --- | --- | --- | --- |",
    ...rows.map((r) =>
      `| ${cell(r.figure)} | ${cell(r.rep)} | ${cell(r.baseline)} | ${cell(r.ratio)} | ${
        cell(r.target)
      } | ${r.met === null ? "" : r.met ? "yes" : "**no**"} |`
    ),
    "",
    "## Notes",
    "",
    ...rows.map((r) => `- ${r.figure}: ${r.notes}`),
    "",
  ].join("\n");
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const only = Deno.args.find((a) => !a.startsWith("--"));
  const tmp = await Deno.makeTempDir({ prefix: "rep-bench-dedup-" });
  const t0 = performance.now();
  const loads = [await loadAverage()];
  try {
    const rows = await dedupFigures(tmp, {
      quick,
      runs: 5,
      want: (k) => !only || only.split(",").includes(k),
    });
    loads.push(await loadAverage());
    for (const r of rows) console.log(r);
    console.log(`load average: ${loads.join(" → ")}`);
    if (!quick && !only) {
      const md = resultsMarkdown(rows, {
        date: new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC",
        loads,
        seconds: (performance.now() - t0) / 1000,
      });
      const out = join(ROOT, "bench", "RESULTS_dedup.md");
      await Deno.writeTextFile(out, md);
      await proc(Deno.execPath(), ["fmt", "--quiet", out]); // as `deno task ok` checks it
      console.log("wrote bench/RESULTS_dedup.md");
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}
