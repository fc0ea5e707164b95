import assert from "node:assert/strict";
import { join } from "node:path";
import { Repository } from "../repository.ts";
import { RecorderHost } from "./recorder_host.ts";
import { AttachedHost, type ExplicitCheckpoint } from "./attached_host.ts";
import { readLines, serveSession } from "./session.ts";
import { serveControl } from "./socket.ts";
import { parseRequest } from "./messages.ts";
import type { CheckpointRecord } from "../format/records.ts";

async function* lines(items: string[]): AsyncGenerator<string> {
  for (const l of items) yield l;
}

async function withProject(fn: (project: string, repoUrl: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "rep-protocol-" });
  const project = join(dir, "project");
  await Deno.mkdir(join(project, "out"), { recursive: true });
  const prev = Deno.env.get("REP_CACHE_DIR");
  Deno.env.set("REP_CACHE_DIR", join(dir, "cache"));
  try {
    await fn(project, join(dir, "repo"));
  } finally {
    if (prev === undefined) Deno.env.delete("REP_CACHE_DIR");
    else Deno.env.set("REP_CACHE_DIR", prev);
    await Deno.remove(dir, { recursive: true });
  }
}

const init = (project: string) =>
  JSON.stringify({
    id: 1,
    op: "init",
    project,
    params: { lr: 0.01, api_key: "sk-123" },
    primary_metric: { name: "loss", goal: "minimize" },
    code: false,
  });

Deno.test("parseRequest() checks requests and names what is wrong", () => {
  assert.throws(() => parseRequest("{"), /Invalid protocol request: not JSON/);
  assert.throws(() => parseRequest('{"op":"ping"}'), /"id" is not an integer/);
  assert.throws(() => parseRequest('{"id":1,"op":"fly"}'), /unknown op "fly"/);
  assert.throws(
    () => parseRequest('{"id":1,"op":"checkpoint","metrics":{"loss":[1]}}'),
    /metrics.loss is not a number, string, boolean or null/,
  );
  assert.throws(() => parseRequest('{"id":1,"op":"init","project":"rel"}'), /absolute path/);
  assert.deepEqual(parseRequest('{"id":3,"op":"stop","status":"failed"}'), {
    id: 3,
    op: "stop",
    status: "failed",
    exitCode: null,
  });
});

Deno.test("serveSession() with RecorderHost records checkpoints of project-relative files", async () => {
  await withProject(async (project, url) => {
    await Deno.writeTextFile(join(project, "out", "model.pth"), "w1");
    await Deno.writeTextFile(join(project, "out", "opt.bin"), "o1");
    const repo = await Repository.open(url, { cache: false });
    const host = new RecorderHost(() => Promise.resolve(repo));
    const sent: Record<string, unknown>[] = [];
    const end = await serveSession(
      lines([
        init(project),
        '{"id":2,"op":"checkpoint","paths":["out"],"metrics":{"loss":0.5}}',
        `{"id":3,"op":"checkpoint","paths":["${project}/out/model.pth"],"step":9}`,
        '{"id":4,"op":"checkpoint","paths":["../elsewhere"]}',
        '{"id":5,"op":"nope"}',
        '{"id":6,"op":"stop"}',
      ]),
      (l) => sent.push(JSON.parse(l)),
      host,
      { endAfterStop: true },
    );
    assert.equal(end.stopped, true);
    const byId = new Map(sent.filter((m) => "id" in m).map((m) => [m.id, m]));
    const exp = (byId.get(1) as { experiment: { id: string; params: unknown; cwd: string } })
      .experiment;
    assert.deepEqual(exp.params, { lr: 0.01, api_key: "[REDACTED]" });
    assert.equal(exp.cwd, project);
    const ck1 = (byId.get(2) as { checkpoint: CheckpointRecord }).checkpoint;
    const ck2 = (byId.get(3) as { checkpoint: CheckpointRecord }).checkpoint;
    assert.deepEqual([ck1.step, ck1.metrics, ck1.files?.files], [0, { loss: 0.5 }, 2]);
    assert.deepEqual([ck2.step, ck2.files?.files], [9, 1]);
    const err4 = byId.get(4) as { ok: boolean; error: { type: string; message: string } };
    assert.equal(err4.ok, false);
    assert.equal(err4.error.type, "UsageError");
    assert.match(err4.error.message, /outside the project folder/);
    assert.match((byId.get(5) as { error: { message: string } }).error.message, /unknown op/);
    assert.equal((byId.get(6) as { uploaded: boolean }).uploaded, true);
    const [view] = await repo.list();
    assert.equal(view!.status, "succeeded");
    const tree = await repo.tree(view!.checkpoints[0]!.files!.tree);
    assert.deepEqual(tree.files.map((f) => f.path), ["out/model.pth", "out/opt.bin"]);
    await repo.close();
  });
});

Deno.test("RecorderHost.disconnected() ends the experiment as crashed with its checkpoints stored", async () => {
  await withProject(async (project, url) => {
    await Deno.writeTextFile(join(project, "w.bin"), "data");
    const repo = await Repository.open(url, { cache: false });
    const host = new RecorderHost(() => Promise.resolve(repo));
    const end = await serveSession(
      lines([init(project), '{"id":2,"op":"checkpoint","paths":["w.bin"]}']),
      () => {},
      host,
    );
    assert.equal(end.stopped, false);
    assert.equal(await host.disconnected(), true);
    const [view] = await repo.list();
    assert.equal(view!.status, "crashed");
    assert.equal(view!.checkpoints.length, 1);
    await repo.close();
  });
});

Deno.test("serveControl() serves AttachedHost sessions on a unix socket", async () => {
  const commits: ExplicitCheckpoint[] = [];
  const record = {
    format: 2,
    type: "experiment",
    id: "a".repeat(32),
    params: { lr: 0.1 },
  } as unknown as import("../format/records.ts").ExperimentRecord;
  await withProject(async (project) => {
    await Deno.writeTextFile(join(project, "out", "m.pth"), "m");
    const server = await serveControl(
      new AttachedHost({
        record,
        repository: "file:///r",
        project,
        commit: (c) => {
          commits.push(c);
          return Promise.resolve({ id: "b".repeat(32), step: c.step } as CheckpointRecord);
        },
        pending: () => ({ items: 0, bytes: 0, error: null }),
      }),
    );
    try {
      const conn = await Deno.connect({ transport: "unix", path: server.path });
      const enc = new TextEncoder();
      await conn.write(enc.encode(
        JSON.stringify({ id: 1, op: "init", project, params: { lr: 0.2 } }) + "\n" +
          JSON.stringify({ id: 2, op: "checkpoint", paths: ["out"], metrics: { loss: 1 } }) +
          "\n" + JSON.stringify({ id: 3, op: "stop" }) + "\n",
      ));
      const got: Record<string, unknown>[] = [];
      for await (const l of readLines(conn.readable)) {
        got.push(JSON.parse(l));
        if (got.filter((m) => "id" in m).length === 3) break; // cancels the stream: closes conn
      }
      assert.match(String(got[0]!.text), /params given to init\(\) are not recorded under rep run/);
      assert.deepEqual(got.slice(1).map((m) => [m.id, m.ok]), [[1, true], [2, true], [3, true]]);
      assert.equal((got[1] as { attached: boolean }).attached, true);
      assert.deepEqual(commits, [{
        files: ["out/m.pth"],
        step: null,
        metrics: { loss: 1 },
        primaryMetric: null,
      }]);
    } finally {
      await server.close();
    }
  });
});
