/**
 * `rep gc --grace 0` while an experiment is being recorded: the grace is raised to a safe one for
 * deleting data (a running writer may be about to refer to an old pack it checked moments ago),
 * and a starting writer's folder is not an orphan. Once nothing is recorded, `--grace 0` deletes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { openRepository } from "../mod.ts";
import { heartbeatKey } from "../src/format/layout.ts";
import { jsonBytes } from "../src/util.ts";
import { Repository } from "../src/repository.ts";
import { rep, tempRepo } from "./helpers.ts";

/** The stored packs and trees (file lists). */
async function packs(repoDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const dir of ["packs", "trees"]) {
    const walk = async (d: string): Promise<void> => {
      for await (const e of Deno.readDir(d)) {
        if (e.isDirectory) await walk(join(d, e.name));
        else if (e.isFile) out.push(join(d, e.name).slice(repoDir.length + 1));
      }
    };
    await walk(join(repoDir, dir)).catch(() => {});
  }
  return out.sort();
}

Deno.test("rep gc --grace 0 keeps unreferenced data while an experiment is recorded, deletes it after", async () => {
  const t = await tempRepo();
  const before = Deno.env.get("REP_CACHE_DIR");
  Deno.env.set("REP_CACHE_DIR", t.env.REP_CACHE_DIR!);
  try {
    const project = join(t.dir, "p");
    await Deno.mkdir(project);
    const bytes = crypto.getRandomValues(new Uint8Array(60_000));
    await Deno.writeFile(join(project, "w.bin"), bytes);
    const repo = await openRepository(t.repo);
    const old = await repo.init({ path: null });
    await old.checkpoint({ path: join(project, "w.bin"), metrics: { loss: 1 } });
    await old.stop();
    const oldPacks = await packs(t.repo);
    assert.ok(oldPacks.length > 0);
    assert.equal((await rep(["rm", old.id], { env: t.env })).code, 0);

    // Another experiment is running (fresh heartbeat), and a third is starting: its heartbeat
    // is written, its record not yet.
    const running = await repo.init({ path: null });
    const starting = "5".repeat(32);
    const raw = await Repository.open(t.repo, { cache: false });
    await raw.store.put(
      heartbeatKey(starting),
      jsonBytes({ time: new Date().toISOString(), host: "elsewhere", pid: 1 }),
    );
    const gc = await rep(["gc", "--grace", "0"], { env: t.env });
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stdout, /deleted 0 object\(s\)/);
    assert.match(
      gc.stdout,
      new RegExp(
        `kept ${oldPacks.length} unreferenced object\\(s\\) for now: 2 experiment\\(s\\) are being recorded \\(.*${
          running.id.slice(0, 7)
        }.*\\)`,
      ),
    );
    assert.deepEqual(await packs(t.repo), oldPacks);
    assert.ok(await raw.store.head(heartbeatKey(starting)), "a starting writer's heartbeat");
    // The removed experiment's records go at once: removed is removed.
    assert.equal(await raw.store.head(`experiments/${old.id}/experiment.json`), null);

    await running.stop();
    await raw.store.delete([heartbeatKey(starting)]);
    await raw.close();
    const after = await rep(["gc", "--grace", "0"], { env: t.env });
    assert.equal(after.code, 0, after.stderr);
    assert.doesNotMatch(after.stdout, /kept/);
    assert.deepEqual(await packs(t.repo), [], after.stdout);
    await repo.close();
  } finally {
    if (before === undefined) Deno.env.delete("REP_CACHE_DIR");
    else Deno.env.set("REP_CACHE_DIR", before);
    await t.cleanup();
  }
});
