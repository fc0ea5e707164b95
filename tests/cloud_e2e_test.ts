/**
 * End-to-end tests of `rep` on every kind of storage: one scenario, run against a local folder,
 * S3 twice (s3rver, and moto configured through a profile in a shared config file with the SDK's
 * default checksums) and GCS (the Cloud Storage emulator), all on 127.0.0.1. The CLI is spawned
 * with the compiled binary's permissions around a real Python training script; the library
 * (mod.ts) reads the same repository in-process.
 *
 * Also: many `rep run` processes writing one bucket at once, storage that stops answering during
 * a run (and comes back, or never does), and streaming a large file from S3 with bounded memory.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { PERMISSIONS, rep, ROOT } from "./helpers.ts";
import { startGcs } from "./servers/gcs.ts";
import { startMoto } from "./servers/moto.ts";
import { startS3, type TestServer } from "./servers/s3.ts";

const MiB = 1024 * 1024;
const PY = "python3";

// ---- the training script ------------------------------------------------------------------------

/**
 * Writes `model.bin` (step-dependent bytes) every step and, with `--big-mb`, a large `big.bin` at
 * step 1; appends one metrics line per step. A copy of every file of every step goes to
 * `$ARCHIVE_DIR/<experiment id>/step<N>/<output folder>/` (checkpoint paths are relative to the
 * project), so each checkpoint can be compared with exactly what the script wrote. `--wait FILE` holds the run after step 1 until FILE exists.
 */
const TRAIN_PY = `
import argparse, json, os, random, shutil, sys, time
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float, default=0.1)
p.add_argument("--steps", type=int, default=4)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--size", type=int, default=40000)
p.add_argument("--big-mb", type=int, default=0)
p.add_argument("--wait", default="")
p.add_argument("--sleep", type=float, default=0.3)
a = p.parse_args()
out = os.environ["REP_OUTPUT_DIR"]
metrics_path = os.environ["REP_METRICS_FILE"]
archive = os.path.join(os.environ["ARCHIVE_DIR"], os.environ["REP_EXPERIMENT_ID"])
os.makedirs(out, exist_ok=True)
LOSSES = [0.9, 0.5, 0.2, 0.4, 0.3, 0.35, 0.6]

def write_atomic(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)

with open(metrics_path, "a") as m:
    for step in range(1, a.steps + 1):
        rng = random.Random(a.seed * 1000 + step)
        write_atomic(os.path.join(out, "model.bin"), rng.randbytes(a.size + step))
        if step == 1 and a.big_mb:
            write_atomic(os.path.join(out, "big.bin"), random.Random(a.seed).randbytes(a.big_mb * 1048576 + 12345))
        shutil.copytree(out, os.path.join(archive, "step%d" % step, os.path.relpath(out)), ignore=shutil.ignore_patterns("metrics.jsonl", "*.tmp", ".rep-*"))
        loss = LOSSES[(step - 1) % len(LOSSES)] * (1 + a.seed / 100)
        m.write(json.dumps({"step": step, "loss": loss, "accuracy": 1 - loss}) + "\\n")
        m.flush()
        print("step", step, "loss", loss, flush=True)
        if step == 1 and a.wait:
            while not os.path.exists(a.wait):
                time.sleep(0.05)
        time.sleep(a.sleep)  # training: rep reads each step's files before the next step
`;

// ---- helpers --------------------------------------------------------------------------------------

const dec = new TextDecoder();

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  using f = await Deno.open(path);
  for await (const c of f.readable) h.update(c);
  return h.digest("hex");
}

async function sha256Stream(s: ReadableStream<Uint8Array>): Promise<{ hex: string; size: number }> {
  const h = createHash("sha256");
  let size = 0;
  for await (const c of s) {
    h.update(c);
    size += c.byteLength;
  }
  return { hex: h.digest("hex"), size };
}

/** Every file under `dir` (relative path → sha256). */
async function hashTree(dir: string, rel = ""): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const e of Deno.readDir(join(dir, rel))) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) Object.assign(out, await hashTree(dir, r));
    else if (e.isFile) out[r] = await sha256File(join(dir, r));
  }
  return out;
}

function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** `rep ARGS` in the background (for runs that must overlap with other commands). */
function spawnRep(args: string[], cwd: string, env: Record<string, string>): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...PERMISSIONS, join(ROOT, "main.ts"), ...args],
    cwd,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function finish(child: Deno.ChildProcess): Promise<{ code: number; out: string }> {
  const r = await child.output();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

function json<T = unknown>(r: { code: number; stdout: string; stderr: string }): T {
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

/** Run `fn` with environment variables set in this process, restoring them afterwards. */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.keys(vars).map((k) => [k, Deno.env.get(k)] as const);
  for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
  try {
    return await fn();
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
}

// ---- backends -------------------------------------------------------------------------------------

interface Backend {
  name: string;
  /** Start the server (if any); a repository URL, the env a client needs, and a cleanup. */
  start(): Promise<{
    url: string;
    env: Record<string, string>;
    /** Requests the server saw, and the one a large upload in parts must have sent. */
    requestLog?: () => Promise<string[]>;
    bigUpload?: RegExp;
    stop(): Promise<void>;
  }>;
}

async function cloud(server: TestServer, scheme: string, bigUpload: RegExp) {
  const bucket = await server.bucket();
  return {
    url: `${scheme}://${bucket}/team/exps`,
    env: server.env,
    requestLog: () => server.requestLog(),
    bigUpload,
    stop: () => server.stop(),
  };
}

const BACKENDS: Backend[] = [
  {
    name: "local",
    start: async () => {
      const dir = await Deno.makeTempDir({ prefix: "rep-e2e-local-" });
      return {
        url: join(dir, "repo"),
        env: {},
        stop: () => Deno.remove(dir, { recursive: true }),
      };
    },
  },
  // Packs (the 20 MB one included) go up to S3 as one PutObject streamed from disk.
  {
    name: "S3",
    start: async () => cloud(await startS3(), "s3", /^PUT \S*\/packs\/[0-9a-f]{32}(\?\S*)?$/),
  },
  {
    name: "S3 (moto)",
    start: async () => cloud(await startMoto(), "s3", /^PUT \S*\/packs\/[0-9a-f]{32}(\?\S*)?$/),
  },
  { name: "GCS", start: async () => cloud(await startGcs(), "gs", /uploadType=resumable/) },
];

interface LsEntry {
  id: string;
  status: string;
  exit_code: number | null;
  params: Record<string, unknown>;
  num_checkpoints: number;
  best_checkpoint: { id: string; step: number; metrics: Record<string, number> } | null;
  latest_checkpoint: { id: string; step: number } | null;
  command: string[];
}

interface ShowCheckpoint {
  id: string;
  step: number;
  torn: string[];
  files: { path: string; size: number; hash: string }[];
}

// ---- the scenario, on every backend ---------------------------------------------------------------

for (const backend of BACKENDS) {
  Deno.test(`rep end to end on ${backend.name}`, async (t) => {
    const srv = await backend.start();
    const dir = await Deno.makeTempDir({ prefix: "rep-e2e-" });
    const work = join(dir, "work");
    const archive = join(dir, "archive");
    await Deno.mkdir(work);
    await Deno.writeTextFile(join(work, "train.py"), TRAIN_PY);
    const env = {
      ...srv.env,
      REP_CACHE_DIR: join(dir, "cache"),
      ARCHIVE_DIR: archive,
    };
    const R = ["-R", srv.url];
    const run = (args: string[], cwd = work) => rep([...R, ...args], { cwd, env });
    let a = ""; // experiment with the big file, started in the background
    let b = ""; // a second, smaller experiment
    try {
      await t.step("rep run records a Python script; rep ps shows it while it runs", async () => {
        const marker = join(dir, "release");
        const child = spawnRep(
          [
            ...R,
            "run",
            "--output",
            "out-a",
            "--primary-metric",
            "loss:minimize",
            "--",
            PY,
            "train.py",
            "--lr",
            "0.1",
            "--steps",
            "4",
            "--big-mb",
            "20",
            "--wait",
            marker,
          ],
          work,
          env,
        );
        let running: string[] = [];
        const deadline = Date.now() + 60_000;
        try {
          while (Date.now() < deadline) {
            const ps = await run(["ps", "--json"]);
            if (ps.code === 0) {
              const list = JSON.parse(ps.stdout) as LsEntry[];
              running = list.filter((e) => e.status === "running").map((e) => e.id);
              if (running.length) break;
            }
            await new Promise((r) => setTimeout(r, 200));
          }
          assert.equal(running.length, 1, "rep ps never showed the running experiment");
          const q = await run(["ps", "-q"]);
          assert.equal(q.code, 0, q.stderr);
          assert.deepEqual(q.stdout.trim().split("\n"), running);
        } finally {
          await Deno.writeTextFile(marker, "go");
        }
        const r = await finish(child);
        assert.equal(r.code, 0, r.out);
        a = running[0]!;
        // The 20 MB pack went up as a streamed PutObject (S3) or a resumable upload (GCS).
        if (srv.bigUpload) {
          const log = await srv.requestLog!();
          assert.ok(log.some((q) => srv.bigUpload!.test(q)), "no pack upload seen");
        }
        const after = await run(["ps", "-q"]);
        assert.equal(after.code, 0, after.stderr);
        assert.equal(after.stdout.trim(), "", "the finished run still shows in rep ps");

        const r2 = await run([
          "run",
          "--output",
          "out-a",
          "--primary-metric",
          "loss:minimize",
          "--",
          PY,
          "train.py",
          "--lr",
          "0.01",
          "--steps",
          "3",
          "--seed",
          "7",
        ]);
        assert.equal(r2.code, 0, r2.stdout + r2.stderr);
      });

      await t.step("rep ls lists both experiments with their fields", async () => {
        const list = json<LsEntry[]>(await run(["ls", "--json"]));
        assert.equal(list.length, 2);
        const ea = list.find((e) => e.id === a)!;
        const eb = list.find((e) => e.id !== a)!;
        assert.ok(ea, "experiment a is listed");
        b = eb.id;
        assert.equal(ea.status, "succeeded");
        assert.equal(ea.exit_code, 0);
        assert.equal(ea.params.lr, 0.1);
        assert.equal(eb.params.lr, 0.01);
        assert.equal(ea.num_checkpoints, 4);
        assert.equal(eb.num_checkpoints, 3);
        assert.equal(ea.best_checkpoint?.step, 3); // loss 0.9, 0.5, 0.2, 0.4
        assert.equal(ea.latest_checkpoint?.step, 4);
        assert.deepEqual(ea.command.slice(0, 2), [PY, "train.py"]);
        // Newest first.
        assert.equal(list[0]!.id, b);
        const table = await run(["ls"]);
        assert.equal(table.code, 0, table.stderr);
        assert.match(table.stdout, new RegExp(`^${a.slice(0, 7)}`, "m"));
        assert.match(table.stdout, new RegExp(`^${b.slice(0, 7)}`, "m"));
        assert.match(table.stdout, /lr/);
      });

      await t.step("rep show prints the experiment and its checkpoints' files", async () => {
        const show = json<{ id: string; status: string; checkpoints: ShowCheckpoint[] }>(
          await run(["show", a.slice(0, 8), "--json"]),
        );
        assert.equal(show.id, a);
        assert.equal(show.status, "succeeded");
        assert.deepEqual(show.checkpoints.map((c) => c.step), [1, 2, 3, 4]);
        for (const ck of show.checkpoints) {
          const names = ck.files.map((f) => f.path).sort();
          assert.deepEqual(names, ["out-a/big.bin", "out-a/model.bin"]);
          assert.deepEqual(ck.torn, []);
          const big = ck.files.find((f) => f.path === "out-a/big.bin")!;
          assert.equal(big.size, 20 * MiB + 12345);
          const model = ck.files.find((f) => f.path === "out-a/model.bin")!;
          assert.equal(model.size, 40000 + ck.step);
        }
        // The big file is stored once: every checkpoint has the same content id.
        assert.equal(
          new Set(
            show.checkpoints.map((c) => c.files.find((f) => f.path === "out-a/big.bin")!.hash),
          )
            .size,
          1,
        );
        const text = await run(["show", a.slice(0, 8)]);
        assert.equal(text.code, 0, text.stderr);
        assert.match(text.stdout, /succeeded/);
      });

      await t.step("rep diff compares the two experiments", async () => {
        const d = json<{
          params: Record<string, unknown[]>;
          metrics: Record<string, unknown[]>;
          comparisons: { files: { changed: string[]; removed: string[] } }[];
        }>(await run(["diff", a, b, "--json"]));
        assert.deepEqual(d.params.lr, [0.1, 0.01]);
        assert.ok(d.metrics.loss, "metrics differ");
        // b ran in a's output folder: a's big.bin, left there, is no part of b's checkpoints.
        assert.ok(d.comparisons[0]!.files.changed.includes("out-a/model.bin"));
        assert.deepEqual(d.comparisons[0]!.files.removed, ["out-a/big.bin"]);
        const text = await run(["diff", a.slice(0, 7), b.slice(0, 7)]);
        assert.equal(text.code, 0, text.stderr);
        assert.match(text.stdout, /lr/);
      });

      await t.step(
        "rep checkout gives back exactly what the script wrote, per checkpoint",
        async () => {
          const show = json<{ checkpoints: ShowCheckpoint[] }>(await run(["show", a, "--json"]));
          for (const ck of show.checkpoints) {
            const dest = join(dir, "co", ck.id);
            const r = await run(["checkout", ck.id, "--no-code", "-o", dest]);
            assert.equal(r.code, 0, r.stderr);
            assert.deepEqual(
              sortKeys(await hashTree(dest)),
              sortKeys(await hashTree(join(archive, a, `step${ck.step}`))),
              `checkpoint at step ${ck.step}`,
            );
          }
          // An experiment id checks out its best checkpoint, plus the code.
          const dest = join(dir, "co-best");
          const r = await run(["checkout", a.slice(0, 7), "-o", dest]);
          assert.equal(r.code, 0, r.stderr);
          assert.equal(
            await sha256File(join(dest, "out-a", "model.bin")),
            await sha256File(join(archive, a, "step3", "out-a", "model.bin")),
          );
          assert.equal(
            await Deno.readTextFile(join(dest, "train.py")),
            TRAIN_PY,
            "the code snapshot holds the script",
          );
          // One file.
          const one = join(dir, "co-one");
          const r1 = await run(["checkout", a, "--path", "out-a/big.bin", "-o", one]);
          assert.equal(r1.code, 0, r1.stderr);
          assert.equal(
            await sha256File(join(one, "out-a", "big.bin")),
            await sha256File(join(archive, a, "step1", "out-a", "big.bin")),
          );
        },
      );

      await t.step("the library streams the best checkpoint's files", async () => {
        const libEnv = { ...srv.env, REP_CACHE_DIR: join(dir, "lib-cache") };
        await withEnv(libEnv, async () => {
          const { openRepository } = await import("../mod.ts");
          const repo = await openRepository(srv.url);
          try {
            const exp = await repo.experiments.get(a.slice(0, 9));
            const best = exp.best();
            assert.ok(best, "a best checkpoint");
            assert.equal(best.step, 3);
            const model = await sha256Stream(await best.open("out-a/model.bin"));
            assert.equal(
              model.hex,
              await sha256File(join(archive, a, "step3", "out-a", "model.bin")),
            );
            const big = await sha256Stream(await best.open("out-a/big.bin"));
            assert.equal(big.size, 20 * MiB + 12345);
            assert.equal(big.hex, await sha256File(join(archive, a, "step1", "out-a", "big.bin")));
            const list = await repo.experiments.list();
            assert.deepEqual(list.map((e) => e.id).sort(), [a, b].sort());
          } finally {
            await repo.close();
          }
        });
      });

      await t.step("rep verify passes", async () => {
        const r = await run(["verify"]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
      });

      await t.step("rep rm removes an experiment from ls; rep gc keeps live data", async () => {
        const r = await run(["rm", b.slice(0, 7)]);
        assert.equal(r.code, 0, r.stderr);
        const list = json<LsEntry[]>(await run(["ls", "--json"]));
        assert.deepEqual(list.map((e) => e.id), [a]);
        // Two passes: the first lists unreferenced data, the second deletes it.
        for (let i = 0; i < 2; i++) {
          const gc = await run(["gc", "--grace", "0"]);
          assert.equal(gc.code, 0, gc.stdout + gc.stderr);
        }
        const v = await run(["verify"]);
        assert.equal(v.code, 0, v.stdout + v.stderr);
        const dest = join(dir, "co-after-gc");
        const co = await run(["checkout", a, "--no-code", "-o", dest]);
        assert.equal(co.code, 0, co.stderr);
        assert.deepEqual(
          sortKeys(await hashTree(dest)),
          sortKeys(await hashTree(join(archive, a, "step3"))),
        );
        const gone = await run(["show", b]);
        assert.notEqual(gone.code, 0, "a removed experiment is not found");
      });
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await srv.stop();
    }
  });
}

// ---- many writers, one bucket ---------------------------------------------------------------------

const WRITERS = 8;
const STEPS = 5;

for (const backend of BACKENDS.filter((b) => b.name !== "local")) {
  Deno.test(`${WRITERS} rep run processes write one ${backend.name} bucket at once`, async () => {
    const srv = await backend.start();
    const dir = await Deno.makeTempDir({ prefix: "rep-e2e-many-" });
    const work = join(dir, "work");
    const archive = join(dir, "archive");
    await Deno.mkdir(work);
    await Deno.writeTextFile(join(work, "train.py"), TRAIN_PY);
    try {
      // Every writer is its own machine: its own cache (and outbox) folder and output folder.
      const children = Array.from({ length: WRITERS }, (_, i) =>
        spawnRep(
          [
            "-R",
            srv.url,
            "run",
            "--no-code",
            "--output",
            `out${i}`,
            "--primary-metric",
            "loss:minimize",
            "--",
            PY,
            "train.py",
            "--steps",
            String(STEPS),
            "--seed",
            String(i + 1),
            "--size",
            "3000",
            "--lr",
            String(i / 100),
          ],
          work,
          { ...srv.env, REP_CACHE_DIR: join(dir, `cache${i}`), ARCHIVE_DIR: archive },
        ));
      const results = await Promise.all(children.map(finish));
      results.forEach((r, i) => assert.equal(r.code, 0, `writer ${i}: ${r.out}`));

      const env = { ...srv.env, REP_CACHE_DIR: join(dir, "reader-cache") };
      const list = json<LsEntry[]>(await rep(["-R", srv.url, "ls", "--json"], { cwd: work, env }));
      assert.equal(list.length, WRITERS);
      assert.equal(list.reduce((n, e) => n + e.num_checkpoints, 0), WRITERS * STEPS);
      assert.deepEqual(
        list.map((e) => e.params.lr).sort(),
        Array.from({ length: WRITERS }, (_, i) => i / 100),
      );
      for (const e of list) assert.equal(e.status, "succeeded");

      // Every checkpoint checks out byte for byte (through the library: one process, one listing).
      let checked = 0;
      let torn = 0;
      await withEnv(env, async () => {
        const { openRepository } = await import("../mod.ts");
        const repo = await openRepository(srv.url);
        try {
          for (const exp of await repo.experiments.list()) {
            assert.deepEqual(exp.checkpoints.map((c) => c.step), [1, 2, 3, 4, 5]);
            for (const ck of exp.checkpoints) {
              const dest = join(dir, "co", ck.id);
              await ck.checkout(dest);
              // Exact, or left out and said so: a version rep could not copy in time on this
              // loaded machine is listed as torn with its reason, never stored wrong.
              const wrote = await hashTree(join(archive, exp.id, `step${ck.step}`));
              for (const p of ck.record.torn) {
                assert.ok(p in wrote, `torn ${p} is a file the script wrote`);
                delete wrote[p];
                torn++;
              }
              assert.deepEqual(
                sortKeys(await hashTree(dest)),
                sortKeys(wrote),
                `step ${ck.step} of ${exp.id}: ${JSON.stringify(ck.record.warnings)}`,
              );
              checked++;
            }
          }
        } finally {
          await repo.close();
        }
      });
      assert.equal(checked, WRITERS * STEPS);
      if (torn) console.log(`${torn} of ${checked} checkpoints left a version out (torn)`);
      // And one through the CLI: the experiment (its best checkpoint), or, when every file of
      // that one was left out (torn, checked above), a checkpoint of it that has files.
      const one = join(dir, "co-cli");
      const id = list[0]!.id;
      const checkout = (what: string) =>
        rep(["-R", srv.url, "checkout", what, "--no-code", "-o", one], { cwd: work, env });
      const shown = json<{ checkpoints: ShowCheckpoint[] }>(
        await rep(["-R", srv.url, "show", id, "--json"], { cwd: work, env }),
      );
      const best = shown.checkpoints.find((c) => c.step === list[0]!.best_checkpoint!.step)!;
      let pick = best;
      if (!best.files.length) {
        const co = await checkout(id);
        assert.equal(co.code, 1, co.stderr);
        assert.match(co.stderr, /has no files \(left out: out\d\/model\.bin/);
        pick = shown.checkpoints.find((c) => c.files.length)!;
        assert.ok(pick, `no checkpoint of ${id} has files`);
      }
      const co = await checkout(pick === best ? id : pick.id);
      assert.equal(co.code, 0, co.stderr);
      const wrote = await hashTree(join(archive, id, `step${pick.step}`));
      for (const p of pick.torn) delete wrote[p];
      assert.deepEqual(sortKeys(await hashTree(one)), sortKeys(wrote));
      const v = await rep(["-R", srv.url, "verify"], { cwd: work, env });
      assert.equal(v.code, 0, v.stdout + v.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await srv.stop();
    }
  });
}

// ---- a large file from S3, with bounded memory ----------------------------------------------------

/** Deterministic pseudo-random bytes (xorshift32), so nothing deduplicates. */
function noise(size: number, seed: number): Uint8Array {
  const buf = new Uint8Array(size);
  const words = new Uint32Array(buf.buffer, 0, size >>> 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  return buf;
}

/**
 * Streams one file of a checkpoint through the library; prints `<sha256> <size> <VmHWM kB>`. It
 * runs the garbage collector after each block (`--expose-gc`), so the peak measures what is
 * live, not how long garbage waited for the collector: the blocks `open()` hands out are fresh
 * buffers the caller may keep, and become garbage only when the caller drops them.
 */
const OPEN_TS = `
import { createHash } from "node:crypto";
import { openRepository } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
const [url, id, path] = Deno.args;
const gc = (globalThis as unknown as { gc: () => void }).gc;
const repo = await openRepository(url);
const ck = await repo.checkpoints.get(id);
const h = createHash("sha256");
let size = 0;
for await (const c of await ck.open(path)) { h.update(c); size += c.byteLength; gc(); }
await repo.close();
const hwm = /VmHWM:\\s+(\\d+)/.exec(await Deno.readTextFile("/proc/self/status"))[1];
console.log(h.digest("hex"), size, hwm);
`;

/** Runs a command, then prints on stderr the peak RSS (kB) of the child it waited for. */
const MAXRSS_PY = `import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
print("rep-test-maxrss-kb %d" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(code)
`;

/**
 * Run a deno child to completion; its peak RSS (kB) as the kernel kept it (`ru_maxrss` of the
 * waited child, through a python3 parent), not sampled from /proc: a sampler under load saw the
 * peak still rising at its last sample, so a short run's baseline came out low.
 */
async function peakRss(
  args: string[],
  cwd: string,
  env: Record<string, string>,
): Promise<{ code: number; out: string; peakKb: number }> {
  const child = new Deno.Command("python3", {
    args: ["-c", MAXRSS_PY, Deno.execPath(), ...args],
    cwd,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const r = await finish(child);
  const m = /^rep-test-maxrss-kb (\d+)$/m.exec(r.out);
  assert.ok(m, r.out);
  return { code: r.code, out: r.out.replace(m[0], ""), peakKb: Number(m[1]) };
}

/**
 * Peak-RSS growth allowed while streaming the 200 MB file. Holding the file would cost over 200 MB
 * (twice that with a concatenated copy). What rep holds is bounded: 4 ranged reads of at most
 * 8 MiB in flight, each read straight into its buffer (no HTTP chunk buffers beside it), plus the
 * block the consumer holds; checkout cycles through 5 reused buffers. Both measure +40–70 MB; the
 * limit leaves room for the runtime while failing if the file, or half of it, is ever held.
 */
const LIMIT_MB = 110;

Deno.test("a 200 MB file streams from S3 in parallel parts with bounded memory", async () => {
  const { makeExperiment } = await import("./helpers.ts");
  const server = await startS3();
  const dir = await Deno.makeTempDir({ prefix: "rep-e2e-big-" });
  try {
    const bucket = await server.bucket();
    const url = `s3://${bucket}/big`;
    const big = noise(200 * MiB + 4321, 42);
    const bigHash = createHash("sha256").update(big).digest("hex");
    const made = await withEnv(server.env, () =>
      makeExperiment(url, {
        checkpoints: [{ metrics: { loss: 1 }, files: { "big.bin": big, "small.bin": "tiny" } }],
      }));
    const ck = made.checkpoints[0]!;
    const env = { ...server.env, REP_CACHE_DIR: join(dir, "cache") };
    const script = join(dir, "open.ts");
    await Deno.writeTextFile(script, OPEN_TS);

    // checkpoint.open(): the same program reading a tiny file is the baseline.
    const openFile = async (path: string) => {
      // -A: reading /proc/self/status needs it.
      const r = await peakRss(
        ["run", "-A", "--v8-flags=--expose-gc", script, url, ck, path],
        dir,
        env,
      );
      assert.equal(r.code, 0, r.out);
      const [hex, size, hwm] = r.out.trim().split(/\s+/);
      return { hex, size: Number(size), hwmKb: Number(hwm) };
    };
    const small = await openFile("small.bin");
    const large = await openFile("big.bin");
    assert.equal(large.size, big.byteLength);
    assert.equal(large.hex, bigHash);
    const openExtra = (large.hwmKb - small.hwmKb) / 1024;
    assert.ok(openExtra < LIMIT_MB, `checkpoint.open() used ${openExtra.toFixed(0)} MB more`);

    // rep checkout: measured from outside.
    const checkout = async (path: string, out: string) => {
      const r = await peakRss(
        [
          "run",
          "--quiet",
          ...PERMISSIONS,
          join(ROOT, "main.ts"),
          "-R",
          url,
          "checkout",
          ck,
          "--path",
          path,
          "-o",
          out,
        ],
        dir,
        env,
      );
      assert.equal(r.code, 0, r.out);
      return r.peakKb;
    };
    const base = await checkout("small.bin", join(dir, "co-small"));
    const peak = await checkout("big.bin", join(dir, "co-big"));
    assert.equal(await sha256File(join(dir, "co-big", "big.bin")), bigHash);
    const coExtra = (peak - base) / 1024;
    assert.ok(coExtra < LIMIT_MB, `rep checkout used ${coExtra.toFixed(0)} MB more`);
    // Ranged reads in parallel, over few requests: per read (open, then checkout) at least 4
    // GETs (the parallel segments), at most one per 64 MiB pack and a few more.
    const gets = (await server.requestLog()).filter((q) =>
      q.startsWith(`GET /${bucket}/big/packs/`)
    );
    assert.ok(gets.length >= 2 * 4 && gets.length <= 2 * 10, `${gets.length} GETs`);
    console.log(
      `open(): +${openExtra.toFixed(0)} MB (baseline ${(small.hwmKb / 1024).toFixed(0)} MB); ` +
        `checkout: +${coExtra.toFixed(0)} MB (baseline ${(base / 1024).toFixed(0)} MB)`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await server.stop();
  }
});

// ---- storage that stops answering during a run ----------------------------------------------------

/** A repository on a fresh moto server, a work folder with the training script, and the env. */
async function motoRun(dir: string) {
  const server = await startMoto();
  const url = `s3://${await server.bucket()}/runs`;
  const work = join(dir, "work");
  await Deno.mkdir(work);
  await Deno.writeTextFile(join(work, "train.py"), TRAIN_PY);
  // The script exits 3 after training, to check that rep passes the command's code through.
  await Deno.writeTextFile(
    join(work, "exit3.py"),
    `import runpy, sys\nsys.argv = sys.argv[1:]\nrunpy.run_path("train.py", run_name="__main__")\nsys.exit(3)\n`,
  );
  const env = {
    ...server.env,
    REP_CACHE_DIR: join(dir, "cache"),
    ARCHIVE_DIR: join(dir, "archive"),
  };
  const metrics = join(work, "output", "metrics.jsonl");
  const started = async () => {
    for (const end = Date.now() + 60_000; Date.now() < end;) {
      if (((await Deno.stat(metrics).catch(() => null))?.size ?? 0) > 0) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("the training never wrote a metrics line");
  };
  return { server, url, work, env, started };
}

/** What rep said on stderr about storage, and that no SDK log line got through. */
function storageMessages(out: string): { failing: number; back: number } {
  assert.doesNotMatch(out, /@smithy|@aws-sdk|non-retryable streaming request|WARN/, out);
  return {
    failing: out.match(/rep: storage is failing/g)?.length ?? 0,
    back: out.match(/rep: storage is back/g)?.length ?? 0,
  };
}

Deno.test("rep run while S3 (moto) stops answering and comes back: one message each way, nothing lost", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rep-e2e-outage-" });
  const { server, url, work, env, started } = await motoRun(dir);
  try {
    const child = spawnRep(
      // The 20 MB file makes a pack that goes up as one streamed request (the SDK cannot retry
      // those itself, and used to print a line for each failed one).
      ["-R", url, "run", "--", PY, "train.py", "--steps", "10", "--sleep", "0.2", "--big-mb", "20"],
      work,
      env,
    );
    await started();
    // Stopped, moto accepts connections and never answers: uploads stall, are retried, and fail
    // after ~11 s; the run goes on with its checkpoints queued on disk.
    await server.pause();
    await new Promise((r) => setTimeout(r, 15_000));
    await server.restart();
    const r = await finish(child);
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(storageMessages(r.out), { failing: 1, back: 1 }, r.out);
    const [e] = json<LsEntry[]>(await rep(["-R", url, "ls", "--json"], { cwd: work, env }));
    assert.equal(e!.status, "succeeded");
    assert.equal(e!.num_checkpoints, 10);
    const v = await rep(["-R", url, "verify"], { cwd: work, env });
    assert.equal(v.code, 0, v.stdout + v.stderr);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("rep run whose S3 (moto) never answers again: a bounded wait, the command's exit code, everything queued for rep push", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rep-e2e-gone-" });
  const { server, url, work, env, started } = await motoRun(dir);
  try {
    const child = spawnRep(
      ["-R", url, "run", "--", PY, "exit3.py", "train.py", "--steps", "6", "--sleep", "0.1"],
      work,
      { ...env, REP_UPLOAD_WAIT: "3" },
    );
    await started();
    await server.pause();
    const t0 = Date.now();
    const r = await finish(child);
    const waited = Date.now() - t0;
    assert.equal(r.code, 3, r.out);
    assert.match(r.out, /stopped waiting; \d+ object\(s\) stay queued in /);
    assert.match(r.out, /rep push/);
    assert.deepEqual(storageMessages(r.out), { failing: 1, back: 0 }, r.out);
    // Failing uploads surface within ~11 s, then REP_UPLOAD_WAIT (3 s) bounds the wait.
    assert.ok(waited < 40_000, `rep waited ${waited} ms`);
    await server.restart();
    const push = await rep(["-R", url, "push"], { cwd: work, env });
    assert.equal(push.code, 0, push.stderr);
    assert.match(push.stderr, /uploaded \d+ object\(s\) from 1 queue/);
    const [e] = json<LsEntry[]>(await rep(["-R", url, "ls", "--json"], { cwd: work, env }));
    assert.equal(e!.status, "failed");
    assert.equal(e!.exit_code, 3);
    assert.equal(e!.num_checkpoints, 6);
    const v = await rep(["-R", url, "verify"], { cwd: work, env });
    assert.equal(v.code, 0, v.stdout + v.stderr);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
