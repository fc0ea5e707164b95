// Plain errors for a repository URL that holds no repository, and the small facts every record
// and listing shows (user, duration, the help's precedence).
import assert from "node:assert/strict";
import { userInfo } from "node:os";
import { join } from "node:path";
import { makeExperiment, PERMISSIONS, rep, ROOT, tempRepo } from "./helpers.ts";
import { jsonBytes } from "../src/util.ts";
import { Repository } from "../src/repository.ts";
import { checkpointKey, experimentKey, heartbeatKey } from "../src/format/layout.ts";

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("read commands on a path that holds no repository say so and create nothing", async () => {
  const t = await tempRepo();
  try {
    const typo = join(t.dir, "typo", "path");
    for (
      const args of [
        ["ls"],
        ["ps"],
        ["show", "abc1234"],
        ["diff", "abc1234", "def5678"],
        ["logs", "abc1234"],
        ["checkout", "abc1234", "-o", join(t.dir, "out")],
        ["verify"],
        ["gc"],
        ["rm", "abc1234"],
        ["ui", "--port", "0"],
      ]
    ) {
      const r = await rep(["-R", typo, ...args], { env: { REP_CACHE_DIR: join(t.dir, "cache") } });
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      assert.equal(r.stdout, "");
      assert.match(r.stderr, new RegExp(`error: No repository at ${typo}\n`), args[0]!);
      // The hint names where the URL came from and what creates a repository.
      assert.match(
        r.stderr,
        new RegExp(`hint: It comes from -R "${typo}": check it\\. Only rep run`),
      );
    }
    // rep push only uploads what a run queued: with no repository there is nothing to upload.
    const push = await rep(["-R", typo, "push"], { env: { REP_CACHE_DIR: join(t.dir, "cache") } });
    assert.equal(push.code, 0, push.stderr);
    assert.equal(await exists(join(t.dir, "typo")), false, "a read command created the folder");
  } finally {
    await t.cleanup();
  }
});

Deno.test("the no-repository hint names REP_REPOSITORY, rep.yaml or the default .rep/", async () => {
  const t = await tempRepo();
  try {
    const env = { REP_CACHE_DIR: join(t.dir, "cache") };
    let r = await rep(["ls"], { env: { ...env, REP_REPOSITORY: join(t.dir, "nope") } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /hint: It comes from REP_REPOSITORY="[^"]*nope": check it/);

    const project = join(t.dir, "project");
    await Deno.mkdir(join(project, "sub"), { recursive: true });
    await Deno.writeTextFile(join(project, "rep.yaml"), "repository: ../missing\n");
    r = await rep(["ls"], { cwd: join(project, "sub"), env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`error: No repository at ${join(t.dir, "missing")}\n`));
    assert.match(r.stderr, /It comes from "repository: \.\.\/missing" in .*rep\.yaml/);

    const fresh = join(t.dir, "fresh");
    await Deno.mkdir(fresh);
    r = await rep(["ls"], { cwd: fresh, env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: No repository here: .*fresh\/\.rep does not exist/);
    assert.match(r.stderr, /hint: Record an experiment first \(rep run -- python train\.py/);
    assert.equal(await exists(join(fresh, ".rep")), false);
  } finally {
    await t.cleanup();
  }
});

Deno.test("a repository path that is a file is refused, for readers and writers", async () => {
  const t = await tempRepo();
  try {
    const file = join(t.dir, "train.py");
    await Deno.writeTextFile(file, "print('hi')\n");
    const env = { REP_CACHE_DIR: join(t.dir, "cache") };
    for (
      const [path, why] of [[file, "it is a file, not a folder"], [
        join(file, "repo"),
        "part of its path is a file",
      ]]
    ) {
      for (const args of [["ls"], ["run", "--", "true"]]) {
        const r = await rep(["-R", path!, ...args], { cwd: t.dir, env });
        assert.equal(r.code, 1, r.stderr);
        assert.doesNotMatch(r.stderr, /os error/);
        assert.match(r.stderr, new RegExp(`error: Cannot use ${path} as a repository: ${why}\n`));
        assert.match(
          r.stderr,
          /A repository is a folder, s3:\/\/bucket\/prefix or gs:\/\/bucket\/prefix/,
        );
      }
    }
    assert.equal(await Deno.readTextFile(file), "print('hi')\n");
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep run creates the repository it is pointed at; readers then find it", async () => {
  const t = await tempRepo();
  try {
    const r = await rep(["run", "--", "true"], { cwd: t.dir, env: t.env });
    assert.equal(r.code, 0, r.stderr);
    const ls = await rep(["ls", "-q"], { env: t.env });
    assert.equal(ls.code, 0, ls.stderr);
    assert.equal(ls.stdout.trim().split("\n").length, 1);
  } finally {
    await t.cleanup();
  }
});

Deno.test("user falls back to the account name when $USER is unset", async () => {
  const t = await tempRepo();
  try {
    await Deno.writeTextFile(
      join(t.dir, "rec.ts"),
      `import { init } from "${join(ROOT, "mod.ts")}";
const exp = await init({ path: null });
await exp.stop();
console.log(exp.record.user);
`,
    );
    const withoutUser = Deno.env.toObject();
    for (const k of ["USER", "USERNAME", "LOGNAME"]) delete withoutUser[k];
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", ...PERMISSIONS, "rec.ts"],
      cwd: t.dir,
      clearEnv: true,
      env: { ...withoutUser, ...t.env, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const user = new TextDecoder().decode(out.stdout).trim();
    assert.equal(user, userInfo().username);
    assert.notEqual(user, "");
  } finally {
    await t.cleanup();
  }
});

Deno.test("a crashed experiment's duration runs to its last sign of life", async () => {
  const t = await tempRepo();
  try {
    const e = await makeExperiment(t.repo, {
      status: "running",
      checkpoints: [{ step: 1, metrics: { loss: 1 } }],
    });
    const repo = await Repository.open(t.repo, { cache: false });
    // Started an hour ago, its only heartbeat written at the start, a checkpoint 42 s later, then
    // it died before the next heartbeat (a library script that threw, a killed rep).
    const created = Date.now() - 3600_000;
    const rewrite = async (key: string, field: string, time: number) => {
      const v = JSON.parse(new TextDecoder().decode(await repo.store.getBytes(key)));
      v[field] = new Date(time).toISOString();
      await repo.store.put(key, jsonBytes(v));
    };
    await rewrite(experimentKey(e.id), "created", created);
    await rewrite(heartbeatKey(e.id), "updated", created + 200);
    await rewrite(checkpointKey(e.id, e.checkpoints[0]!), "created", created + 42_000);
    await repo.close();
    const r = await rep(["show", e.id], { env: t.env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /status: +crashed/);
    assert.match(r.stdout, /duration: +42s\n/, r.stdout);
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep --help lists the repository precedence in the order rep applies it", async () => {
  const r = await rep(["--help"]);
  assert.equal(r.code, 0);
  const at = (s: string) => r.stdout.indexOf(s);
  assert.ok(at("-R, --repository URL") > 0);
  assert.ok(at("-R, --repository URL") < at("REP_REPOSITORY"));
  assert.ok(at("REP_REPOSITORY") < at("rep.yaml"), r.stdout);
  assert.ok(at("rep.yaml") < at(".rep/ folder found upward"), r.stdout);
  assert.ok(at(".rep/ folder found upward") < at(".rep/ here"), r.stdout);
});
