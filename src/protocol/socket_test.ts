import assert from "node:assert/strict";
import { join } from "node:path";
import { sweepStaleControlDirs } from "./socket.ts";

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

Deno.test("sweepStaleControlDirs() removes dead runs' folders and keeps live and young ones", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "rep-sweep-" });
  try {
    const make = async (name: string) => {
      const dir = join(tmp, name);
      await Deno.mkdir(dir);
      return dir;
    };
    // A dead run: its socket file stays, nobody listens.
    const dead = await make("rep-control-dead");
    Deno.listen({ transport: "unix", path: join(dead, "control.sock") }).close();
    // A run killed before it listened: no socket at all.
    const empty = await make("rep-control-empty");
    // A live run.
    const live = await make("rep-control-live");
    const listener = Deno.listen({ transport: "unix", path: join(live, "control.sock") });
    // Someone else's folder.
    const other = await make("other-dead");
    const old = new Date(Date.now() - 3_600_000);
    for (const d of [dead, empty, live, other]) await Deno.utime(d, old, old);
    // A young folder (being set up right now).
    const young = await make("rep-control-young");

    assert.equal(await sweepStaleControlDirs(tmp), 2);
    assert.equal(await exists(dead), false);
    assert.equal(await exists(empty), false);
    assert.equal(await exists(live), true);
    assert.equal(await exists(other), true);
    assert.equal(await exists(young), true);
    listener.close();
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
