/**
 * The catalog through the CLI: bad filters are usage errors that list what is valid; tags and
 * notes after the run are `changes/` objects (nothing rewritten) shown by ls, show and --json and
 * usable in filters; names resolve wherever ids do.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeExperiment, rep, tempRepo } from "./helpers.ts";

const PM = { name: "loss", goal: "minimize" } as const;

Deno.test("bad filters exit 2 and say what is valid", async () => {
  const t = await tempRepo();
  try {
    await makeExperiment(t.repo, {
      params: { lr: 0.1, opt: "adam" },
      primaryMetric: PM,
      checkpoints: [{ metrics: { loss: 0.5 } }],
    });
    const cases: [string, RegExp, RegExp][] = [
      ["loss << 0.1", /Invalid filter "loss << 0.1": unknown operator "<<"/, /= != < <= > >= ~/],
      ["loss < abc", /loss \(metric\) holds a number, and "abc" is not/, /-f "loss < 0.5"/],
      [
        "status = bogus",
        /"bogus" is not a status/,
        /running, succeeded, failed, stopped, crashed/,
      ],
      ["acc > 1", /Unknown filter name "acc"/, /params: lr, opt; metrics: loss/],
    ];
    for (const [f, message, hint] of cases) {
      const r = await rep(["ls", "-f", f], { env: t.env });
      assert.equal(r.code, 2, `${f}: ${r.stderr}`);
      assert.match(r.stderr, message, f);
      assert.match(r.stderr, hint, f);
      assert.equal(r.stdout, "");
    }
    const ok = await rep(["ls", "-q", "-f", "opt < b", "-f", "loss <= 0.5"], { env: t.env });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.trim().split("\n").length, 1);
    const limit = await rep(["ls", "-n", "0"], { env: t.env });
    assert.equal(limit.code, 2);
    assert.match(limit.stderr, /Invalid --limit "0"/);
  } finally {
    await t.cleanup();
  }
});

Deno.test("rep tag and rep note add changes, never rewrite a record, and show everywhere", async () => {
  const t = await tempRepo();
  try {
    const a = await makeExperiment(t.repo, { tags: ["v1"], checkpoints: [{ metrics: { x: 1 } }] });
    const b = await makeExperiment(t.repo, { checkpoints: [{ metrics: { x: 2 } }] });
    const recordKey = join(t.repo, "experiments", a.id, "experiment.json");
    const before = await Deno.readFile(recordKey);
    const run = (args: string[]) => rep(args, { env: t.env });
    const tag = await run(["tag", a.id.slice(0, 8), "baseline", "keep"]);
    assert.equal(tag.code, 0, tag.stderr);
    assert.match(
      tag.stdout,
      /Tagged experiment .{7}: baseline, keep \(tags now: v1, baseline, keep\)/,
    );
    assert.equal((await run(["tag", "--rm", a.id, "keep", "v1"])).code, 0);
    const note = await run(["note", a.id, "lr", "too", "high"]);
    assert.equal(note.code, 0, note.stderr);
    // Bad input: a tag with a space, no text, an unknown id.
    const badTag = await run(["tag", a.id, "two words"]);
    assert.equal(badTag.code, 2);
    assert.match(badTag.stderr, /Invalid tag "two words": tags are 1–100 characters/);
    assert.equal((await run(["note", a.id])).code, 2);
    assert.equal((await run(["tag", "f".repeat(32), "x"])).code, 1);

    assert.deepEqual(await Deno.readFile(recordKey), before, "the experiment record was rewritten");
    const changes = [...Deno.readDirSync(join(t.repo, "changes"))];
    assert.equal(changes.length, 3);

    const ls = JSON.parse((await run(["ls", "--json"])).stdout) as {
      id: string;
      tags: string[];
      note: string | null;
    }[];
    const row = ls.find((e) => e.id === a.id)!;
    assert.deepEqual(row.tags, ["baseline"]);
    assert.equal(row.note, "lr too high");
    assert.deepEqual(ls.find((e) => e.id === b.id)!.tags, []);
    const table = (await run(["ls"])).stdout;
    assert.match(table, /TAGS/);
    assert.match(table, /baseline/);
    assert.match(table, /lr too high/);
    const shown = await run(["show", a.id]);
    assert.match(shown.stdout, /tags:\s+baseline\n/);
    assert.match(shown.stdout, /note:\s+lr too high\n/);
    const json = JSON.parse((await run(["show", a.id, "--json"])).stdout);
    assert.deepEqual([json.tags, json.note], [["baseline"], "lr too high"]);
    assert.equal((await run(["ls", "-q", "-f", "tag = baseline"])).stdout, `${a.id}\n`);
    assert.equal((await run(["ls", "-q", "-f", "note ~ too"])).stdout, `${a.id}\n`);
    assert.equal((await run(["ls", "-q", "-f", "tag != baseline"])).stdout, `${b.id}\n`);
    // A compaction keeps them; a cleared note is gone.
    assert.equal((await run(["gc", "--grace", "0"])).code, 0);
    assert.equal((await run(["note", a.id, "--clear"])).code, 0);
    const after = JSON.parse((await run(["show", a.id, "--json"])).stdout);
    assert.deepEqual([after.tags, after.note], [["baseline"], null]);
  } finally {
    await t.cleanup();
  }
});

Deno.test("a name works wherever an id does; an exact name wins over an id prefix", async () => {
  const t = await tempRepo();
  try {
    const run = (args: string[]) => rep(args, { env: t.env });
    // A file to check out: a checkpoint without files is refused (nothing to give back).
    const a = await makeExperiment(t.repo, {
      checkpoints: [{ metrics: { x: 1 }, files: { "m.bin": "weights" } }],
    });
    const b = await makeExperiment(t.repo, { checkpoints: [{ metrics: { x: 2 } }] });
    // Names are recorded by rep run --name; here written into the records directly.
    const name = (id: string, n: string) => {
      const p = join(t.repo, "experiments", id, "experiment.json");
      const rec = JSON.parse(Deno.readTextFileSync(p));
      Deno.writeTextFileSync(p, JSON.stringify({ ...rec, name: n }));
    };
    name(a.id, "baseline-lr3");
    // A (hostile or legacy) name that reads as the other experiment's id prefix.
    name(b.id, a.id.slice(0, 6));
    const show = JSON.parse((await run(["show", "baseline-lr3", "--json"])).stdout);
    assert.equal(show.id, a.id);
    assert.equal(show.name, "baseline-lr3");
    assert.equal(JSON.parse((await run(["show", a.id.slice(0, 6), "--json"])).stdout).id, b.id);
    assert.equal((await run(["ls", "-q", "-f", "name = baseline-lr3"])).stdout, `${a.id}\n`);
    const ls = JSON.parse((await run(["ls", "--json"])).stdout) as { id: string; name: string }[];
    assert.equal(ls.find((e) => e.id === a.id)!.name, "baseline-lr3");
    assert.match((await run(["ls"])).stdout, /NAME[\s\S]*baseline-lr3/);
    const out = join(t.dir, "co");
    assert.equal((await run(["checkout", "baseline-lr3", "--no-code", "-o", out])).code, 0);
    const none = await run(["show", "no-such-name"]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /No experiment is named "no-such-name"/);
    assert.equal((await run(["rm", "baseline-lr3"])).code, 0);
    assert.equal((await run(["ls", "-q"])).stdout, `${b.id}\n`);
  } finally {
    await t.cleanup();
  }
});
