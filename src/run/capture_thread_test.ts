import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { CaptureThread } from "./capture_thread.ts";
import type { CapturedEvent } from "./capture_worker.ts";
import { allStopped } from "./child.ts";
import { GroupHold } from "./group_hold.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

function random(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, i + 65536));
  return b;
}

async function started(limit = 1 << 30) {
  const root = await Deno.makeTempDir({ prefix: "rep-capture-test-" });
  const output = join(root, "out"), runDir = join(root, "run"), staging = join(runDir, "versions");
  await Deno.mkdir(output);
  await Deno.mkdir(staging, { recursive: true });
  const events: CapturedEvent[] = [];
  const thread = CaptureThread.load();
  assert.ok(thread, "a worker starts");
  const ok = await thread.watch({
    output,
    runDir,
    sources: new Map([[join(output, "metrics.jsonl"), "metrics"]]),
    ignore: { exact: ["metrics.jsonl"], under: [], prefixes: [], names: [] },
    staging,
    limit,
  }, (evs) => events.push(...evs));
  assert.ok(ok, "it watches");
  const cleanup = async () => {
    thread.close();
    await Deno.remove(root, { recursive: true });
  };
  return { output, staging, events, thread, cleanup };
}

const completes = (evs: CapturedEvent[]) => evs.filter((e) => e.change.kind === "complete");

Deno.test("CaptureThread copies each closed file version and posts its events in order", async () => {
  const t = await started();
  try {
    const a = random(200_000);
    await Deno.writeFile(join(t.output, "model.bin"), a);
    await Deno.writeTextFile(join(t.output, "metrics.jsonl"), '{"step":1}\n', { append: true });
    assert.ok(await t.thread.sync());
    const kinds = t.events.map((e) => e.change.kind);
    assert.deepEqual(kinds.slice(kinds.indexOf("complete")), ["complete", "append"]);
    const [c] = completes(t.events);
    assert.ok(c?.copy && "staged" in c.copy, JSON.stringify(c));
    assert.equal(c.copy.size, a.length);
    assert.equal(sha(await Deno.readFile(join(t.staging, c.copy.staged))), sha(a));
  } finally {
    await t.cleanup();
  }
});

Deno.test("CaptureThread keeps a version waiting while staging is full, until bytes are freed", async () => {
  const t = await started(150_000);
  try {
    const a = random(100_000);
    const b = random(100_000);
    await Deno.writeFile(join(t.output, "a.bin"), a);
    assert.ok(await t.thread.sync());
    await Deno.writeFile(join(t.output, "b.bin"), b);
    let synced = false;
    const sync = t.thread.sync().then((ok) => synced = ok);
    // b does not fit beside a: it is not copied (nor anything after it posted) until a is freed.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(synced, false);
    assert.equal(completes(t.events).length, 1);
    const [ca] = completes(t.events);
    assert.ok(ca?.copy && "staged" in ca.copy);
    await Deno.remove(join(t.staging, ca.copy.staged));
    t.thread.freed(ca.copy.size);
    await sync;
    assert.ok(synced);
    const [, cb] = completes(t.events);
    assert.ok(cb?.copy && "staged" in cb.copy, JSON.stringify(cb));
    assert.equal(sha(await Deno.readFile(join(t.staging, cb.copy.staged))), sha(b));
  } finally {
    await t.cleanup();
  }
});

Deno.test("GroupHold resumes the group only when its last holder lets go", async () => {
  const sleeper = new Deno.Command("sleep", { args: ["30"], detached: true, stdout: "null" })
    .spawn();
  const state = async () => {
    const out = await new Deno.Command("sh", {
      args: ["-c", `cat /proc/${sleeper.pid}/stat`],
      stdout: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    return text.slice(text.lastIndexOf(")") + 2).split(" ")[0];
  };
  try {
    const main = new GroupHold(sleeper.pid);
    const other = new GroupHold(sleeper.pid, main.memory); // as the capture thread sees it
    assert.ok(main.stop());
    assert.ok(other.stop());
    assert.ok(await allStopped(sleeper.pid));
    assert.equal(main.holders, 2);
    main.resume();
    assert.equal(await state(), "T", "still held by the other");
    other.resume();
    for (let i = 0; i < 100 && (await state()) === "T"; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(await state(), "S", "running (sleeping) again");
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
  }
});
