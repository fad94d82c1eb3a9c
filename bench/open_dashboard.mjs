// Keeps corvid's /dashboard open in headless Chromium (Playwright, Debian's chromium) for
// SECONDS, refreshing every REFRESH seconds, so a benchmark can measure what a watched
// dashboard costs the server. Prints how many times the page polled.
//   node bench/open_dashboard.mjs URL SECONDS [REFRESH]
import path from "node:path";
import { createRequire } from "node:module";
const [url, seconds, refresh = "1"] = process.argv.slice(2);
const npm = process.env.CORVID_NPM || path.join(process.env.HOME, ".cache/corvid/npm");
const { chromium } = createRequire(path.join(npm, "node_modules", "x.js"))("playwright-core");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
let polls = 0;
page.on("response", (r) => { if (r.url().includes("/dashboard/api/series")) polls++; });
const end = Date.now() + Number(seconds) * 1000;
await page.goto(`${url.replace(/\/$/, "")}/dashboard?refresh=${refresh}`);
let stop = false;
process.on("SIGTERM", () => { stop = true; });
while (!stop && Date.now() < end) await new Promise((r) => setTimeout(r, 250));
console.log(`dashboard page open ${((Date.now() - end) / 1000 + Number(seconds)).toFixed(0)} s, ${polls} polls of /dashboard/api/series`);
await browser.close();
