// Drives the viewer in Chromium for tests/ui_test.ts and prints what it saw as JSON. A separate
// process because playwright-core reads /proc, which Deno allows only with --allow-all, and the
// tests run with the compiled binary's narrower permissions.
// deno-lint-ignore no-import-prefix
import { chromium } from "npm:playwright-core@1.65.1";

const [url, first, screenshot] = Deno.args as [string, string, string];
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const page = await browser.newPage();
  const dialogs: string[] = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    d.dismiss();
  });
  await page.goto(url);
  await page.waitForSelector(`tr[data-id="${first}"]`);
  const rows = await page.$$eval("tr.exp", (trs) => trs.map((tr) => tr.getAttribute("data-id")));
  await page.waitForSelector("polyline.series");
  const lines = await page.$$eval(
    "polyline.series",
    (ps) => ps.map((p) => p.getAttribute("data-id")),
  );
  const body = await page.textContent("body");
  const images = await page.$$eval("img", (imgs) => imgs.length);
  await page.click(`tr[data-id="${first}"] td.id`);
  await page.waitForSelector(`text=Experiment ${first.slice(0, 7)}`);
  const detail = await page.textContent("#detail");
  await page.click("#detail a >> nth=0");
  await page.waitForSelector('#detail a[href*="/file?path="]');
  const hrefs = await page.$$eval(
    '#detail a[href*="/file?path="]',
    (as) => as.map((a) => a.getAttribute("href")),
  );
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ rows, lines, body, images, detail, hrefs, dialogs }));
} finally {
  await browser.close();
}
