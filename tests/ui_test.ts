// The local viewer in a real browser: Debian's Chromium driven by playwright-core.
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeExperiment, PERMISSIONS, ROOT, tempRepo } from "./helpers.ts";

const CHROMIUM = "/usr/bin/chromium";
const hasChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();

/** Start `rep ui --port 0` and return its URL. */
async function startUi(repo: string, env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      ...PERMISSIONS,
      join(ROOT, "main.ts"),
      "ui",
      "--port",
      "0",
      "-R",
      repo,
    ],
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/http:\/\/\S+\//.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`rep ui exited: ${text}`);
    text += value;
  }
  reader.releaseLock();
  const url = /(http:\/\/\S+\/)/.exec(text)![1]!;
  return {
    url,
    async stop() {
      child.kill("SIGTERM");
      const st = await child.status;
      await child.stdout.cancel().catch(() => {});
      await child.stderr.cancel();
      return st;
    },
  };
}

Deno.test({
  name: "rep ui shows experiments, charts, details and serves checkpoint files in Chromium",
  ignore: !hasChromium,
  async fn() {
    const t = await tempRepo();
    const weights = new Uint8Array(70_000).map((_, i) => (i * 7) & 255);
    const a = await makeExperiment(t.repo, {
      params: { lr: 0.1, note: "<img src=x onerror=alert(1)>" },
      primaryMetric: { name: "loss", goal: "minimize" },
      checkpoints: [
        { step: 1, metrics: { loss: 0.9 }, files: { "model.bin": weights } },
        { step: 2, metrics: { loss: 0.4 }, files: { "model.bin": weights.map((x) => x ^ 1) } },
        { step: 3, metrics: { loss: 0.6 } },
      ],
    });
    const b = await makeExperiment(t.repo, {
      params: { lr: 0.01, note: "plain" },
      primaryMetric: { name: "loss", goal: "minimize" },
      checkpoints: [{ step: 1, metrics: { loss: 0.7 } }, { step: 2, metrics: { loss: 0.5 } }],
    });
    const ui = await startUi(t.repo, t.env);
    try {
      const drive = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--quiet",
          join(ROOT, "tests", "ui_browser.ts"),
          ui.url,
          a.id,
          join(t.dir, "ui.png"),
        ],
        env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const err = new TextDecoder().decode(drive.stderr);
      assert.equal(drive.code, 0, err);
      const seen = JSON.parse(new TextDecoder().decode(drive.stdout).trim().split("\n").pop()!);
      assert.deepEqual(new Set(seen.rows), new Set([a.id, b.id]));
      // Both experiments are plotted: one line each.
      assert.deepEqual(new Set(seen.lines), new Set([a.id, b.id]));
      // The hostile param is shown as text, not run as HTML.
      assert.ok(seen.body.includes("<img src=x onerror=alert(1)>"));
      assert.equal(seen.images, 0);
      assert.deepEqual(seen.dialogs, []);
      // Details: the best checkpoint is marked; its file downloads byte for byte.
      assert.ok(seen.detail.includes(`${a.checkpoints[1]!.slice(0, 7)} *`), seen.detail);
      const got = new Uint8Array(await (await fetch(new URL(seen.hrefs[0], ui.url))).arrayBuffer());
      assert.deepEqual(got, weights);
      // The API refuses what it does not serve.
      const bad = await fetch(new URL("/api/experiments/zzz", ui.url));
      assert.equal(bad.status, 404);
      await bad.body?.cancel();
      const post = await fetch(ui.url, { method: "POST" });
      assert.equal(post.status, 405);
      await post.body?.cancel();
    } finally {
      const st = await ui.stop();
      assert.equal(st.code, 0);
      await t.cleanup();
    }
  },
});
