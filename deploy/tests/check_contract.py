#!/usr/bin/env python3
"""Static checks of deploy/ against the contracts: the source document
(/work/shared/seed/vllm-prometheus-grafana.txt, or $CORVID_SEED_DOC) and docs/metrics.md.

Prints PASS/FAIL lines; exits 1 on any failure. Needs PyYAML.
"""
import json
import os
import pathlib
import re
import sys

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent.parent
REPO = DEPLOY.parent
results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'} contract: {name}" + (f" -- {detail}" if detail and not ok else ""))


def load_yaml(rel):
    return yaml.safe_load((DEPLOY / rel).read_text(encoding="utf-8"))


# ---- names from docs/metrics.md --------------------------------------------------------
doc = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
contract = set(re.findall(r"`(vllm[_:][a-z0-9_:]+)[`{]", doc))
histograms = {n for n in contract if re.search(r"_seconds$|_tokens$|_size$|_per_step$|params_n$|max_tokens$", n)
              and not n.endswith("_total")}
histograms |= {"vllm:iteration_tokens_total"}  # a histogram in vLLM despite its name
recorded = {r["record"] for g in load_yaml("prometheus/rules/corvid-recording.rules.yml")["groups"]
            for r in g["rules"]}
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "max", "avg", "min", "count",
                "avg_over_time",
                "le", "on", "unless", "and", "or", "without", "ignoring", "group_left", "bool"}


def metric_names(expr):
    expr = re.sub(r'"[^"]*"', '""', expr)          # drop label values
    expr = re.sub(r"\{[^}]*\}", "{}", expr)         # drop matchers
    expr = re.sub(r"\[[^\]]*\]", "[]", expr)        # drop ranges
    expr = re.sub(r"\b(by|on|without|ignoring)\s*\([^)]*\)", "", expr)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr)) - PROMQL_WORDS
    return {n for n in names if not re.fullmatch(r"\d.*|e\d*", n)}


def known(name):
    if name in contract or name in recorded or name in ("up", "ALERTS"):
        return True
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return base in histograms


def exprs_of_dashboard(d):
    for p in d["panels"]:
        for q in [p] + p.get("panels", []):
            for t in q.get("targets", []):
                yield q["title"], t["expr"]


dashboards = {n: json.loads((DEPLOY / "grafana" / "dashboards" / n).read_text(encoding="utf-8"))
              for n in ("corvid.json", "vllm-compat.json")}

# ---- every metric name used in deploy/ is one docs/metrics.md defines ----------------
unknown = {}
for name, d in dashboards.items():
    for title, e in exprs_of_dashboard(d):
        for m in metric_names(e):
            if not known(m):
                unknown.setdefault(m, []).append(f"{name}:{title}")
for rel in ("prometheus/rules/corvid-alerts.rules.yml", "prometheus/rules/corvid-recording.rules.yml"):
    for g in load_yaml(rel)["groups"]:
        for r in g["rules"]:
            for m in metric_names(r["expr"]):
                if not known(m):
                    unknown.setdefault(m, []).append(f"{rel}:{r.get('alert') or r.get('record')}")
adapter = load_yaml("kubernetes/prometheus-adapter-values.yaml")
keda = load_yaml("kubernetes/keda-scaledobject.yaml")
for e in [r["seriesQuery"] for r in adapter["rules"]["custom"]] + [t["metadata"]["query"] for t in keda["spec"]["triggers"]]:
    for m in metric_names(e):
        if not known(m):
            unknown.setdefault(m, []).append("kubernetes")
check("every metric name in dashboards, rules and autoscalers is in docs/metrics.md (or a recording rule)",
      not unknown, json.dumps(unknown, ensure_ascii=False))

compat_names = {m for _, e in exprs_of_dashboard(dashboards["vllm-compat.json"]) for m in metric_names(e)}
compat_names |= {m for v in dashboards["vllm-compat.json"]["templating"]["list"] if v["type"] == "query"
                 for m in metric_names(v["query"]["query"].replace("label_values", ""))} - {"model_name"}
check("vllm-compat.json uses only vLLM's own vllm: names",
      compat_names and all(n.startswith("vllm:") for n in compat_names), sorted(compat_names))

# ---- the source document's alert rule, exactly ----------------------------------------
_seeds = [os.environ.get("CORVID_SEED_DOC", ""), "/work/shared/seed/vllm-prometheus-grafana.txt",
          str(REPO.parent / "shared" / "seed" / "vllm-prometheus-grafana.txt")]
seed = next((pathlib.Path(s) for s in _seeds if s and pathlib.Path(s).exists()), pathlib.Path("/nonexistent"))
alerts = {r["alert"]: r for g in load_yaml("prometheus/rules/corvid-alerts.rules.yml")["groups"]
          for r in g["rules"] if "alert" in r}
hwr = alerts.get("HighWaitingRequests")
expected = {
    "alert": "HighWaitingRequests",
    "expr": "vllm_waiting_requests > 100",
    "for": "2m",
    "labels": {"severity": "warning"},
    "annotations": {"summary": "等待请求过多", "description": "当前有 {{ $value }} 个请求在排队,建议扩容"},
}
if seed.exists():  # cross-check the literal values against the document itself
    text = seed.read_text(encoding="utf-8")
    for k in ("expr: vllm_waiting_requests > 100", "for: 2m", "severity: warning",
              'summary: "等待请求过多"', 'description: "当前有 {{ $value }} 个请求在排队,建议扩容"'):
        assert k in text, f"seed document changed: {k!r} not found"
check("HighWaitingRequests is the document's rule exactly", hwr == expected, json.dumps(hwr, ensure_ascii=False))

# ---- every alert has a firing and a silent unit test -----------------------------------
tests = load_yaml("prometheus/tests/alerts_test.yml")
fires, silent = set(), set()
for t in tests["tests"]:
    for a in t.get("alert_rule_test", []):
        (fires if a.get("exp_alerts") else silent).add(a["alertname"])
        for e in a.get("exp_alerts") or []:
            if not e.get("exp_annotations") or "severity" not in e.get("exp_labels", {}):
                fires.discard(a["alertname"])
check("every alert has a unit test where it fires (labels + annotations) and one where it does not",
      set(alerts) == fires == silent, f"alerts={sorted(alerts)} fires={sorted(fires)} silent={sorted(silent)}")
check("every added alert has summary, description and runbook annotations",
      all({"summary", "description", "runbook"} <= set(r["annotations"]) for n, r in alerts.items()
          if n != "HighWaitingRequests"))
check("every alert has severity warning or critical",
      all(r["labels"]["severity"] in ("warning", "critical") for r in alerts.values()))

# ---- the dashboard ---------------------------------------------------------------------
d = dashboards["corvid.json"]
panels = [p for p in d["panels"] if p["type"] != "row"]
by_title = {p["title"]: p for p in panels}
rp = by_title.get("请求吞吐量", {})
check("panel 请求吞吐量 is a timeseries with the document's expression",
      rp.get("type") == "timeseries" and rp["targets"][0]["expr"] == "rate(vllm_request_throughput[1m])")
p95 = by_title.get("P95延迟", {})
check("panel P95延迟 is a gauge with the document's expression, 0..5, thresholds 1 and 3",
      p95.get("type") == "gauge"
      and p95["targets"][0]["expr"] == "histogram_quantile(0.95, sum(rate(vllm_request_latency_seconds_bucket[1m])) by (le))"
      and p95["fieldConfig"]["defaults"]["min"] == 0 and p95["fieldConfig"]["defaults"]["max"] == 5
      and [s["value"] for s in p95["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 1, 3])
check("refresh is 10s (document: 5-30s)", d["refresh"] == "10s" and dashboards["vllm-compat.json"]["refresh"] == "10s")
vars_ = {v["name"]: v for v in d["templating"]["list"]}
check("variables: datasource, job, instance (multi), model_name (multi)",
      vars_.get("datasource", {}).get("type") == "datasource" and "job" in vars_
      and vars_.get("instance", {}).get("multi") is True and vars_.get("model_name", {}).get("multi") is True)
rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
check("rows: overview, resources, queueing & scheduling, per model (document's layout)",
      [r.split()[0] for r in rows] == ["总体概览", "资源使用", "排队与调度", "模型维度"], rows)
needed = {
    "RPS": "vllm_request_throughput", "latency": "vllm_request_latency_seconds",
    "active requests": "vllm_running_requests", "TTFT": "vllm_time_to_first_token_seconds",
    "inter-token latency": "vllm_inter_token_latency_seconds",
    "memory MB": "vllm_process_resident_memory_bytes", "utilization %": "vllm_gpu_utilization",
    "KV cache %": "vllm_kv_cache_usage_ratio", "waiting queue": "vllm_waiting_requests",
    "batch size": "vllm_batch_size", "tokens per step": "vllm_tokens_per_step",
    "preemptions": "vllm_preemptions_total", "timeouts": "vllm_request_timeout_total",
    "aborts": "vllm_request_aborted_total",
}
alltext = json.dumps(d)
check("the dashboard covers every metric the brief lists", all(m in alltext for m in needed.values()),
      [k for k, m in needed.items() if m not in alltext])
sel_ok = all(('job=~\\"$job\\"' in json.dumps(t["expr"]) and 'instance=~\\"$instance\\"' in json.dumps(t["expr"])
              and 'model_name=~\\"$model_name\\"' in json.dumps(t["expr"]))
             for p in panels if p["title"] not in ("请求吞吐量", "P95延迟") for t in p["targets"])
check("every panel except the document's two filters by $job, $instance and $model_name", sel_ok)
# Several models share the dashboard: a panel that mixes them says nothing about either.
# Only these show the whole server on purpose (deploy/README.md, "Several models").
NOT_PER_MODEL = {"请求吞吐量", "P95延迟", "当前活跃请求数 Active requests", "HTTP requests by handler and status"}
mixed = [f"{p['title']} {t['refId']}" for p in panels if p["title"] not in NOT_PER_MODEL for t in p["targets"]
         if not re.search(r"\bby \([^)]*\bmodel_name\b", t["expr"])]
check("every panel but the server-wide ones splits by model_name", not mixed, mixed)
compare_row = [p["title"] for p in panels if p["title"].startswith("对比 Compare: ")
               and p["gridPos"]["y"] > next(r["gridPos"]["y"] for r in d["panels"] if r["title"].startswith("模型维度"))]
check("the per-model row holds the compare-models stats (the document's LLaMA vs Qwen region)",
      len(compare_row) >= 5, compare_row)

# ---- Kubernetes relations --------------------------------------------------------------
dep = load_yaml("kubernetes/deployment.yaml")
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
args = dict(a.lstrip("-").split("=", 1) for a in c["args"] if a.startswith("--"))
pre = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
grace = pod["terminationGracePeriodSeconds"]
check("terminationGracePeriodSeconds = preStop sleep + --shutdown-timeout + margin (0 < margin <= 15s)",
      0 < grace - pre - int(args["shutdown-timeout"]) <= 15, f"grace={grace} preStop={pre} shutdown={args['shutdown-timeout']}")
check("probes use /health", all(c[p]["httpGet"]["path"] == "/health" for p in ("startupProbe", "readinessProbe", "livenessProbe")))
hpa = load_yaml("kubernetes/hpa.yaml")
check("HPA scales on the metric the adapter exposes (vllm_waiting_requests)",
      hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == adapter["rules"]["custom"][0]["name"]["as"] == "vllm_waiting_requests")
mq = adapter["rules"]["custom"][0]["metricsQuery"]
check("adapter metricsQuery uses the <<.Series>>, <<.LabelMatchers>>, <<.GroupBy>> template",
      all(x in mq for x in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>")))
sm = load_yaml("kubernetes/servicemonitor.yaml")
svc = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "service.yaml").read_text()))
check("ServiceMonitor scrapes the Service's metrics port, which is the container's --metrics-port",
      sm["spec"]["endpoints"][0]["port"] == "metrics"
      and any(p["name"] == "metrics" for p in svc[0]["spec"]["ports"])
      and any(p["name"] == "metrics" and str(p["containerPort"]) == args["metrics-port"] for p in c["ports"]))
check("HPA and KEDA target the Deployment",
      hpa["spec"]["scaleTargetRef"]["name"] == keda["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"])

# ---- Grafana provisioning and compose wiring -------------------------------------------
dsp = load_yaml("grafana/provisioning/datasources/prometheus.yaml")
dbp = load_yaml("grafana/provisioning/dashboards/corvid.yaml")
compose = load_yaml("docker/compose.yaml")
services = compose.get("services", {})
check("compose has corvid replicas, gateway, Prometheus, Alertmanager and Grafana",
      {"prometheus", "alertmanager", "grafana", "gateway"} <= set(services)
      and sum(1 for s in services if s.startswith("corvid")) >= 2, sorted(services))
mounts_ok = True
bad = []
for name, s in services.items():
    for v in s.get("volumes", []):
        src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
        if src.startswith("."):
            if not (DEPLOY / "docker" / src).resolve().exists():
                mounts_ok = False
                bad.append(f"{name}: {src}")
check("compose bind mounts point at files that exist", mounts_ok, bad)
gmounts = " ".join(services.get("grafana", {}).get("volumes", []))
check("Grafana provisioning: datasource + dashboard provider, mounted where the provider looks",
      dsp["datasources"][0]["type"] == "prometheus"
      and dbp["providers"][0]["options"]["path"] in gmounts)
prom_cfg = load_yaml("prometheus/prometheus.yml")
targets = prom_cfg["scrape_configs"][0]["static_configs"][0]["targets"]
check("prometheus.yml static targets are the compose replicas",
      all(t.split(":")[0] in services for t in targets), targets)

print(f"contract: {sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) else 1)
