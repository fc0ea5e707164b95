/**
 * Fault injection on real processes, files and servers: `rep run` SIGKILLed at random moments,
 * the training process killed or crashing, storage outages (s3rver stopped and restarted), a full
 * disk, concurrent rm/run/gc, and damage that `rep verify` must find. Every test is bounded in
 * time; random delays come from a seeded PRNG so a failure reproduces.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { makeExperiment, tempRepo } from "./helpers.ts";
import {
  exists,
  fileBytes,
  openRepo,
  prng,
  procState,
  runRep,
  sha256,
  sleep,
  spawnRep,
  waitFor,
  walkAll,
} from "./fault_helpers.ts";
import { verifyRepository } from "../src/maintenance/verify.ts";
import type { ExperimentView, Repository } from "../src/repository.ts";
import { startS3, type TestServer } from "./servers/s3.ts";

const CACHE = await Deno.makeTempDir({ prefix: "rep-fault-cache-" });
Deno.env.set("REP_CACHE_DIR", CACHE);
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(CACHE, { recursive: true });
  } catch {
    // gone
  }
});

const SEED = Number(Deno.env.get("REP_FAULT_SEED") ?? 20240501);

/**
 * A training script: a 3 MiB model fine-tuned in place (a 64 KiB region changes per step), rewritten
 * with `open(..., "wb")` like torch.save, then a metrics line carrying the sha256 of exactly the
 * bytes it wrote. It never prints (rep's pipes may be gone) and writes `<marker>` at its end.
 */
const TRAIN = `
import hashlib, json, os, random, sys, time
out = os.environ["REP_OUTPUT_DIR"]
metrics = os.environ["REP_METRICS_FILE"]
marker, steps, seed, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
size = int(sys.argv[5]) if len(sys.argv) > 5 else 3 * 1024 * 1024
with open(marker + ".pid", "w") as f:
    f.write(str(os.getpid()))
t0 = time.time()
rnd = random.Random(seed)
model = bytearray(rnd.randbytes(size))
for step in range(steps):
    off = rnd.randrange(len(model) - 65536)
    model[off:off + 65536] = rnd.randbytes(65536)
    with open(os.path.join(out, "model.bin"), "wb") as f:
        f.write(model)
    with open(os.path.join(out, "state.json"), "w") as f:
        json.dump({"step": step}, f)
    sha = hashlib.sha256(model).hexdigest()
    with open(metrics, "a") as f:
        f.write(json.dumps({"step": step, "loss": 1.0 / (step + 1), "model_sha": sha}) + "\\n")
    time.sleep(pause)
with open(marker, "w") as f:
    f.write(json.dumps({"steps": steps, "elapsed": time.time() - t0}))
`;

/** A fresh work folder holding train.py. */
async function workDir(root: string, name: string): Promise<string> {
  const work = join(root, name);
  await Deno.mkdir(work, { recursive: true });
  await Deno.writeTextFile(join(work, "train.py"), TRAIN);
  return work;
}

/**
 * Check every checkpoint of `views` against what the script wrote for its step: model.bin hashes to
 * the line's model_sha and state.json holds the step, or the file is listed as torn. Returns the
 * number of files compared.
 */
async function checkCheckpointBytes(repo: Repository, views: ExperimentView[]): Promise<number> {
  let compared = 0;
  for (const v of views) {
    for (const ck of v.checkpoints) {
      if (ck.step === null) continue;
      const files = ck.files ? (await repo.tree(ck.files.tree)).files : [];
      const byPath = new Map(files.map((f) => [f.path, f]));
      // Paths are relative to the project: the script's files sit in the run's output folder.
      const out = v.record.output ?? "output";
      const model = byPath.get(`${out}/model.bin`);
      if (model) {
        assert.equal(
          sha256(await fileBytes(repo, model)),
          ck.metrics.model_sha,
          `model.bin of checkpoint ${ck.id} (step ${ck.step})`,
        );
        compared++;
      } else {
        assert.ok(ck.torn.includes(`${out}/model.bin`), `checkpoint ${ck.id} lost model.bin`);
      }
      const state = byPath.get(`${out}/state.json`);
      if (state) {
        const st = JSON.parse(new TextDecoder().decode(await fileBytes(repo, state)));
        assert.equal(st.step, ck.step, `state.json of checkpoint ${ck.id}`);
        compared++;
      } else {
        assert.ok(ck.torn.includes(`${out}/state.json`), `checkpoint ${ck.id} lost state.json`);
      }
    }
  }
  return compared;
}

/** Checkpoint ids whose records sit in the outboxes under `staging` (queued, not yet stored). */
async function queuedCheckpoints(staging: string): Promise<Set<string>> {
  const out = new Set<string>();
  try {
    for await (const box of Deno.readDir(staging)) {
      try {
        for await (const q of Deno.readDir(join(staging, box.name, "queue"))) {
          const m = /_record_experiments~[0-9a-f]{32}~checkpoints~([0-9a-f]{32})\.json$/.exec(
            q.name,
          );
          if (m) out.add(m[1]!);
        }
      } catch {
        // no queue
      }
    }
  } catch {
    // no staging
  }
  return out;
}

async function outboxDirs(staging: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(staging))).map((e) => e.name);
  } catch {
    return [];
  }
}

// ---- 1. rep run SIGKILLed during checkpointing ----------------------------------------------------

/**
 * `n` trials of: start `rep run` on the training script, SIGKILL it at a random moment (seeded),
 * let the training finish on its own, then check that `rep verify` passes, that the experiment
 * reads as crashed once its heartbeat is stale, and that `rep push` (even trials) or the next
 * `rep run` (odd trials) stores every checkpoint whose record was queued. At the end every
 * checkpoint holds exactly the bytes the script wrote for its step.
 */
async function killTrials(
  o: {
    n: number;
    seed: number;
    dir: string;
    url: string;
    env: Record<string, string>;
    staging: string;
    /** Stop this server before the kill (restarted after it), so records are left queued. */
    outage?: TestServer;
  },
): Promise<Record<string, number>> {
  const rnd = prng(o.seed);
  const env = { ...o.env, REP_REPOSITORY: o.url };
  const expected = new Set<string>(); // checkpoint ids visible or queued after some kill
  const stats = { trials: 0, atStartup: 0, frozenAtKill: 0, queuedRecords: 0, compared: 0 };
  for (let trial = 0; trial < o.n; trial++) {
    stats.trials++;
    const work = await workDir(o.dir, `w${trial}`);
    const marker = join(o.dir, `done${trial}`);
    const metrics = join(work, "output", "metrics.jsonl");
    const p = spawnRep(
      [
        "run",
        "--primary-metric",
        "loss:min",
        "--",
        "python3",
        "train.py",
        marker,
        "12",
        String(trial),
        "0.06",
      ],
      { cwd: work, env, timeoutMs: 60_000 },
    );
    // Most kills land while checkpoints are being taken; every fifth anywhere from startup on.
    if (trial % 5 === 0) {
      stats.atStartup++;
      await sleep(rnd.int(30, 700));
    } else {
      await waitFor(async () => (await Deno.stat(metrics).catch(() => null))?.size! > 0, 20_000, 5);
      if (o.outage) {
        await sleep(rnd.int(0, 200));
        await o.outage.pause();
      }
      await sleep(rnd.int(0, 500));
    }
    const pidNow = (await Deno.readTextFile(marker + ".pid").catch(() => "")) || null;
    if (pidNow && procState(Number(pidNow)) === "T") stats.frozenAtKill++;
    p.kill("SIGKILL");
    const r = await p.done;
    assert.equal(r.signal, "SIGKILL", `trial ${trial}: rep ended before the kill: ${r.stderr}`);
    await o.outage?.restart();
    await sleep(200); // a training started just before the kill writes its pid now
    const pidText = (await Deno.readTextFile(marker + ".pid").catch(() => "")) || null;
    // The training goes on without rep (resumed by the guardian if rep froze it) and finishes.
    if (pidText) {
      assert.ok(
        await waitFor(() => exists(marker), 20_000, 20),
        `trial ${trial}: the training never finished (state ${procState(Number(pidText))})`,
      );
    }
    // Before anything recovers the queue: nothing visible refers to missing data.
    const queued = await queuedCheckpoints(o.staging);
    stats.queuedRecords += queued.size;
    for (const id of queued) expected.add(id);
    const repo = await openRepo(o.url);
    // A kill at startup can come before rep created the repository (readers then refuse it).
    const created = await repo.checkFormat() !== null;
    assert.deepEqual((await verifyRepository(repo)).problems, [], `trial ${trial}: before push`);
    for (const e of await repo.list()) for (const c of e.checkpoints) expected.add(c.id);
    // Without a status an experiment is running while its heartbeat is fresh, crashed after.
    for (const e of await repo.list({ now: Date.now() + 10 * 60_000 })) {
      if (!e.statusRecord) assert.equal(e.status, "crashed", `experiment ${e.id} after the kill`);
    }
    await repo.close();

    // Even trials: rep push finishes the queue. Odd trials: the next rep command (verify) does.
    if (trial % 2 === 0) {
      const push = await runRep(["push"], { cwd: work, env });
      assert.equal(push.code, 0, push.stderr);
      if (queued.size) assert.match(push.stderr, /uploaded [1-9]\d* object\(s\) from 1 queue/);
    }
    const v = await runRep(["verify"], { cwd: work, env });
    if (created) {
      assert.equal(v.code, 0, `trial ${trial}: rep verify after the kill:\n${v.stdout}${v.stderr}`);
    } else {
      assert.equal(v.code, 1, v.stderr);
      assert.match(v.stderr, /error: No repository at /);
    }
    assert.deepEqual(await outboxDirs(o.staging), [], "queues were left behind");
    if (trial === o.n - 1) {
      // The CLI agrees: killed runs read as running while their heartbeat is fresh.
      const ls = await runRep(["ls", "--json"], { cwd: work, env });
      assert.equal(ls.code, 0, ls.stderr);
      const listed = JSON.parse(ls.stdout) as { id: string; status: string }[];
      for (const e of listed) assert.ok(["running", "succeeded"].includes(e.status), e.status);
    }
    const after = await openRepo(o.url);
    const visible = new Set((await after.list()).flatMap((e) => e.checkpoints.map((c) => c.id)));
    for (const id of expected) assert.ok(visible.has(id), `queued checkpoint ${id} is missing`);
    await after.close();
  }
  // Everything queued by any kill is stored, verified, and holds its step's exact bytes.
  const repo = await openRepo(o.url);
  try {
    const views = await repo.list();
    const visible = new Set(views.flatMap((e) => e.checkpoints.map((c) => c.id)));
    for (const id of expected) assert.ok(visible.has(id), `checkpoint ${id} was lost`);
    assert.deepEqual((await verifyRepository(repo)).problems, []);
    stats.compared = await checkCheckpointBytes(repo, views);
    assert.ok(expected.size > o.n, `only ${expected.size} checkpoints were made`);
    if (o.outage) assert.ok(stats.queuedRecords > 0, "no kill left a checkpoint record queued");
    // And through the CLI: a random checkpoint checks out byte for byte.
    const e = rnd.pick(views.filter((e) => e.checkpoints.some((c) => c.files)));
    const ck = rnd.pick(e.checkpoints.filter((c) => c.files));
    const dest = join(o.dir, "co");
    const co = await runRep(["checkout", ck.id, "--no-code", "-o", dest], { cwd: o.dir, env });
    assert.equal(co.code, 0, co.stderr);
    for (const f of (await repo.tree(ck.files!.tree)).files) {
      assert.deepEqual(await Deno.readFile(join(dest, f.path)), await fileBytes(repo, f));
    }
  } finally {
    await repo.close();
  }
  return { ...stats, checkpoints: expected.size };
}

Deno.test("fault: rep run SIGKILLed at random moments, local store (14 trials)", async () => {
  const t = await tempRepo();
  try {
    const stats = await killTrials({
      n: 14,
      seed: SEED,
      dir: t.dir,
      url: t.repo,
      env: t.env,
      staging: join(t.repo, "staging"),
    });
    console.log(`  local kill trials: ${JSON.stringify(stats)}`);
  } finally {
    await t.cleanup();
  }
});

Deno.test("fault: rep run SIGKILLed during an S3 outage: queued records are pushed later (6 trials)", async () => {
  const t = await tempRepo();
  const srv = await startS3();
  const saved = Object.fromEntries(Object.keys(srv.env).map((k) => [k, Deno.env.get(k)]));
  try {
    for (const [k, v] of Object.entries(srv.env)) Deno.env.set(k, v);
    const url = `s3://${await srv.bucket()}/kill`;
    const stats = await killTrials({
      n: 6,
      seed: SEED + 1,
      outage: srv,
      dir: t.dir,
      url,
      env: { ...t.env, ...srv.env },
      staging: join(t.env.REP_CACHE_DIR!, "outbox", s3OutboxName(url)),
    });
    console.log(`  S3 kill trials: ${JSON.stringify(stats)}`);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    }
    await srv.stop();
    await t.cleanup();
  }
});

/** The outbox folder name of a remote store (see Recorder.outboxRoot). */
function s3OutboxName(url: string): string {
  return createHash("sha256").update(url).digest("hex").slice(0, 24);
}

/**
 * Watches /proc for the training being stopped (rep's SIGSTOP while it snapshots), SIGKILLs rep at
 * that very moment, then reports how long the training stayed stopped. Python reads /proc freely;
 * Deno wants --allow-all for it.
 */
const CATCH_FREEZE = `
import json, os, signal, sys, time
rep_pid, pid_file, limit = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
def state(pid):
    try:
        s = open(f"/proc/{pid}/stat").read()
        return s[s.rfind(")") + 2]
    except OSError:
        return None
end = time.time() + limit
pid = 0
while not pid and time.time() < end:
    try:
        pid = int(open(pid_file).read() or 0)
    except (OSError, ValueError):
        time.sleep(0.001)
res = {"caught": False}
while pid and time.time() < end:
    st = state(pid)
    if st is None:
        break
    if st == "T":
        os.kill(rep_pid, signal.SIGKILL)
        t0 = time.time()
        res = {"caught": True, "state_after_kill": state(pid)}
        while state(pid) == "T" and time.time() - t0 < 10:
            time.sleep(0.01)
        res["resumed_after"] = time.time() - t0
        res["state_later"] = state(pid)
        break
print(json.dumps(res))
`;

Deno.test("fault: rep SIGKILLed while the training is frozen: the guardian resumes it", async () => {
  const t = await tempRepo();
  try {
    const work = await workDir(t.dir, "w");
    await Deno.writeTextFile(join(t.dir, "catch.py"), CATCH_FREEZE);
    const marker = join(t.dir, "done");
    const p = spawnRep(
      ["run", "--", "python3", "train.py", marker, "60", "7", "0.03", String(8 << 20)],
      { cwd: work, env: t.env, timeoutMs: 60_000 },
    );
    const watcher = await new Deno.Command("python3", {
      args: [join(t.dir, "catch.py"), String(p.pid), marker + ".pid", "30"],
      stdout: "piped",
    }).output();
    const res = JSON.parse(new TextDecoder().decode(watcher.stdout));
    const r = await p.done;
    assert.ok(res.caught, `never saw the training frozen; rep: ${r.stderr}`);
    assert.equal(r.signal, "SIGKILL");
    assert.equal(res.state_after_kill, "T", "the training was not frozen when rep died");
    // The guardian polls once a second.
    assert.ok(res.resumed_after < 3, `the training stayed frozen ${res.resumed_after}s`);
    assert.ok(await waitFor(() => exists(marker), 30_000, 50), "the training never finished");
    const push = await runRep(["push"], { cwd: work, env: t.env });
    assert.equal(push.code, 0, push.stderr);
    const v = await runRep(["verify"], { cwd: work, env: t.env });
    assert.equal(v.code, 0, v.stdout);
  } finally {
    await t.cleanup();
  }
});

Deno.test("fault: rep push and rep ls during a run leave the live run's queue alone", async () => {
  const t = await tempRepo();
  try {
    const work = await workDir(t.dir, "w");
    const marker = join(t.dir, "done");
    const steps = 40;
    const p = spawnRep(
      ["run", "--", "python3", "train.py", marker, String(steps), "1", "0.05"],
      { cwd: work, env: t.env, timeoutMs: 60_000 },
    );
    const metrics = join(work, "output", "metrics.jsonl");
    await waitFor(async () => (await Deno.stat(metrics).catch(() => null))?.size! > 0, 20_000, 5);
    for (let i = 0; i < 4; i++) {
      const push = await runRep(["push"], { cwd: work, env: t.env });
      assert.equal(push.code, 0, push.stderr);
      assert.match(push.stdout, /run in progress, pid \d+/);
      const ls = await runRep(["ls"], { cwd: work, env: t.env });
      assert.equal(ls.code, 0, ls.stderr);
    }
    const r = await p.done;
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /error/);
    const repo = await openRepo(t.repo);
    const [e] = await repo.list();
    assert.equal(e!.status, "succeeded");
    assert.equal(e!.checkpoints.filter((c) => c.step !== null).length, steps);
    await repo.close();
  } finally {
    await t.cleanup();
  }
});

// ---- 2. storage outage ----------------------------------------------------------------------------

/** A work folder, an S3 server and a bucket URL; the env reaches the server. */
async function s3Setup(): Promise<
  {
    t: Awaited<ReturnType<typeof tempRepo>>;
    srv: TestServer;
    url: string;
    env: Record<string, string>;
    work: string;
  }
> {
  const t = await tempRepo();
  const srv = await startS3();
  const bucket = await srv.bucket();
  const url = `s3://${bucket}/x`;
  const env = { ...t.env, ...srv.env, REP_REPOSITORY: url };
  const work = await workDir(t.dir, "w");
  return { t, srv, url, env, work };
}

async function s3Checkpoints(
  url: string,
  env: Record<string, string>,
  cwd: string,
): Promise<{ status: string; num_checkpoints: number }[]> {
  const ls = await runRep(["ls", "--json", "-R", url], { cwd, env });
  assert.equal(ls.code, 0, ls.stderr);
  return JSON.parse(ls.stdout);
}

Deno.test("fault: S3 stops mid-run and comes back: training is not slowed, nothing is lost", async () => {
  const { t, srv, url, env, work } = await s3Setup();
  try {
    const marker = join(t.dir, "done");
    const steps = 24;
    const p = spawnRep(
      [
        "run",
        "-R",
        url,
        "--",
        "python3",
        "train.py",
        marker,
        String(steps),
        "3",
        "0.15",
        String(1 << 20),
      ],
      { cwd: work, env, timeoutMs: 90_000 },
    );
    const metrics = join(work, "output", "metrics.jsonl");
    await waitFor(async () => (await Deno.stat(metrics).catch(() => null))?.size! > 0, 30_000);
    await sleep(400);
    await srv.pause();
    // While storage is away, checkpoints pile up in the outbox on local disk.
    const outbox = join(env.REP_CACHE_DIR!, "outbox", s3OutboxName(url));
    let most = 0;
    const end = Date.now() + 3000;
    while (Date.now() < end) {
      most = Math.max(most, (await queuedCheckpoints(outbox)).size);
      await sleep(100);
    }
    await srv.restart();
    const r = await p.done;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(most >= 5, `only ${most} checkpoint record(s) queued during the outage`);
    const done = JSON.parse(await Deno.readTextFile(marker));
    // The same training without rep, now, on this machine: the baseline. The outage must not
    // stretch the run (rep's pauses to copy each version are there with or without an outage, and
    // grow with the machine's load: 48 of them here).
    const bareOut = join(t.dir, "bare");
    await Deno.mkdir(bareOut);
    const bare = await new Deno.Command("python3", {
      args: ["train.py", join(t.dir, "bare-done"), String(steps), "3", "0.15", String(1 << 20)],
      cwd: work,
      env: { REP_OUTPUT_DIR: bareOut, REP_METRICS_FILE: join(bareOut, "metrics.jsonl") },
    }).output();
    assert.ok(bare.success, new TextDecoder().decode(bare.stderr));
    const base = JSON.parse(await Deno.readTextFile(join(t.dir, "bare-done"))).elapsed;
    assert.ok(
      done.elapsed < base * 1.5 + 1.5,
      `training took ${done.elapsed}s under rep during the outage, ${base}s bare`,
    );
    const [e] = await s3Checkpoints(url, env, work);
    assert.equal(e!.status, "succeeded");
    assert.equal(e!.num_checkpoints, steps);
    const v = await runRep(["verify", "-R", url], { cwd: work, env });
    assert.equal(v.code, 0, v.stdout + v.stderr);
  } finally {
    await srv.stop();
    await t.cleanup();
  }
});

Deno.test("fault: S3 never returns: rep gives up waiting, says how to push, exits with the command's code", async () => {
  const { t, srv, url, env, work } = await s3Setup();
  try {
    const marker = join(t.dir, "done");
    const steps = 10;
    // The script exits 3 after training, to check rep passes the command's code through.
    await Deno.writeTextFile(
      join(work, "exit3.py"),
      `import runpy, sys\nsys.argv = sys.argv[1:]\nrunpy.run_path("train.py", run_name="__main__")\nsys.exit(3)\n`,
    );
    const p = spawnRep(
      [
        "run",
        "-R",
        url,
        "--",
        "python3",
        "exit3.py",
        "train.py",
        marker,
        String(steps),
        "4",
        "0.1",
        String(1 << 20),
      ],
      { cwd: work, env: { ...env, REP_UPLOAD_WAIT: "2" }, timeoutMs: 90_000 },
    );
    const metrics = join(work, "output", "metrics.jsonl");
    await waitFor(async () => (await Deno.stat(metrics).catch(() => null))?.size! > 0, 30_000);
    await srv.pause();
    const started = Date.now();
    const r = await p.done;
    assert.equal(r.code, 3, r.stderr);
    assert.ok(await exists(marker), "the training did not finish");
    assert.match(r.stderr, /stopped waiting; \d+ object\(s\) stay queued in /);
    assert.match(r.stderr, /rep push/);
    // The SDK's retries ride out ~10 s per request; REP_UPLOAD_WAIT bounds the rest.
    assert.ok(Date.now() - started < 45_000, `rep waited ${Date.now() - started} ms`);
    await srv.restart();
    const push = await runRep(["push", "-R", url], { cwd: work, env });
    assert.equal(push.code, 0, push.stderr);
    assert.match(push.stderr, /uploaded \d+ object\(s\) from 1 queue/);
    const [e] = await s3Checkpoints(url, env, work);
    assert.equal(e!.num_checkpoints, steps);
    assert.equal(e!.status, "failed"); // exit 3, status record pushed last
    const v = await runRep(["verify", "-R", url], { cwd: work, env });
    assert.equal(v.code, 0, v.stdout + v.stderr);
  } finally {
    await srv.stop();
    await t.cleanup();
  }
});

// ---- 3. the training killed (OOM killer) or crashing -------------------------------------------

/** Runs train.py, prints, then dies: `kill` (SIGKILL itself, like the OOM killer) or `raise`. */
const DIE = `
import os, runpy, signal, sys
mode = sys.argv[1]
sys.argv = sys.argv[2:]
runpy.run_path("train.py", run_name="__main__")
print("trained, now dying", flush=True)
if mode == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
raise RuntimeError("boom")
`;

for (const mode of ["kill", "raise"] as const) {
  Deno.test(`fault: the training ${mode === "kill" ? "SIGKILLed (OOM killer)" : "raising an exception"}: failed, checkpoints and log kept`, async () => {
    const t = await tempRepo();
    try {
      const work = await workDir(t.dir, "w");
      await Deno.writeTextFile(join(work, "die.py"), DIE);
      const marker = join(t.dir, "done");
      const r = await runRep(
        ["run", "--", "python3", "die.py", mode, "train.py", marker, "4", "1", "0.05"],
        { cwd: work, env: t.env },
      );
      const code = mode === "kill" ? 137 : 1;
      assert.equal(r.code, code, r.stderr);
      const ls = await runRep(["ls", "--json"], { cwd: work, env: t.env });
      const [e] = JSON.parse(ls.stdout);
      assert.equal(e.status, "failed");
      assert.equal(e.exit_code, code);
      assert.equal(e.num_checkpoints, 4);
      const status = JSON.parse(
        await Deno.readTextFile(join(t.repo, "experiments", e.id, "status.json")),
      );
      assert.equal(status.signal, mode === "kill" ? "SIGKILL" : null);
      const repo = await openRepo(t.repo);
      const views = await repo.list();
      assert.equal(await checkCheckpointBytes(repo, views) > 0, true);
      await repo.close();
      let log = "";
      for await (const f of Deno.readDir(join(t.repo, "experiments", e.id, "logs"))) {
        log += await Deno.readTextFile(join(t.repo, "experiments", e.id, "logs", f.name));
      }
      assert.match(log, /trained, now dying/);
      if (mode === "raise") assert.match(log, /Traceback[\s\S]*RuntimeError: boom/);
      const v = await runRep(["verify"], { cwd: work, env: t.env });
      assert.equal(v.code, 0, v.stdout);
    } finally {
      await t.cleanup();
    }
  });
}

// ---- 4. disk full while staging -------------------------------------------------------------------

/** Can this process mount a tmpfs (root, or CAP_SYS_ADMIN)? Probed once. */
async function canMountTmpfs(): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  const dir = await Deno.makeTempDir({ prefix: "rep-mount-probe-" });
  try {
    const m = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir],
      stdout: "null",
      stderr: "null",
    }).output().catch(() => null);
    if (!m?.success) return false;
    await new Deno.Command("umount", { args: [dir] }).output();
    return true;
  } finally {
    await Deno.remove(dir).catch(() => {});
  }
}
const CAN_MOUNT = await canMountTmpfs();

Deno.test({
  name:
    "fault: disk full while staging: the training goes on; each checkpoint has its exact file or says it left it out",
  ignore: !CAN_MOUNT, // needs root (mount -t tmpfs); CI runs as root
  async fn() {
    const t = await tempRepo();
    const mnt = join(t.dir, "small");
    await Deno.mkdir(mnt);
    const m = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=64m", "tmpfs", mnt],
    }).output();
    assert.ok(m.success, new TextDecoder().decode(m.stderr));
    try {
      const work = await workDir(t.dir, "w");
      // Fresh random bytes every step, each saved once the step before is stored. At step 3 the
      // script fills the disk before it saves that step's files (rep cannot stage them), writes
      // the metrics line, and frees the disk once step 3's checkpoint is stored.
      // The sha256 of the bytes saved at each step goes to a file outside the run.
      await Deno.writeTextFile(
        join(work, "big.py"),
        `import glob, hashlib, json, os, sys, time
out, metrics = os.environ["REP_OUTPUT_DIR"], os.environ["REP_METRICS_FILE"]
filler, repo = sys.argv[2], sys.argv[3]
records = os.path.join(repo, "experiments", os.environ["REP_EXPERIMENT_ID"], "checkpoints", "*.json")
def stored(n):
    t0 = time.time()
    while len(glob.glob(records)) < n:
        if time.time() - t0 > 120:
            sys.exit("rep did not store checkpoint %d" % n)
        time.sleep(0.02)
with open(os.path.join(out, "config.json"), "w") as f:
    f.write('{"lr": 0.01}')
for step in range(10):
    # Each step's files are saved once the step before is stored: rep copies every version
    # before the next replaces it, however slow this machine is.
    stored(step)
    if step == 3:
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"x" * 65536)
                    f.flush()
            except OSError:
                pass
        # Room for records, not for the copies.
        os.truncate(filler, max(0, os.path.getsize(filler) - 512 * 1024))
    shas = {}
    for name in ("a.bin", "b.bin"):
        data = os.urandom(1024 * 1024)
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        shas["output/" + name] = hashlib.sha256(data).hexdigest()
    with open(metrics, "a") as f:
        f.write(json.dumps({"step": step, "loss": 1 / (step + 1)}) + "\\n")
    if step == 3:
        stored(4)
        os.remove(filler)
    with open(sys.argv[1] + ".shas", "a") as f:
        f.write(json.dumps({"step": step, "shas": shas}) + "\\n")
    time.sleep(0.05)
open(sys.argv[1], "w").write("done")
`,
      );
      const marker = join(t.dir, "done");
      const repoUrl = join(mnt, "repo");
      const env = { ...t.env, REP_REPOSITORY: repoUrl };
      const r = await runRep(
        // Each line is checkpointed as it comes (the order is given, not told from the next line).
        [
          "run",
          "--order",
          "save-then-log",
          "--",
          "python3",
          "big.py",
          marker,
          join(mnt, "filler"),
          repoUrl,
        ],
        { cwd: work, env },
      );
      assert.ok(await exists(marker), "the training did not finish");
      assert.equal(r.code, 0, r.stderr); // the command's exit code
      assert.match(r.stderr, /No space left on device/);
      assert.doesNotMatch(r.stderr, /unexpected/);
      // What was stored is whole: no record refers to a pack that was never written.
      const v = await runRep(["verify"], { cwd: work, env });
      assert.equal(v.code, 0, v.stdout + v.stderr);
      const shas = new Map<number, Record<string, string>>();
      for (const line of (await Deno.readTextFile(marker + ".shas")).split("\n")) {
        if (line) shas.set(JSON.parse(line).step, JSON.parse(line).shas);
      }
      assert.equal(shas.size, 10);
      const repo = await openRepo(repoUrl);
      const [e] = await repo.list();
      assert.ok(e, "the experiment record was not stored");
      assert.equal(e.checkpoints.length, 10);
      let whole = 0, left = 0;
      for (const ck of e.checkpoints) {
        const files = ck.files ? (await repo.tree(ck.files.tree)).files : [];
        for (const [path, sha] of Object.entries(shas.get(ck.step!)!)) {
          const f = files.find((f) => f.path === path);
          if (f) {
            // The exact bytes of its own step.
            assert.equal(sha256(await fileBytes(repo, f)), sha, `step ${ck.step} ${path}`);
            whole++;
          } else {
            // Left out, and the checkpoint says so.
            assert.ok(ck.torn.includes(path), `step ${ck.step}: ${path} neither stored nor torn`);
            assert.ok(
              ck.warnings.some((w) => w.includes(path) && /No space left on device/.test(w)),
              ck.warnings.join(),
            );
            left++;
          }
        }
        // The file saved once at the start, in a pack that was written, is in every checkpoint.
        const config = files.find((f) => f.path === "output/config.json");
        assert.ok(config, `step ${ck.step}: output/config.json missing`);
        assert.equal(new TextDecoder().decode(await fileBytes(repo, config)), '{"lr": 0.01}');
      }
      // Only step 3's two files were lost with their pack; the run went on storing after it.
      assert.equal(left, 2);
      assert.equal(whole, 18);
      await repo.close();
    } finally {
      await new Deno.Command("umount", { args: ["-l", mnt] }).output();
      await t.cleanup();
    }
  },
});

// ---- 5. concurrent rm, run and gc -----------------------------------------------------------------

Deno.test("fault: rm, rm and run at once, then gc --grace 0 during a run that dedups old code: nothing live is deleted", async () => {
  const t = await tempRepo();
  try {
    const work = await workDir(t.dir, "w");
    // A code snapshot worth deduplicating: 1 MiB of data next to train.py.
    await Deno.writeFile(join(work, "vocab.bin"), prng(SEED + 5).bytes(1 << 20));
    const run = (marker: string, steps: number, pause = "0.03") =>
      spawnRep(
        [
          "run",
          "-o",
          `out-${marker}`,
          "--",
          "python3",
          "train.py",
          join(t.dir, marker),
          String(steps),
          "2",
          pause,
        ],
        { cwd: work, env: t.env },
      );
    const a = await run("a", 3).done;
    assert.equal(a.code, 0, a.stderr);
    const repo0 = await openRepo(t.repo);
    const [expA] = await repo0.list();
    await repo0.close();
    // Two rm and a run at once (B and C are other experiments).
    const b = await runRep([
      "run",
      "-o",
      "out-b",
      "--",
      "python3",
      "train.py",
      join(t.dir, "b"),
      "2",
      "3",
      "0",
    ], { cwd: work, env: t.env });
    const c = await runRep([
      "run",
      "-o",
      "out-c",
      "--",
      "python3",
      "train.py",
      join(t.dir, "c"),
      "3",
      "4",
      "0",
    ], { cwd: work, env: t.env });
    assert.equal(b.code + c.code, 0);
    const ids = JSON.parse((await runRep(["ls", "--json"], { cwd: work, env: t.env })).stdout)
      .map((e: { id: string }) => e.id) as string[];
    const [idC, idB] = ids;
    const repoC = await openRepo(t.repo);
    const ckC = (await repoC.resolve(idC!)).experiment.checkpoints[0]!.id;
    await repoC.close();
    const [rm1, rm2, d] = await Promise.all([
      runRep(["rm", idB!], { cwd: work, env: t.env }),
      runRep(["rm", ckC], { cwd: work, env: t.env }),
      run("d", 6).done,
    ]);
    assert.equal(rm1.code, 0, rm1.stderr);
    assert.equal(rm2.code, 0, rm2.stderr);
    assert.equal(d.code, 0, d.stderr);
    // E dedups its code against D (same chunks as A); meanwhile A, D are removed and gc runs.
    const e = run("e", 20, "0.05");
    await waitFor(() => exists(join(t.dir, "e.pid")), 20_000);
    const gcs: number[] = [];
    const rmA = await runRep(["rm", expA!.id], { cwd: work, env: t.env });
    assert.equal(rmA.code, 0, rmA.stderr);
    const idD = JSON.parse((await runRep(["ls", "--json"], { cwd: work, env: t.env })).stdout)
      .find((x: { command: string[] }) => x.command.includes(join(t.dir, "d"))).id;
    assert.equal((await runRep(["rm", idD], { cwd: work, env: t.env })).code, 0);
    while (!(await exists(join(t.dir, "e")))) {
      gcs.push((await runRep(["gc", "--grace", "0"], { cwd: work, env: t.env })).code);
    }
    const er = await e.done;
    assert.equal(er.code, 0, er.stderr);
    for (let i = 0; i < 2; i++) {
      gcs.push((await runRep(["gc", "--grace", "0"], { cwd: work, env: t.env })).code);
    }
    assert.ok(gcs.length >= 3 && gcs.every((x) => x === 0), `gc exit codes ${gcs}`);
    // Nothing referenced was deleted: verify passes and every checkpoint and code snapshot
    // checks out with its exact bytes.
    const v = await runRep(["verify"], { cwd: work, env: t.env });
    assert.equal(v.code, 0, v.stdout);
    const repo = await openRepo(t.repo);
    const views = await repo.list();
    assert.deepEqual(
      views.map((x) => x.id).sort(),
      [
        idC!,
        JSON.parse(
          (await runRep(["ls", "--json", "-f", "status = succeeded"], { cwd: work, env: t.env }))
            .stdout,
        )[0].id,
      ].sort(),
    );
    assert.ok(!views.find((x) => x.id === idC)!.checkpoints.some((x) => x.id === ckC));
    await checkCheckpointBytes(repo, views);
    for (const x of views) {
      const code = await repo.tree(x.record.code!.tree);
      const dest = join(t.dir, `co-${x.id}`);
      await repo.checkout(code.files, dest);
      assert.deepEqual(
        await Deno.readFile(join(dest, "vocab.bin")),
        await Deno.readFile(join(work, "vocab.bin")),
      );
    }
    // The removed experiments' records are gone.
    for (const gone of [expA!.id, idB!, idD]) {
      assert.equal(await exists(join(t.repo, "experiments", gone)), false, `records of ${gone}`);
    }
    await repo.close();
  } finally {
    await t.cleanup();
  }
});

// ---- 6. verify finds damage; gc deletes only what is dead ---------------------------------------

/** A repository with one experiment: code, two checkpoints of distinct random files. */
async function damagedCandidate(t: Awaited<ReturnType<typeof tempRepo>>, seed: number) {
  const r = prng(seed);
  const made = await makeExperiment(t.repo, {
    code: { "train.py": "print(1)\n" },
    checkpoints: [
      { step: 0, metrics: { loss: 1 }, files: { "model.bin": r.bytes(200_000) } },
      { step: 1, metrics: { loss: 0.5 }, files: { "model.bin": r.bytes(200_000) } },
    ],
  });
  const repo = await openRepo(t.repo);
  const view = (await repo.resolve(made.id)).experiment;
  const ck = view.checkpoints[1]!;
  const tree = await repo.tree(ck.files!.tree);
  await repo.close();
  return { made, ck, tree };
}

Deno.test("fault: rep verify names a missing pack, a corrupt chunk, a missing tree and corrupt records", async () => {
  const cases: [
    string,
    (t: string, x: Awaited<ReturnType<typeof damagedCandidate>>) => Promise<string>,
  ][] = [
    ["missing pack", async (root, x) => {
      const key = `packs/${x.tree.files[0]!.chunks[0]![0]}`;
      await Deno.remove(join(root, key));
      return key;
    }],
    ["corrupt chunk", async (root, x) => {
      const [pack, off, len] = x.tree.files[0]!.chunks[0]!;
      const path = join(root, "packs", pack);
      const bytes = await Deno.readFile(path);
      for (let i = off + Math.floor(len / 2); i < off + Math.floor(len / 2) + 4; i++) {
        bytes[i]! ^= 0xff;
      }
      await Deno.writeFile(path, bytes);
      return `packs/${pack}`;
    }],
    ["missing tree", async (root, x) => {
      const key = `trees/${x.ck.files!.tree}.json`;
      await Deno.remove(join(root, key));
      return key;
    }],
    ["corrupt record", async (root, x) => {
      const key = `experiments/${x.made.id}/checkpoints/${x.ck.id}.json`;
      await Deno.writeTextFile(join(root, key), '{"format": 1, "type": "checkpoint", "id": ');
      return key;
    }],
    ["corrupt experiment record", async (root, x) => {
      const key = `experiments/${x.made.id}/experiment.json`;
      await Deno.writeFile(join(root, key), new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]));
      return key;
    }],
  ];
  for (const [i, [name, damage]] of cases.entries()) {
    const t = await tempRepo();
    try {
      const x = await damagedCandidate(t, SEED + 10 + i);
      const ok = await runRep(["verify"], { cwd: t.dir, env: t.env });
      assert.equal(ok.code, 0, `${name}: before damage: ${ok.stdout}`);
      const key = await damage(t.repo, x);
      const v = await runRep(["verify"], { cwd: t.dir, env: t.env });
      assert.equal(v.code, 1, `${name}: ${v.stdout}${v.stderr}`);
      assert.ok(v.stdout.includes(key), `${name}: verify does not name ${key}:\n${v.stdout}`);
      assert.match(v.stdout, /(MISSING|CORRUPT) /);
      const q = await runRep(["verify", "--json"], { cwd: t.dir, env: t.env });
      assert.ok(
        JSON.parse(q.stdout).problems.some((p: { key: string }) => p.key === key),
        `${name}: --json`,
      );
    } finally {
      await t.cleanup();
    }
  }
});

Deno.test("fault: rep gc --dry-run deletes nothing; rep gc reclaims removed experiments and keeps the live ones", async () => {
  const t = await tempRepo();
  try {
    const r = prng(SEED + 20);
    const keep = await makeExperiment(t.repo, {
      code: { "a.py": "a\n" },
      checkpoints: [{ step: 0, metrics: { loss: 1 }, files: { "m.bin": r.bytes(100_000) } }],
    });
    const gone = await makeExperiment(t.repo, {
      code: { "b.py": "b\n" },
      checkpoints: [{ step: 0, metrics: { loss: 2 }, files: { "m.bin": r.bytes(100_000) } }],
    });
    const snapshot = async () => (await walkAll(t.repo)).sort();
    const before = await snapshot();
    assert.equal((await runRep(["rm", gone.id], { cwd: t.dir, env: t.env })).code, 0);
    const afterRm = await snapshot();
    for (const args of [["gc", "--dry-run", "--grace", "0"], ["gc", "--dry-run"], ["gc"]]) {
      const g = await runRep(args, { cwd: t.dir, env: t.env });
      assert.equal(g.code, 0, g.stderr);
      // Dry runs touch nothing; the default 24 h grace keeps young data (records of removed
      // experiments are deleted at once).
      if (args.includes("--dry-run")) assert.deepEqual(await snapshot(), afterRm, args.join(" "));
    }
    const afterDefault = await snapshot();
    assert.deepEqual(
      afterDefault.filter((p) => p.startsWith("packs/") || p.startsWith("trees/")),
      before.filter((p) => p.startsWith("packs/") || p.startsWith("trees/")),
    );
    // One run with --grace 0 lists and deletes.
    const g = await runRep(["gc", "--grace", "0"], { cwd: t.dir, env: t.env });
    assert.equal(g.code, 0, g.stderr);
    const after = await snapshot();
    assert.ok(!after.some((p) => p.includes(gone.id)), "records of the removed experiment remain");
    const repo = await openRepo(t.repo);
    const [live] = await repo.list();
    assert.equal(live!.id, keep.id);
    const liveKeys = new Set<string>();
    for (const ref of [live!.record.code!, live!.checkpoints[0]!.files!]) {
      liveKeys.add(`trees/${ref.tree}.json`);
      for (const f of (await repo.tree(ref.tree)).files) {
        for (const c of f.chunks) liveKeys.add(`packs/${c[0]}`);
      }
    }
    const data = after.filter((p) => /^(packs|trees)\/./.test(p));
    assert.deepEqual(data.sort(), [...liveKeys].sort(), "gc kept dead data or deleted live data");
    await repo.close();
    const v = await runRep(["verify"], { cwd: t.dir, env: t.env });
    assert.equal(v.code, 0, v.stdout);
    const co = await runRep(["checkout", keep.checkpoints[0]!, "-o", join(t.dir, "co")], {
      cwd: t.dir,
      env: t.env,
    });
    assert.equal(co.code, 0, co.stderr);
  } finally {
    await t.cleanup();
  }
});
