import assert from "node:assert/strict";
import { Repository } from "../repository.ts";
import { logKey } from "../format/layout.ts";
import { readLog, splitFilters } from "./api.ts";

Deno.test("splitFilters() splits on and / && outside quotes", () => {
  assert.deepEqual(splitFilters("lr < 0.1 and status = succeeded"), [
    "lr < 0.1",
    "status = succeeded",
  ]);
  assert.deepEqual(splitFilters("a>1&&b<2 AND c ~ x"), ["a>1", "b<2", "c ~ x"]);
  assert.deepEqual(splitFilters(`note = "warm and slow" and tag = 'a && b'`), [
    `note = "warm and slow"`,
    `tag = 'a && b'`,
  ]);
  assert.deepEqual(splitFilters("  "), []);
  assert.deepEqual(splitFilters("brand = x"), ["brand = x"]); // "and" inside a word
});

Deno.test("readLog() reads across segments from an offset or the tail", async () => {
  const dir = await Deno.makeTempDir();
  const repo = await Repository.open(dir, { cache: false });
  try {
    const id = "a".repeat(32);
    const parts = ["first segment\n", "second\n", "third and last\n"];
    for (const [i, p] of parts.entries()) {
      await repo.store.put(logKey(id, i + 1), new TextEncoder().encode(p));
    }
    const all = parts.join("");
    const text = (b: Uint8Array) => new TextDecoder().decode(b);
    let s = await readLog(repo, id);
    assert.deepEqual([s.offset, s.size, text(s.bytes)], [0, all.length, all]);
    s = await readLog(repo, id, { from: 10 });
    assert.equal(text(s.bytes), all.slice(10));
    s = await readLog(repo, id, { tail: 12 });
    assert.deepEqual([s.offset, text(s.bytes)], [all.length - 12, all.slice(-12)]);
    s = await readLog(repo, id, { from: 5, max: 12 });
    assert.equal(text(s.bytes), all.slice(5, 17));
    s = await readLog(repo, id, { from: 10_000 });
    assert.deepEqual([s.offset, s.bytes.length], [all.length, 0]);
    s = await readLog(repo, "b".repeat(32));
    assert.deepEqual([s.offset, s.size, s.bytes.length], [0, 0, 0]);
  } finally {
    await repo.close();
    await Deno.remove(dir, { recursive: true });
  }
});
