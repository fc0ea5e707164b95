/**
 * Dedup figures for `deno task bench` (called from bench/run.ts, figure keys `sweep` and
 * `startup`):
 *
 * - `sweep`: N experiments fine-tuning one base model file, each a `rep run` of a script that
 *   writes its weights into the output folder: the first the base itself, the second the base
 *   unchanged (an evaluation run), the others the base with a different 5% replaced (a fine-tuned
 *   layer). Beside it, in the same run, restic and borg back up the same project folder after the
 *   same script. Stored bytes (whole repository folders) and wall time of whole processes.
 * - `startup`: what the dedup lookup adds to `rep run` start-up on a 10k-experiment repository
 *   (made by bench/dedup_repo.ts): `rep run --no-code -- true` there versus on an empty
 *   repository, alternated; and in-process, the chunk-cache refresh warm and cold, beside the
 *   listing that the previous-experiment seed used to do at every start.
 *
 * @module
 */
import { createCipheriv } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Dedup } from "../src/writer/dedup.ts";
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

async function figSweep(tmp: string, o: DedupBenchOptions): Promise<Row[]> {
  const SIZE = o.quick ? 32 * MiB : 128 * MiB;
  const N = o.quick ? 4 : 8;
  const region = Math.floor(SIZE * 0.05);
  const work = join(tmp, "sweep");
  const data = join(work, "data");
  await Deno.mkdir(data, { recursive: true });
  const base = keystream(SIZE, 1);
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
    const content = base.slice();
    if (k >= 2) content.set(keystream(region, 100 + k), ((7 * k) % 20) * region);
    const src = join(data, `exp${k}.bin`);
    await Deno.writeFile(src, content);
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
  const total = (t: string) => added[t]!.reduce((a, b) => a + b, 0);
  const later = (t: string) => median(added[t]!.slice(2)) / SIZE;
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
    figure: `experiments 3–${N}: the base with a different 5% changed: median bytes added`,
    rep: pct(later("rep")),
    baseline: `restic ${pct(later("restic"))}, borg ${pct(later("borg"))}`,
    ratio: "",
    target: "≤ 15% of the file",
    met: later("rep") <= 0.15,
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
      "whole repository folders (rep: packs, pack indexes, trees, records)",
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

async function figStartup(tmp: string, o: DedupBenchOptions): Promise<Row[]> {
  const EXPERIMENTS = o.quick ? 500 : 10_000;
  const runs = Math.max(o.runs, 5);
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
  const coldOpen = (performance.now() - t0) / 1000;
  await cold.ready;
  const coldFull = (performance.now() - t0) / 1000;
  if (!cold.refreshed?.complete || cold.refreshed.chunks !== gen.chunks) {
    throw new Error(`the cold refresh read ${cold.refreshed?.chunks} of ${gen.chunks} chunks`);
  }
  cold.close();
  const warm: number[] = [];
  const listing: number[] = [];
  const repo = new Repository(store);
  const saved = Deno.env.get("REP_CACHE_DIR");
  Deno.env.set("REP_CACHE_DIR", join(work, "list-cache"));
  try {
    await repo.list(); // fills the listing cache
    for (let i = 0; i < runs; i++) {
      const a = performance.now();
      const d = await Dedup.open(store, { cachePath });
      warm.push((performance.now() - a) / 1000);
      d.close();
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
    rep: `warm ${sec(median(warm))}; cold ${sec(coldOpen)} (all read after ${sec(coldFull)})`,
    baseline: `${sec(median(listing))} (warm \`repo.list()\`: what the removed seed did)`,
    ratio: `${(median(warm) / median(listing)).toFixed(2)}×`,
    target: "warm ≤ 0.2 s",
    met: median(warm) <= 0.2,
    notes: `warm runs [${list(warm)}], listing runs [${list(listing)}]; warm = one listing of ` +
      `pack-index/ after the newest key less 2 h (${gen.indexObjects} keys in the folder), ` +
      "one of gc/; cold = an empty cache: open() waits at most 1 s, the rest is read in the " +
      "background (newest first) while the run goes on",
  });
  // Whole processes: rep run on the big repository versus an empty one.
  const cwd = join(work, "cwd");
  await Deno.mkdir(cwd);
  const empty = join(work, "empty-repo");
  const env = { REP_CACHE_DIR: join(work, "run-cache") };
  const runIn = (r: string) =>
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
    ], { cwd, env }).then((x) => x.seconds);
  await runIn(empty);
  // This "machine" has run in this repository before: its chunk cache is complete.
  const coldRun = await runIn(big);
  const savedDir = Deno.env.get("REP_CACHE_DIR");
  Deno.env.set("REP_CACHE_DIR", env.REP_CACHE_DIR);
  try {
    const bigStore = new LocalStore(big);
    const fill = await Dedup.open(bigStore);
    await fill.ready;
    fill.close();
    await bigStore.close();
  } finally {
    if (savedDir === undefined) Deno.env.delete("REP_CACHE_DIR");
    else Deno.env.set("REP_CACHE_DIR", savedDir);
  }
  const inBig: number[] = [];
  const inEmpty: number[] = [];
  for (let i = 0; i < runs; i++) {
    inBig.push(await runIn(big));
    inEmpty.push(await runIn(empty));
  }
  const d = median(inBig) - median(inEmpty);
  rows.push({
    figure: `\`rep run --no-code -- true\` on ${EXPERIMENTS} experiments versus an empty ` +
      "repository (whole processes, warm caches)",
    rep: sec(median(inBig)),
    baseline: `${sec(median(inEmpty))} (empty repository)`,
    ratio: `+${sec(d)}`,
    target: "≤ 0.2 s added",
    met: d <= 0.2,
    notes: `runs [${list(inBig)}] versus [${list(inEmpty)}]; the first run on this machine ` +
      `(empty chunk cache): ${sec(coldRun)}`,
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

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  const only = Deno.args.find((a) => !a.startsWith("--"));
  const tmp = await Deno.makeTempDir({ prefix: "rep-bench-dedup-" });
  try {
    const rows = await dedupFigures(tmp, {
      quick,
      runs: 3,
      want: (k) => !only || only.split(",").includes(k),
    });
    for (const r of rows) console.log(r);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}
