/**
 * Security: hostile repositories (crafted trees, lying sizes and hashes) must never make checkout
 * write outside its target or return wrong bytes; secrets given to `rep run` never reach the
 * repository; the local store honours the user's umask.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { tempRepo } from "./helpers.ts";
import { exists, openRepo, readAll, runRep, walkAll } from "./fault_helpers.ts";
import { CorruptObjectError } from "../src/errors.ts";
import type { FileEntry } from "../src/format/records.ts";

const CACHE = await Deno.makeTempDir({ prefix: "rep-security-cache-" });
Deno.env.set("REP_CACHE_DIR", CACHE);
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(CACHE, { recursive: true });
  } catch {
    // gone
  }
});

const enc = new TextEncoder();
const hex = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const bin = (h: string) => Uint8Array.from(h.match(/../g)!.map((x) => parseInt(x, 16)));

// ---- crafting a hostile repository ---------------------------------------------------------------

interface CraftFile {
  path: string;
  content: Uint8Array;
  /** Override what the tree says. */
  size?: number;
  chunkHash?: string;
  chunkLength?: number;
  chunkOffset?: number;
}

/**
 * Write a repository by hand (docs/format.md): one pack holding every file's bytes, a tree naming
 * them (stored under the sha256 of its bytes), and an experiment with one checkpoint. Returns the
 * checkpoint id.
 */
async function craft(
  root: string,
  files: CraftFile[],
  o: { truncatePack?: number; rawTree?: unknown; badTreeName?: boolean } = {},
): Promise<{ ck: string; exp: string; tree: string; pack: string }> {
  const pack = "ab".repeat(16);
  const exp = "1".repeat(32);
  const ck = "2".repeat(32);
  const parts: Uint8Array[] = [];
  let off = 0;
  const entries = files.map((f) => {
    const h = hex(f.content);
    const e = {
      path: f.path,
      size: f.size ?? f.content.length,
      hash: hex(bin(h)),
      mode: 0o644,
      chunks: [[
        pack,
        f.chunkOffset ?? off,
        f.chunkLength ?? f.content.length,
        f.chunkHash ?? h,
      ]],
    };
    parts.push(f.content);
    off += f.content.length;
    return e;
  });
  let packBytes = new Uint8Array(off);
  let o2 = 0;
  for (const p of parts) {
    packBytes.set(p, o2);
    o2 += p.length;
  }
  if (o.truncatePack !== undefined) packBytes = packBytes.subarray(0, o.truncatePack);
  const treeBytes = enc.encode(JSON.stringify(o.rawTree ?? { format: 1, files: entries }));
  const tree = o.badTreeName ? "c".repeat(64) : hex(treeBytes);
  const w = async (key: string, data: Uint8Array | string) => {
    const p = join(root, key);
    await Deno.mkdir(join(p, ".."), { recursive: true });
    await Deno.writeFile(p, typeof data === "string" ? enc.encode(data) : data);
  };
  await w("repository.json", JSON.stringify({ format: 1 }));
  await w(`packs/${pack}`, packBytes);
  await w(`trees/${tree}.json`, treeBytes);
  const now = new Date().toISOString();
  await w(
    `experiments/${exp}/experiment.json`,
    JSON.stringify({
      format: 1,
      type: "experiment",
      id: exp,
      created: now,
      params: {},
      command: [],
      cwd: "/",
      code: null,
      tags: [],
      primary_metric: null,
      provenance: {},
    }),
  );
  await w(
    `experiments/${exp}/checkpoints/${ck}.json`,
    JSON.stringify({
      format: 1,
      type: "checkpoint",
      id: ck,
      experiment: exp,
      created: now,
      step: 0,
      metrics: {},
      files: { tree, files: entries.length, size: 1 },
      torn: [],
    }),
  );
  await w(
    `experiments/${exp}/status.json`,
    JSON.stringify({ format: 1, type: "status", status: "succeeded", exit_code: 0, finished: now }),
  );
  return { ck, exp, tree, pack };
}

/** A test folder: `repo` (crafted), `target` (checkout), `outside` (must stay empty). */
async function hostileSetup() {
  const t = await tempRepo();
  const target = join(t.dir, "target");
  const outside = join(t.dir, "outside");
  await Deno.mkdir(target);
  await Deno.mkdir(outside);
  return { ...t, target, outside };
}

/** Everything under the test folder except the repository and the target. */
async function strayFiles(dir: string): Promise<string[]> {
  return (await walkAll(dir)).filter((p) =>
    !/^(repo|target|cache)(\/|$)/.test(p) && p !== "outside" && p !== "outside/victim.txt"
  );
}

const PAYLOAD = enc.encode("pwned\n");

Deno.test("security: tree paths that leave the target are refused; nothing is written anywhere", async () => {
  const bad = [
    "../escape.txt",
    "a/../../escape.txt",
    "a/../b.txt",
    "./a.txt",
    "a//b.txt",
    "a/b/",
    "a\\..\\..\\escape.txt",
    "..\\escape.txt",
    "C:/escape.txt",
    "a\0/../../escape.txt",
    "",
    "..",
    ".",
  ];
  for (const path of bad) {
    const t = await hostileSetup();
    try {
      await craft(t.repo, [{ path: "ok.txt", content: PAYLOAD }, { path, content: PAYLOAD }]);
      // Absolute paths: here too, the escape would land in the test folder.
      const r = await runRep(["checkout", "2222222", "-o", t.target], { cwd: t.dir, env: t.env });
      assert.equal(r.code, 1, `${JSON.stringify(path)}: ${r.stderr}`);
      assert.match(r.stderr, /Corrupt|Refusing/);
      assert.deepEqual(
        await walkAll(t.target),
        [],
        `${JSON.stringify(path)} wrote into the target`,
      );
      assert.deepEqual(await strayFiles(t.dir), [], `${JSON.stringify(path)} wrote outside`);
    } finally {
      await t.cleanup();
    }
  }
  // An absolute path pointing into the test folder.
  const t = await hostileSetup();
  try {
    const abs = join(t.outside, "abs.txt");
    await craft(t.repo, [{ path: abs, content: PAYLOAD }]);
    const r = await runRep(["checkout", "2222222", "-o", t.target], { cwd: t.dir, env: t.env });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(await exists(abs), false);
  } finally {
    await t.cleanup();
  }
});

Deno.test("security: checkout never follows a symlink out of the target, nor writes into FIFOs or devices", async () => {
  const cases: {
    name: string;
    files: string[];
    prepare: (target: string, outside: string) => Promise<void>;
    force?: boolean;
    /** Expected exit code; 0 means the entry was replaced in place, never followed. */
    code: number;
  }[] = [
    {
      name: "symlinked folder",
      files: ["link/pwn.txt"],
      prepare: (tg, out) => Deno.symlink(out, join(tg, "link")),
      code: 1,
    },
    {
      name: "symlinked folder, --force",
      files: ["link/pwn.txt"],
      prepare: (tg, out) => Deno.symlink(out, join(tg, "link")),
      force: true,
      code: 1,
    },
    {
      name: "nested symlinked folder",
      files: ["a/b/c/pwn.txt"],
      prepare: async (tg, out) => {
        await Deno.mkdir(join(tg, "a"));
        await Deno.symlink(out, join(tg, "a", "b"));
      },
      force: true,
      code: 1,
    },
    {
      name: "relative symlink to ..",
      files: ["up/outside/pwn.txt"],
      prepare: (tg) => Deno.symlink("..", join(tg, "up")),
      force: true,
      code: 1,
    },
    {
      name: "symlinked file",
      files: ["model.bin"],
      prepare: async (tg, out) => {
        await Deno.writeTextFile(join(out, "victim.txt"), "victim\n");
        await Deno.symlink(join(out, "victim.txt"), join(tg, "model.bin"));
      },
      code: 1,
    },
    {
      name: "symlinked file, --force",
      files: ["model.bin"],
      prepare: async (tg, out) => {
        await Deno.writeTextFile(join(out, "victim.txt"), "victim\n");
        await Deno.symlink(join(out, "victim.txt"), join(tg, "model.bin"));
      },
      force: true,
      code: 0,
    },
    {
      name: "FIFO",
      files: ["fifo"],
      prepare: async (tg) => {
        const r = await new Deno.Command("mkfifo", { args: [join(tg, "fifo")] }).output();
        assert.ok(r.success);
      },
      code: 1,
    },
    {
      name: "FIFO, --force",
      files: ["fifo"],
      prepare: async (tg) => {
        await new Deno.Command("mkfifo", { args: [join(tg, "fifo")] }).output();
      },
      force: true,
      code: 1, // refused (not replaced): never opened, so no hang
    },
    {
      name: "FIFO as a parent folder",
      files: ["fifo/x.txt"],
      prepare: async (tg) => {
        await new Deno.Command("mkfifo", { args: [join(tg, "fifo")] }).output();
      },
      force: true,
      code: 1,
    },
  ];
  // A character device (a copy of /dev/null), where mknod is allowed.
  if (Deno.uid() === 0) {
    cases.push({
      name: "device file",
      files: ["dev"],
      prepare: async (tg) => {
        await new Deno.Command("mknod", { args: [join(tg, "dev"), "c", "1", "3"] }).output();
      },
      code: 1,
    });
  }
  for (const c of cases) {
    const t = await hostileSetup();
    try {
      await craft(t.repo, c.files.map((path) => ({ path, content: PAYLOAD })));
      await c.prepare(t.target, t.outside);
      const args = ["checkout", "2222222", "-o", t.target, ...(c.force ? ["--force"] : [])];
      const r = await runRep(args, { cwd: t.dir, env: t.env, timeoutMs: 20_000 });
      assert.equal(r.signal, null, `${c.name}: hung`);
      assert.equal(r.code, c.code, `${c.name}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /unexpected/, c.name);
      // Nothing new outside the target; a victim behind a symlink is untouched.
      const out = await walkAll(t.outside);
      assert.ok(out.every((p) => p === "victim.txt"), `${c.name}: wrote ${out} outside`);
      if (out.length) {
        assert.equal(await Deno.readTextFile(join(t.outside, "victim.txt")), "victim\n", c.name);
      }
      assert.deepEqual(await strayFiles(t.dir), [], c.name);
      if (c.code === 0) {
        // The entry itself was replaced by a regular file with the checkpoint's bytes.
        const st = await Deno.lstat(join(t.target, c.files[0]!));
        assert.ok(st.isFile, `${c.name}: not replaced by a regular file`);
        assert.deepEqual(await Deno.readFile(join(t.target, c.files[0]!)), PAYLOAD);
      }
    } finally {
      await t.cleanup();
    }
  }
});

Deno.test("security: lying sizes, hashes and short packs are caught on read with CorruptObjectError", async () => {
  const content = enc.encode("0123456789");
  const cases: [string, CraftFile[], Parameters<typeof craft>[2]][] = [
    ["size larger than its chunks", [{ path: "m.bin", content, size: 20 }], {}],
    ["size smaller than its chunks", [{ path: "m.bin", content, size: 3 }], {}],
    ["chunk hash wrong", [{ path: "m.bin", content, chunkHash: "e".repeat(64) }], {}],
    ["pack shorter than the chunk", [{ path: "m.bin", content }], { truncatePack: 4 }],
    ["chunk past the end of the pack", [{ path: "m.bin", content, chunkOffset: 1 << 20 }], {}],
    [
      "huge chunk length",
      [{ path: "m.bin", content, chunkLength: 2 ** 40, size: 2 ** 40 }],
      {},
    ],
    ["tree that does not hash to its name", [{ path: "m.bin", content }], { badTreeName: true }],
    ["tree that is not JSON", [{ path: "m.bin", content }], { rawTree: "{" }],
  ];
  for (const [name, files, opts] of cases) {
    const t = await hostileSetup();
    try {
      const { tree } = await craft(t.repo, files, opts);
      // The library: reading the tree or the file throws CorruptObjectError.
      const repo = await openRepo(t.repo);
      let entries: FileEntry[] = [];
      let err: unknown = null;
      try {
        entries = (await repo.tree(tree)).files;
        for (const f of entries) await readAll(repo.fileStream(f));
      } catch (e) {
        err = e;
      }
      await repo.close();
      assert.ok(err instanceof CorruptObjectError, `${name}: ${err}`);
      // The CLI: checkout fails cleanly, leaving no file (or temp file) behind.
      const r = await runRep(["checkout", "2222222", "-o", t.target], { cwd: t.dir, env: t.env });
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      assert.match(r.stderr, /Corrupt|Missing/, name);
      assert.doesNotMatch(r.stderr, /unexpected/, name);
      assert.deepEqual(await walkAll(t.target), [], `${name}: left files in the target`);
      const v = await runRep(["verify"], { cwd: t.dir, env: t.env });
      assert.equal(v.code, 1, `${name}: verify passed`);
    } finally {
      await t.cleanup();
    }
  }
});

// ---- secrets ---------------------------------------------------------------------------------------

Deno.test("security: secrets in rep run's environment and argv never reach the repository", async () => {
  const t = await tempRepo();
  try {
    const work = join(t.dir, "work");
    await Deno.mkdir(work);
    // A git work tree whose remote carries a token.
    const git = (...args: string[]) =>
      new Deno.Command("git", { args, cwd: work, stdout: "null", stderr: "null" }).output();
    await git("init", "-q");
    await git("remote", "add", "origin", "https://ada:GitRemoteTok3n9@example.com/r.git");
    await Deno.writeTextFile(
      join(work, "train.py"),
      `import json, os
out = os.environ["REP_OUTPUT_DIR"]
open(os.path.join(out, "m.bin"), "w").write("weights")
with open(os.environ["REP_METRICS_FILE"], "a") as f:
    f.write(json.dumps({"step": 0, "loss": 1}) + "\\n")
print("training done")
`,
    );
    const secrets = {
      AWS_SECRET_ACCESS_KEY: "AwsSecretValue0001",
      AWS_SESSION_TOKEN: "AwsSessionValue0002",
      GITHUB_TOKEN: "ghp_GithubTokenValue0003",
      MY_PASSWORD: "MyPasswordValue0004",
      HF_API_KEY: "HfApiKeyValue0005",
      DATABASE_URL: "postgres://dbuser:DbUrlPassword0006@db.example.com:5432/x",
      WANDB_CREDENTIALS: "WandbCredValue0007",
    };
    const argvSecrets = [
      "--api-key",
      "ArgvApiKeyValue0101",
      "--password=ArgvPasswordValue0102",
      "token=ArgvTokenValue0103",
      "--db",
      "mysql://root:ArgvUrlPassword0104@h/db",
      "--secret_key",
      "ArgvSecretValue0105",
    ];
    const r = await runRep(
      ["run", "-p", "auth_token=ParamTokenValue0201", "--", "python3", "train.py", ...argvSecrets],
      { cwd: work, env: { ...t.env, ...secrets } },
    );
    assert.equal(r.code, 0, r.stderr);
    const values = [
      ...Object.values(secrets).map((v) => v.includes("://") ? /:([^:@]+)@/.exec(v)![1]! : v),
      "ArgvApiKeyValue0101",
      "ArgvPasswordValue0102",
      "ArgvTokenValue0103",
      "ArgvUrlPassword0104",
      "ArgvSecretValue0105",
      "ParamTokenValue0201",
      "GitRemoteTok3n9",
    ];
    // Every byte of every file under the repository folder.
    const leaks: string[] = [];
    for (const rel of await walkAll(t.repo)) {
      const st = await Deno.lstat(join(t.repo, rel));
      if (!st.isFile) continue;
      const bytes = await Deno.readFile(join(t.repo, rel));
      const text = new TextDecoder("latin1").decode(bytes);
      for (const v of values) if (text.includes(v)) leaks.push(`${v} in ${rel}`);
    }
    assert.deepEqual(leaks, []);
    // The run was still recorded with the non-secret parts.
    const show = await runRep(["ls", "--json"], { cwd: work, env: t.env });
    const [e] = JSON.parse(show.stdout);
    assert.equal(e.num_checkpoints, 1);
    assert.ok(e.command.includes("--api-key"));
  } finally {
    await t.cleanup();
  }
});

// ---- file modes ------------------------------------------------------------------------------------

for (const umask of ["077", "022"]) {
  Deno.test(`security: the local store honours umask ${umask}; nothing is world-writable`, async () => {
    const t = await tempRepo();
    try {
      const work = join(t.dir, "work");
      await Deno.mkdir(work);
      await Deno.writeTextFile(
        join(work, "train.py"),
        `import json, os
out = os.environ["REP_OUTPUT_DIR"]
for step in range(3):
    open(os.path.join(out, "m.bin"), "wb").write(os.urandom(100000))
    with open(os.environ["REP_METRICS_FILE"], "a") as f:
        f.write(json.dumps({"step": step, "loss": 1}) + "\\n")
`,
      );
      const sh = (args: string[]) =>
        runRep(args, { cwd: work, env: t.env, shellPrefix: `umask ${umask}` });
      const r = await sh(["run", "--", "python3", "train.py"]);
      assert.equal(r.code, 0, r.stderr);
      const ls = await sh(["ls"]);
      assert.equal(ls.code, 0);
      const rm = await sh(["rm", JSON.parse((await sh(["ls", "--json"])).stdout)[0].id]);
      assert.equal(rm.code, 0, rm.stderr);
      assert.equal((await sh(["gc", "--grace", "0"])).code, 0);
      const mask = parseInt(umask, 8);
      const bad: string[] = [];
      for (const rel of ["", ...await walkAll(t.repo)]) {
        const st = await Deno.lstat(join(t.repo, rel));
        const mode = st.mode! & 0o777;
        if (mode & mask || mode & 0o002) bad.push(`${rel || "."} ${mode.toString(8)}`);
      }
      assert.deepEqual(bad, [], `modes not within umask ${umask}`);
      assert.ok(
        (await walkAll(t.repo)).some((p) => p.startsWith("gc/") || p.startsWith("changes/")),
      );
    } finally {
      await t.cleanup();
    }
  });
}
