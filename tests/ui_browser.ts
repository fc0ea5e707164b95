/// <reference lib="dom" />
// Drives the viewer in Chromium for tests/ui_test.ts and prints what it saw as JSON. A separate
// process because playwright-core reads /proc, which Deno allows only with --allow-all, and the
// tests run with the compiled binary's narrower permissions.
//
// Usage: ui_browser.ts URL FIXTURE_JSON REPO_DIR SHOT_DIR
// deno-lint-ignore no-import-prefix
import { chromium, type Page } from "npm:playwright-core@1.65.1";
import { join } from "node:path";

const [url, fixtureJson, repoDir, shots] = Deno.args as [string, string, string, string];
const fx = JSON.parse(fixtureJson) as {
  rich: string;
  hostile: string;
  broken: string;
  brokenCheckpoint: string;
  running: string;
  richCheckpoints: string[];
};
const port = new URL(url).port;
const REBIND = "rebind.example";

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    // DNS rebinding, for real: a foreign name that resolves to the viewer's address.
    `--host-resolver-rules=MAP ${REBIND} 127.0.0.1`,
  ],
});
const seen: Record<string, unknown> = {};
const errors: string[] = [];
const consoleErrors: string[] = [];
const dialogs: string[] = [];

async function shot(page: Page, name: string) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
}

/** Values of one column of the experiments table, in row order. */
function column(page: Page, col: string): Promise<string[]> {
  return page.$$eval(
    "#experiments thead th",
    (ths, col) => {
      const i = ths.findIndex((th) => th.querySelector(`[data-col="${col}"]`));
      return [...document.querySelectorAll("#experiments tbody tr.exp")].map((tr) =>
        (tr.children[i] as HTMLElement | undefined)?.textContent ?? ""
      );
    },
    col,
  );
}

try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    d.dismiss();
  });

  // ---- the table ---------------------------------------------------------------------------
  await page.goto(url);
  await page.waitForSelector("#experiments tbody tr.exp");
  seen.rows = await page.$$eval("#experiments tbody tr.exp", (t) => t.length);
  seen.count = await page.textContent(".count");
  seen.headers = await page.$$eval("#experiments thead th", (t) => t.map((x) => x.textContent));
  // Readable at 1440 px: the metric columns are on screen, the table needs no horizontal scroll.
  seen.layout = await page.evaluate(() => {
    const wrap = document.querySelector(".table-wrap")!;
    const metrics = [...document.querySelectorAll("#experiments thead th.g-metrics")];
    return {
      scrollWidth: wrap.scrollWidth,
      clientWidth: wrap.clientWidth,
      metricRight: Math.max(...metrics.map((m) => m.getBoundingClientRect().right)),
      metricCount: metrics.length,
      pageWidth: document.documentElement.scrollWidth,
    };
  });
  await shot(page, "table");
  // Sort by val_loss: ascending, then descending.
  await page.click('button.sort[data-col="m:val_loss"]');
  seen.sortAsc = await column(page, "m:val_loss");
  await page.click('button.sort[data-col="m:val_loss"]');
  seen.sortDesc = await column(page, "m:val_loss");
  seen.sortDescFirstId = await page.getAttribute("#experiments tbody tr.exp", "data-id");
  // Status filter.
  await page.click('.seg-btn[data-status="failed"]');
  seen.failedStatuses = await column(page, "f:status");
  await page.click('.seg-btn[data-status="all"]');
  // Search by the filter syntax of rep ls -f.
  await page.fill("#search", "lr <= 0.01 and batch_size = 32");
  await page.press("#search", "Enter");
  await page.waitForFunction(() => document.querySelector(".count")?.textContent?.includes(" of "));
  seen.filtered = await page.$$eval(
    "#experiments tbody tr.exp",
    (t) => t.map((x) => x.getAttribute("data-id")),
  );
  await shot(page, "table-filtered");
  await page.fill("#search", "lrr < 0.01");
  await page.press("#search", "Enter");
  await page.waitForSelector(".qmsg .error");
  seen.filterError = await page.textContent(".qmsg .error");
  await page.fill("#search", "");
  await page.press("#search", "Enter");
  await page.waitForFunction(() => !document.querySelector(".qmsg .error"));
  // Column choice: hide loss, show host.
  await page.click("#columns-btn");
  await page.uncheck('#columns input[data-col="m:loss"]');
  await page.check('#columns input[data-col="f:host"]');
  seen.headersAfterChoice = await page.$$eval(
    "#experiments thead th",
    (t) => t.map((x) => x.textContent),
  );
  await shot(page, "columns");
  await page.click("h2, .count"); // close the chooser

  // ---- compare three experiments -------------------------------------------------------------
  const three = (await page.$$eval(
    "#experiments tbody tr.exp",
    (t) => t.slice(0, 3).map((x) => x.getAttribute("data-id")),
  )) as string[];
  for (const id of three) await page.check(`tr[data-id="${id}"] td.check input`);
  await page.click("#compare-btn");
  await page.waitForSelector("#compare-charts .chart path.series");
  await page.waitForSelector("#side-by-side");
  seen.compareIds = three;
  seen.compareChips = await page.$$eval(
    ".exp-chip",
    (c) => c.map((x) => x.getAttribute("data-id")),
  );
  seen.compareCharts = await page.$$eval(
    "#compare-charts .chart",
    (cs) =>
      cs.map((c) => ({
        metric: c.getAttribute("data-metric"),
        series: [...c.querySelectorAll("path.series")].map((p) => p.getAttribute("data-id")),
      })),
  );
  const hit = await page.$('#compare-charts .chart[data-metric="val_loss"] rect.hit');
  const box = (await hit!.boundingBox())!;
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
  await page.waitForSelector("#compare-charts .tip:not([hidden])");
  seen.tooltip = await page.$$eval(
    "#compare-charts .tip:not([hidden]) .tip-row",
    (r) => r.map((x) => x.textContent),
  );
  seen.tooltipHead = await page.textContent("#compare-charts .tip:not([hidden]) .tip-head");
  await shot(page, "compare-hover");
  await page.check("#log-y");
  seen.logTitles = await page.$$eval(
    "#compare-charts .chart-title",
    (t) => t.map((x) => x.textContent),
  );
  await page.$eval("#smoothing", (e) => {
    (e as HTMLInputElement).value = "0.8";
    e.dispatchEvent(new Event("input"));
  });
  seen.rawPaths = await page.$$eval("#compare-charts path.raw", (p) => p.length);
  await page.selectOption("#x-axis", "time");
  seen.xAxisName = await page.$eval(
    "#compare-charts .chart .axis-name",
    (t) => t.textContent,
  );
  seen.sideHead = await page.$$eval("#side-by-side thead th", (t) => t.map((x) => x.textContent));
  seen.sideText = await page.textContent("#side-by-side");
  seen.diffText = await page.textContent(".view-compare");
  await shot(page, "compare");

  // ---- params versus metrics -----------------------------------------------------------------
  await page.goto(url + "#/explore");
  await page.waitForSelector("#scatter circle.pt");
  await page.selectOption("#scatter-x", "lr");
  await page.waitForSelector("#scatter circle.pt");
  seen.scatterPoints = await page.$$eval("#scatter circle.pt", (c) => c.length);
  seen.scatterTitle = await page.textContent("#scatter h3");
  seen.parallelLines = await page.$$eval("#parallel path.pline", (p) => p.length);
  seen.parallelAxes = await page.$$eval(
    "#parallel .axis .axis-name",
    (t) => t.map((x) => x.textContent),
  );
  await shot(page, "explore");

  // ---- one experiment ------------------------------------------------------------------------
  await page.goto(url + `#/e/${fx.rich}`);
  await page.waitForSelector(".detail-head");
  seen.overview = await page.textContent("#view");
  await shot(page, "detail");
  await page.click('a[data-tab="checkpoints"]');
  await page.waitForSelector("#checkpoints");
  await page.waitForFunction(() =>
    !/checking/.test(document.querySelector("#missing-status")?.textContent ?? "checking")
  );
  seen.flags = await page.$$eval("#checkpoints td.flags", (t) => t.map((x) => x.textContent));
  seen.missingStatus = await page.textContent("#missing-status");
  const lastCk = fx.richCheckpoints[fx.richCheckpoints.length - 1]!;
  await page.click(`tr.ck[data-id="${lastCk}"] a.files-link`);
  await page.waitForSelector("tr.files-row a.dl");
  seen.downloads = await page.$$eval(
    "tr.files-row a.dl",
    (a) => a.map((x) => x.getAttribute("href")),
  );
  seen.bestMarked = await page.$$eval("tr.ck.best", (t) => t.map((x) => x.getAttribute("data-id")));
  await shot(page, "checkpoints");
  await page.click('a[data-tab="logs"]');
  await page.waitForFunction(() =>
    /epoch 2 batch 49/.test(document.querySelector("#log")?.textContent ?? "")
  );
  seen.logTail = (await page.textContent("#log"))!.slice(-40);
  await page.click('a[data-tab="provenance"]');
  await page.waitForSelector("#env");
  seen.provenance = await page.textContent("#tab-provenance");
  await shot(page, "provenance");
  await page.click('a[data-tab="code"]');
  await page.click('#code-files a[data-path="train.py"]');
  await page.waitForSelector("#code-view pre.code");
  seen.code = await page.textContent("#code-view pre.code");
  await page.click('#code-files a[data-path="README.md"]');
  await page.waitForFunction(() =>
    /sweep/.test(document.querySelector("#code-view pre.code")?.textContent ?? "")
  );
  seen.readme = await page.textContent("#code-view pre.code");
  await shot(page, "code");
  await page.click('a[data-tab="charts"]');
  await page.waitForSelector(".chart path.series");
  seen.detailCharts = await page.$$eval(
    ".chart",
    (c) => c.map((x) => x.getAttribute("data-metric")),
  );

  // A checkpoint whose data was lost.
  await page.goto(url + `#/e/${fx.broken}/checkpoints`);
  await page.waitForFunction(() =>
    !/checking/.test(document.querySelector("#missing-status")?.textContent ?? "checking")
  );
  seen.brokenStatus = await page.textContent("#missing-status");
  seen.brokenFlags = await page.textContent(`tr.ck[data-id="${fx.brokenCheckpoint}"] td.flags`);
  await shot(page, "missing");

  // Hostile text stays text.
  await page.goto(url + `#/e/${fx.hostile}`);
  await page.waitForSelector(".detail-head");
  seen.hostileText = await page.textContent("#view");
  seen.images = await page.$$eval("img, script:not([src])", (x) => x.length);

  // Following a live run's log: new output shows up without a reload.
  const exp = join(repoDir, "experiments", fx.running);
  const fresh = async () => {
    const hb = JSON.parse(await Deno.readTextFile(join(exp, "heartbeat.json")));
    hb.updated = new Date().toISOString();
    await Deno.writeTextFile(join(exp, "heartbeat.tmp"), JSON.stringify(hb));
    await Deno.rename(join(exp, "heartbeat.tmp"), join(exp, "heartbeat.json"));
  };
  await fresh();
  await page.goto(url + `#/e/${fx.running}/logs`);
  await page.waitForFunction(() =>
    /epoch 2 batch 49/.test(document.querySelector("#log")?.textContent ?? "")
  );
  seen.followChecked = await page.isChecked("#follow");
  await fresh();
  await Deno.writeTextFile(join(exp, "logs", "000003.tmp"), "a line written while you watch\n");
  await Deno.rename(join(exp, "logs", "000003.tmp"), join(exp, "logs", "000003.log"));
  await page.waitForFunction(
    () => /a line written while you watch/.test(document.querySelector("#log")?.textContent ?? ""),
    null,
    { timeout: 45_000 }, // a poll every 2 s; the machine may be loaded
  );
  seen.followed = true;
  await shot(page, "logs-follow");

  // ---- DNS rebinding: a foreign name that resolves to 127.0.0.1 is refused -------------------
  const rebound = await page.goto(`http://${REBIND}:${port}/`);
  seen.rebindStatus = rebound!.status();
  seen.rebindText = await page.textContent("body");
  const rebindApi = await page.goto(`http://${REBIND}:${port}/api/experiments`);
  seen.rebindApiStatus = rebindApi!.status();
} finally {
  seen.errors = errors;
  seen.consoleErrors = consoleErrors;
  seen.dialogs = dialogs;
  console.log(JSON.stringify(seen));
  await browser.close();
}
