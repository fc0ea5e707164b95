/**
 * The TypeScript library's names, resume and retention: `init({ name, resume, keepBest, keepLast })`
 * against a real local repository, with real files in a project folder.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { NameTakenError, openRepository, type Repo, UsageError } from "../mod.ts";
import { rep, tempRepo } from "./helpers.ts";

const PM = { name: "loss", goal: "minimize" as const };

async function withRepo(
  fn: (repo: Repo, t: Awaited<ReturnType<typeof tempRepo>>) => Promise<void>,
) {
  const t = await tempRepo();
  const before = Deno.env.get("REP_CACHE_DIR");
  Deno.env.set("REP_CACHE_DIR", t.env.REP_CACHE_DIR!);
  const repo = await openRepository(t.repo);
  try {
    await fn(repo, t);
  } finally {
    await repo.close();
    if (before === undefined) Deno.env.delete("REP_CACHE_DIR");
    else Deno.env.set("REP_CACHE_DIR", before);
    await t.cleanup();
  }
}

/** Bytes of a step: distinct per step and per file. */
function bytesOf(file: string, step: number): Uint8Array {
  return new TextEncoder().encode(`${file} at step ${step}\n`.repeat(50 + step));
}

async function writeStep(project: string, step: number): Promise<void> {
  await Deno.mkdir(join(project, "out", "sub"), { recursive: true });
  await Deno.writeFile(join(project, "out", "model.bin"), bytesOf("model", step));
  await Deno.writeFile(join(project, "out", "sub", "opt.bin"), bytesOf("opt", step));
}

Deno.test("init({ name, resume: true }) continues a failed experiment from the exact files of its latest checkpoint", async () => {
  await withRepo(async (repo, t) => {
    const project = join(t.dir, "project");
    await Deno.mkdir(project);
    await Deno.writeTextFile(join(project, "train.ts"), "// the training code\n");

    const first = await repo.init({ path: project, name: "resnet-1", primaryMetric: PM });
    assert.equal(first.name, "resnet-1");
    assert.equal(first.attempt, 1);
    for (let step = 1; step <= 3; step++) {
      await writeStep(project, step);
      await first.checkpoint({ path: join(project, "out"), step, metrics: { loss: 1 / step } });
    }
    // The attempt writes on after its last checkpoint, then dies.
    await Deno.writeFile(join(project, "out", "model.bin"), bytesOf("model", 4));
    await Deno.remove(join(project, "out", "sub", "opt.bin"));
    await first.stop("failed");

    const said: string[] = [];
    const error = console.error;
    console.error = (...m: unknown[]) => said.push(m.join(" "));
    const second = await repo.init({ path: project, name: "resnet-1", resume: true }).finally(
      () => console.error = error,
    );
    // It says what it did, once: model.bin had other content (moved aside), opt.bin was gone.
    assert.equal(said.length, 1, said.join("\n"));
    assert.match(
      said[0]!,
      new RegExp(
        `^rep: resuming experiment ${first.id.slice(0, 7)} \\(resnet-1\\) as attempt 2 ` +
          `from checkpoint ${first.checkpoints[2]!.id.slice(0, 7)} \\(step 3\\): ` +
          `2 file\\(s\\) put back; 1 file\\(s\\) with other content moved to \\S+$`,
      ),
    );
    assert.equal(second.id, first.id);
    assert.equal(second.attempt, 2);
    assert.equal(second.status, "running");
    assert.equal(second.resumedFrom?.step, 3);
    assert.equal(second.resumedFrom?.id, first.checkpoints[2]!.id);
    assert.deepEqual(second.checkpoints.map((c) => c.step), [1, 2, 3]);
    assert.deepEqual(await Deno.readFile(join(project, "out", "model.bin")), bytesOf("model", 3));
    assert.deepEqual(
      await Deno.readFile(join(project, "out", "sub", "opt.bin")),
      bytesOf("opt", 3),
    );
    assert.deepEqual(
      (await second.resumedFrom!.files()).map((f) => f.path),
      ["out/model.bin", "out/sub/opt.bin"],
    );

    for (let step = 4; step <= 5; step++) {
      await writeStep(project, step);
      const ck = await second.checkpoint({
        path: join(project, "out"),
        metrics: { loss: 1 / step },
      });
      assert.equal(ck.step, step); // the default step continues the earlier attempt's
    }
    await second.stop();

    const read = await repo.experiments.get("resnet-1");
    assert.equal(read.id, first.id);
    assert.equal(read.status, "succeeded");
    assert.equal(read.attempt, 2);
    assert.deepEqual(read.checkpoints.map((c) => c.step), [1, 2, 3, 4, 5]);
    const last = await new Response(await read.latest()!.open("out/model.bin")).arrayBuffer();
    assert.deepEqual(new Uint8Array(last), bytesOf("model", 5));
    const listed = await rep(["ls", "--json"], { env: t.env });
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { name: string }[]).map((e) => e.name),
      ["resnet-1"],
    );

    // Succeeded: returned finished, nothing recorded, unless rerun.
    const again = await repo.init({ path: project, name: "resnet-1", resume: true });
    assert.equal(again.status, "succeeded");
    assert.deepEqual(again.checkpoints.map((c) => c.step), [1, 2, 3, 4, 5]);
    await assert.rejects(() => again.checkpoint({ metrics: { loss: 0 } }), UsageError);
    const rerun = await repo.init({ path: project, name: "resnet-1", resume: true, rerun: true });
    assert.equal(rerun.attempt, 3);
    await rerun.stop("stopped");
  });
});

Deno.test("init({ name }) refuses a name another experiment holds, naming it", async () => {
  await withRepo(async (repo, t) => {
    const project = join(t.dir, "p");
    await Deno.mkdir(project);
    const holder = await repo.init({ path: null, name: "bert-base" });
    await holder.stop();
    await assert.rejects(
      () => repo.init({ path: null, name: "bert-base" }),
      (e: unknown) => {
        assert.ok(e instanceof NameTakenError);
        assert.equal(e.holder.experiment, holder.id);
        assert.match(
          e.message,
          new RegExp(`"bert-base" is taken by experiment ${holder.id.slice(0, 7)}`),
        );
        return true;
      },
    );
    await assert.rejects(() => repo.init({ path: null, name: "no spaces" }), UsageError);
    await assert.rejects(() => repo.init({ path: null, keepBest: 0, keepLast: 0 }), UsageError);
    await assert.rejects(() => repo.init({ path: null, keepLast: 1.5 }), UsageError);
  });
});

Deno.test("init({ keepBest: 2, keepLast: 1 }) removes checkpoints as they fall out while recording", async () => {
  await withRepo(async (repo, t) => {
    const project = join(t.dir, "p");
    await Deno.mkdir(project);
    const exp = await repo.init({ path: project, primaryMetric: PM, keepBest: 2, keepLast: 1 });
    const losses = [5, 1, 4, 2, 3];
    for (const [i, loss] of losses.entries()) {
      await writeStep(project, i + 1);
      await exp.checkpoint({ path: join(project, "out"), step: i + 1, metrics: { loss } });
    }
    await exp.stop();
    // Best two: steps 2 (loss 1) and 4 (loss 2); the latest: step 5.
    assert.deepEqual(exp.checkpoints.map((c) => c.step), [2, 4, 5]);
    const read = await repo.experiments.get(exp.id.slice(0, 8));
    assert.deepEqual(read.checkpoints.map((c) => c.step), [2, 4, 5]);
    const kept = await new Response(await read.best()!.open("out/model.bin")).arrayBuffer();
    assert.deepEqual(new Uint8Array(kept), bytesOf("model", 2));
  });
});
