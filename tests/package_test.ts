// mod.ts stays publishable on JSR as @rep/rep: documented, no slow types, only the library's files.
import assert from "node:assert/strict";
import { ROOT } from "./helpers.ts";

async function deno(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

Deno.test("deno doc --lint mod.ts finds nothing to fix", async () => {
  const r = await deno(["doc", "--lint", "mod.ts"]);
  assert.equal(r.code, 0, r.text);
});

Deno.test("deno publish --dry-run publishes the library, its licence and docs only", async () => {
  // --allow-dirty: tests run in work trees with changes; the check is the same otherwise.
  const r = await deno(["publish", "--dry-run", "--allow-dirty"]);
  assert.equal(r.code, 0, r.text);
  assert.match(r.text, /Simulating publish of @rep\/rep@/);
  const files = [...r.text.matchAll(/file:\/\/\S+/g)].map((m) =>
    m[0].slice(`file://${ROOT}/`.length)
  );
  for (const f of ["mod.ts", "LICENSE", "README.md", "src/api.ts", "src/hashing/hash_worker.ts"]) {
    assert.ok(files.includes(f), `${f} is not published: ${files.join(" ")}`);
  }
  const stray = files.filter((f) => /_test\.ts$|^tests\/|^bench\/|^tools\/|^\.ci\//.test(f));
  assert.deepEqual(stray, []);
  assert.match(await Deno.readTextFile(`${ROOT}/LICENSE`), /Apache License\s+Version 2\.0/);
});
