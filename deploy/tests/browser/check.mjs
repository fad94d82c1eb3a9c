// Browser tests, Playwright (playwright-core) driving Debian's Chromium headless; run by
// deploy/tests/browser.sh, which starts corvid, Prometheus and the load.
//
//   node check.mjs --npm DIR --metrics URL --prom URL --state DIR --warm-until MS
//                  --stop-load FILE [--screenshots DIR] [--refresh S]
//                  [--grafana-prom URL] DASHBOARD.json...
//
// In order, printing one PASS/FAIL line per check:
//  1. the built-in page (/dashboard on the metrics listener, 1280x800): no console errors,
//     no request leaves the server's origin, every chart and tile fills; keyboard (Tab
//     reaches the skip link, the region links, the controls and every chart, focus is
//     visible, the skip link moves focus), phone width (390 px: no horizontal scroll,
//     charts fit), line styles differ within each chart and every series has a text label;
//  2. after --warm-until (one full rate window of load seen by Prometheus): every panel of
//     every DASHBOARD.json drawn by grafana.html from Prometheus' query_range (range:
//     --warm-until .. now; --grafana-prom, when given, is the Prometheus used here, e.g.
//     one that also scrapes a replica of another model): none empty, erroring or NaN;
//  3. the page's values against the server's ring (/dashboard/api/series), /metrics (scraped
//     every 100 ms meanwhile) and Prometheus: every counter and gauge shown is exactly the
//     ring's sample at its time; counters lie between the scrapes just before and just
//     after that time; gauges within what the scrapes showed one refresh either side of it
//     (give or take the largest move between two scrapes then); the sample is at most one
//     refresh (+1 s of sampling) old; each rate/quantile series agrees with Prometheus
//     evaluating the same PromQL at that instant or one scrape interval either side;
//  4. restart: writes STATE/restart-requested, sees the page report the server down (then
//     writes STATE/seen-down), waits for STATE/restarted (browser.sh restarts corvid once
//     the page has seen it down, or after 30 s), then sees it live again with a new
//     history, charts filled, counters matching the new /metrics, no page errors;
//  5. at rest: touches --stop-load, waits for the engine to drain, and then the engine
//     gauges and counters shown must equal /metrics exactly.
// Screenshots (--screenshots) of each Grafana dashboard and then of the built-in page
// (desktop, full page, and the first screen at phone width) are written while the load runs.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../../..");
const args = { dashboards: [] };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a.startsWith("--")) args[a.slice(2)] = process.argv[++i];
  else args.dashboards.push(a);
}
const require = createRequire(path.join(args.npm, "node_modules", "x.js"));
const { chromium } = require("playwright-core");
const METRICS = args.metrics.replace(/\/$/, "");
const PROM = args.prom.replace(/\/$/, "");
const GRAFANA_PROM = (args["grafana-prom"] || args.prom).replace(/\/$/, "");
const REFRESH = Number(args.refresh || 2);
const SHOTS = args.screenshots || "";
const STATE = args.state;
const WARM_UNTIL = Number(args["warm-until"] || 0);
const STOP_LOAD = args["stop-load"]; // the load generator stops once this file exists

let failed = 0, passed = 0;
function report(ok, name, detail = "") {
  if (ok) passed++; else failed++;
  console.log(`${ok ? "PASS" : "FAIL"} browser: ${name}${detail && (!ok || process.env.VERBOSE) ? ` -- ${detail}` : ""}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(fn, ms, every = 250) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > end) return null;
    await sleep(every);
  }
}

// ---- /metrics, scraped in the background --------------------------------------------
// Keys as the page's columns spell them: name{labels} without model_name.
function parseMetrics(text) {
  const m = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    const key = line.slice(0, sp).replace(/,?model_name="[^"]*"/, "").replace(/\{,/, "{").replace(/\{\}/, "");
    m.set(key, Number(line.slice(sp + 1)));
  }
  return m;
}
const scrapes = [];
let scraping = true;
async function scrapeLoop() {
  while (scraping) {
    const t0 = Date.now();
    try {
      const r = await fetch(`${METRICS}/metrics`);
      const text = await r.text();
      scrapes.push({ t0, t1: Date.now(), v: parseMetrics(text) });
      if (scrapes.length > 3000) scrapes.splice(0, 1000);
    } catch { /* server down: the restart phase */ }
    await sleep(100);
  }
}

// A gauge's PromQL on the page is a bare name scaled by constants ("x * 100", "x / 1024 /
// 1024"): that evaluated against one sample (a Map keyed like parseMetrics), else null.
function instant(promql) {
  const m = /^([a-z_:][a-z0-9_:]*)((?:\s*[*/]\s*[0-9.]+)*)$/i.exec(promql.trim());
  if (!m) return null;
  const ops = [...m[2].matchAll(/([*/])\s*([0-9.]+)/g)].map((o) => [o[1], Number(o[2])]);
  return (sample) => {
    const v = sample.get(m[1]);
    return v === undefined ? NaN : ops.reduce((a, [op, k]) => (op === "*" ? a * k : a / k), v);
  };
}

async function promQuery(expr, atMs) {
  const u = `${PROM}/api/v1/query?query=${encodeURIComponent(expr)}&time=${atMs / 1000}`;
  const j = await (await fetch(u)).json();
  if (j.status !== "success") throw new Error(j.error);
  return j.data.result.map((s) => Number(s.value[1]));
}

// ---- the browser ------------------------------------------------------------------------
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--font-render-hinting=none"],
});
const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
const page = await ctx.newPage();
const consoleErrors = [], pageErrors = [], foreign = [];
let phase = "load";
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push({ phase, text: m.text() }); });
page.on("pageerror", (e) => pageErrors.push({ phase, text: e.message }));
const origin = new URL(METRICS).origin;
page.on("request", (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith("data:")) foreign.push(r.url()); });

const pageState = () => page.evaluate(() => {
  const figs = [...document.querySelectorAll("figure.chart")];
  return {
    status: document.getElementById("status").dataset.state,
    statusText: document.getElementById("status-text").textContent,
    boot: window.corvidDashboard && window.corvidDashboard.state.boot,
    charts: figs.map((f) => ({ id: f.dataset.chart, points: Number(f.dataset.points || 0) })),
    tiles: [...document.querySelectorAll(".tile-value")].map((e) => ({ chart: e.dataset.chart, text: e.textContent })),
  };
});
const filled = (s) => s && s.status === "live" && s.charts.length > 0 && s.charts.every((c) => c.points > 0) && s.tiles.every((t) => t.text !== "–");

scrapeLoop();
try {
  // ---- 1. the page ----------------------------------------------------------------------
  await page.goto(`${METRICS}/dashboard?refresh=${REFRESH}`);
  let st = await until(async () => { const s = await pageState(); return filled(s) ? s : null; }, 90000);
  if (!st) st = await pageState();
  report(filled(st), "built-in page goes live and every chart and tile fills under load",
    JSON.stringify(st && st.charts.filter((c) => !c.points)) + " " + JSON.stringify(st && st.tiles.filter((t) => t.text === "–")));
  report(st.charts.length === 16, `built-in page draws the ${st.charts.length} charts (RPS, latencies, tokens, KV, busy, queue, preemptions, errors, prefix cache, ...)`);
  report(consoleErrors.length === 0 && pageErrors.length === 0, "built-in page loads with no console errors",
    JSON.stringify([...consoleErrors, ...pageErrors]).slice(0, 500));
  report(foreign.length === 0, "built-in page requests nothing outside its server (no CDN: works offline)", foreign.slice(0, 3).join(" "));

  // keyboard
  const focusWalk = await page.evaluate(() => document.activeElement && document.activeElement.blur());
  void focusWalk;
  const seen = [];
  for (let i = 0; i < 70; i++) {
    await page.keyboard.press("Tab");
    seen.push(await page.evaluate(() => {
      const e = document.activeElement;
      const cs = getComputedStyle(e);
      return { tag: e.tagName, id: e.id, cls: e.className && String(e.className), chart: e.dataset ? e.dataset.chart : undefined,
        href: e.getAttribute && e.getAttribute("href"), outline: cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) >= 2 };
    }));
  }
  const chartIds = st.charts.map((c) => c.id);
  const focusedCharts = new Set(seen.filter((s) => s.chart && s.tag === "FIGURE").map((s) => s.chart));
  report(seen[0].cls === "skip", "keyboard: the first Tab reaches the skip link", JSON.stringify(seen[0]));
  report(["#overview", "#resources", "#queueing", "#model"].every((h) => seen.some((s) => s.href === h)),
    "keyboard: Tab reaches the four region links", JSON.stringify(seen.slice(0, 8)));
  report(["refresh", "window", "pause"].every((id) => seen.some((s) => s.id === id)), "keyboard: Tab reaches the refresh, window and pause controls");
  report(chartIds.every((id) => focusedCharts.has(id)), `keyboard: Tab reaches every chart (${focusedCharts.size}/${chartIds.length})`,
    chartIds.filter((id) => !focusedCharts.has(id)).join(","));
  report(seen.filter((s) => s.tag === "FIGURE").every((s) => s.outline), "keyboard: focus is visible on every chart (outline >= 2 px)");
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.focus("a.skip");
  await page.keyboard.press("Enter");
  report(await page.evaluate(() => document.activeElement.id === "charts"), "keyboard: the skip link moves focus to the charts");
  const a11y = await page.evaluate(() => {
    const out = [];
    for (const f of document.querySelectorAll("figure.chart")) {
      const rows = [...f.querySelectorAll("tbody tr")];
      const dashes = rows.map((r) => r.querySelector("line").getAttribute("stroke-dasharray") || "solid");
      if (new Set(dashes).size !== dashes.length) out.push(`${f.dataset.chart}: line styles repeat`);
      if (rows.some((r) => !r.querySelector("th").textContent.trim())) out.push(`${f.dataset.chart}: a series without a label`);
      if (!f.getAttribute("aria-label") || !f.getAttribute("aria-label").includes(":")) out.push(`${f.dataset.chart}: no accessible summary`);
    }
    const small = [...document.querySelectorAll("td.latest, .tile-value, figcaption")].filter((e) => parseFloat(getComputedStyle(e).fontSize) < 12);
    if (small.length) out.push(`${small.length} values under 12 px`);
    if (document.querySelectorAll("section.region h2").length !== 4) out.push("not four regions with headings");
    return out;
  });
  report(a11y.length === 0, "no colour-only meaning: distinct line styles and a text label per series, values in text, four headed regions", a11y.join("; "));

  await page.setViewportSize({ width: 390, height: 844 });
  await sleep(600);
  const phone = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth, width: window.innerWidth,
    wide: [...document.querySelectorAll("figure.chart canvas, .tile")].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1).length,
  }));
  report(phone.scroll <= phone.width && phone.wide === 0, "phone width (390 px): no horizontal scrolling, every chart and tile fits", JSON.stringify(phone));
  await page.setViewportSize({ width: 1280, height: 800 });
  await sleep(600);

  // ---- 2. the Grafana dashboards ----------------------------------------------------------
  const wait = WARM_UNTIL - Date.now();
  if (wait > 0) { console.log(`(waiting ${Math.round(wait / 1000)} s for a full minute of load in Prometheus)`); await sleep(wait); }
  const harness = await ctx.newPage();
  harness.on("pageerror", (e) => report(false, `harness page error: ${e.message}`));
  await harness.route("http://harness.localhost/**", async (route) => {
    const u = new URL(route.request().url());
    const [, top, ...rest] = u.pathname.split("/");
    const file = rest.join("/");
    if (top === "prom") {
      const r = await route.fetch({ url: `${GRAFANA_PROM}/${file}${u.search}` });
      return route.fulfill({ response: r });
    }
    const roots = { harness: HERE, uplot: path.join(REPO, "crates/corvid-server/assets/dashboard/uplot"), dashboards: path.join(REPO, "deploy/grafana/dashboards") };
    const p = top === "" || top === "grafana.html" ? path.join(HERE, "grafana.html") : path.join(roots[top] || "/nonexistent", file);
    if (!fs.existsSync(p)) return route.fulfill({ status: 404, body: "not found" });
    return route.fulfill({ path: p });
  });
  const from = Math.floor(Number(args["range-from"] || WARM_UNTIL - 40000) / 1000), to = Math.floor(Date.now() / 1000);
  for (const d of args.dashboards) {
    const name = path.basename(d, ".json");
    await harness.setViewportSize({ width: 1600, height: 900 });
    await harness.goto(`http://harness.localhost/grafana.html?dashboard=dashboards/${path.basename(d)}&prom=prom&from=${from}&to=${to}&step=2`);
    const done = await until(() => harness.evaluate(() => window.harness && window.harness.done), 60000);
    const res = await harness.evaluate(() => window.harness);
    if (!done || res.error) { report(false, `${name}: harness ran`, res.error || "timed out"); continue; }
    for (const p of res.panels) {
      report(p.status === "ok", `${name} [${p.title}] (${p.type}) drawn from query_range: ${p.series} series, ${p.points} points, no NaN`, `${p.status}: ${p.detail}`);
    }
    const want = JSON.parse(fs.readFileSync(d, "utf8")).panels.flatMap((p) => [p, ...(p.panels || [])]).filter((p) => p.type !== "row").length;
    report(res.panels.length === want, `${name}: all ${want} panels drawn (variables: ${JSON.stringify(res.variables)})`, `${res.panels.length} drawn`);
    if (SHOTS) await harness.screenshot({ path: path.join(SHOTS, `grafana-${name}.png`), fullPage: true });
  }
  await harness.close();

  // ---- 3. values against /metrics and Prometheus ------------------------------------------
  await until(async () => filled(await pageState()), 20000);
  if (SHOTS) { // now that the page holds a couple of minutes of load
    await page.evaluate(() => { document.activeElement.blur(); window.scrollTo(0, 0); });
    await page.screenshot({ path: path.join(SHOTS, "dashboard-builtin.png"), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await sleep(600);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(SHOTS, "dashboard-builtin-phone.png"), fullPage: false });
    await page.setViewportSize({ width: 1280, height: 800 });
    await sleep(600);
  }
  const readPage = () => page.evaluate(() => ({
    now: Date.now(),
    totals: [...document.querySelectorAll("dd.total")].map((e) => ({ key: e.dataset.metric, v: Number(e.dataset.value), t: Number(e.dataset.t) })),
    series: [...document.querySelectorAll("figure.chart")].flatMap((f) => {
      const def = window.corvidDashboard.charts.find((c) => c.id === f.dataset.chart);
      return [...f.querySelectorAll("td.latest")].map((td, i) => ({
        chart: def.id, label: def.series[i].label, promql: def.series[i].promql,
        v: td.dataset.value === "" ? null : Number(td.dataset.value), t: Number(td.dataset.t),
      }));
    }),
  }));
  // The ring as the server holds it: the page must show exactly these samples.
  const readRing = async () => {
    const j = await (await fetch(`${METRICS}/dashboard/api/series`, { cache: "no-store" })).json();
    const s = j.series;
    return { at: (t) => { const i = s.t.indexOf(t); return i < 0 ? null : new Map(s.columns.map((c, k) => [c, s.v[k][i]])); } };
  };
  const counterFails = [], ringFails = [], gaugeFails = [], staleFails = [], promFails = [];
  let counterChecks = 0, ringChecks = 0, gaugeChecks = 0, promChecks = 0, worst = 0;
  const same = (a, b) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
  for (let round = 0; round < 3; round++) {
    await sleep(REFRESH * 1000 + 700);
    const snap = await readPage();
    const ring = await readRing();
    await sleep(REFRESH * 1000 + 500); // let the scraper pass one refresh beyond the sample
    for (const x of snap.totals) {
      counterChecks++;
      if (snap.now - x.t > REFRESH * 1000 + 1000 + 500) staleFails.push(`${x.key} sampled ${snap.now - x.t} ms before it was read`);
      const held = ring.at(x.t);
      ringChecks++;
      if (!held || !same(x.v, held.get(x.key))) ringFails.push(`${x.key}=${x.v} at ${x.t}, ring ${held && held.get(x.key)}`);
      const before = scrapes.filter((s) => s.t1 <= x.t).pop();
      const after = scrapes.find((s) => s.t0 >= x.t);
      if (!before || !after) { counterFails.push(`${x.key}: no scrape around ${x.t}`); continue; }
      const lo = before.v.get(x.key), hi = after.v.get(x.key);
      if (!(lo <= x.v && x.v <= hi)) counterFails.push(`${x.key}=${x.v} not within /metrics ${lo}..${hi}`);
    }
    for (const s of snap.series) {
      const gauge = instant(s.promql);
      if (gauge && s.v !== null) {
        const held = ring.at(s.t);
        ringChecks++;
        if (!held || !same(s.v, gauge(held))) ringFails.push(`${s.chart}/${s.label}=${s.v} at ${s.t}, ring ${held && gauge(held)}`);
        // A gauge moves between two scrapes 100 ms apart: the value must lie within what
        // /metrics showed from one refresh before the sample to one refresh after, give or
        // take the largest move /metrics itself made between two scrapes in that span.
        const near = scrapes.filter((m) => m.t1 >= s.t - REFRESH * 1000 && m.t0 <= s.t + REFRESH * 1000).map((m) => gauge(m.v));
        gaugeChecks++;
        if (near.length < 2 || near.some((v) => !Number.isFinite(v))) { gaugeFails.push(`${s.promql}: ${near.length} scrapes around ${s.t}`); continue; }
        const step = Math.max(...near.slice(1).map((v, i) => Math.abs(v - near[i])));
        const lo = Math.min(...near) - step, hi = Math.max(...near) + step;
        if (s.v < lo - 1e-9 || s.v > hi + 1e-9) {
          gaugeFails.push(`${s.promql}=${s.v} at ${s.t} outside /metrics ${lo}..${hi} (${near.length} scrapes, largest step ${step})`);
        }
      }
      if (s.promql.includes("rate(")) {
        // The ring and Prometheus sample /metrics at different instants (each once a
        // second), so the page's window can hold up to one sample more or less at either
        // end: Prometheus is asked at the sample time and one scrape interval either side.
        promChecks++;
        const got = await Promise.all([-1000, 0, 1000].map((d) => promQuery(s.promql, s.t + d).catch((e) => [`error ${e.message}`])));
        if (got.some((g) => g.length !== 1 || typeof g[0] !== "number")) { promFails.push(`${s.promql}: Prometheus ${JSON.stringify(got)}`); continue; }
        const want = got.map((g) => g[0]);
        if (s.v === null || !want.every(Number.isFinite)) {
          if (!(s.v === null && !Number.isFinite(want[1]))) promFails.push(`${s.chart}/${s.label}: page ${s.v}, Prometheus ${want.join(" / ")}`);
          continue;
        }
        const quant = s.promql.startsWith("histogram_quantile");
        const [lo, hi] = [Math.min(...want), Math.max(...want)];
        const tol = Math.max((quant ? 0.2 : 0.1) * Math.abs(want[1]), quant ? 0.005 : 0.05);
        const dev = s.v < lo ? lo - s.v : s.v > hi ? s.v - hi : 0;
        worst = Math.max(worst, want[1] ? dev / Math.abs(want[1]) : dev);
        if (dev > tol) promFails.push(`${s.chart}/${s.label}: page ${s.v.toPrecision(4)}, Prometheus ${want.map((w) => w.toPrecision(4)).join(" / ")} at -1/0/+1 s (${s.promql})`);
      }
    }
  }
  report(ringFails.length === 0, `every counter and gauge shown is exactly the server's ring sample at its time (${ringChecks} checks)`, ringFails.slice(0, 4).join("; "));
  report(counterFails.length === 0, `counters shown equal /metrics at their sample time (${counterChecks} checks)`, counterFails.slice(0, 4).join("; "));
  report(gaugeFails.length === 0, `gauges shown lie within what /metrics showed one refresh either side of their sample (${gaugeChecks} checks)`, gaugeFails.slice(0, 4).join("; "));
  report(staleFails.length === 0, `values shown are at most one refresh (${REFRESH} s) + one sample old`, staleFails.slice(0, 3).join("; "));
  report(promFails.length === 0, `rates and quantiles shown agree with Prometheus on the same PromQL within one scrape of their time (${promChecks} checks, worst ${(100 * worst).toFixed(1)} %)`, promFails.slice(0, 4).join("; "));

  // ---- 4. restart ---------------------------------------------------------------------------
  const bootBefore = (await pageState()).boot;
  phase = "restart";
  fs.writeFileSync(path.join(STATE, "restart-requested"), "");
  const down = await until(async () => (await pageState()).status === "down", 30000);
  report(Boolean(down), "while the server is down the page says so (status 'Cannot reach the server')");
  fs.writeFileSync(path.join(STATE, "seen-down"), "");
  const restarted = await until(async () => fs.existsSync(path.join(STATE, "restarted")), 240000, 500);
  if (!restarted) report(false, "corvid restarted (browser.sh)");
  phase = "after";
  let back = await until(async () => { const s = await pageState(); return filled(s) && s.boot !== bootBefore ? s : null; }, 90000);
  report(Boolean(back), "after the restart the page is live again on the new server's history, every chart filled",
    JSON.stringify(await pageState()).slice(0, 400));
  await sleep(REFRESH * 1000 + 700);
  const after = await readPage();
  await sleep(1500);
  const bad = after.totals.filter((x) => {
    const before = scrapes.filter((s) => s.t1 <= x.t).pop(), aft = scrapes.find((s) => s.t0 >= x.t);
    return !(before && aft && before.v.get(x.key) <= x.v && x.v <= aft.v.get(x.key));
  });
  report(after.totals.length > 0 && bad.length === 0, "after the restart the counters shown equal the new /metrics", JSON.stringify(bad));

  // ---- 5. at rest ---------------------------------------------------------------------------
  // With the load stopped and the engine drained the gauges hold still: the page must then
  // show exactly what /metrics shows.
  fs.writeFileSync(STOP_LOAD, "");
  const settled = await until(async () => {
    const last = scrapes.slice(-20);
    return last.length === 20 && last[0].t0 > Date.now() - 4000 &&
      last.every((m) => m.v.get("vllm_running_requests") === 0 && m.v.get("vllm_waiting_requests") === 0 &&
        m.v.get("vllm_kv_cache_blocks_used") === last[0].v.get("vllm_kv_cache_blocks_used"));
  }, 60000);
  report(Boolean(settled), "with the load stopped the engine drains (no running or waiting request on /metrics for 2 s)");
  await sleep(REFRESH * 1000 + 1500);
  const rest = await readPage();
  const lastScrape = scrapes[scrapes.length - 1].v;
  const ENGINE = ["vllm_running_requests", "vllm_waiting_requests", "vllm_kv_cache_blocks_used", "vllm_kv_cache_blocks_capacity", "vllm_kv_cache_usage_ratio"];
  const restSeries = rest.series.filter((s) => instant(s.promql) && ENGINE.some((n) => s.promql.startsWith(n)));
  const restBad = restSeries.filter((s) => !(s.v !== null && same(s.v, instant(s.promql)(lastScrape))))
    .map((s) => `${s.promql}: page ${s.v}, /metrics ${instant(s.promql)(lastScrape)}`);
  const restTotals = rest.totals.filter((x) => !same(x.v, lastScrape.get(x.key))).map((x) => `${x.key}: page ${x.v}, /metrics ${lastScrape.get(x.key)}`);
  report(restSeries.length === ENGINE.length && restBad.length === 0 && restTotals.length === 0,
    `at rest the engine gauges and the counters shown equal /metrics exactly (${restSeries.length} gauges, ${rest.totals.length} counters)`,
    [...restBad, ...restTotals].slice(0, 4).join("; "));

  const unexpected = consoleErrors.filter((e) => !(e.phase === "restart" && /Failed to load resource|ERR_CONNECTION_REFUSED|Failed to fetch/.test(e.text)));
  report(pageErrors.length === 0 && unexpected.length === 0, "no script error and no console error but the refused fetches while the server was down",
    JSON.stringify([...pageErrors, ...unexpected]).slice(0, 500));
} catch (e) {
  report(false, "browser checks ran to the end", e.stack);
} finally {
  scraping = false;
  await browser.close();
}
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
