// A library script that ends without stop(): failed at once after an uncaught error, succeeded
// after a plain end, and in both cases its checkpoints are uploaded before the process exits.
import assert from "node:assert/strict";
import { join } from "node:path";
import { PERMISSIONS, rep, ROOT, tempRepo } from "./helpers.ts";

const MOD = join(ROOT, "mod.ts");

/** Run a script that records one checkpoint of `weights.bin`, then does `ending`. */
async function script(ending: string) {
  const t = await tempRepo();
  await Deno.writeTextFile(join(t.dir, "weights.bin"), "weights of step 3");
  await Deno.writeTextFile(
    join(t.dir, "train.ts"),
    `import { init } from "${MOD}";
const exp = await init({ path: null, params: { lr: 0.1 } });
await exp.checkpoint({ path: "weights.bin", step: 3, metrics: { loss: 0.5 } });
console.log(exp.id);
${ending}
`,
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...PERMISSIONS, "train.ts"],
    cwd: t.dir,
    env: { ...t.env, NO_COLOR: "1", RUST_BACKTRACE: "0" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { t, code: out.code, id: dec.decode(out.stdout).trim(), stderr: dec.decode(out.stderr) };
}

/** What a reader sees right after the script exited: status, checkpoint files, queue left. */
async function seen(t: Awaited<ReturnType<typeof tempRepo>>, id: string) {
  // Straight from the store: no rep command has had a chance to upload a leftover queue.
  const staging = join(t.repo, "staging");
  const queued = await Array.fromAsync(Deno.readDir(staging)).catch(() => []);
  const status = JSON.parse(
    await Deno.readTextFile(join(t.repo, "experiments", id, "status.json")),
  );
  const show = await rep(["show", id, "--json"], { env: t.env });
  assert.equal(show.code, 0, show.stderr);
  const j = JSON.parse(show.stdout);
  return { queued: queued.length, status: status.status, exit: status.exit_code, show: j };
}

for (
  const [name, ending] of [
    ["an uncaught error", 'throw new Error("boom in training");'],
    ["an unhandled rejection", 'Promise.reject(new Error("boom in training"));'],
    ["an error thrown in a timer", 'setTimeout(() => { throw new Error("boom in training"); });'],
  ]
) {
  Deno.test(`a library script that dies of ${name} reads as failed at once, uploaded`, async () => {
    const { t, code, id, stderr } = await script(ending!);
    try {
      assert.equal(code, 1, stderr);
      // The error is still reported, as Deno reports it.
      assert.match(stderr, /error: Uncaught .*boom in training/);
      assert.match(stderr, new RegExp(`marking experiment ${id.slice(0, 7)} failed`));
      const s = await seen(t, id);
      assert.equal(s.status, "failed");
      assert.equal(s.show.status, "failed");
      assert.equal(s.queued, 0);
      assert.equal(s.show.checkpoints.length, 1);
      assert.equal(s.show.checkpoints[0].step, 3);
      assert.deepEqual(s.show.checkpoints[0].files.map((f: { path: string }) => f.path), [
        "weights.bin",
      ]);
    } finally {
      await t.cleanup();
    }
  });
}

Deno.test("a library script that ends without stop() reads as succeeded, uploaded", async () => {
  const { t, code, id, stderr } = await script("// no stop()");
  try {
    assert.equal(code, 0, stderr);
    assert.equal(stderr, "");
    const s = await seen(t, id);
    assert.equal(s.status, "succeeded");
    assert.equal(s.queued, 0);
    assert.equal(s.show.checkpoints.length, 1);
  } finally {
    await t.cleanup();
  }
});

Deno.test("a library script that stops its experiment, then throws, keeps its status", async () => {
  const { t, code, id, stderr } = await script(
    'await exp.stop("stopped");\nthrow new Error("after stop");',
  );
  try {
    assert.equal(code, 1);
    // Deno's own report: rep has nothing to finish, so it stays out of the way.
    assert.match(stderr, /error: Uncaught.*after stop/s);
    assert.doesNotMatch(stderr, /rep:/);
    assert.equal((await seen(t, id)).status, "stopped");
  } finally {
    await t.cleanup();
  }
});
