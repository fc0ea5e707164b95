/**
 * Repository-wide dedup, end to end, on a local folder, S3 (s3rver and moto) and GCS (the Cloud
 * Storage emulator): `rep run` processes with their own cache folders stand for machines. A second
 * experiment with the same 48 MiB file, on this machine or another, adds almost nothing; with 5%
 * of it changed, about 5%; concurrent writers on one bucket stay correct; a pack `rep gc` listed
 * is not reused, and one it deleted is not referenced by a writer whose cache still knows it.
 * Every checkout is compared byte for byte with what the script wrote, and `rep verify` passes.
 */
import assert from "node:assert/strict";
import { createCipheriv, createHash } from "node:crypto";
import { join } from "node:path";
import { PERMISSIONS, rep, ROOT } from "./helpers.ts";
import { startGcs } from "./servers/gcs.ts";
import { startS3 } from "./servers/s3.ts";
import { startMoto } from "./servers/moto.ts";
import { Repository } from "../src/repository.ts";
import { packIndexOfKey, packKey, PREFIX } from "../src/format/layout.ts";
import { parsePackIndex } from "../src/format/pack_index.ts";
import { ChunkCache } from "../src/writer/chunk_cache.ts";

const MiB = 1024 * 1024;
const BASE = 48 * MiB;

/** Copies $SRC into the output folder as model.bin, then writes one metrics line. */
const COPY_PY = `
import json, os, shutil
out = os.environ["REP_OUTPUT_DIR"]
os.makedirs(out, exist_ok=True)
shutil.copyfile(os.environ["SRC"], os.path.join(out, "model.bin.tmp"))
os.replace(os.path.join(out, "model.bin.tmp"), os.path.join(out, "model.bin"))
with open(os.environ["REP_METRICS_FILE"], "a") as m:
    m.write(json.dumps({"step": 1, "loss": 0.5}) + "\\n")
`;

/** Deterministic incompressible bytes: an AES-128-CTR keystream of `seed`. */
function keystream(n: number, seed: number): Uint8Array {
  const key = new Uint8Array(16);
  new DataView(key.buffer).setUint32(0, seed);
  return new Uint8Array(
    createCipheriv("aes-128-ctr", key, new Uint8Array(16)).update(new Uint8Array(n)),
  );
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

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

interface Backend {
  name: string;
  start(): Promise<{ url: string; env: Record<string, string>; stop(): Promise<void> }>;
}

const BACKENDS: Backend[] = [
  {
    name: "local",
    start: async () => {
      const dir = await Deno.makeTempDir({ prefix: "rep-dedup-local-" });
      return { url: join(dir, "repo"), env: {}, stop: () => Deno.remove(dir, { recursive: true }) };
    },
  },
  {
    name: "S3",
    start: async () => {
      const s = await startS3();
      return { url: `s3://${await s.bucket()}/team`, env: s.env, stop: () => s.stop() };
    },
  },
  {
    name: "S3 (moto)",
    start: async () => {
      const s = await startMoto();
      return { url: `s3://${await s.bucket()}/team`, env: s.env, stop: () => s.stop() };
    },
  },
  {
    name: "GCS",
    start: async () => {
      const s = await startGcs();
      return { url: `gs://${await s.bucket()}/team`, env: s.env, stop: () => s.stop() };
    },
  },
];

for (const backend of BACKENDS) {
  Deno.test(`dedup across experiments, machines, concurrent writers and gc on ${backend.name}`, async (t) => {
    const srv = await backend.start();
    const dir = await Deno.makeTempDir({ prefix: "rep-dedup-e2e-" });
    const work = join(dir, "work");
    const data = join(dir, "data");
    await Deno.mkdir(work);
    await Deno.mkdir(data);
    await Deno.writeTextFile(join(work, "copy.py"), COPY_PY);
    /** Experiment id → the bytes its checkpoint must hold. */
    const expected = new Map<string, Uint8Array>();
    const envOf = (machine: string, src: string) => ({
      ...srv.env,
      REP_CACHE_DIR: join(dir, `cache-${machine}`),
      SRC: src,
    });
    const inProcess = <T>(fn: (repo: Repository) => Promise<T>) =>
      withEnv({ ...srv.env, REP_CACHE_DIR: join(dir, "cache-reader") }, async () => {
        const repo = await Repository.open(srv.url, { cache: false });
        try {
          return await fn(repo);
        } finally {
          await repo.close();
        }
      });
    const storedBytes = () =>
      inProcess(async (repo) => {
        let n = 0;
        for await (const info of repo.store.list(PREFIX.packs)) n += info.size;
        return n;
      });
    /** Ids of the experiments, newest last. */
    const ids = () =>
      inProcess(async (repo) =>
        (await repo.list()).sort((a, b) => a.record.created.localeCompare(b.record.created))
          .map((v) => v.record.id)
      );
    /** The packs the checkpoint of experiment `id` refers to. */
    const packsOf = (id: string) =>
      inProcess(async (repo) => {
        const view = (await repo.list()).find((v) => v.record.id === id)!;
        const out = new Set<string>();
        for (const ck of view.checkpoints) {
          if (!ck.files) continue;
          for (const f of (await repo.tree(ck.files.tree)).files) {
            for (const c of f.chunks) out.add(c[0]);
          }
        }
        return out;
      });
    /** `rep run` of copy.py with `content` as the file, on `machine`; returns the experiment id. */
    const run = async (machine: string, content: Uint8Array, name: string) => {
      const src = join(data, `${name}.bin`);
      await Deno.writeFile(src, content);
      const before = new Set(await ids());
      const r = await rep(["-R", srv.url, "run", "--", "python3", "copy.py"], {
        cwd: work,
        env: envOf(machine, src),
      });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const id = (await ids()).find((x) => !before.has(x))!;
      assert.ok(id, "the run recorded an experiment");
      expected.set(id, content);
      return id;
    };
    const base = keystream(BASE, 1);
    /** `base` with `len` bytes at `offset` replaced. */
    const changed = (offset: number, len: number, seed: number) => {
      const b = base.slice();
      b.set(keystream(len, seed), offset);
      return b;
    };
    const added = async (fn: () => Promise<unknown>) => {
      const before = await storedBytes();
      await fn();
      return (await storedBytes()) - before;
    };
    try {
      await t.step(
        "a second experiment with the same 48 MiB file adds ≤ 15% of its size",
        async () => {
          const first = await added(() => run("a", base, "base"));
          assert.ok(first >= BASE, `the first experiment stored ${first} bytes`);
          const second = await added(() => run("a", base, "base"));
          assert.ok(second <= 0.15 * BASE, `same machine: ${second} bytes added`);
          const other = await added(() => run("b", base, "base"));
          assert.ok(other <= 0.15 * BASE, `another machine: ${other} bytes added`);
          console.log(
            `    added: first ${first}, same machine ${second}, another machine ${other}`,
          );
        },
      );

      await t.step("with 5% of it changed, ≤ 15%", async () => {
        const n = await added(() => run("b", changed(20 * MiB, 0.05 * BASE, 2), "five"));
        console.log(`    added for a 5% change: ${n}`);
        assert.ok(n <= 0.15 * BASE, `${n} bytes added for a 5% change`);
        assert.ok(n >= 0.05 * BASE, `${n} bytes: the change itself must be stored`);
      });

      await t.step(
        "concurrent writers on one repository stay correct, and later ones dedup",
        async () => {
          const procs = ["c", "d", "e"].map(async (m, i) => {
            const content = changed((5 + 10 * i) * MiB, 2 * MiB, 10 + i);
            const src = join(data, `conc-${m}.bin`);
            await Deno.writeFile(src, content);
            // Each writer in its own project folder (one output folder each), all in one repository.
            const cwd = join(dir, `work-${m}`);
            await Deno.mkdir(cwd);
            await Deno.copyFile(join(work, "copy.py"), join(cwd, "copy.py"));
            const child = new Deno.Command(Deno.execPath(), {
              args: [
                "run",
                "--quiet",
                ...PERMISSIONS,
                join(ROOT, "main.ts"),
                "-R",
                srv.url,
                "run",
                "--",
                "python3",
                "copy.py",
              ],
              cwd,
              env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...envOf(m, src) },
              stdin: "null",
              stdout: "piped",
              stderr: "piped",
            }).spawn();
            const out = await child.output();
            const dec = new TextDecoder();
            assert.equal(out.code, 0, dec.decode(out.stdout) + dec.decode(out.stderr));
            const id = /experiment ([0-9a-f]{7})/.exec(dec.decode(out.stderr))?.[1];
            assert.ok(id, "rep run named its experiment");
            return { prefix: id, content };
          });
          const done = await Promise.all(procs);
          const all = await ids();
          for (const d of done) {
            const id = all.find((x) => x.startsWith(d.prefix))!;
            expected.set(id, d.content);
          }
          // A writer after them knows all their chunks.
          const n = await added(() => run("f", changed(15 * MiB, 2 * MiB, 11), "again"));
          assert.ok(n <= 0.15 * BASE, `${n} bytes added after the concurrent writers`);
        },
      );

      await t.step("gc: a listed pack is not reused, a deleted one is not referenced", async () => {
        const unique = keystream(6 * MiB, 99);
        const g = await run("a", unique, "unique");
        const gChunks = await inProcess(async (repo) => {
          const view = (await repo.list()).find((v) => v.record.id === g)!;
          const tree = await repo.tree(view.checkpoints.at(-1)!.files!.tree);
          return tree.files.flatMap((f) => f.chunks.map((c) => c[3]));
        });
        const gPacks = [...await packsOf(g)];
        // Packs holding only the unique file's chunks (the others hold shared code chunks).
        const own = await inProcess(async (repo) => {
          const shared = new Set<string>();
          for (const v of await repo.list()) {
            if (v.record.id === g) continue;
            const trees = [v.record.code, ...v.checkpoints.map((c) => c.files)];
            for (const ref of trees) {
              if (!ref) continue;
              for (const f of (await repo.tree(ref.tree)).files) {
                for (const c of f.chunks) shared.add(c[0]);
              }
            }
          }
          return gPacks.filter((p) => !shared.has(p));
        });
        assert.ok(own.length >= 1, "the unique file has packs of its own");
        // Machine "stale" learns of those packs now, and then does not run again until they are
        // deleted.
        await run("stale", keystream(100_000, 5), "warm");
        assert.equal(
          (await rep(["-R", srv.url, "rm", g], { cwd: work, env: envOf("a", "") })).code,
          0,
        );
        await new Promise((r) => setTimeout(r, 1100));
        const gc1 = await rep(["-R", srv.url, "gc", "--grace", "1s"], {
          cwd: work,
          env: envOf("a", ""),
        });
        assert.equal(gc1.code, 0, gc1.stderr);
        assert.match(gc1.stdout, /listed \d+ unreferenced object/);
        // Listed: not reused, by a machine that saw the listing.
        const h = await run("a", unique, "unique");
        const hPacks = await packsOf(h);
        for (const p of own) assert.ok(!hPacks.has(p), "a pack listed by gc was reused");
        await new Promise((r) => setTimeout(r, 1100));
        const gc2 = await rep(["-R", srv.url, "gc", "--grace", "1s"], {
          cwd: work,
          env: envOf("a", ""),
        });
        assert.equal(gc2.code, 0, gc2.stderr);
        await inProcess(async (repo) => {
          for (const p of own) {
            assert.equal(await repo.store.head(packKey(p)), null, "pack deleted");
          }
          // No pack index lists a deleted pack.
          for await (const info of repo.store.list(PREFIX.packIndex)) {
            assert.ok(packIndexOfKey(info.key));
            const index = parsePackIndex(await repo.store.getBytes(info.key));
            for (const p of index.packs) assert.ok(!own.includes(p.id), "index of a deleted pack");
          }
          assert.equal((await Array.fromAsync(repo.store.list(PREFIX.gc))).length, 0);
        });
        const storeUrl = await inProcess((repo) => Promise.resolve(repo.store.url));
        const offered = await withEnv({ REP_CACHE_DIR: join(dir, "cache-stale") }, () => {
          const cache = ChunkCache.open(storeUrl)!;
          try {
            return Promise.resolve(gChunks.map((h) => cache.lookup(h)?.[0]));
          } finally {
            cache.close();
          }
        });
        assert.ok(offered.every((p) => p && own.includes(p)), "the stale cache offers the packs");
        // Deleted, and the listing gone: the stale cache still offers the packs; they are checked,
        // found missing and not referenced.
        const i = await run("stale", unique, "unique");
        const iPacks = await packsOf(i);
        for (const p of own) assert.ok(!iPacks.has(p), "a deleted pack was referenced");
      });

      await t.step("rep verify passes and every checkout is byte-exact", async () => {
        const v = await rep(["-R", srv.url, "verify"], { cwd: work, env: envOf("a", "") });
        assert.equal(v.code, 0, v.stdout + v.stderr);
        const live = new Set(await ids());
        for (const [id, content] of expected) {
          if (!live.has(id)) continue; // removed by the gc step
          const dest = join(dir, `co-${id}`);
          const r = await rep(["-R", srv.url, "checkout", id, "--no-code", "-o", dest], {
            cwd: work,
            env: envOf("reader", ""),
          });
          assert.equal(r.code, 0, r.stderr);
          // The script's model.bin (under output/, or at the top for paths relative to it).
          const got = await Deno.readFile(join(dest, "output", "model.bin"))
            .catch(() => Deno.readFile(join(dest, "model.bin")));
          assert.equal(sha(got), sha(content), id);
          await Deno.remove(dest, { recursive: true });
        }
        assert.equal(live.size, expected.size - 1);
      });
    } finally {
      await srv.stop();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
