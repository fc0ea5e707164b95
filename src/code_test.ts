import assert from "node:assert/strict";
import { join } from "node:path";
import { ignoreMatcher, isSecretFile, listCodeFiles } from "./code.ts";

Deno.test("ignoreMatcher() follows gitignore rules for names, folders, anchors and negation", () => {
  const m = ignoreMatcher(["*.log", "build/", "/top.txt", "data/**/*.csv", "!keep.log", "# c"]);
  assert.equal(m("a.log", false), true);
  assert.equal(m("x/y/a.log", false), true);
  assert.equal(m("keep.log", false), false);
  assert.equal(m("build", true), true);
  assert.equal(m("build", false), false);
  assert.equal(m("src/build/x.py", false), true);
  assert.equal(m("top.txt", false), true);
  assert.equal(m("sub/top.txt", false), false);
  assert.equal(m("data/a/b/c.csv", false), true);
  assert.equal(m("train.py", false), false);
});

async function run(cwd: string, ...args: string[]) {
  const out = await new Deno.Command("git", { args, cwd, stdout: "null", stderr: "null" }).output();
  assert.ok(out.success, `git ${args.join(" ")}`);
}

Deno.test("listCodeFiles() takes tracked and untracked files, minus ignores and excludes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "src"));
    await Deno.mkdir(join(dir, "output"));
    await Deno.mkdir(join(dir, ".venv"));
    await Deno.mkdir(join(dir, "env"));
    await Deno.writeTextFile(join(dir, "env", "pyvenv.cfg"), "home = /usr");
    await Deno.writeTextFile(join(dir, "env", "lib.py"), "");
    await Deno.writeTextFile(join(dir, "train.py"), "print(1)");
    await Deno.writeTextFile(join(dir, "src", "model.py"), "x = 1");
    await Deno.writeTextFile(join(dir, "output", "model.bin"), "w");
    await Deno.writeTextFile(join(dir, "notes.tmp"), "t");
    await Deno.writeTextFile(join(dir, ".repignore"), "*.tmp\n");
    const plain = await listCodeFiles(dir, [join(dir, "output")]);
    assert.deepEqual(plain.files, [".repignore", "src/model.py", "train.py"]);
    await run(dir, "init", "-q");
    await Deno.writeTextFile(join(dir, ".gitignore"), "secret.txt\nenv/\n");
    await Deno.writeTextFile(join(dir, "secret.txt"), "s");
    await run(dir, "add", "train.py");
    const git = await listCodeFiles(dir, ["output"]);
    assert.deepEqual(git.files, [".gitignore", ".repignore", "src/model.py", "train.py"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("isSecretFile() keeps credential files out of code snapshots", () => {
  for (
    const f of [
      ".env",
      "app/.env.production",
      ".netrc",
      "keys/server.pem",
      "id_rsa",
      "id_ed25519.pub",
      "gcp/service-account-prod.json",
      "credentials.json",
    ]
  ) {
    assert.equal(isSecretFile(f), true, f);
  }
  for (
    const f of [".env.example", "env.py", "train.py", "keyboard.py", "README.md", "monkey.json"]
  ) {
    assert.equal(isSecretFile(f), false, f);
  }
});
