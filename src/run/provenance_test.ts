import assert from "node:assert/strict";
import { join } from "node:path";
import {
  captureCommand,
  collectProvenance,
  gitInfo,
  isPythonCommand,
  isSecretName,
  parseNvidiaSmiCsv,
  REDACTED,
  redactEnv,
  redactValue,
} from "./provenance.ts";

/** Run git in `dir` with a fixed identity, failing the test on error. */
async function git(dir: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("git", {
    args: ["-c", "user.name=Test", "-c", "user.email=test@example.com", "-C", dir, ...args],
    stdin: "null",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `git ${args.join(" ")}: ${err}`);
  return new TextDecoder().decode(out.stdout).trim();
}

/** A temp repo with one commit, a modified file, a staged file, an untracked and an ignored one. */
async function makeRepo(): Promise<string> {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "rep-prov-" }));
  await git(dir, "init", "-q", "-b", "main");
  await Deno.writeTextFile(join(dir, "train.py"), "print('v1')\n");
  await Deno.writeTextFile(join(dir, "README.md"), "hello\n");
  await Deno.writeTextFile(join(dir, ".gitignore"), "*.log\n");
  await git(dir, "add", ".");
  await git(dir, "commit", "-q", "-m", "first");
  await Deno.writeTextFile(join(dir, "train.py"), "print('v2')\n");
  await Deno.writeTextFile(join(dir, "staged.py"), "x = 1\n");
  await git(dir, "add", "staged.py");
  await Deno.mkdir(join(dir, "sub"));
  await Deno.writeTextFile(join(dir, "sub", "new file.txt"), "new\n");
  await Deno.writeTextFile(join(dir, "run.log"), "ignored\n");
  return dir;
}

Deno.test("gitInfo() reports commit, branch, dirty, diff and untracked files", async () => {
  const dir = await makeRepo();
  try {
    const commit = await git(dir, "rev-parse", "HEAD");
    const info = await gitInfo(join(dir, "sub"));
    assert.ok(info);
    assert.equal(info.root, dir);
    assert.equal(info.commit, commit);
    assert.match(info.commit!, /^[0-9a-f]{40}$/);
    assert.equal(info.branch, "main");
    assert.equal(info.remote, null);
    assert.equal(info.dirty, true);
    assert.equal(info.diffTruncated, false);
    assert.match(info.diff, /^diff --git a\/staged\.py b\/staged\.py$/m);
    assert.match(info.diff, /^diff --git a\/train\.py b\/train\.py$/m);
    assert.match(info.diff, /^-print\('v1'\)$/m);
    assert.match(info.diff, /^\+print\('v2'\)$/m);
    assert.deepEqual(info.untracked, ["sub/new file.txt"]);
    assert.equal(info.untrackedTruncated, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gitInfo() diff applies cleanly to the commit", async () => {
  const dir = await makeRepo();
  const clone = await Deno.realPath(await Deno.makeTempDir({ prefix: "rep-prov-clone-" }));
  try {
    const info = await gitInfo(dir);
    await git(clone, "clone", "-q", dir, ".");
    await Deno.writeTextFile(join(clone, "patch.diff"), info!.diff);
    await git(clone, "apply", "patch.diff");
    assert.equal(await Deno.readTextFile(join(clone, "train.py")), "print('v2')\n");
    assert.equal(await Deno.readTextFile(join(clone, "staged.py")), "x = 1\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(clone, { recursive: true });
  }
});

Deno.test("gitInfo() reports a clean tree, a detached HEAD and a redacted remote", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "rep-prov-" }));
  try {
    await git(dir, "init", "-q", "-b", "main");
    await Deno.writeTextFile(join(dir, "a.txt"), "a\n");
    await git(dir, "add", ".");
    await git(dir, "commit", "-q", "-m", "one");
    await git(dir, "remote", "add", "origin", "https://me:hunter2@example.com/x.git");
    let info = await gitInfo(dir);
    assert.equal(info?.dirty, false);
    assert.equal(info?.diff, "");
    assert.deepEqual(info?.untracked, []);
    assert.equal(info?.remote, `https://me:${REDACTED}@example.com/x.git`);
    await git(dir, "checkout", "-q", "--detach");
    info = await gitInfo(dir);
    assert.equal(info?.branch, null);
    assert.match(info?.commit ?? "", /^[0-9a-f]{40}$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gitInfo() handles a repository without commits", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "rep-prov-" }));
  try {
    await git(dir, "init", "-q", "-b", "main");
    await Deno.writeTextFile(join(dir, "a.txt"), "a\n");
    await Deno.writeTextFile(join(dir, "b.txt"), "b\n");
    await git(dir, "add", "a.txt");
    const info = await gitInfo(dir);
    assert.equal(info?.commit, null);
    assert.equal(info?.branch, "main");
    assert.equal(info?.dirty, true);
    assert.match(info?.diff ?? "", /^\+a$/m);
    assert.deepEqual(info?.untracked, ["b.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gitInfo() truncates a large diff at a line end", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "rep-prov-" }));
  try {
    await git(dir, "init", "-q", "-b", "main");
    await Deno.writeTextFile(join(dir, "big.txt"), "");
    await git(dir, "add", ".");
    await git(dir, "commit", "-q", "-m", "one");
    await Deno.writeTextFile(join(dir, "big.txt"), "line of text\n".repeat(10_000));
    const warnings: string[] = [];
    const info = await gitInfo(dir, { maxDiffBytes: 1000, warnings });
    assert.equal(info?.diffTruncated, true);
    assert.equal(info?.dirty, true);
    assert.ok(info!.diff.length <= 1000);
    assert.ok(info!.diff.endsWith("\n"));
    assert.match(warnings.join("\n"), /larger than 1000 bytes/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gitInfo() returns null outside a work tree", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rep-prov-" });
  try {
    assert.equal(await gitInfo(dir), null);
    assert.equal(await gitInfo(join(dir, "missing")), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("collectProvenance() records host, platform, hardware, git and python", async () => {
  const dir = await makeRepo();
  try {
    const p = await collectProvenance({
      cwd: dir,
      command: ["python3", "train.py", "--lr", "0.1"],
      env: { PATH: Deno.env.get("PATH") ?? "", HOME: "/root", API_TOKEN: "abc", LANG: "C.UTF-8" },
    });
    assert.ok(p.host.length > 0);
    assert.equal(p.platform.os, Deno.build.os);
    assert.equal(p.platform.arch, Deno.build.arch);
    assert.ok(p.cpu.count > 0);
    assert.ok((p.memoryBytes ?? 0) > 0);
    assert.ok(p.gpu === null || Array.isArray(p.gpu));
    assert.equal(p.git?.branch, "main");
    assert.equal(p.git?.dirty, true);
    assert.ok(p.python);
    assert.equal(p.python.interpreter, "python3");
    assert.match(p.python.version ?? "", /^3\.\d+\.\d+/);
    assert.equal(p.python.implementation, "CPython");
    assert.ok(p.python.executable);
    assert.ok(p.python.packages?.some((s) => /^pip==\d/.test(s)), String(p.python.packages));
    assert.ok(p.python.packages!.every((s) => s.includes("==")));
    assert.deepEqual(p.env, {
      API_TOKEN: REDACTED,
      HOME: "/root",
      LANG: "C.UTF-8",
      PATH: Deno.env.get("PATH") ?? "",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("collectProvenance() never throws for missing tools or non-python commands", async () => {
  const dir = await Deno.makeTempDir({ prefix: "rep-prov-" });
  try {
    const p = await collectProvenance({
      cwd: dir,
      command: ["./missing/python3.99", "x.py"],
      env: { PATH: "/nonexistent" },
    });
    assert.equal(p.git, null);
    assert.equal(p.gpu, null);
    assert.equal(p.python?.version, null);
    assert.equal(p.python?.packages, null);
    assert.match(p.warnings.join("\n"), /python probe/);
    const q = await collectProvenance({ cwd: dir, command: ["node", "x.js"], env: {} });
    assert.equal(q.python, null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("captureCommand() kills a process at its timeout", async () => {
  const start = Date.now();
  const r = await captureCommand("sleep", ["10"], { timeoutMs: 100 });
  assert.ok(r);
  assert.equal(r.timedOut, true);
  assert.equal(r.code, null);
  assert.ok(Date.now() - start < 5000);
});

Deno.test("captureCommand() caps output and reports missing programs as null", async () => {
  const r = await captureCommand("sh", ["-c", "yes hello | head -c 1000000; echo err >&2"], {
    maxBytes: 100,
  });
  assert.ok(r);
  assert.equal(r.truncated, true);
  assert.equal(r.stdout.length, 100);
  assert.equal(await captureCommand("rep-no-such-program-xyz", []), null);
  const ok = await captureCommand("sh", ["-c", "echo out; echo err >&2; exit 3"]);
  assert.equal(ok?.code, 3);
  assert.equal(new TextDecoder().decode(ok?.stdout), "out\n");
  assert.equal(ok?.stderr, "err\n");
});

Deno.test("isPythonCommand() matches python* interpreters only", () => {
  for (const p of ["python", "python3", "python3.11", "/usr/bin/python3", "./venv/bin/python"]) {
    assert.equal(isPythonCommand([p, "x.py"]), true, p);
  }
  assert.equal(isPythonCommand(["C:\\Python311\\python.exe"]), true);
  for (const p of ["node", "uv", "ipython", "python-config", "pythonista", "mypython"]) {
    assert.equal(isPythonCommand([p]), false, p);
  }
  assert.equal(isPythonCommand([]), false);
});

Deno.test("parseNvidiaSmiCsv() reads name, memory and driver per GPU", () => {
  assert.deepEqual(
    parseNvidiaSmiCsv(
      "NVIDIA A100-SXM4-80GB, 81920 MiB, 535.104.05\nTesla T4, [N/A], 470.1\n\nOdd, Name, 16 MiB, 1\n",
    ),
    [
      { name: "NVIDIA A100-SXM4-80GB", memoryMiB: 81920, driver: "535.104.05" },
      { name: "Tesla T4", memoryMiB: null, driver: "470.1" },
      { name: "Odd, Name", memoryMiB: 16, driver: "1" },
    ],
  );
  assert.deepEqual(parseNvidiaSmiCsv(""), []);
});

Deno.test("isSecretName() flags names containing secret words, in any case", () => {
  for (
    const n of [
      "AWS_SECRET_ACCESS_KEY",
      "AWS_ACCESS_KEY_ID",
      "OPENAI_API_KEY",
      "api_key",
      "WANDB_API_KEY",
      "HF_TOKEN",
      "GITHUB_TOKEN",
      "DB_PASSWORD",
      "PGPASSWORD",
      "SMTP_PASSWD",
      "GOOGLE_APPLICATION_CREDENTIALS",
      "AZURE_CREDENTIAL",
      "BASIC_AUTH",
      "Authorization",
      "SSH_PRIVATE",
      "PRIVATE_REGISTRY",
      "SESSION_ID",
      "AWS_SESSION_TOKEN",
      "MYSQL_PWD",
      "FTP_PASS",
      "Cookie_Jar",
      "MONKEY",
    ]
  ) {
    assert.equal(isSecretName(n), true, n);
  }
  for (
    const n of [
      "PATH",
      "HOME",
      "PWD",
      "OLDPWD",
      "USER",
      "LANG",
      "CUDA_VISIBLE_DEVICES",
      "PASSENGER",
      "SHELL",
      "PYTHONPATH",
    ]
  ) {
    assert.equal(isSecretName(n), false, n);
  }
});

Deno.test("redactValue() redacts credential formats and URL passwords only", () => {
  const cases: [string, string][] = [
    ["AKIAIOSFODNN7EXAMPLE", REDACTED],
    ["id=ASIAIOSFODNN7EXAMPLE;x", `id=${REDACTED};x`],
    ["ghp_" + "a".repeat(36), REDACTED],
    ["token ghs_" + "B1".repeat(18) + " end", `token ${REDACTED} end`],
    ["github_pat_" + "A1_".repeat(20), REDACTED],
    ["glpat-" + "x".repeat(20), REDACTED],
    ["xoxb-1234567890-abcdefghij", REDACTED],
    ["sk-proj-" + "Ab1".repeat(10), REDACTED],
    ["sk-ant-api03-" + "z".repeat(40), REDACTED],
    ["sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", REDACTED],
    ["hf_" + "abcdefghij".repeat(4), REDACTED],
    ["AIza" + "S".repeat(35), REDACTED],
    [
      "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
      REDACTED,
    ],
    ["https://user:p%40ss@example.com/repo.git", `https://user:${REDACTED}@example.com/repo.git`],
    ["postgres://admin:s3cret@db:5432/x", `postgres://admin:${REDACTED}@db:5432/x`],
    [
      "redis://:pw@h:6379 http://a:b@c/",
      `redis://:${REDACTED}@h:6379 http://a:${REDACTED}@c/`,
    ],
    ["-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n-----END RSA PRIVATE KEY-----", REDACTED],
    ["-----BEGIN OPENSSH PRIVATE KEY-----abc", REDACTED],
  ];
  for (const [input, expected] of cases) assert.equal(redactValue(input), expected, input);
  for (
    const keep of [
      "/usr/local/bin:/usr/bin",
      "https://example.com/path",
      "https://user@example.com/x",
      "en_US.UTF-8",
      "0,1,2,3",
      "sk-short",
      "AKIA123",
      "host:8080",
      "mask-ghp_short",
    ]
  ) {
    assert.equal(redactValue(keep), keep, keep);
  }
});

Deno.test("redactEnv() redacts by name, then by value, and sorts keys", () => {
  const out = redactEnv({
    PATH: "/usr/bin",
    WANDB_API_KEY: "0123456789abcdef",
    EMPTY_TOKEN: "",
    DATABASE_URL: "postgres://u:pw@db/x",
    NOTE: "key AKIAIOSFODNN7EXAMPLE here",
    A_PASSWORD: "x",
  });
  assert.deepEqual(out, {
    A_PASSWORD: REDACTED,
    DATABASE_URL: `postgres://u:${REDACTED}@db/x`,
    EMPTY_TOKEN: "",
    NOTE: `key ${REDACTED} here`,
    PATH: "/usr/bin",
    WANDB_API_KEY: REDACTED,
  });
  assert.deepEqual(Object.keys(out), [
    "A_PASSWORD",
    "DATABASE_URL",
    "EMPTY_TOKEN",
    "NOTE",
    "PATH",
    "WANDB_API_KEY",
  ]);
});
