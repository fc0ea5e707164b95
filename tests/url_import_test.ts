// mod.ts imported by URL from a folder without our deno.json: the source must name its npm
// packages with full specifiers and must not depend on our import map.
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("mod.ts imported by URL records and reads back an experiment", async () => {
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    if (path.includes("..")) return new Response("bad", { status: 400 });
    try {
      return new Response(await Deno.readFile(ROOT + path.slice(1)), {
        headers: { "content-type": "application/typescript; charset=utf-8" },
      });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  const port = server.addr.port;
  const dir = await Deno.makeTempDir({ prefix: "rep-url-" });
  try {
    await Deno.writeTextFile(`${dir}/weights.bin`, "weights of step 1");
    await Deno.writeTextFile(
      `${dir}/use.ts`,
      `import { init, openRepository } from "http://127.0.0.1:${port}/mod.ts";
const exp = await init({ repository: "${dir}/repo", path: null, params: { lr: 0.5 } });
await exp.checkpoint({ path: "${dir}/weights.bin", metrics: { loss: 0.25 },
  primaryMetric: { name: "loss", goal: "minimize" } });
await exp.stop();
const repo = await openRepository("${dir}/repo");
const e = await repo.experiments.get(exp.id.slice(0, 8));
const text = await new Response(await e.best()!.open("weights.bin")).text();
console.log(JSON.stringify({ lr: e.params.lr, status: e.status, text }));
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--no-config",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-net",
        "--allow-run",
        "--allow-sys",
        `--allow-import=127.0.0.1:${port}`,
        "use.ts",
      ],
      cwd: dir,
      env: { RUST_BACKTRACE: "0", REP_CACHE_DIR: `${dir}/cache`, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const result = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
    assert.deepEqual(result, { lr: 0.5, status: "succeeded", text: "weights of step 1" });
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
