#!/usr/bin/env python3
"""Run every PromQL expression of the dashboards (and of the autoscalers) against a real
Prometheus through its HTTP API.

  panel_queries.py --prometheus http://127.0.0.1:PORT [--require-data]
                   [--var name=value ...] [--expect-instances a,b] [--expect-models m1,m2]
                   [--adapter deploy/kubernetes/prometheus-adapter-values.yaml]
                   [--keda deploy/kubernetes/keda-scaledobject.yaml]
                   DASHBOARD.json ...

Every panel target's `expr` has its template variables substituted ($__range -> 5m,
$__rate_interval -> 1m, $__interval -> 15s; dashboard variables from --var, else `.*`)
and goes to /api/v1/query: the answer must be status "success" (so it parses and
evaluates). Template variable queries (label_values) go to /api/v1/label/.../values.

--require-data: every answer must also be non-empty. Event counters that do not exist
until their first event (preemptions, timeouts, aborts, finished_reason="error") are
accepted empty when Prometheus has no such series at all; those are listed as such.
--expect-instances: every panel query grouped `by (instance)` must return a series for
each of these instances (the dashboard separates replicas).
--expect-models: every panel query grouped by model_name must return a series for each of
these models (event counters that exist for only some models excepted), and every
compare-models panel (title starting with COMPARE, build_dashboards.py's prefix) must give
each model a finite value above zero, no two models the same; there must be such panels.

The prometheus-adapter rule (seriesQuery, and metricsQuery with its <<.Series>>,
<<.LabelMatchers>>, <<.GroupBy>> template filled in the way the adapter fills it for the
HPA: the pods' namespace and pod names, grouped by pod) and the KEDA trigger query are run
the same way.

Prints PASS/FAIL lines and exits 1 if anything failed.
"""
import argparse
import json
import math
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

EVENT_SERIES = [
    ("vllm_preemptions_total", "vllm_preemptions_total"),
    ("vllm_request_timeout_total", "vllm_request_timeout_total"),
    ("vllm_request_aborted_total", "vllm_request_aborted_total"),
    ('finished_reason="error"', 'vllm_request_finished_total{finished_reason="error"}'),
    ("vllm:num_preemptions_total", '{__name__="vllm:num_preemptions_total"}'),
]

# Title prefix of the compare-models panels (COMPARE in deploy/grafana/build_dashboards.py).
COMPARE = "对比 Compare: "

results = []


def report(ok, name, detail=""):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} queries: {name}" + (f" -- {detail}" if detail else ""), flush=True)


class Prom:
    def __init__(self, base):
        self.base = base.rstrip("/")

    def get(self, path, params):
        url = f"{self.base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=20) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            try:
                return json.load(e)
            except Exception:
                return {"status": "error", "error": f"HTTP {e.code}"}
        except OSError as e:
            return {"status": "error", "error": str(e)}

    def query(self, expr):
        return self.get("/api/v1/query", {"query": expr})

    def exists(self, selector):
        r = self.query(f"count({selector})")
        return r.get("status") == "success" and bool(r["data"]["result"])


def substitute(expr, variables):
    builtins = {"__range": "5m", "__rate_interval": "1m", "__interval": "15s"}

    def sub(m):
        name = m.group(1) or m.group(2)
        if name in builtins:
            return builtins[name]
        return variables.get(name, ".*")

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", sub, expr)


def result_instances(resp):
    return {s["metric"].get("instance") for s in resp["data"]["result"]}


def check_models(name, expr, series, models, compare):
    """Every model has a series; for a compare panel, distinct values above zero."""
    values = {}
    for s in series:
        values.setdefault(s["metric"].get("model_name"), []).append(float(s["value"][1]))
    missing = [m for m in models if m not in values]
    if missing:
        if any(pat in expr for pat, _ in EVENT_SERIES):
            report(True, name, f"no {missing} series: an event counter not seen for every model yet")
        else:
            report(False, name, f"models {sorted(map(str, values))} lack {missing} :: {expr}")
        return
    if not compare:
        report(True, name, f"{len(series)} series, models separated: {sorted(models)}")
        return
    one = {m: values[m][0] for m in models}
    ok = all(len(values[m]) == 1 and math.isfinite(v) and v > 0 for m, v in one.items()) \
        and len(set(one.values())) == len(one)
    report(ok, name, f"per model {one}" + ("" if ok else f" :: {expr}"))


def check_expr(prom, name, expr, require_data, expect_instances=None, expect_models=None, compare=False):
    resp = prom.query(expr)
    if resp.get("status") != "success":
        report(False, name, f"{resp.get('errorType', '')} {resp.get('error', '')} :: {expr}")
        return
    series = resp["data"]["result"]
    if require_data and not series:
        absent = [sel for pat, sel in EVENT_SERIES if pat in expr and not prom.exists(sel)]
        if absent:
            report(True, name, f"empty: no {', '.join(absent)} event yet")
        else:
            report(False, name, f"no data :: {expr}")
        return
    if expect_instances and series:
        got = result_instances(resp)
        missing = set(expect_instances) - got
        if missing:
            report(False, name, f"instances {sorted(got)} lack {sorted(missing)} :: {expr}")
            return
        if not expect_models:
            report(True, name, f"{len(series)} series, instances separated: {sorted(got)}")
            return
    if expect_models and series:
        check_models(name, expr, series, expect_models, compare)
        return
    report(True, name, f"{len(series)} series" if require_data else "")


def label_values(prom, name, query, variables, require_data):
    m = re.fullmatch(r"\s*label_values\((?:(.*),\s*)?(\w+)\)\s*", query)
    if not m:
        report(False, name, f"not a label_values() query: {query}")
        return
    params = {}
    if m.group(1):
        params["match[]"] = substitute(m.group(1), variables)
    resp = prom.get(f"/api/v1/label/{m.group(2)}/values", params)
    ok = resp.get("status") == "success" and (not require_data or bool(resp.get("data")))
    report(ok, name, json.dumps(resp.get("data", resp.get("error")))[:200])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--require-data", action="store_true")
    ap.add_argument("--var", action="append", default=[])
    ap.add_argument("--expect-instances", default="")
    ap.add_argument("--expect-models", default="")
    ap.add_argument("--adapter")
    ap.add_argument("--keda")
    ap.add_argument("dashboards", nargs="*")
    a = ap.parse_args()
    prom = Prom(a.prometheus)
    variables = dict(v.split("=", 1) for v in a.var)
    expect = [i for i in a.expect_instances.split(",") if i]
    models = [m for m in a.expect_models.split(",") if m]
    compare_panels = 0

    for path in a.dashboards:
        d = json.load(open(path, encoding="utf-8"))
        short = path.rsplit("/", 1)[-1]
        for var in d.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
                label_values(prom, f"{short} variable ${var['name']}", q, variables, a.require_data)
        panels = []
        for p in d.get("panels", []):
            panels.append(p)
            panels.extend(p.get("panels", []))
        for p in panels:
            compare = p["title"].startswith(COMPARE)
            compare_panels += compare
            for t in p.get("targets", []):
                expr = substitute(t["expr"], variables)
                per_instance = expect if re.search(r"by \(instance[,)]", t["expr"]) else None
                per_model = models if re.search(r"by \([^)]*\bmodel_name\b", t["expr"]) else None
                check_expr(prom, f"{short} [{p['title']}] {t['refId']}", expr, a.require_data,
                           per_instance, per_model, compare)
    if models:
        report(compare_panels > 0, f"compare-models panels ({COMPARE}...) found: {compare_panels}")

    if a.adapter or a.keda:
        import yaml
    if a.adapter:
        values = yaml.safe_load(open(a.adapter))
        pods = variables.get("pods", ".*")
        ns = variables.get("namespace", "llm")
        for i, rule in enumerate(values["rules"]["custom"]):
            series_q = rule["seriesQuery"]
            resp = prom.get("/api/v1/series", {"match[]": series_q})
            ok = resp.get("status") == "success" and (not a.require_data or bool(resp.get("data")))
            report(ok, f"adapter rule {i} seriesQuery", f"{len(resp.get('data') or [])} series")
            metric = re.match(r"[\w:]+", series_q).group(0)
            filled = (rule["metricsQuery"]
                      .replace("<<.Series>>", metric)
                      .replace("<<.LabelMatchers>>", f'namespace="{ns}",pod=~"{pods}"')
                      .replace("<<.GroupBy>>", "pod"))
            check_expr(prom, f"adapter rule {i} metricsQuery", filled, a.require_data)
            if a.require_data:
                resp = prom.query(filled)
                pods_seen = {s["metric"].get("pod") for s in resp["data"]["result"]}
                report(None not in pods_seen and bool(pods_seen),
                       f"adapter rule {i} answers per pod (what the HPA averages)", str(sorted(map(str, pods_seen))))
    if a.keda:
        for doc in yaml.safe_load_all(open(a.keda)):
            if not doc or doc.get("kind") != "ScaledObject":
                continue
            for i, trig in enumerate(doc["spec"]["triggers"]):
                if trig["type"] == "prometheus":
                    check_expr(prom, f"KEDA trigger {i} query", trig["metadata"]["query"], a.require_data)

    passed = sum(1 for r in results if r)
    print(f"queries: {passed} passed, {len(results) - passed} failed")
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
