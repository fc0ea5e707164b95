// rep ui end to end: the server as `rep ui` runs it, its API against the CLI's own --json output,
// the request checks (DNS rebinding, other origins, the token), and the page in Debian's Chromium
// driven by playwright-core on a repository of 200 experiments.
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeExperiment, PERMISSIONS, rep, ROOT, tempRepo } from "./helpers.ts";
import { makeUiRepository, type UiFixture } from "./ui_fixture.ts";
import { SCRIPT } from "../src/ui/page.ts";

const CHROMIUM = "/usr/bin/chromium";
const hasChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();

/** Where the browser test leaves its screenshots (ignored by git). */
const SHOTS = join(ROOT, "tests", "out", "ui");

/** Start `rep ui` and return its URL (with the token, if it printed one). */
async function startUi(repo: string, env: Record<string, string>, extra: string[] = []) {
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
      ...extra,
    ],
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/http:\/\/\S+ /.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`rep ui exited: ${text}`);
    text += value;
  }
  reader.releaseLock();
  const url = /(http:\/\/\S+) /.exec(text)![1]!;
  const port = Number(/:(\d+)\//.exec(url)![1]);
  return {
    url,
    port,
    base: `http://127.0.0.1:${port}/`,
    async stop() {
      child.kill("SIGTERM");
      const st = await child.status;
      await child.stdout.cancel().catch(() => {});
      const err = await new Response(child.stderr).text();
      return { code: st.code, stderr: err };
    },
  };
}

/** One raw HTTP/1.1 GET with exactly these headers (fetch() would set Host itself). */
async function rawGet(port: number, path: string, headers: Record<string, string>) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const head = Object.entries({ ...headers, connection: "close" }).map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  await conn.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\n${head}\r\n`));
  const text = await new Response(conn.readable).text();
  return { status: Number(text.split(" ")[1]), text };
}

async function getJson(url: string) {
  const r = await fetch(url);
  return { status: r.status, body: await r.json() };
}

Deno.test("the viewer's script parses and declares each name once", () => {
  new Function(SCRIPT); // a syntax error throws here
  const names = [...SCRIPT.matchAll(/^(?:async function|function|const|let) ([A-Za-z_$][\w$]*)/gm)]
    .map((m) => m[1]!);
  const twice = names.filter((n, i) => names.indexOf(n) !== i);
  assert.deepEqual(twice, []);
});

Deno.test("rep ui refuses requests for another host name (DNS rebinding) and other origins", async () => {
  const t = await tempRepo();
  await makeExperiment(t.repo, { params: { lr: 0.1 } });
  const ui = await startUi(t.repo, t.env);
  try {
    assert.equal(ui.url, `http://127.0.0.1:${ui.port}/`); // no token on the loopback
    for (
      const host of [
        `127.0.0.1:${ui.port}`,
        `localhost:${ui.port}`,
        `[::1]:${ui.port}`,
        "localhost",
      ]
    ) {
      const r = await rawGet(ui.port, "/api/experiments", { host });
      assert.equal(r.status, 200, `${host}: ${r.text.slice(0, 300)}`);
    }
    // A page of attacker.example whose name now resolves to 127.0.0.1 sends its own name.
    for (const path of ["/", "/api/experiments", "/app.js"]) {
      const r = await rawGet(ui.port, path, { host: `attacker.example:${ui.port}` });
      assert.equal(r.status, 403, r.text);
      assert.match(
        r.text,
        /answers only to localhost, 127\.0\.0\.1 or \[::1\], not "attacker\.example/,
      );
      assert.doesNotMatch(r.text, /"experiments"/);
    }
    const missing = await rawGet(ui.port, "/api/experiments", {});
    assert.equal(missing.status, 400);
    // Another site's page, even on the loopback, cannot read the API.
    let r = await rawGet(ui.port, "/api/experiments", {
      host: `127.0.0.1:${ui.port}`,
      origin: "http://127.0.0.1:9999",
    });
    assert.equal(r.status, 403);
    r = await rawGet(ui.port, "/api/experiments", {
      host: `127.0.0.1:${ui.port}`,
      "sec-fetch-site": "cross-site",
    });
    assert.equal(r.status, 403);
    r = await rawGet(ui.port, "/api/experiments", {
      host: `127.0.0.1:${ui.port}`,
      origin: `http://127.0.0.1:${ui.port}`,
      "sec-fetch-site": "same-origin",
    });
    assert.equal(r.status, 200);
    // Read-only, and strict about what it serves.
    const post = await fetch(ui.base + "api/experiments", { method: "POST" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
    const page = await fetch(ui.base);
    assert.match(page.headers.get("content-security-policy")!, /script-src 'self';/);
    assert.equal(page.headers.get("x-frame-options"), "DENY");
    await page.body?.cancel();
  } finally {
    const st = await ui.stop();
    assert.equal(st.code, 0, st.stderr);
    await t.cleanup();
  }
});

Deno.test("rep ui beyond the loopback needs its printed token", async () => {
  const t = await tempRepo();
  await makeExperiment(t.repo, { params: { lr: 0.1 } });
  const ui = await startUi(t.repo, t.env, ["--host", "0.0.0.0"]);
  try {
    const token = /\?token=([0-9a-f]{32})$/.exec(ui.url)?.[1];
    assert.ok(token, ui.url);
    const api = ui.base + "api/experiments";
    let r = await fetch(api);
    assert.equal(r.status, 401);
    assert.match(await r.text(), /open the URL that `rep ui` printed/);
    r = await fetch(api + "?token=" + "0".repeat(32));
    assert.equal(r.status, 401);
    await r.body?.cancel();
    // Any host name goes (the token is the check), and the first visit trades it for a cookie.
    r = await fetch(ui.base.replace("127.0.0.1", "localhost") + "?token=" + token, {
      redirect: "manual",
    });
    assert.equal(r.status, 303);
    assert.equal(r.headers.get("location"), "/");
    const cookie = r.headers.get("set-cookie")!;
    assert.match(
      cookie,
      new RegExp(`^rep_ui_${ui.port}=${token}; Path=/; HttpOnly; SameSite=Strict$`),
    );
    r = await fetch(api, { headers: { cookie: cookie.split(";")[0]! } });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).experiments.length, 1);
    r = await fetch(api, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200);
    await r.body?.cancel();
  } finally {
    const st = await ui.stop();
    assert.equal(st.code, 0);
    assert.match(st.stderr, /anyone who has this URL can read the repository/);
    await t.cleanup();
  }
});

Deno.test("rep ui: bad options are usage errors that name the fix", async () => {
  const t = await tempRepo();
  await makeExperiment(t.repo, {});
  try {
    let r = await rep(["ui", "--port", "http"], { env: t.env });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Invalid --port "http"\nhint: Use a number from 0 to 65535/);
    r = await rep(["ui", "--port", "70000"], { env: t.env });
    assert.equal(r.code, 2);
    r = await rep(["ui", "--host", "10.255.255.254", "--port", "0"], { env: t.env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /Cannot listen on 10\.255\.255\.254: it is not an address of this machine/,
    );
    const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      r = await rep(["ui", "--port", String(busy.addr.port)], { env: t.env });
      assert.equal(r.code, 2);
      assert.match(
        r.stderr,
        new RegExp(`Port ${busy.addr.port} is in use.*\nhint: Choose another with --port N`),
      );
    } finally {
      busy.close();
    }
  } finally {
    await t.cleanup();
  }
});

/** The fixture repository, made once for the API and browser tests. */
let fixture: Promise<{ t: Awaited<ReturnType<typeof tempRepo>>; fx: UiFixture }> | null = null;
function uiRepo() {
  fixture ??= (async () => {
    const t = await tempRepo();
    const fx = await makeUiRepository(t.repo, 200);
    return { t, fx };
  })();
  return fixture;
}

Deno.test({
  name: "rep ui's API serves what rep ls, rep diff and rep show say, filters as rep ls -f does",
  sanitizeResources: false,
  async fn() {
    const { t, fx } = await uiRepo();
    const ui = await startUi(t.repo, t.env);
    try {
      const first = await fetch(ui.base + "api/experiments");
      const list = (await first.json()).experiments;
      assert.equal(list.length, 200);
      // The page polls the list: unchanged, it costs a 304.
      const again = await fetch(ui.base + "api/experiments", {
        headers: { "if-none-match": first.headers.get("etag")! },
      });
      assert.equal(again.status, 304);
      await again.body?.cancel();
      const ls = JSON.parse((await rep(["ls", "--json"], { env: t.env })).stdout);
      const byId = new Map(list.map((e: { id: string }) => [e.id, e]));
      for (const e of ls) {
        const row = byId.get(e.id) as Record<string, unknown>;
        for (const [k, v] of Object.entries(e)) assert.deepEqual(row[k], v, `${e.id} ${k}`);
      }
      // Filters: the same syntax and the same answers as rep ls -f.
      const f = ["lr <= 0.01", "batch_size = 32", "status != crashed"];
      const cli = (await rep(["ls", "-q", ...f.flatMap((x) => ["-f", x])], { env: t.env })).stdout
        .trim().split("\n");
      const viaUi = await getJson(ui.base + "api/filter?q=" + encodeURIComponent(f.join(" and ")));
      assert.equal(viaUi.status, 200);
      assert.deepEqual(new Set(viaUi.body.ids), new Set(cli));
      assert.ok(cli.length > 5 && cli.length < 100, String(cli.length));
      const bad = await getJson(ui.base + "api/filter?q=" + encodeURIComponent("lrr < 1"));
      assert.equal(bad.status, 400);
      assert.match(bad.body.error, /Unknown filter name "lrr"/);
      assert.match(bad.body.hint, /Valid names: .*params: .*lr/);
      // Compare: rep diff --json, byte for byte.
      const ids = [fx.rich, fx.hostile, fx.ids[10]!];
      const diff = JSON.parse((await rep(["diff", ...ids, "--json"], { env: t.env })).stdout);
      assert.deepEqual((await getJson(ui.base + "api/compare?ids=" + ids.join(","))).body, diff);
      // Detail: the record with its provenance, the environment redacted again.
      const d = (await getJson(ui.base + "api/experiments/" + fx.rich.slice(0, 8))).body;
      assert.equal(d.id, fx.rich);
      assert.equal(d.record.provenance.env.LEAKED_TOKEN, "[REDACTED]");
      assert.equal(d.record.provenance.env.PATH, "/usr/bin");
      const ck = d.checkpoints.map((
        c: { torn: string[]; warnings: string[] },
      ) => [c.torn, c.warnings]);
      assert.deepEqual(ck.at(-2), [["optimizer.pt"], []]);
      assert.deepEqual(ck.at(-1), [[], ["model.bin changed while it was read"]]);
      // Files download byte for byte.
      const last = fx.richCheckpoints.at(-1)!;
      const r = await fetch(ui.base + `api/checkpoints/${last}/file?path=model.bin`);
      assert.equal(
        r.headers.get("content-disposition"),
        `attachment; filename="model.bin"; filename*=UTF-8''model.bin`,
      );
      assert.deepEqual(new Uint8Array(await r.arrayBuffer()), fx.weights);
      const code = (await getJson(ui.base + `api/experiments/${fx.rich}/code`)).body;
      assert.deepEqual(code.map((f: { path: string }) => f.path), ["README.md", "train.py"]);
      // Missing data is flagged on its checkpoint, and only there.
      assert.deepEqual((await getJson(ui.base + `api/experiments/${fx.rich}/missing`)).body, {
        missing: {},
      });
      const miss = (await getJson(ui.base + `api/experiments/${fx.broken}/missing`)).body.missing;
      assert.deepEqual(Object.keys(miss), [fx.brokenCheckpoint]);
      assert.match(miss[fx.brokenCheckpoint].reason, /pack [0-9a-f]{7} is missing/);
      // Logs: the tail, then what follows an offset.
      const logUrl = ui.base + `api/experiments/${fx.rich}/logs`;
      const full = await (await fetch(logUrl + "?download=1")).text();
      assert.match(full, /^epoch 1 batch 0 loss 0\.0\n[^]*epoch 2 batch 49 loss 0\.49\n$/);
      const tail = await fetch(logUrl + "?tail=10");
      assert.equal(tail.headers.get("x-log-size"), String(full.length));
      assert.equal(tail.headers.get("x-log-offset"), String(full.length - 10));
      assert.equal(await tail.text(), full.slice(-10));
      const from = await fetch(logUrl + "?from=100");
      assert.equal(await from.text(), full.slice(100));
      // Bad ids and unknown pages.
      for (
        const [path, status] of [["api/series?ids=zz", 400], ["api/experiments/ffffffff", 404], [
          "api/nope",
          404,
        ]] as const
      ) {
        const res = await fetch(ui.base + path);
        assert.equal(res.status, status, path);
        await res.body?.cancel();
      }
    } finally {
      const st = await ui.stop();
      assert.equal(st.code, 0, st.stderr);
      if (!hasChromium) await t.cleanup();
    }
  },
});

Deno.test({
  name:
    "rep ui in Chromium: table, sorting, filters, columns, compare, explore, details, logs, rebinding",
  ignore: !hasChromium,
  sanitizeResources: false,
  async fn() {
    const { t, fx } = await uiRepo();
    const ui = await startUi(t.repo, t.env);
    try {
      await Deno.mkdir(SHOTS, { recursive: true });
      const drive = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--quiet",
          join(ROOT, "tests", "ui_browser.ts"),
          ui.url,
          JSON.stringify(fx),
          t.repo,
          SHOTS,
        ],
        env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const err = new TextDecoder().decode(drive.stderr);
      const seen = JSON.parse(new TextDecoder().decode(drive.stdout).trim().split("\n").pop()!);
      assert.equal(drive.code, 0, err + JSON.stringify(seen).slice(0, 2000));
      assert.deepEqual(seen.errors, []);
      // Only what the test asked for: the bad filter (400) and the rebinding requests (403).
      const statuses = seen.consoleErrors.map((e: string) => /status of (\d+)/.exec(e)?.[1]);
      assert.equal(statuses.filter((s: string) => s === "400").length, 1, statuses.join());
      assert.ok(statuses.every((s: string) => s === "400" || s === "403"), statuses.join());
      assert.deepEqual(seen.dialogs, []);
      // The table: every experiment, metric columns on screen at 1440 px, no horizontal scroll.
      assert.equal(seen.rows, 200);
      assert.equal(seen.count, "200 experiments");
      for (
        const h of ["val_loss ↓", "accuracy", "loss", "lr", "batch_size", "optimizer", "status"]
      ) {
        assert.ok(seen.headers.some((x: string) => x.startsWith(h)), `${h} in ${seen.headers}`);
      }
      assert.ok(
        !seen.headers.includes("comment"),
        "a param of one experiment is not a default column",
      );
      assert.equal(seen.layout.metricCount, 3);
      assert.ok(seen.layout.metricRight <= 1440, JSON.stringify(seen.layout));
      assert.ok(seen.layout.scrollWidth <= seen.layout.clientWidth, JSON.stringify(seen.layout));
      assert.equal(seen.layout.pageWidth, 1440);
      // Sorting: numbers in order, missing values last.
      const nums = (xs: string[]) => xs.filter((x) => x !== "").map(Number);
      const asc = nums(seen.sortAsc);
      assert.equal(asc.length, 200);
      assert.deepEqual(asc, [...asc].sort((a, b) => a - b));
      const desc = nums(seen.sortDesc);
      assert.deepEqual(desc, [...asc].reverse());
      // Status filter and search by expression.
      assert.ok(seen.failedStatuses.length > 10);
      assert.ok(
        seen.failedStatuses.every((s: string) => s === "failed"),
        seen.failedStatuses.join(),
      );
      const cli =
        (await rep(["ls", "-q", "-f", "lr <= 0.01", "-f", "batch_size = 32"], { env: t.env }))
          .stdout.trim().split("\n");
      assert.deepEqual(new Set(seen.filtered), new Set(cli));
      assert.match(seen.filterError, /Unknown filter name "lrr": no field, param or metric/);
      assert.match(seen.filterError, /Valid names: .*params: .*lr/);
      // Column choice.
      assert.ok(
        !seen.headersAfterChoice.some((x: string) => x === "loss"),
        seen.headersAfterChoice.join(),
      );
      assert.ok(seen.headersAfterChoice.includes("host"));
      // Compare: one curve per experiment in each chart, hover values, log, smoothing, wall time.
      assert.deepEqual(seen.compareChips, seen.compareIds);
      assert.deepEqual(seen.compareCharts.map((c: { metric: string }) => c.metric), [
        "val_loss",
        "accuracy",
        "loss",
      ]);
      for (const c of seen.compareCharts) assert.deepEqual(c.series, seen.compareIds);
      assert.equal(seen.tooltip.length, 3);
      assert.match(seen.tooltipHead, /^step \d+$/);
      for (const row of seen.tooltip) assert.match(row, /^[0-9a-f]{7}\d+(\.\d+)?( @\d+)?$/);
      assert.ok(seen.logTitles.every((x: string) => x.endsWith(" (log)")), seen.logTitles.join());
      assert.equal(seen.rawPaths, 9);
      assert.equal(seen.xAxisName, "wall time");
      assert.equal(seen.sideHead.length, 4);
      assert.match(seen.sideText, /batch_size/);
      assert.match(seen.diffText, /What differs \(rep diff\)/);
      // Params versus metrics: every experiment with an lr and a val_loss, in both views.
      assert.equal(seen.scatterPoints, 200);
      assert.equal(seen.scatterTitle, "best (min) val_loss by lr");
      assert.equal(seen.parallelLines, 200);
      assert.ok(
        seen.parallelAxes.includes("lr") && seen.parallelAxes.at(-1) === "best (min) val_loss",
      );
      // Details.
      assert.match(seen.overview, new RegExp(fx.rich));
      assert.match(seen.overview, /python train\.py --lr 0\.3 --batch-size 32/);
      assert.ok(seen.flags.some((f: string) => f === "torn: optimizer.pt"), seen.flags.join("|"));
      assert.ok(
        seen.flags.some((f: string) => f === "warning: model.bin changed while it was read"),
      );
      assert.match(seen.missingStatus, /Every file's data is in the store/);
      const last = fx.richCheckpoints.at(-1)!;
      assert.deepEqual(seen.bestMarked, [last]);
      const href = seen.downloads.find((h: string) => h.endsWith("path=model.bin"));
      assert.deepEqual(
        new Uint8Array(await (await fetch(new URL(href, ui.base))).arrayBuffer()),
        fx.weights,
      );
      assert.match(seen.logTail, /epoch 2 batch 49 loss 0\.49\n$/);
      assert.match(seen.provenance, /numpy==1\.26\.0/);
      assert.match(seen.provenance, /LEAKED_TOKEN\[REDACTED\]/);
      assert.doesNotMatch(seen.provenance, /hunter2/);
      assert.match(seen.provenance, /\+lr = 0\.1/);
      assert.equal(seen.code, "import torch\nlr = 0.1\nprint(lr)\n");
      assert.equal(seen.readme, "# a <b>sweep</b>\n");
      assert.deepEqual(seen.detailCharts, ["val_loss", "accuracy", "loss"]);
      assert.match(seen.brokenStatus, /1 checkpoint\(s\) have files whose data is missing/);
      assert.match(seen.brokenFlags, /missing: model\.bin, notes-\d+\.txt/);
      // Hostile strings are text.
      assert.match(seen.hostileText, /<img src=x onerror=alert\(1\)><script>alert\(2\)<\/script>/);
      assert.match(seen.hostileText, /<b>bold\?<\/b> & "quoted"/);
      assert.equal(seen.images, 0);
      // A live log is followed.
      assert.equal(seen.followChecked, true);
      assert.equal(seen.followed, true);
      // DNS rebinding, in the browser: the page and the API refuse the foreign name.
      assert.equal(seen.rebindStatus, 403);
      assert.match(seen.rebindText, /DNS rebinding protection/);
      assert.equal(seen.rebindApiStatus, 403);
    } finally {
      const st = await ui.stop();
      assert.equal(st.code, 0, st.stderr);
      await t.cleanup();
    }
  },
});

Deno.test("rep ui serves an experiment by name, and each attempt's log of a resumed run", async () => {
  const t = await tempRepo();
  try {
    const project = join(t.dir, "project");
    await Deno.mkdir(project);
    const run = (args: string[], code: string) =>
      rep(["run", "-R", t.repo, "--no-code", ...args, "--", "python3", "-c", code], {
        cwd: project,
        env: t.env,
      });
    const first = await run(["--name", "flaky"], "print('first attempt'); raise SystemExit(1)");
    assert.equal(first.code, 1, first.stderr);
    const second = await run(["--name", "flaky", "--resume"], "print('second attempt')");
    assert.equal(second.code, 0, second.stderr);
    const ui = await startUi(t.repo, t.env);
    try {
      const byName = await getJson(ui.base + "api/experiments/flaky");
      assert.equal(byName.status, 200, JSON.stringify(byName.body));
      assert.equal(byName.body.name, "flaky");
      assert.equal(byName.body.attempts, 2);
      const id: string = byName.body.id;
      // The newest attempt by default, each one by number, both by name and by id.
      for (const ref of ["flaky", id.slice(0, 8)]) {
        const newest = await fetch(ui.base + `api/experiments/${ref}/logs`);
        assert.equal(await newest.text(), "second attempt\n");
        assert.deepEqual(
          [newest.headers.get("x-log-attempt"), newest.headers.get("x-log-attempts")],
          ["2", "2"],
        );
      }
      const one = await fetch(ui.base + "api/experiments/flaky/logs?attempt=1");
      assert.equal(await one.text(), "first attempt\n");
      const all = await fetch(ui.base + "api/experiments/flaky/logs?attempt=1&download=1");
      assert.match(all.headers.get("content-disposition")!, /-attempt1\.log"/);
      assert.equal(await all.text(), "first attempt\n");
      for (
        const [q, status] of [["attempt=3", 404], ["attempt=0", 400], ["attempt=x", 400]] as const
      ) {
        const r = await fetch(ui.base + `api/experiments/flaky/logs?${q}`);
        assert.equal(r.status, status, q);
        await r.body?.cancel();
      }
      const missing = await fetch(ui.base + "api/experiments/no-such-name");
      assert.equal(missing.status, 404);
      assert.match((await missing.json()).error, /No experiment is named "no-such-name"/);
      if (hasChromium) {
        // The Logs tab's attempt picker, in Chromium: the newest attempt first, then the first.
        const drive = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "--quiet",
            join(ROOT, "tests", "ui_attempts_browser.ts"),
            ui.url,
            "flaky",
          ],
          env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const out = new TextDecoder().decode(drive.stdout).trim().split("\n").pop()!;
        assert.equal(drive.code, 0, new TextDecoder().decode(drive.stderr) + out);
        const seen = JSON.parse(out);
        assert.deepEqual(seen.errors, []);
        assert.deepEqual(seen.options, ["attempt 1 of 2", "attempt 2 of 2"]);
        assert.equal(seen.picked, "2");
        assert.equal(seen.newest, "second attempt\n");
        assert.match(
          seen.newestDownload,
          new RegExp(`/api/experiments/${id}/logs\\?download=1&attempt=2$`),
        );
        assert.equal(seen.first, "first attempt\n");
        assert.match(seen.firstDownload, /download=1&attempt=1$/);
        assert.equal(seen.firstFile, `${id.slice(0, 7)}-attempt1.log`);
      }
    } finally {
      const st = await ui.stop();
      assert.equal(st.code, 0, st.stderr);
    }
  } finally {
    await t.cleanup();
  }
});
