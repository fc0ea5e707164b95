import assert from "node:assert/strict";
import { join } from "node:path";
import { Repository } from "../repository.ts";
import { Recorder } from "../writer/recorder.ts";
import { restoreExactly } from "./exact.ts";

const bytes = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i * seed + 7) % 251);

Deno.test("restoreExactly() leaves the folder holding exactly the checkpoint, moving the rest aside", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rep-exact-" });
  Deno.env.set("REP_CACHE_DIR", join(dir, "cache"));
  const repo = await Repository.open(join(dir, "repo"), { cache: false });
  try {
    const src = join(dir, "src");
    await Deno.mkdir(join(src, "output", "sub"), { recursive: true });
    const model = bytes(300_000, 13);
    await Deno.writeFile(join(src, "output", "model.bin"), model);
    await Deno.writeTextFile(join(src, "output", "sub", "config.json"), '{"a": 1}');
    const rec = await Recorder.start(repo, { cwd: src, output: "output" });
    const snap = await rec.snapshot(src, ["output/model.bin", "output/sub/config.json"]);
    await rec.commit({ tree: snap.tree, step: 3 });
    await rec.stop("failed", { exitCode: 137 });
    const files = snap.tree.files;

    // The folder as the cut-short attempt left it.
    const work = join(dir, "work");
    await Deno.mkdir(join(work, "output", "sub"), { recursive: true });
    await Deno.writeFile(join(work, "output", "model.bin"), bytes(300_000, 17)); // step 4's
    await Deno.writeTextFile(join(work, "output", "sub", "config.json"), '{"a": 1}'); // same
    await Deno.writeTextFile(join(work, "output", "step4.pt"), "half written");
    await Deno.writeTextFile(join(work, "output", ".rep-run.json"), "{}");
    await Deno.writeTextFile(join(work, "train.py"), "print(1)"); // outside the folder
    const backup = join(dir, "backup");
    const out = await restoreExactly(repo.store, files, work, {
      folders: ["output"],
      keep: (rel) => rel === "output/.rep-run.json",
      backup,
    });
    assert.deepEqual(out.moved, ["output/model.bin", "output/step4.pt"]);
    assert.deepEqual(out.written, ["output/model.bin"]);
    assert.deepEqual(out.unchanged, ["output/sub/config.json"]);
    assert.deepEqual(await Deno.readFile(join(work, "output", "model.bin")), model);
    const left = (await Array.fromAsync(Deno.readDir(join(work, "output")))).map((e) => e.name);
    assert.deepEqual(left.sort(), [".rep-run.json", "model.bin", "sub"]);
    assert.equal(await Deno.readTextFile(join(work, "train.py")), "print(1)");
    assert.deepEqual(await Deno.readFile(join(backup, "output", "model.bin")), bytes(300_000, 17));
    assert.equal(await Deno.readTextFile(join(backup, "output", "step4.pt")), "half written");

    // Into an empty folder (a fresh machine): everything written, nothing moved.
    const fresh = join(dir, "fresh");
    const again = await restoreExactly(repo.store, files, fresh, { folders: ["output"], backup });
    assert.deepEqual(again.moved, []);
    assert.deepEqual(again.written, ["output/model.bin", "output/sub/config.json"]);
    assert.deepEqual(await Deno.readFile(join(fresh, "output", "model.bin")), model);
  } finally {
    await repo.close();
    Deno.env.delete("REP_CACHE_DIR");
    await Deno.remove(dir, { recursive: true });
  }
});
