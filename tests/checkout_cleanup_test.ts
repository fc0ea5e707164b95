/**
 * A failed `rep checkout` leaves no temporary file (`*.rep-*.tmp`) in the target, whatever the
 * failure: a corrupt chunk in the middle of a file (a large one on the pipelined path, a small
 * one while others are being written), a full disk, an unwritable subfolder.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeExperiment, rep, tempRepo } from "./helpers.ts";
import { Repository } from "../src/repository.ts";
import type { FileEntry } from "../src/format/records.ts";

const MiB = 1024 * 1024;

function random(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) crypto.getRandomValues(out.subarray(o, o + 65536));
  return out;
}

/** Files of every size class: small ones (written four at a time) and a large one (pipelined). */
function files(): Record<string, Uint8Array> {
  return {
    "a.bin": random(300 * 1024),
    "b.bin": random(3 * MiB + 17),
    "big.bin": random(20 * MiB + 5),
    "sub/c.bin": random(1 * MiB),
    "sub/d.bin": random(2 * MiB),
    "sub/deeper/e.bin": random(700 * 1024),
    "z.bin": random(5 * MiB),
  };
}

/** Every `*.rep-*.tmp` file under `dir`, as paths relative to it. */
async function leftovers(dir: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(join(dir, rel)));
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await leftovers(dir, p));
    else if (/\.rep-[0-9a-f]+\.tmp$/.test(e.name)) out.push(p);
  }
  return out;
}

/** The files of the experiment's only checkpoint. */
async function treeOf(url: string): Promise<FileEntry[]> {
  const repo = await Repository.open(url, { cache: false });
  try {
    const [view] = await repo.list();
    const ck = view!.checkpoints[0]!;
    return (await repo.tree(ck.files!.tree)).files;
  } finally {
    await repo.close();
  }
}

/** Flip one byte in the middle of the middle chunk of `path`'s data in its pack. */
async function corruptMiddle(repoDir: string, entry: FileEntry): Promise<void> {
  const [pack, off, len] = entry.chunks[Math.floor(entry.chunks.length / 2)]!;
  using f = await Deno.open(join(repoDir, "packs", pack), { read: true, write: true });
  const at = off + (len >> 1);
  const one = new Uint8Array(1);
  await f.seek(at, Deno.SeekMode.Start);
  await f.read(one);
  one[0]! ^= 0x01;
  await f.seek(at, Deno.SeekMode.Start);
  await f.write(one);
}

for (const victim of ["big.bin", "b.bin"]) {
  Deno.test(`rep checkout with a corrupt chunk in the middle of ${victim} leaves no temporary file`, async () => {
    const t = await tempRepo();
    try {
      const e = await makeExperiment(t.repo, { checkpoints: [{ files: files() }] });
      const tree = await treeOf(t.repo);
      await corruptMiddle(t.repo, tree.find((f) => f.path === victim)!);
      const out = join(t.dir, "out");
      const r = await rep(["checkout", e.id, "-o", out], { env: t.env });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`a chunk of ${victim.replace(".", "\\.")} does not match`));
      assert.deepEqual(await leftovers(out), []);
      // The damaged file is not there at all; the others are whole or absent.
      assert.equal(await Deno.stat(join(out, victim)).catch(() => null), null);
    } finally {
      await t.cleanup();
    }
  });
}

/** A tmpfs of `size` at a new folder under `dir`, or null where mounting is not allowed. */
async function smallTmpfs(dir: string, size: string): Promise<string | null> {
  const mnt = join(dir, "small-disk");
  await Deno.mkdir(mnt);
  const r = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", mnt],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => null);
  return r?.success ? mnt : null;
}

Deno.test("rep checkout onto a full disk fails clearly and leaves no temporary file", async () => {
  const t = await tempRepo();
  const mnt = await smallTmpfs(t.dir, "12m");
  try {
    if (!mnt) {
      console.warn("skipped: cannot mount a small tmpfs here (needs root)");
      return;
    }
    const e = await makeExperiment(t.repo, { checkpoints: [{ files: files() }] });
    for (const target of [mnt, join(mnt, "nested")]) {
      const r = await rep(["checkout", e.id, "-o", target], { env: t.env });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /Cannot write into .*small-disk.*: no space left on device/);
      assert.match(r.stderr, /Free some space on that disk, or check out somewhere else/);
      assert.doesNotMatch(r.stderr, /unexpected/);
      assert.deepEqual(await leftovers(target), []);
    }
  } finally {
    if (mnt) {
      await new Deno.Command("umount", { args: [mnt], stdout: "null", stderr: "null" }).output();
    }
    await t.cleanup();
  }
});

Deno.test("rep checkout into a folder with an unwritable subfolder leaves no temporary file", async () => {
  const t = await tempRepo();
  const out = join(t.dir, "out");
  const sub = join(out, "sub");
  // Root ignores permission bits: there an immutable folder (chattr +i) stands for unwritable.
  const root = Deno.uid() === 0;
  let locked = false;
  try {
    const e = await makeExperiment(t.repo, { checkpoints: [{ files: files() }] });
    await Deno.mkdir(join(sub, "deeper"), { recursive: true });
    if (root) {
      const r = await new Deno.Command("chattr", { args: ["+i", sub], stderr: "null" }).output()
        .catch(() => null);
      if (!r?.success) {
        console.warn("skipped: chattr +i is not available here");
        return;
      }
    } else {
      await Deno.chmod(sub, 0o555);
    }
    locked = true;
    const r = await rep(["checkout", e.id, "-o", out], { env: t.env });
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /Cannot write into .*out: sub\/\S+: (operation not permitted|permission denied)/,
    );
    assert.match(r.stderr, /Check that the folder is writable/);
    assert.doesNotMatch(r.stderr, /\.tmp/);
    assert.deepEqual(await leftovers(out), []);
  } finally {
    if (locked) {
      if (root) await new Deno.Command("chattr", { args: ["-i", sub] }).output();
      else await Deno.chmod(sub, 0o755);
    }
    await t.cleanup();
  }
});
