import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { type Chunk, type Holder, VersionStore } from "./versions.ts";
import type { Capture, Change, WatchEvent } from "./watch.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** A store over plain folders; `chunked` gets the sha256 of every staged copy it is given. */
function store(o: { holder?: Holder; limit?: number } = {}) {
  const root = Deno.makeTempDirSync({ prefix: "rep-versions-test-" });
  const output = join(root, "out"), staging = join(root, "staging");
  Deno.mkdirSync(output);
  Deno.mkdirSync(staging);
  const chunked: string[] = [];
  const freed: number[] = [];
  const chunk: Chunk = (dir, name) => {
    const b = Deno.readFileSync(join(dir, name));
    chunked.push(sha(b));
    return Promise.resolve({ size: b.length, hash: sha(b), mode: 0o644, chunks: [] });
  };
  const holds = { frozen: 0, thawed: 0 };
  const holder: Holder = o.holder ?? {
    freeze: () => Promise.resolve(++holds.frozen > 0),
    thaw: () => void holds.thawed++,
    sync: () => Promise.resolve(true),
  };
  const s = new VersionStore({
    output,
    staging,
    holder,
    chunk,
    stagingLimit: o.limit ?? 1 << 30,
    lineBetween: () => true,
    freed: (n) => freed.push(n),
  });
  let seq = 0;
  const note = (change: Change, copy?: Capture) => {
    const ev: WatchEvent = { seq: ++seq, time: Date.now(), change };
    if (copy) ev.copy = copy;
    s.note(ev);
    return ev.seq;
  };
  const cleanup = () => Deno.removeSync(root, { recursive: true });
  return { s, output, staging, chunked, freed, holds, note, cleanup };
}

Deno.test("VersionStore copies a completed version while holding the command, then chunks it", async () => {
  const t = store();
  try {
    const bytes = crypto.getRandomValues(new Uint8Array(50_000));
    Deno.writeFileSync(join(t.output, "model.bin"), bytes);
    t.note({ kind: "write", path: "model.bin" });
    t.note({ kind: "complete", path: "model.bin" });
    await t.s.drained();
    const [v] = t.s.files.get("model.bin")!.versions;
    assert.equal(v!.status, "stored");
    assert.deepEqual(t.chunked, [sha(bytes)]);
    assert.deepEqual(t.holds, { frozen: 1, thawed: 1 });
    assert.deepEqual(t.freed, [], "its own copies are not the capture thread's to count");
    assert.deepEqual([...Deno.readDirSync(t.staging)], [], "the staged copy is deleted");
  } finally {
    t.cleanup();
  }
});

Deno.test("VersionStore adopts the capture thread's copy, and reports its bytes freed once chunked", async () => {
  const t = store();
  try {
    const bytes = crypto.getRandomValues(new Uint8Array(30_000));
    Deno.writeFileSync(join(t.staging, "c1"), bytes);
    t.note({ kind: "write", path: "a.bin" });
    t.note({ kind: "complete", path: "a.bin" }, { staged: "c1", size: bytes.length });
    t.note({ kind: "write", path: "b.bin" });
    t.note({ kind: "complete", path: "b.bin" }, {
      lost: "it was rewritten before rep could copy it",
    });
    await t.s.drained();
    const a = t.s.files.get("a.bin")!.versions[0]!;
    const b = t.s.files.get("b.bin")!.versions[0]!;
    assert.equal(a.status, "stored");
    assert.equal(a.entry?.hash, sha(bytes));
    assert.equal(b.status, "lost");
    assert.equal(b.reason, "it was rewritten before rep could copy it");
    assert.deepEqual(t.holds, { frozen: 0, thawed: 0 }, "the main thread held nothing");
    assert.deepEqual(t.freed, [bytes.length]);
    assert.deepEqual([...Deno.readDirSync(t.staging)], []);
  } finally {
    t.cleanup();
  }
});

Deno.test("VersionStore drops an adopted copy of a version the command was writing when interrupted", async () => {
  const t = store();
  try {
    Deno.writeFileSync(join(t.staging, "c1"), new Uint8Array(100));
    const start = t.note({ kind: "write", path: "m.pt" });
    t.s.interruptedAt(start, "it was being written when the command was interrupted (SIGINT)");
    t.note({ kind: "complete", path: "m.pt" }, { staged: "c1", size: 100 });
    await t.s.drained();
    const v = t.s.files.get("m.pt")!.versions[0]!;
    assert.equal(v.status, "untrusted");
    assert.deepEqual(t.chunked, []);
    assert.deepEqual(t.freed, [100]);
    assert.deepEqual([...Deno.readDirSync(t.staging)], []);
  } finally {
    t.cleanup();
  }
});
