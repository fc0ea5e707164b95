import assert from "node:assert/strict";
import { join } from "node:path";
import { CorruptObjectError } from "../errors.ts";
import type { FileEntry } from "../format/records.ts";
import { Repository } from "../repository.ts";
import { Recorder } from "../writer/recorder.ts";

const MiB = 1024 * 1024;

function random(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) {
    crypto.getRandomValues(out.subarray(o, Math.min(n, o + 65536)));
  }
  return out;
}

/** A local repository holding `data` as `big.bin` in one checkpoint; its file entry. */
async function stored(
  dir: string,
  data: Uint8Array,
): Promise<{ repo: Repository; entry: FileEntry }> {
  const src = join(dir, "src");
  await Deno.mkdir(src);
  await Deno.writeFile(join(src, "big.bin"), data);
  const repo = await Repository.open(join(dir, "repo"), { cache: false });
  const rec = await Recorder.start(repo, { code: null });
  const snap = await rec.snapshot(src, ["big.bin"]);
  await rec.commit({ tree: snap.tree });
  await rec.stop("succeeded");
  return { repo, entry: snap.tree.files[0]! };
}

/** Flip one byte in the middle of chunk `i` of `entry` in its pack. */
async function corrupt(repoDir: string, entry: FileEntry, i: number): Promise<void> {
  const [pack, off, len] = entry.chunks[i]!;
  using f = await Deno.open(join(repoDir, "packs", pack), { read: true, write: true });
  const at = off + (len >> 1);
  const one = new Uint8Array(1);
  await f.seek(at, Deno.SeekMode.Start);
  await f.read(one);
  one[0]! ^= 0x01;
  await f.seek(at, Deno.SeekMode.Start);
  await f.write(one);
}

{
  for (const worker of [true, false]) {
    Deno.test(`checkout of a large local file writes exactly its bytes (worker: ${worker})`, async () => {
      const dir = await Deno.makeTempDir();
      try {
        const data = random(40 * MiB + 4097);
        const { repo, entry } = await stored(dir, data);
        try {
          await repo.checkout([entry], join(dir, "out"), { worker });
          assert.deepEqual(await Deno.readFile(join(dir, "out", "big.bin")), data);
        } finally {
          await repo.close();
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });

    Deno.test(`checkout of a large local file with a corrupt chunk fails and writes nothing (worker: ${worker})`, async () => {
      const dir = await Deno.makeTempDir();
      try {
        const { repo, entry } = await stored(dir, random(40 * MiB + 4097));
        try {
          // A chunk late in the file: earlier ranges are already written when it is read.
          await corrupt(join(dir, "repo"), entry, entry.chunks.length - 3);
          const out = join(dir, "out");
          await assert.rejects(
            repo.checkout([entry], out, { worker }),
            (e: unknown) =>
              e instanceof CorruptObjectError && /big\.bin does not match/.test(e.message),
          );
          assert.deepEqual(await Array.fromAsync(Deno.readDir(out)), []);
        } finally {
          await repo.close();
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
}
