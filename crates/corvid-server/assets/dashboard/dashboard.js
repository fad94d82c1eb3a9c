// corvid's built-in dashboard. Polls dashboard/api/series (the server's once-a-second
// history of the series /metrics exports), evaluates each chart's PromQL expression over
// those samples with promql.js (what Prometheus would compute from a 1 s scrape), and
// draws with uPlot. No network access beyond this server.
(function () {
  "use strict";
  const P = window.PromQL;
  const RANGE_MS = 60 * 1000; // [1m], as the Grafana dashboards' recording rules
  const PATTERNS = [[], [8, 4], [2, 3], [10, 3, 2, 3], [4, 4]];
  const PATTERN_NAMES = ["solid", "dashed", "dotted", "dash-dot", "short dash"];
  const COLORS = ["#1f5fbf", "#b3471d", "#2e7d32", "#7b3fa0", "#6d5a00"];

  // ---- the charts: every series is a PromQL expression and its evaluator ----------------
  const rateOf = (name) => (d, i) => d.rate(name, i);
  const gauge = (name, k = 1) => (d, i) => {
    const v = d.instant(name, i);
    return v === null ? null : v * k;
  };
  const quantile = (h, q) => ({
    label: `P${Math.round(q * 100)}`,
    promql: `histogram_quantile(${q}, sum by (le) (rate(${h}_bucket[1m])))`,
    f: (d, i) => d.quantile(h, q, i),
  });
  const ratio = (a, b, k = 1) => (d, i) => {
    const x = d.rate(a, i), y = d.rate(b, i);
    if (x === null || y === null) return null;
    return (x / y) * k;
  };
  const perMin = (name) => (d, i) => {
    const v = d.rate(name, i);
    return v === null ? null : v * 60;
  };

  const REGIONS = [
    { id: "overview", title: "Overview" },
    { id: "resources", title: "Resources" },
    { id: "queueing", title: "Queueing & scheduling" },
    { id: "model", title: "Per model" },
  ];

  const CHARTS = [
    {
      region: "overview", id: "rps", title: "Requests per second", unit: "reqps",
      series: [{ label: "finished requests/s", promql: "rate(vllm_request_throughput[1m])", f: rateOf("vllm_request_throughput") }],
    },
    {
      region: "overview", id: "e2e", title: "End-to-end latency", unit: "s",
      series: [0.5, 0.95, 0.99].map((q) => quantile("vllm_request_latency_seconds", q)),
    },
    {
      region: "overview", id: "ttft", title: "Time to first token (TTFT)", unit: "s",
      series: [0.5, 0.95, 0.99].map((q) => quantile("vllm_time_to_first_token_seconds", q)),
    },
    {
      region: "overview", id: "itl", title: "Inter-token latency (ITL)", unit: "s",
      series: [0.5, 0.95, 0.99].map((q) => quantile("vllm_inter_token_latency_seconds", q)),
    },
    {
      region: "overview", id: "tokens", title: "Tokens per second, in and out", unit: "tps",
      series: [
        { label: "prompt tokens/s (in)", promql: "rate(vllm_prompt_tokens_total[1m])", f: rateOf("vllm_prompt_tokens_total") },
        { label: "generated tokens/s (out)", promql: "rate(vllm_generation_tokens_total[1m])", f: rateOf("vllm_generation_tokens_total") },
      ],
    },
    {
      region: "resources", id: "kv_usage", title: "KV-cache usage", unit: "percent",
      series: [{ label: "KV blocks in use", promql: "vllm_kv_cache_usage_ratio * 100", f: gauge("vllm_kv_cache_usage_ratio", 100) }],
    },
    {
      region: "resources", id: "kv_blocks", title: "KV-cache blocks", unit: "count",
      series: [
        { label: "used", promql: "vllm_kv_cache_blocks_used", f: gauge("vllm_kv_cache_blocks_used") },
        { label: "capacity", promql: "vllm_kv_cache_blocks_capacity", f: gauge("vllm_kv_cache_blocks_capacity") },
      ],
    },
    {
      region: "resources", id: "busy", title: "Engine busy fraction", unit: "percent",
      series: [{ label: "engine busy (last 10 s)", promql: "vllm_gpu_utilization * 100", f: gauge("vllm_gpu_utilization", 100) }],
    },
    {
      region: "resources", id: "memory", title: "Memory", unit: "mib",
      series: [
        { label: "resident", promql: "vllm_process_resident_memory_bytes / 1024 / 1024", f: gauge("vllm_process_resident_memory_bytes", 1 / 1048576) },
        { label: "KV pool", promql: "vllm_kv_cache_bytes / 1024 / 1024", f: gauge("vllm_kv_cache_bytes", 1 / 1048576) },
      ],
    },
    {
      region: "queueing", id: "requests", title: "Running and waiting requests", unit: "count",
      series: [
        { label: "running", promql: "vllm_running_requests", f: gauge("vllm_running_requests") },
        { label: "waiting", promql: "vllm_waiting_requests", f: gauge("vllm_waiting_requests") },
      ],
    },
    {
      region: "queueing", id: "queue_time", title: "Queue time", unit: "s",
      series: [0.5, 0.95].map((q) => quantile("vllm_request_queue_time_seconds", q)),
    },
    {
      region: "queueing", id: "preemptions", title: "Preemptions per minute", unit: "permin",
      series: [{ label: "preemptions/min", promql: "rate(vllm_preemptions_total[1m]) * 60", f: perMin("vllm_preemptions_total") }],
    },
    {
      region: "queueing", id: "batch", title: "Batch per engine step", unit: "count",
      series: [
        { label: "sequences per step (avg)", promql: "rate(vllm_batch_size_sum[1m]) / rate(vllm_batch_size_count[1m])", f: ratio("vllm_batch_size_sum", "vllm_batch_size_count") },
        { label: "tokens per step (avg)", promql: "rate(vllm_tokens_per_step_sum[1m]) / rate(vllm_tokens_per_step_count[1m])", f: ratio("vllm_tokens_per_step_sum", "vllm_tokens_per_step_count") },
      ],
    },
    {
      region: "queueing", id: "errors", title: "Errors and aborts by reason, per minute", unit: "permin",
      series: [
        { label: "error", promql: 'rate(vllm_request_finished_total{finished_reason="error"}[1m]) * 60', f: perMin('vllm_request_finished_total{finished_reason="error"}') },
        { label: "abort", promql: 'rate(vllm_request_finished_total{finished_reason="abort"}[1m]) * 60', f: perMin('vllm_request_finished_total{finished_reason="abort"}') },
        { label: "timeout (shutdown deadline)", promql: "rate(vllm_request_timeout_total[1m]) * 60", f: perMin("vllm_request_timeout_total") },
      ],
    },
    {
      region: "model", id: "prefix_hit", title: "Prefix-cache hit rate", unit: "percent",
      series: [{
        label: "prompt tokens served from cache",
        promql: "rate(vllm_prefix_cache_hit_tokens_total[1m]) / rate(vllm_prompt_tokens_total[1m]) * 100",
        f: ratio("vllm_prefix_cache_hit_tokens_total", "vllm_prompt_tokens_total", 100),
      }],
    },
    {
      region: "model", id: "finished", title: "Finished requests by reason", unit: "reqps",
      series: ["stop", "length", "abort", "error"].map((r) => ({
        label: r,
        promql: `rate(vllm_request_finished_total{finished_reason="${r}"}[1m])`,
        f: rateOf(`vllm_request_finished_total{finished_reason="${r}"}`),
      })),
    },
  ];

  // Overview tiles: the latest value of one chart series each.
  const TILES = [
    ["rps", 0, "Requests/s"], ["e2e", 1, "P95 latency"], ["ttft", 2, "P99 TTFT"],
    ["tokens", 1, "Tokens/s out"], ["requests", 0, "Running"], ["requests", 1, "Waiting"],
    ["kv_usage", 0, "KV cache"], ["busy", 0, "Engine busy"],
  ];
  // Model card totals: counters as /metrics shows them.
  const TOTALS = [
    ["vllm_request_throughput", "requests finished"],
    ["vllm_prompt_tokens_total", "prompt tokens"],
    ["vllm_generation_tokens_total", "generated tokens"],
    ["vllm_preemptions_total", "preemptions"],
  ];

  // ---- formatting ---------------------------------------------------------------------
  function fmt(v, unit) {
    if (v === null || v === undefined || !Number.isFinite(v)) return "–";
    const a = Math.abs(v);
    const num = (x, d) => x.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: 0 });
    switch (unit) {
      case "s":
        return a >= 1 ? `${num(v, 2)} s` : `${num(v * 1000, a >= 0.01 ? 0 : 1)} ms`;
      case "percent": return `${num(v, 1)} %`;
      case "reqps": return `${num(v, 2)} req/s`;
      case "tps": return `${num(v, 1)} tok/s`;
      case "permin": return `${num(v, 1)} /min`;
      case "mib": return `${num(v, 0)} MiB`;
      default: return num(v, a < 10 ? 2 : 0);
    }
  }

  // Axis ticks: short, the unit is in the chart's title.
  function fmtAxis(v, unit) {
    if (v === null || !Number.isFinite(v)) return "";
    if (unit === "s") return Math.abs(v) >= 1 ? `${+v.toFixed(2)}s` : `${+(v * 1000).toFixed(1)}ms`;
    if (Math.abs(v) >= 10000) return `${+(v / 1000).toFixed(1)}k`;
    return String(+v.toFixed(3));
  }
  const UNIT_NAMES = { reqps: "req/s", s: "seconds", percent: "%", tps: "tokens/s", permin: "per minute", mib: "MiB", count: "" };

  // ---- state ----------------------------------------------------------------------------
  const state = {
    boot: null, next: null, columns: [], index: new Map(), t: [], v: [], capacity: 900,
    info: [], model: "", version: "", bytes: 0, lastOk: 0, failures: 0, paused: false,
    refreshMs: clampRefresh(new URLSearchParams(location.search).get("refresh")),
    windowMs: 15 * 60 * 1000, buckets: new Map(),
  };
  function clampRefresh(s) {
    const n = Number(s);
    return Number.isFinite(n) && n >= 1 && n <= 5 ? n * 1000 : 2000;
  }

  const bucketRates = new Map(); // cleared by render()

  // Accessors the series evaluators use, at sample index i.
  const data = {
    col(key) {
      const c = state.index.get(key);
      return c === undefined ? null : state.v[c];
    },
    rate(key, i) {
      const vs = data.col(key);
      return vs ? P.rate(state.t, vs, state.t[i], RANGE_MS) : null;
    },
    instant(key, i) {
      const vs = data.col(key);
      return vs ? P.instant(state.t, vs, state.t[i]) : null;
    },
    quantile(h, q, i) {
      // the buckets' rates at i, computed once per render for all of h's quantiles
      const memo = `${h}@${i}`;
      let b = bucketRates.get(memo);
      if (b === undefined) {
        const cols = state.buckets.get(h) || [];
        b = cols.length ? [] : null;
        for (const [le, c] of cols) {
          const r = P.rate(state.t, state.v[c], state.t[i], RANGE_MS);
          if (r === null) { b = null; break; }
          b.push([le, r]);
        }
        bucketRates.set(memo, b);
      }
      if (b === null) return null;
      const v = P.histogramQuantile(q, b);
      return Number.isFinite(v) ? v : null; // NaN (nothing finished in the window): a gap
    },
  };

  function adopt(series, full) {
    if (full) {
      state.columns = series.columns;
      state.index = new Map(series.columns.map((k, i) => [k, i]));
      state.t = [];
      state.v = series.columns.map(() => []);
      state.buckets = new Map();
      series.columns.forEach((k, i) => {
        const m = k.match(/^(.*)_bucket\{le="([^"]+)"\}$/);
        if (m) {
          if (!state.buckets.has(m[1])) state.buckets.set(m[1], []);
          state.buckets.get(m[1]).push([P.parseLe(m[2]), i]);
        }
      });
    }
    state.boot = series.boot;
    state.next = series.next;
    state.capacity = series.capacity;
    state.bytes = series.bytes;
    state.info = series.info;
    for (let j = 0; j < series.t.length; j++) state.t.push(series.t[j]);
    series.v.forEach((col, c) => { for (const x of col) state.v[c].push(x === null ? NaN : x); });
    const extra = state.t.length - state.capacity;
    if (extra > 0) {
      state.t.splice(0, extra);
      state.v.forEach((col) => col.splice(0, extra));
    }
  }

  // ---- DOM ------------------------------------------------------------------------------
  const $ = (sel, el = document) => el.querySelector(sel);
  const h = (tag, attrs = {}, ...kids) => {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") el.textContent = v;
      else if (k === "class") el.className = v;
      else el.setAttribute(k, v);
    }
    for (const kid of kids) if (kid !== null && kid !== undefined) el.append(kid);
    return el;
  };
  const svgNS = "http://www.w3.org/2000/svg";
  function swatch(i) {
    const s = document.createElementNS(svgNS, "svg");
    s.setAttribute("width", "28"); s.setAttribute("height", "10"); s.setAttribute("aria-hidden", "true");
    s.setAttribute("class", "swatch");
    const l = document.createElementNS(svgNS, "line");
    l.setAttribute("x1", "1"); l.setAttribute("x2", "27"); l.setAttribute("y1", "5"); l.setAttribute("y2", "5");
    l.setAttribute("stroke", COLORS[i % COLORS.length]); l.setAttribute("stroke-width", "2.5");
    if (PATTERNS[i % PATTERNS.length].length) l.setAttribute("stroke-dasharray", PATTERNS[i % PATTERNS.length].join(" "));
    s.append(l);
    return s;
  }

  const charts = new Map();

  function build() {
    const main = $("#charts");
    const tiles = h("ul", { class: "tiles", "aria-label": "Current values" });
    for (const [chart, si, name] of TILES) {
      const c = CHARTS.find((x) => x.id === chart);
      tiles.append(h("li", { class: "tile", title: c.series[si].promql },
        h("span", { class: "tile-name", text: name }),
        h("span", { class: "tile-value", "data-chart": chart, "data-series": String(si), text: "–" })));
    }
    for (const r of REGIONS) {
      const sec = h("section", { id: r.id, class: "region", "aria-labelledby": `h-${r.id}` },
        h("h2", { id: `h-${r.id}`, text: r.title }));
      if (r.id === "overview") sec.append(tiles);
      if (r.id === "model") sec.append(h("div", { id: "model-card", class: "card" }));
      const grid = h("div", { class: "grid" });
      for (const c of CHARTS.filter((x) => x.region === r.id)) grid.append(chartBox(c));
      sec.append(grid);
      main.append(sec);
    }
  }

  function chartBox(c) {
    const fig = h("figure", {
      class: "chart", id: `chart-${c.id}`, tabindex: "0", "data-chart": c.id,
      "aria-labelledby": `t-${c.id}`, "aria-describedby": `d-${c.id}`,
    });
    const unit = UNIT_NAMES[c.unit];
    fig.append(h("figcaption", { id: `t-${c.id}`, text: c.title }, unit ? h("span", { class: "unit", text: ` (${unit})` }) : null));
    const plot = h("div", { class: "plot", "aria-hidden": "true" });
    fig.append(plot);
    const table = h("table", { class: "values", id: `d-${c.id}` },
      h("caption", { class: "sr-only", text: `${c.title}: latest and highest values in the window` }),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col", text: "series (line style)" }),
        h("th", { scope: "col", text: "latest" }),
        h("th", { scope: "col", text: "max" }))));
    const body = h("tbody");
    c.series.forEach((s, i) => {
      body.append(h("tr", {},
        h("th", { scope: "row" }, swatch(i), h("span", { text: ` ${s.label}` }),
          h("span", { class: "sr-only", text: ` (${PATTERN_NAMES[i % PATTERN_NAMES.length]} line)` })),
        h("td", { class: "latest", "data-series": String(i), text: "–" }),
        h("td", { class: "max", text: "–" })));
    });
    table.append(body);
    fig.append(table);
    const det = h("details", {}, h("summary", { text: "PromQL" }));
    const list = h("ul", { class: "promql" });
    c.series.forEach((s) => list.append(h("li", {}, h("code", { text: s.promql }))));
    det.append(list);
    fig.append(det);
    charts.set(c.id, { def: c, fig, plot, body, u: null });
    return fig;
  }

  function makePlot(entry, width) {
    const c = entry.def;
    const opts = {
      width, height: 200,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [Math.min(0, min ?? 0), max > 0 ? max * 1.1 : 1] } },
      axes: [
        { stroke: "#333", grid: { stroke: "#e3e3e3" } },
        { stroke: "#333", grid: { stroke: "#e3e3e3" }, size: 56, values: (u, vals) => vals.map((v) => fmtAxis(v, c.unit)) },
      ],
      series: [{}].concat(c.series.map((s, i) => ({
        label: s.label, stroke: COLORS[i % COLORS.length], width: 2,
        dash: PATTERNS[i % PATTERNS.length], spanGaps: false, points: { show: false },
      }))),
    };
    return new uPlot(opts, [[], ...c.series.map(() => [])], entry.plot);
  }

  function plotWidth(entry) {
    return Math.max(200, Math.floor(entry.fig.clientWidth - 2));
  }

  // ---- render ---------------------------------------------------------------------------
  function render() {
    bucketRates.clear();
    const n = state.t.length;
    const until = n ? state.t[n - 1] : 0;
    const from = P.lowerBound(state.t, until - state.windowMs);
    const xs = state.t.slice(from).map((t) => t / 1000);
    for (const entry of charts.values()) {
      const c = entry.def;
      const ys = c.series.map((s) => {
        const out = new Array(n - from);
        for (let i = from; i < n; i++) {
          const v = s.f(data, i);
          out[i - from] = v === null || !Number.isFinite(v) ? null : v;
        }
        return out;
      });
      if (!entry.u) entry.u = makePlot(entry, plotWidth(entry));
      entry.u.setData([xs, ...ys]);
      const rows = entry.body.querySelectorAll("tr");
      let points = 0;
      ys.forEach((y, i) => {
        const latest = y.length ? y[y.length - 1] : null;
        let max = null;
        for (const v of y) if (v !== null) { points++; if (max === null || v > max) max = v; }
        const td = rows[i].querySelector(".latest");
        td.textContent = fmt(latest, c.unit);
        td.dataset.value = latest === null ? "" : String(latest);
        td.dataset.t = n ? String(state.t[n - 1]) : "";
        rows[i].querySelector(".max").textContent = fmt(max, c.unit);
      });
      entry.fig.dataset.points = String(points);
      const summary = c.series.map((s, i) => `${s.label} ${rows[i].querySelector(".latest").textContent}`).join(", ");
      entry.fig.setAttribute("aria-label", `${c.title}: ${summary}`);
    }
    for (const el of document.querySelectorAll(".tile-value")) {
      const entry = charts.get(el.dataset.chart);
      const td = entry.body.querySelectorAll(".latest")[Number(el.dataset.series)];
      el.textContent = td.textContent;
      el.dataset.value = td.dataset.value;
      el.dataset.t = td.dataset.t;
    }
    renderCard();
  }

  function renderCard() {
    const card = $("#model-card");
    const n = state.t.length;
    const rows = [["model", state.model], ["corvid version", state.version]];
    for (const [k, v] of state.info) if (k !== "version") rows.push([k.replace(/_/g, " "), v]);
    card.replaceChildren();
    const dl = h("dl", { class: "info" });
    for (const [k, v] of rows) dl.append(h("div", {}, h("dt", { text: k }), h("dd", { text: v })));
    for (const [key, label] of TOTALS) {
      const col = data.col(key);
      const v = col && n ? col[n - 1] : null;
      dl.append(h("div", {}, h("dt", { text: label }),
        h("dd", { class: "total", "data-metric": key, "data-value": v === null ? "" : String(v), "data-t": n ? String(state.t[n - 1]) : "", text: v === null ? "–" : v.toLocaleString("en-US") })));
    }
    card.append(h("h3", { text: state.model || "model" }), dl);
    $("#history-note").textContent =
      `History: ${n} of ${state.capacity} one-second samples in this browser; the server keeps ${state.capacity} (${Math.round(state.bytes / 1024)} KiB).`;
  }

  function setStatus(kind, text) {
    const s = $("#status");
    s.dataset.state = kind;
    $("#status-text").textContent = text;
  }

  // ---- polling --------------------------------------------------------------------------
  let timer = null, inflight = false;
  async function poll() {
    if (inflight) return;
    inflight = true;
    try {
      let url = "dashboard/api/series";
      if (state.boot !== null) url += `?since=${state.next}&boot=${encodeURIComponent(state.boot)}`;
      const r = await fetch(url, { cache: "no-store" });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const j = await r.json();
      const restarted = state.boot !== null && j.series.boot !== state.boot;
      state.model = j.model; state.version = j.version;
      adopt(j.series, Boolean(j.series.columns));
      state.lastOk = Date.now();
      state.failures = 0;
      render();
      const when = new Date(j.now).toLocaleTimeString("en-GB");
      const note = restarted ? " (server restarted: history starts again)" : "";
      setStatus(j.loaded ? "live" : "loading",
        `${j.loaded ? "Live" : "Model loading"} · updated ${when} · every ${state.refreshMs / 1000} s${note}`);
      document.title = `corvid · ${j.model}`;
    } catch (e) {
      state.failures++;
      setStatus("down", `Cannot reach the server (${state.failures} tries) · retrying every ${state.refreshMs / 1000} s · last update ${state.lastOk ? new Date(state.lastOk).toLocaleTimeString("en-GB") : "never"}`);
    } finally {
      inflight = false;
    }
  }
  function schedule() {
    clearInterval(timer);
    if (!state.paused) timer = setInterval(poll, state.refreshMs);
  }

  function controls() {
    const pause = $("#pause");
    pause.addEventListener("click", () => {
      state.paused = !state.paused;
      pause.setAttribute("aria-pressed", String(state.paused));
      pause.textContent = state.paused ? "Resume" : "Pause";
      if (!state.paused) poll();
      schedule();
    });
    const refresh = $("#refresh");
    refresh.value = String(state.refreshMs / 1000);
    refresh.addEventListener("change", () => { state.refreshMs = clampRefresh(refresh.value); schedule(); poll(); });
    const win = $("#window");
    win.addEventListener("change", () => { state.windowMs = Number(win.value) * 60 * 1000; render(); });
    let pending = null;
    window.addEventListener("resize", () => {
      clearTimeout(pending);
      pending = setTimeout(() => {
        for (const e of charts.values()) if (e.u) e.u.setSize({ width: plotWidth(e), height: 200 });
      }, 100);
    });
  }

  build();
  controls();
  poll();
  schedule();
  window.corvidDashboard = { state, charts: CHARTS, poll };
})();
