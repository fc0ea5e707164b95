import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "./errors.ts";
import { parseConfig, resolveRepository } from "./config.ts";

Deno.test("parseConfig() reads repository and run defaults", () => {
  const c = parseConfig(
    "repository: s3://b/p\nrun:\n  output: out\n  primary_metric: loss:minimize\n" +
      "  keep_best: 3\n  keep_last: 0\n",
  );
  assert.deepEqual(c, {
    repository: "s3://b/p",
    run: { output: "out", primary_metric: "loss:minimize", keep_best: 3, keep_last: 0 },
  });
  assert.deepEqual(parseConfig(""), {});
  assert.deepEqual(parseConfig("# only a comment\n"), {});
});

Deno.test("parseConfig() rejects bad YAML, unknown keys and wrong types", () => {
  for (
    const text of [
      "repository: [a, b]",
      "repositry: x",
      "- a\n- b",
      "run: 3",
      "run:\n  outputt: x",
      "run:\n  keep_best: three",
      "run:\n  keep_last: -1",
      "run:\n  keep_best: 1.5",
      "run:\n  output: 3",
      "repository: 'unterminated",
      "repository: ''",
      "a: &a [*a]",
    ]
  ) {
    assert.throws(() => parseConfig(text), ConfigError, text);
  }
});

Deno.test("resolveRepository() orders flag, env, rep.yaml, found .rep, default", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const sub = join(dir, "a", "b");
    await Deno.mkdir(sub, { recursive: true });
    const none = () => undefined;
    let r = await resolveRepository({ cwd: sub, env: none });
    assert.equal(r.source, "default");
    assert.equal(r.url, join(sub, ".rep"));
    await Deno.mkdir(join(dir, "a", ".rep"));
    await Deno.writeTextFile(join(dir, "a", ".rep", "repository.json"), '{"format":1}');
    r = await resolveRepository({ cwd: sub, env: none });
    assert.equal(r.source, "found");
    assert.equal(r.url, join(dir, "a", ".rep"));
    await Deno.writeTextFile(join(dir, "rep.yaml"), "repository: store\n");
    r = await resolveRepository({ cwd: sub, env: none });
    assert.equal(r.source, "config");
    assert.equal(r.url, "store");
    assert.equal(r.base, dir);
    r = await resolveRepository({
      cwd: sub,
      env: (n) => n === "REP_REPOSITORY" ? "s3://e/x" : undefined,
    });
    assert.equal(r.url, "s3://e/x");
    r = await resolveRepository({ cwd: sub, flag: "gs://f/y", env: none });
    assert.equal(r.source, "flag");
    await Deno.writeTextFile(join(dir, "rep.yaml"), "nope: 1\n");
    await assert.rejects(() => resolveRepository({ cwd: sub, env: none }), ConfigError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
