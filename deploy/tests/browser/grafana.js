// Draws a Grafana dashboard JSON from a live Prometheus, the way Grafana would query it:
// template variables resolved with label_values() and interpolated as Grafana's Prometheus
// datasource does, every panel target run through /api/v1/query_range, every panel drawn
// (timeseries with uPlot; stat/gauge as the last value; piechart as shares). Each panel
// gets data-status ok | empty | error | nan; window.harness holds the verdicts.
//
// Query parameters: dashboard (URL of the JSON), prom (Prometheus base URL), from, to
// (Unix seconds; default the last 5 minutes), step (seconds, default 5).
(function () {
  "use strict";
  const q = new URLSearchParams(location.search);
  const prom = (q.get("prom") || "prom").replace(/\/$/, "");
  const to = Number(q.get("to")) || Math.floor(Date.now() / 1000);
  const from = Number(q.get("from")) || to - 300;
  const step = Number(q.get("step")) || 5;
  const COLORS = ["#73bf69", "#f2cc0c", "#5794f2", "#ff780a", "#f2495c", "#b877d9", "#8ab8ff", "#fade2a"];
  window.harness = { done: false, panels: [], variables: {} };

  async function api(path, params) {
    const u = new URL(`${prom}${path}`, location.href);
    for (const [k, v] of Object.entries(params)) u.searchParams.append(k, v);
    const r = await fetch(u);
    const j = await r.json().catch(() => ({ status: "error", error: `HTTP ${r.status}` }));
    if (j.status !== "success") throw new Error(`${j.errorType || ""} ${j.error || r.status}`.trim());
    return j.data;
  }

  // Grafana's Prometheus datasource escaping (interpolateQueryExpr).
  const regularEscape = (v) => v.replace(/\\/g, "\\\\").replace(/'/g, "\\\\'");
  const regexEscape = (v) => v.replace(/\\/g, "\\\\\\\\").replace(/[$^*{}[\]'+?.()|]/g, "\\\\$&");
  function interpolate(expr, vars) {
    const builtins = {
      // Grafana: max($__interval + scrape interval, 4 x scrape interval); with the
      // datasource's default 15 s scrape interval and steps under 45 s that is 1m.
      __rate_interval: "1m",
      __interval: `${step}s`,
      __range: `${to - from}s`,
      __range_s: String(to - from),
    };
    return expr.replace(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (m, a, b, c) => {
      const name = a || b || c;
      if (name in builtins) return builtins[name];
      const v = vars[name];
      if (!v) return m;
      if (v.all && v.def.allValue) return v.def.allValue;
      if (!v.def.multi && !v.def.includeAll) return regularEscape(v.values[0] ?? "");
      const esc = v.values.map(regexEscape);
      return esc.length === 1 ? esc[0] : `(${esc.join("|")})`;
    });
  }

  async function resolveVariables(d) {
    const vars = {};
    for (const def of d.templating?.list ?? []) {
      if (def.type !== "query") continue;
      const query = typeof def.query === "string" ? def.query : def.query.query;
      const m = query.match(/^\s*label_values\((?:(.*),\s*)?(\w+)\)\s*$/);
      if (!m) throw new Error(`variable ${def.name}: unsupported query ${query}`);
      const params = { start: String(from), end: String(to) };
      if (m[1]) params["match[]"] = interpolate(m[1], vars);
      let values = await api(`/api/v1/label/${m[2]}/values`, params);
      if (def.sort === 1 || def.sort === 5) values = values.slice().sort();
      if (!values.length) throw new Error(`variable ${def.name}: no values`);
      // Grafana's default selection: "All" when offered (it is listed first), else the first value.
      vars[def.name] = def.includeAll ? { def, all: true, values } : { def, all: false, values: [values[0]] };
      window.harness.variables[def.name] = def.includeAll ? `All (${values.join(", ")})` : values[0];
    }
    return vars;
  }

  function legend(fmt, metric) {
    if (!fmt) {
      const labels = Object.entries(metric).filter(([k]) => k !== "__name__").map(([k, v]) => `${k}="${v}"`);
      return `${metric.__name__ || ""}{${labels.join(", ")}}`;
    }
    return fmt.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k) => metric[k] ?? "");
  }

  function fmtValue(v, unit) {
    if (!Number.isFinite(v)) return String(v);
    const n = (x, d) => x.toLocaleString("en-US", { maximumFractionDigits: d });
    switch (unit) {
      case "s": return Math.abs(v) >= 1 ? `${n(v, 2)} s` : `${n(v * 1000, 1)} ms`;
      case "reqps": return `${n(v, 2)} req/s`;
      case "percentunit": return `${n(v * 100, 1)}%`;
      case "percent": return `${n(v, 1)}%`;
      default: return n(v, Math.abs(v) < 10 ? 3 : 1);
    }
  }

  async function runPanel(p, vars) {
    const out = { title: p.title, type: p.type, status: "ok", detail: "", series: [] };
    for (const t of p.targets ?? []) {
      const expr = interpolate(t.expr, vars);
      let data;
      try {
        data = await api("/api/v1/query_range", { query: expr, start: String(from), end: String(to), step: String(step) });
      } catch (e) {
        out.status = "error";
        out.detail += `${t.refId}: ${e.message} :: ${expr}\n`;
        continue;
      }
      if (!data.result.length) {
        if (out.status === "ok") out.status = "empty";
        out.detail += `${t.refId}: no series :: ${expr}\n`;
        continue;
      }
      for (const s of data.result) {
        const vals = s.values.map(([ts, v]) => [ts, Number(v)]);
        const bad = vals.filter(([, v]) => !Number.isFinite(v));
        if (bad.length && out.status === "ok") {
          out.status = "nan";
          out.detail += `${t.refId}: ${bad.length} of ${vals.length} points are ${bad[0][1]} :: ${expr}\n`;
        }
        out.series.push({ name: legend(t.legendFormat, s.metric), values: vals });
      }
    }
    if (out.status === "ok" && !out.series.some((s) => s.values.length)) {
      out.status = "empty";
      out.detail = "no points";
    }
    return out;
  }

  function draw(p, res, box) {
    const unit = p.fieldConfig?.defaults?.unit;
    const body = box.querySelector(".body");
    if (p.type === "timeseries") {
      const xs = [];
      for (let t = from; t <= to; t += step) xs.push(t);
      const idx = new Map(xs.map((x, i) => [x, i]));
      const ys = res.series.map((s) => {
        const y = new Array(xs.length).fill(null);
        for (const [ts, v] of s.values) if (idx.has(ts)) y[idx.get(ts)] = Number.isFinite(v) ? v : null;
        return y;
      });
      const width = Math.max(150, body.clientWidth);
      const height = Math.max(80, body.clientHeight - 22);
      new uPlot({
        width, height, legend: { show: false }, cursor: { show: false },
        axes: [
          { stroke: "#9fa7b3", grid: { stroke: "#2c3235" }, font: "10px sans-serif" },
          { stroke: "#9fa7b3", grid: { stroke: "#2c3235" }, font: "10px sans-serif", size: 60, values: (u, vs) => vs.map((v) => fmtValue(v, unit)) },
        ],
        series: [{}].concat(res.series.map((s, i) => ({ label: s.name, stroke: COLORS[i % COLORS.length], width: 1.5, fill: COLORS[i % COLORS.length] + "1a" }))),
      }, [xs, ...ys], body);
      const lg = document.createElement("div");
      lg.className = "legend";
      res.series.forEach((s, i) => {
        const last = [...s.values].reverse().find(([, v]) => Number.isFinite(v));
        const sp = document.createElement("span");
        sp.style.setProperty("--c", COLORS[i % COLORS.length]);
        sp.textContent = `${s.name}: ${last ? fmtValue(last[1], unit) : "–"}`;
        lg.append(sp);
      });
      body.append(lg);
    } else if (p.type === "stat" || p.type === "gauge") {
      for (const s of res.series) {
        const last = [...s.values].reverse().find(([, v]) => Number.isFinite(v));
        const big = document.createElement("div");
        big.className = "big";
        big.textContent = last ? fmtValue(last[1], unit) : "–";
        const small = document.createElement("small");
        small.textContent = s.name;
        big.append(small);
        body.append(big);
        if (p.type === "gauge" && last) {
          const max = p.fieldConfig?.defaults?.max ?? 1;
          const bar = document.createElement("div");
          bar.className = "bar";
          const fill = document.createElement("div");
          fill.style.width = `${Math.min(100, (100 * last[1]) / max)}%`;
          bar.append(fill);
          body.append(bar);
        }
      }
    } else if (p.type === "piechart") {
      const lasts = res.series.map((s) => {
        const last = [...s.values].reverse().find(([, v]) => Number.isFinite(v));
        return [s.name, last ? last[1] : 0];
      });
      const total = lasts.reduce((a, [, v]) => a + v, 0) || 1;
      const pie = document.createElement("div");
      pie.className = "pie";
      for (const [name, v] of lasts) {
        const row = document.createElement("div");
        row.className = "slice";
        const bar = document.createElement("div");
        bar.style.width = `${Math.max(2, (160 * v) / total)}px`;
        const label = document.createElement("span");
        label.textContent = `${name}: ${fmtValue(v, unit)} (${((100 * v) / total).toFixed(1)}%)`;
        row.append(bar, label);
        pie.append(row);
      }
      body.append(pie);
    }
  }

  async function main() {
    const d = await (await fetch(q.get("dashboard"))).json();
    document.getElementById("title").textContent = d.title;
    document.title = d.title;
    const vars = await resolveVariables(d);
    document.getElementById("meta").textContent =
      `${new Date(from * 1000).toISOString()} → ${new Date(to * 1000).toISOString()}, step ${step}s · ` +
      Object.entries(window.harness.variables).map(([k, v]) => `$${k} = ${v}`).join(" · ");
    const grid = document.getElementById("grid");
    const flat = [];
    for (const p of d.panels ?? []) {
      flat.push(p);
      for (const c of p.panels ?? []) flat.push(c);
    }
    const jobs = [];
    for (const p of flat) {
      const g = p.gridPos;
      const box = document.createElement("section");
      box.style.gridColumn = `${g.x + 1} / span ${g.w}`;
      box.style.gridRow = `${g.y + 1} / span ${g.h}`;
      if (p.type === "row") {
        box.className = "row";
        box.textContent = p.title;
        grid.append(box);
        continue;
      }
      box.className = "panel";
      box.dataset.panel = p.title;
      box.innerHTML = `<div class="ptitle"></div><div class="body"></div>`;
      box.querySelector(".ptitle").textContent = p.title;
      grid.append(box);
      jobs.push(runPanel(p, vars).then((res) => {
        box.dataset.status = res.status;
        const st = document.createElement("span");
        st.className = "st";
        st.textContent = res.status;
        box.querySelector(".ptitle").append(st);
        try {
          draw(p, res, box);
        } catch (e) {
          res.status = "error";
          res.detail += `draw: ${e.message}`;
          box.dataset.status = "error";
        }
        if (res.status !== "ok") {
          const err = document.createElement("div");
          err.className = "err";
          err.textContent = res.detail;
          box.querySelector(".body").append(err);
        }
        window.harness.panels.push({
          title: res.title, type: res.type, status: res.status, detail: res.detail.trim(),
          series: res.series.length, points: res.series.reduce((a, s) => a + s.values.length, 0),
        });
      }));
    }
    await Promise.all(jobs);
    const bad = window.harness.panels.filter((p) => p.status !== "ok");
    const s = document.getElementById("summary");
    s.textContent = `${window.harness.panels.length} panels, ${bad.length} not ok`;
    s.dataset.failed = String(bad.length > 0);
  }

  main().catch((e) => {
    window.harness.error = String(e && e.message || e);
    document.getElementById("summary").textContent = `harness error: ${window.harness.error}`;
  }).finally(() => { window.harness.done = true; });
})();
