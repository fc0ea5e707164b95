/// <reference lib="dom" />
// Drives the Logs tab of a resumed experiment in Chromium for tests/ui_test.ts: the attempt picker
// and its download link. Prints what it saw as JSON (a separate process: see ui_browser.ts).
//
// Usage: ui_attempts_browser.ts URL EXPERIMENT_NAME
// deno-lint-ignore no-import-prefix
import { chromium } from "npm:playwright-core@1.65.1";

const [url, name] = Deno.args as [string, string];
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const seen: Record<string, unknown> = {};
const errors: string[] = [];
const logHas = (text: string) =>
  page.waitForFunction((t) => document.querySelector("#log")?.textContent?.includes(t), text);
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
try {
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.goto(url + `#/e/${name}/logs`);
  await page.waitForSelector("#log-attempt");
  await logHas("second attempt");
  seen.options = await page.$$eval("#log-attempt option", (o) => o.map((x) => x.textContent));
  seen.picked = await page.inputValue("#log-attempt");
  seen.newest = await page.textContent("#log");
  seen.newestDownload = await page.getAttribute("a[download]", "href");
  await page.selectOption("#log-attempt", "1");
  await logHas("first attempt");
  seen.first = await page.textContent("#log");
  seen.firstDownload = await page.getAttribute("a[download]", "href");
  seen.firstFile = await page.getAttribute("a[download]", "download");
} finally {
  seen.errors = errors;
  console.log(JSON.stringify(seen));
  await browser.close();
}
