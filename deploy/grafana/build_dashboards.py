#!/usr/bin/env python3
"""Generate deploy/grafana/dashboards/{corvid,vllm-compat}.json.

The JSON files are committed (they are what users import); this script is their source so
that ids, grid positions and label selectors stay consistent. After editing it run

    python3 deploy/grafana/build_dashboards.py           # rewrite the JSON files
    python3 deploy/grafana/build_dashboards.py --check   # fail if they are out of date

Only the standard library is used.
"""
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "dashboards"

# --------------------------------------------------------------------------------------
# helpers


class Layout:
    """Places panels left to right on Grafana's 24-column grid, rows top to bottom."""

    def __init__(self):
        self.panels = []
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_h = 0

    def _newline(self):
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0

    def row(self, title):
        self._newline()
        self.panels.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "id": self._id(),
                "panels": [],
                "title": title,
                "type": "row",
            }
        )
        self.y += 1

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def add(self, panel, w, h=8):
        if self.x + w > 24:
            self._newline()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        panel["id"] = self._id()
        self.x += w
        self.row_h = max(self.row_h, h)
        self.panels.append(panel)
        return panel


def targets(ds, *exprs, instant=False):
    out = []
    for i, item in enumerate(exprs):
        expr, legend = item
        t = {
            "datasource": ds,
            "editorMode": "code",
            "expr": expr,
            "legendFormat": legend,
            "range": not instant,
            "instant": instant,
            "refId": chr(ord("A") + i),
        }
        out.append(t)
    return out


def thresholds(*steps):
    out = [{"color": "green", "value": None}]
    colors = ["yellow", "red"] if len(steps) == 2 else ["red"]
    for v, c in zip(steps, colors):
        out.append({"color": c, "value": v})
    return {"mode": "absolute", "steps": out}


def timeseries(ds, title, description, exprs, unit="short", stack=False, percent=False,
               threshold_line=None, minimum=None, maximum=None):
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "percent" if percent else ("normal" if stack else "none")},
        "thresholdsStyle": {"mode": "line" if threshold_line is not None else "off"},
    }
    defaults = {
        "color": {"mode": "palette-classic"},
        "custom": custom,
        "unit": unit,
        "thresholds": thresholds(threshold_line) if threshold_line is not None else thresholds(),
    }
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": ds,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"calcs": ["lastNotNull", "max"], "displayMode": "table",
                       "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets(ds, *exprs),
    }


def gauge(ds, title, description, exprs, unit, minimum, maximum, steps):
    return {
        "type": "gauge",
        "title": title,
        "description": description,
        "datasource": ds,
        "fieldConfig": {
            "defaults": {
                "min": minimum,
                "max": maximum,
                "unit": unit,
                "thresholds": thresholds(*steps),
                "color": {"mode": "thresholds"},
            },
            "overrides": [],
        },
        "options": {
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showThresholdLabels": False,
            "showThresholdMarkers": True,
        },
        "targets": targets(ds, *exprs),
    }


def stat(ds, title, description, exprs, unit="short", names=False):
    """names=True shows each series' legend under its value: one value per model side by
    side (the compare-models panels)."""
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": ds,
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": thresholds(), "color": {"mode": "thresholds"}},
            "overrides": [],
        },
        "options": {
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "value_and_name" if names else "auto",
        },
        "targets": targets(ds, *exprs),
    }


def piechart(ds, title, description, exprs):
    return {
        "type": "piechart",
        "title": title,
        "description": description,
        "datasource": ds,
        "fieldConfig": {"defaults": {"unit": "short", "color": {"mode": "palette-classic"}},
                        "overrides": []},
        "options": {
            "pieType": "donut",
            "legend": {"calcs": [], "displayMode": "table", "placement": "right",
                       "showLegend": True, "values": ["percent", "value"]},
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "tooltip": {"mode": "single", "sort": "none"},
        },
        "targets": targets(ds, *exprs, instant=True),
    }


def ds_var(name, label):
    return {
        "name": name,
        "label": label,
        "type": "datasource",
        "query": "prometheus",
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
    }


def query_var(ds, name, label, query, multi, include_all=True):
    var = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": ds,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "hide": 0,
        "includeAll": include_all,
        "multi": multi,
        "options": [],
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
    }
    if include_all:
        var["allValue"] = ".*"
    return var


def dashboard(uid, title, description, tags, panels, variables, annotations=()):
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                *annotations,
            ]
        },
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "liveNow": False,
        "panels": panels,
        "refresh": "10s",
        "schemaVersion": 39,
        "tags": list(tags),
        "templating": {"list": variables},
        "time": {"from": "now-30m", "to": "now"},
        "timepicker": {"refresh_intervals": ["5s", "10s", "30s", "1m", "5m"]},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# --------------------------------------------------------------------------------------
# corvid.json — the main dashboard (docs/metrics.md names, recording rules for the heavy
# histogram queries: deploy/prometheus/rules/corvid-recording.rules.yml)

SEL = 'job=~"$job", instance=~"$instance", model_name=~"$model_name"'
R = "instance_model:"  # recording-rule prefix (aggregated by job, instance, model_name)
# Per-replica panels group by both: a replica serves one model, and the legend says which.
IM = "instance, model_name"
LIM = "{{model_name}} @ {{instance}}"
# Title prefix of the compare-models stat panels (deploy/tests/panel_queries.py
# --expect-models requires different, non-zero values per model from them).
COMPARE = "对比 Compare: "


def q(p, metric):
    """Quantile of a recorded histogram, per model: latencies of different models mixed in
    one quantile describe neither."""
    return f"histogram_quantile({p}, sum by (model_name, le) ({R}{metric}:rate1m{{{SEL}}}))"


def quantiles(metric, ps):
    return [(q(p, metric), f"{{{{model_name}}}} P{int(p * 100)}") for p in ps]


def corvid_dashboard():
    ds = {"type": "prometheus", "uid": "${datasource}"}
    L = Layout()

    # ---- 总体概览 / overview --------------------------------------------------------
    L.row("总体概览 Overview")
    L.add(timeseries(
        ds, "请求吞吐量",
        "The source document's panel, expression unchanged: finished requests per second "
        "for every scraped series (not filtered by the variables above).",
        [("rate(vllm_request_throughput[1m])", "Requests/sec")], unit="reqps"), 9)
    L.add(gauge(
        ds, "P95延迟",
        "The source document's panel, expression unchanged: fleet-wide P95 end-to-end "
        "latency over 1m. Green below 1s, yellow to 3s, red above.",
        [("histogram_quantile(0.95, sum(rate(vllm_request_latency_seconds_bucket[1m])) by (le))",
          "P95 Latency")], unit="s", minimum=0, maximum=5, steps=(1, 3)), 5)
    L.add(stat(
        ds, "当前活跃请求数 Active requests",
        "Requests in the running batch and in the waiting queue right now (selected instances).",
        [(f"sum(vllm_running_requests{{{SEL}}})", "running"),
         (f"sum(vllm_waiting_requests{{{SEL}}})", "waiting")]), 5)
    L.add(stat(
        ds, "Error ratio (5m)",
        "Share of finished requests with finished_reason=\"error\" over 5 minutes, per model.",
        [(f'sum by (model_name) (rate(vllm_request_finished_total{{{SEL}, finished_reason="error"}}[5m])) '
          f"/ sum by (model_name) (rate(vllm_request_finished_total{{{SEL}}}[5m]))", "{{model_name}}")],
        unit="percentunit", names=True), 5)
    L.add(timeseries(
        ds, "RPS by instance",
        "Finished requests per second, per replica and the model it serves (recording rule "
        "instance_model:vllm_request_throughput:rate1m).",
        [(f"sum by ({IM}) ({R}vllm_request_throughput:rate1m{{{SEL}}})", LIM)],
        unit="reqps"), 8)
    L.add(timeseries(
        ds, "Request latency: average, P50, P95, P99",
        "End-to-end latency (arrival to last token) per model, over the selected instances.",
        [(f"sum by (model_name) ({R}vllm_request_latency_seconds_sum:rate1m{{{SEL}}}) / "
          f"sum by (model_name) ({R}vllm_request_latency_seconds_count:rate1m{{{SEL}}})",
          "{{model_name}} average")]
        + quantiles("vllm_request_latency_seconds_bucket", (0.5, 0.95, 0.99)), unit="s"), 16)
    L.add(timeseries(
        ds, "Active requests by instance",
        "Requests in the running batch per replica (and the model it serves).",
        [(f"sum by ({IM}) (vllm_running_requests{{{SEL}}})", LIM)]), 8)
    L.add(timeseries(
        ds, "Time to first token (TTFT)",
        "Arrival to first generated token, per model: queue time plus prefill.",
        quantiles("vllm_time_to_first_token_seconds_bucket", (0.5, 0.95, 0.99)), unit="s"), 12)
    L.add(timeseries(
        ds, "Inter-token latency",
        "Time between consecutive generated tokens of a request, per model (decode speed "
        "seen by users).",
        quantiles("vllm_inter_token_latency_seconds_bucket", (0.5, 0.95, 0.99)), unit="s"), 12)

    # ---- 资源使用 / resources --------------------------------------------------------
    L.row("资源使用 Resources")
    L.add(timeseries(
        ds, "Process memory (MB)",
        "Resident memory of each corvid process, and the bytes it reserved for the KV pool.",
        [(f"sum by ({IM}) (vllm_process_resident_memory_bytes{{{SEL}}}) / 1024 / 1024",
          f"{LIM} resident"),
         (f"sum by ({IM}) (vllm_kv_cache_bytes{{{SEL}}}) / 1024 / 1024",
          f"{LIM} KV pool")], unit="decmbytes"), 8)
    L.add(timeseries(
        ds, "Engine / device utilization (%)",
        "vllm_gpu_utilization as a percentage: the share of recent wall time the compute "
        "device (on CPU: the engine thread) spent running model steps.",
        [(f"avg by ({IM}) (vllm_gpu_utilization{{{SEL}}}) * 100", LIM)],
        unit="percent", minimum=0, maximum=100), 8)
    L.add(timeseries(
        ds, "KV cache usage (%)",
        "KV blocks in use over KV blocks total. Sustained values near 100% cause waiting "
        "and preemptions (alert CorvidKVCacheNearlyFull at 95%).",
        [(f"max by ({IM}) (vllm_kv_cache_usage_ratio{{{SEL}}}) * 100", LIM)],
        unit="percent", minimum=0, maximum=100, threshold_line=95), 8)
    L.add(timeseries(
        ds, "KV cache blocks",
        "KV blocks used and allocated, per replica.",
        [(f"sum by ({IM}) (vllm_kv_cache_blocks_used{{{SEL}}})", f"{LIM} used"),
         (f"sum by ({IM}) (vllm_kv_cache_blocks_capacity{{{SEL}}})", f"{LIM} total")]), 12)
    L.add(timeseries(
        ds, "Token throughput",
        "Prompt (prefill) and generated tokens per second per model, selected instances.",
        [(f"sum by (model_name) ({R}vllm_prompt_tokens:rate1m{{{SEL}}})", "{{model_name}} prompt tokens/s"),
         (f"sum by (model_name) ({R}vllm_generation_tokens:rate1m{{{SEL}}})",
          "{{model_name}} generation tokens/s")]), 12)

    # ---- 排队与调度 / queueing and scheduling -----------------------------------------
    L.row("排队与调度 Queueing & scheduling")
    L.add(timeseries(
        ds, "等待队列 Waiting queue",
        "Requests waiting to be scheduled, per replica. The red line is the "
        "HighWaitingRequests threshold (100 for 2m); the autoscalers act on this metric.",
        [(f"sum by ({IM}) (vllm_waiting_requests{{{SEL}}})", LIM)],
        threshold_line=100), 8)
    L.add(timeseries(
        ds, "Batch size per step",
        "Sequences per engine step: average and P95. A batch pinned at --max-num-seqs "
        "means the replica is saturated.",
        [(f"sum by ({IM}) (rate(vllm_batch_size_sum{{{SEL}}}[1m])) / "
          f"sum by ({IM}) (rate(vllm_batch_size_count{{{SEL}}}[1m]))", f"{LIM} avg"),
         (f"histogram_quantile(0.95, sum by ({IM}, le) (rate(vllm_batch_size_bucket{{{SEL}}}[1m])))",
          f"{LIM} P95")]), 8)
    L.add(timeseries(
        ds, "Tokens per step",
        "Prefill plus decode tokens per engine step (average), per replica.",
        [(f"sum by ({IM}) (rate(vllm_tokens_per_step_sum{{{SEL}}}[1m])) / "
          f"sum by ({IM}) (rate(vllm_tokens_per_step_count{{{SEL}}}[1m]))", LIM)]), 8)
    L.add(timeseries(
        ds, "Queue time",
        "Time requests spend waiting before their first step, per model.",
        quantiles("vllm_request_queue_time_seconds_bucket", (0.5, 0.95)), unit="s"), 8)
    L.add(timeseries(
        ds, "Preemptions per minute",
        "Sequences evicted from the KV cache and recomputed later.",
        [(f"sum by ({IM}) (rate(vllm_preemptions_total{{{SEL}}}[1m])) * 60", LIM)]), 8)
    L.add(timeseries(
        ds, "Timeouts and aborts per minute",
        "Requests that hit their deadline, and requests aborted (client gone or timeout).",
        [(f"sum by ({IM}) (rate(vllm_request_timeout_total{{{SEL}}}[1m])) * 60",
          f"{LIM} timeouts"),
         (f"sum by ({IM}) (rate(vllm_request_aborted_total{{{SEL}}}[1m])) * 60",
          f"{LIM} aborts")]), 8)
    L.add(timeseries(
        ds, "Rejected requests per minute (503)",
        "Requests refused before reaching the engine: queue_full (overload: the waiting queue "
        "is full; clients are told Retry-After) and service_unavailable (loading, draining, "
        "engine failed).",
        [(f"sum by ({IM}, reason) (rate(vllm_request_rejected_total{{{SEL}}}[1m])) * 60",
          f"{LIM} {{{{reason}}}}")]), 8)
    L.add(timeseries(
        ds, "Finished requests by reason",
        "stop, length, abort, error per second, per model.",
        [(f"sum by (model_name, finished_reason) (rate(vllm_request_finished_total{{{SEL}}}[1m]))",
          "{{model_name}} {{finished_reason}}")], unit="reqps", stack=True), 12)
    L.add(timeseries(
        ds, "HTTP requests by handler and status",
        "HTTP layer (includes /health and rejected requests), all models together: the "
        "server's view, not a model's.",
        [(f"sum by (handler, status) (rate(vllm_http_requests_total{{{SEL}}}[1m]))",
          "{{handler}} {{status}}")], unit="reqps"), 12)

    # ---- 模型维度 / per model --------------------------------------------------------
    L.row("模型维度 Per model")
    # The source document's "compare models" region (不同模型的调用占比 LLaMA vs Qwen, 各模型响应
    # 时间对比 定位慢模型): one number per model, side by side, for what tells models apart.
    compare = [
        ("requests/s", "Finished requests per second (1m rate).",
         f"sum by (model_name) ({R}vllm_request_throughput:rate1m{{{SEL}}})", "reqps"),
        ("P95 latency", "End-to-end P95 latency (1m): the slow model stands out.",
         q(0.95, "vllm_request_latency_seconds_bucket"), "s"),
        ("P95 TTFT", "Time to first token P95 (1m): queueing plus prefill.",
         q(0.95, "vllm_time_to_first_token_seconds_bucket"), "s"),
        ("P95 inter-token latency", "Time between generated tokens, P95 (1m): decode speed.",
         q(0.95, "vllm_inter_token_latency_seconds_bucket"), "s"),
        ("generation tokens/s", "Generated tokens per second (1m rate), all replicas of the model.",
         f"sum by (model_name) ({R}vllm_generation_tokens:rate1m{{{SEL}}})", "short"),
        ("KV cache usage", "KV blocks in use over total, averaged over the model's replicas and "
         "the last minute.",
         f"avg by (model_name) (avg_over_time(vllm_kv_cache_usage_ratio{{{SEL}}}[1m]))", "percentunit"),
    ]
    for name, description, expr, unit in compare:
        L.add(stat(ds, COMPARE + name, description + " One value per model.",
                   [(expr, "{{model_name}}")], unit=unit, names=True), 4, 7)
    L.add(piechart(
        ds, "Share of requests by model",
        "Finished requests per model over the dashboard's time range.",
        [(f"sum by (model_name) (increase(vllm_request_throughput{{{SEL}}}[$__range]))",
          "{{model_name}}")]), 8)
    L.add(timeseries(
        ds, "Requests/s by model",
        "Finished requests per second per model.",
        [(f"sum by (model_name) ({R}vllm_request_throughput:rate1m{{{SEL}}})", "{{model_name}}")],
        unit="reqps", stack=True), 8)
    L.add(timeseries(
        ds, "Generation tokens/s by model",
        "Generated tokens per second per model.",
        [(f"sum by (model_name) ({R}vllm_generation_tokens:rate1m{{{SEL}}})", "{{model_name}}")]), 8)
    L.add(timeseries(
        ds, "P95 latency by model",
        "End-to-end P95 latency per model: find the slow model.",
        [(q(0.95, "vllm_request_latency_seconds_bucket"), "{{model_name}}")],
        unit="s"), 8)
    L.add(timeseries(
        ds, "Average latency by model",
        "Mean end-to-end latency per model.",
        [(f"sum by (model_name) ({R}vllm_request_latency_seconds_sum:rate1m{{{SEL}}}) / "
          f"sum by (model_name) ({R}vllm_request_latency_seconds_count:rate1m{{{SEL}}})",
          "{{model_name}}")], unit="s"), 8)
    L.add(timeseries(
        ds, "P95 TTFT by model",
        "Time to first token P95 per model.",
        [(q(0.95, "vllm_time_to_first_token_seconds_bucket"), "{{model_name}}")],
        unit="s"), 8)

    variables = [
        ds_var("datasource", "Data source"),
        query_var(ds, "job", "Job", "label_values(vllm_running_requests, job)", multi=False),
        query_var(ds, "instance", "Instance",
                  'label_values(vllm_running_requests{job=~"$job"}, instance)', multi=True),
        query_var(ds, "model_name", "Model",
                  'label_values(vllm_running_requests{job=~"$job", instance=~"$instance"}, model_name)',
                  multi=True),
    ]
    return dashboard(
        "corvid-overview", "corvid — LLM inference",
        "corvid inference server: throughput, latency, resources, scheduling and per-model "
        "breakdown. Metric names: docs/metrics.md. Source: deploy/grafana/build_dashboards.py.",
        ["corvid", "llm", "vllm"], L.panels, variables)


# --------------------------------------------------------------------------------------
# vllm-compat.json — only vLLM's own `vllm:` names, laid out like vLLM's example dashboard,
# so that a replica of corvid can be watched by dashboards built for vLLM.


def compat_dashboard():
    ds = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    M = 'model_name="$model_name"'
    L = Layout()

    def quantiles(metric):
        return [(f"histogram_quantile({p}, sum by(le) (rate({metric}_bucket{{{M}}}[$__rate_interval])))",
                 f"P{int(p * 100)}") for p in (0.99, 0.95, 0.9, 0.5)] + [
            (f"rate({metric}_sum{{{M}}}[$__rate_interval])\n/\nrate({metric}_count{{{M}}}[$__rate_interval])",
             "Average")]

    L.add(timeseries(ds, "E2E Request Latency", "End to end request latency measured in seconds.",
                     quantiles("vllm:e2e_request_latency_seconds"), unit="s"), 12)
    L.add(timeseries(ds, "Token Throughput", "Number of tokens processed per second",
                     [(f"rate(vllm:prompt_tokens_total{{{M}}}[$__rate_interval])", "Prompt Tokens/Sec"),
                      (f"rate(vllm:generation_tokens_total{{{M}}}[$__rate_interval])",
                       "Generation Tokens/Sec")]), 12)
    L.add(timeseries(ds, "Time Per Output Token Latency", "Inter token latency in seconds.",
                     quantiles("vllm:time_per_output_token_seconds"), unit="s"), 12)
    L.add(timeseries(ds, "Scheduler State", "Number of requests in RUNNING and WAITING state",
                     [(f"vllm:num_requests_running{{{M}}}", "Num Running"),
                      (f"vllm:num_requests_waiting{{{M}}}", "Num Waiting")]), 12)
    L.add(timeseries(ds, "Time To First Token Latency", "P50, P90, P95, and P99 TTFT latency in seconds.",
                     quantiles("vllm:time_to_first_token_seconds"), unit="s"), 12)
    L.add(timeseries(ds, "Cache Utilization", "Percentage of used cache blocks by vLLM.",
                     [(f"vllm:gpu_cache_usage_perc{{{M}}}", "GPU Cache Usage"),
                      (f"vllm:kv_cache_usage_perc{{{M}}}", "KV Cache Usage")],
                     unit="percentunit", minimum=0, maximum=1), 12)
    L.add(timeseries(ds, "Request Prompt Length", "Mean and P90 prompt length per request.",
                     [(f"histogram_quantile(0.9, sum by(le) (rate(vllm:request_prompt_tokens_bucket{{{M}}}[$__rate_interval])))", "P90"),
                      (f"rate(vllm:request_prompt_tokens_sum{{{M}}}[$__rate_interval])\n/\nrate(vllm:request_prompt_tokens_count{{{M}}}[$__rate_interval])", "Average")]), 12)
    L.add(timeseries(ds, "Request Generation Length", "Mean and P90 generation length per request.",
                     [(f"histogram_quantile(0.9, sum by(le) (rate(vllm:request_generation_tokens_bucket{{{M}}}[$__rate_interval])))", "P90"),
                      (f"rate(vllm:request_generation_tokens_sum{{{M}}}[$__rate_interval])\n/\nrate(vllm:request_generation_tokens_count{{{M}}}[$__rate_interval])", "Average")]), 12)
    L.add(timeseries(ds, "Finish Reason", "Number of finished requests by their finish reason.",
                     [(f"sum by(finished_reason) (increase(vllm:request_success_total{{{M}}}[$__rate_interval]))",
                       "{{finished_reason}}")], stack=True), 12)
    L.add(timeseries(ds, "Queue Time", "Time requests spend in the waiting queue.",
                     [(f"sum by(le) (increase(vllm:request_queue_time_seconds_sum{{{M}}}[$__rate_interval]))",
                       "Queue time")], unit="s"), 12)
    L.add(timeseries(ds, "Requests Prefill and Decode Time", "Time spent in prefill and decode.",
                     [(f"sum by(le) (increase(vllm:request_prefill_time_seconds_sum{{{M}}}[$__rate_interval]))", "Prefill"),
                      (f"sum by(le) (increase(vllm:request_decode_time_seconds_sum{{{M}}}[$__rate_interval]))", "Decode"),
                      (f"sum by(le) (increase(vllm:request_inference_time_seconds_sum{{{M}}}[$__rate_interval]))", "Inference")],
                     unit="s"), 12)
    L.add(timeseries(ds, "Preemptions", "Cumulative preemptions.",
                     [(f"sum(increase(vllm:num_preemptions_total{{{M}}}[$__rate_interval]))", "Preemptions")]), 12)
    L.add(timeseries(ds, "Prefix Cache Hit Rate", "Prefix cache hits over queries (tokens).",
                     [(f"sum(rate(vllm:prefix_cache_hits_total{{{M}}}[$__rate_interval])) / "
                       f"sum(rate(vllm:prefix_cache_queries_total{{{M}}}[$__rate_interval]))", "Hit rate")],
                     unit="percentunit"), 12)
    L.add(timeseries(ds, "Tokens per Engine Step", "Mean tokens per engine iteration.",
                     [(f"rate(vllm:iteration_tokens_total_sum{{{M}}}[$__rate_interval])\n/\n"
                       f"rate(vllm:iteration_tokens_total_count{{{M}}}[$__rate_interval])", "Average")]), 12)

    variables = [
        ds_var("DS_PROMETHEUS", "datasource"),
        query_var(ds, "model_name", "model_name",
                  "label_values(vllm:num_requests_running, model_name)", multi=False,
                  include_all=False),
    ]
    return dashboard(
        "corvid-vllm-compat", "corvid — vLLM-compatible view",
        "Uses only vLLM's own vllm: metric names, laid out like vLLM's example dashboard: proof "
        "that dashboards built for vLLM work unchanged against corvid.",
        ["corvid", "vllm"], L.panels, variables)


def render(d):
    return json.dumps(d, indent=2, ensure_ascii=False) + "\n"


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, build in (("corvid.json", corvid_dashboard), ("vllm-compat.json", compat_dashboard)):
        text = render(build())
        path = OUT / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run deploy/grafana/build_dashboards.py):", *stale, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
