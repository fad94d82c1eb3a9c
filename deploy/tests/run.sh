#!/usr/bin/env bash
# Tests of the observability kit (deploy/), all against real binaries:
#   promtool, amtool, prometheus, prometheus-alertmanager, nginx, tsc + @grafana/schema,
#   kubernetes-validate, the operators' published schemas, Chromium driven by Playwright,
#   and (when it is built) corvid.
#
#   bash deploy/tests/run.sh
#
# Environment: CORVID_BIN (default <repo>/target/release/corvid; e2e runs when it exists),
# CORVID_TEST_PORT_BASE (default 27400; ports BASE..BASE+199 on 127.0.0.1 are used),
# CORVID_CACHE (default ~/.cache/corvid), SKIP_INSTALL=1 to skip install.sh.
# Ends with "N passed, M failed"; exits non-zero on any failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
cd "$REPO"

BASE="${CORVID_TEST_PORT_BASE:-27400}"
export CORVID_BIN="${CORVID_BIN:-$REPO/target/release/corvid}"
PASSED=0
FAILED=0
TMP="$(mktemp -d -t corvid-deploy-tests.XXXXXX)"
trap 'bg_cleanup; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM HUP PIPE

# check NAME cmd...: one check; its output is shown only when it fails.
check() {
  local name="$1" out rc=0; shift
  out="$("$@" 2>&1)" || rc=$?
  if [ "$rc" -eq 0 ]; then
    PASSED=$((PASSED + 1)); echo "PASS $name"
  else
    FAILED=$((FAILED + 1)); echo "FAIL $name"; printf '%s\n' "$out" | sed 's/^/    /' | tail -40
  fi
}

# suite NAME cmd...: a command printing its own PASS/FAIL lines; each line counts.
suite() {
  local name="$1" out rc=0 p f; shift
  out="$("$@" 2>&1)" || rc=$?
  printf '%s\n' "$out" | grep -E '^(PASS|FAIL|SKIP)' || true
  p=$(printf '%s\n' "$out" | grep -c '^PASS' || true)
  f=$(printf '%s\n' "$out" | grep -c '^FAIL' || true)
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1; echo "FAIL $name (exit $rc)"; printf '%s\n' "$out" | tail -30 | sed 's/^/    /'
  elif [ "$f" -gt 0 ]; then
    printf '%s\n' "$out" | grep -vE '^(PASS|FAIL|SKIP)' | tail -30 | sed 's/^/    /' || true
  fi
  PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
}

# ---- tools ----------------------------------------------------------------------------
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  check "install: test dependencies present (install.sh)" bash "$HERE/install.sh"
fi
PY="$CORVID_CACHE/venv/bin/python"
NPMDIR="$CORVID_CACHE/npm"

# ---- Prometheus ------------------------------------------------------------------------
check "promtool check config deploy/prometheus/prometheus.yml" \
  promtool check config deploy/prometheus/prometheus.yml

# uncomment_examples OUT: prometheus.yml with its commented examples enabled. Debian's
# Prometheus is built without Kubernetes service discovery, so its promtool cannot load
# kubernetes_sd_configs: the remote_write example goes through promtool, the Kubernetes SD
# example through a structural check (roles, relabel actions and regexes).
uncomment_examples() {
  "$PY" - "$1" <<'PYEOF'
import re, sys, yaml
lines = open("deploy/prometheus/prometheus.yml").read().split("\n")
out, seen_corvid = [], 0
for ln in lines:
    m = re.match(r"^(\s*)# (remote_write:|- |  )(.*)$", ln)
    if m:
        ln = m.group(1) + m.group(2) + m.group(3)
    if re.match(r"^\s*- job_name: corvid$", ln):
        seen_corvid += 1
        if seen_corvid == 2:
            ln = ln.replace("corvid", "corvid-k8s")
    out.append(ln)
cfg = yaml.safe_load("\n".join(out))
k8s = [j for j in cfg["scrape_configs"] if j["job_name"] == "corvid-k8s"]
assert len(k8s) == 1 and cfg.get("remote_write"), "examples not found"
job = k8s[0]
for sd in job.pop("kubernetes_sd_configs"):
    assert sd["role"] in ("endpoints", "pod", "service", "endpointslice"), sd
    assert set(sd) <= {"role", "namespaces", "selectors"}, sd
for rc in job["relabel_configs"]:
    assert set(rc) <= {"source_labels", "regex", "action", "target_label", "replacement"}, rc
    assert rc.get("action", "replace") in ("keep", "drop", "replace", "labelmap"), rc
    re.compile(rc.get("regex", "(.*)"))
    assert all(l.startswith("__meta_kubernetes_") for l in rc.get("source_labels", [])), rc
job["static_configs"] = [{"targets": ["127.0.0.1:1"]}]  # stand-in for the discovery
yaml.safe_dump(cfg, open(sys.argv[1], "w"), sort_keys=False)
PYEOF
  cp -r deploy/prometheus/rules "$(dirname "$1")/"
  promtool check config "$1"
}
mkdir -p "$TMP/examples"
check "prometheus.yml examples: remote_write (promtool) and Kubernetes SD (structure) enabled" \
  uncomment_examples "$TMP/examples/prometheus.yml"
check "promtool check rules deploy/prometheus/rules/*.yml" \
  promtool check rules deploy/prometheus/rules/corvid-recording.rules.yml deploy/prometheus/rules/corvid-alerts.rules.yml
check "promtool test rules: every alert fires after its 'for' and stays silent otherwise" \
  promtool test rules deploy/prometheus/tests/alerts_test.yml

# ---- contracts (document, docs/metrics.md, cross-file relations) ----------------------
suite "contract checks" "$PY" "$HERE/check_contract.py"

# ---- Alertmanager ---------------------------------------------------------------------
check "amtool check-config deploy/alertmanager/alertmanager.yml" \
  amtool check-config deploy/alertmanager/alertmanager.yml
route_is() {  # route_is RECEIVER label=value...
  local want="$1" got; shift
  got="$(amtool config routes test --config.file=deploy/alertmanager/alertmanager.yml "$@")"
  [ "$got" = "$want" ] || { echo "labels $* -> $got, want $want"; return 1; }
}
check "amtool routes: severity=critical -> oncall-critical" route_is oncall-critical alertname=X severity=critical
check "amtool routes: severity=warning -> team-warning" route_is team-warning alertname=HighWaitingRequests severity=warning
check "amtool routes: no severity -> default-webhook" route_is default-webhook alertname=X

# Functions run by `suite` execute in a subshell: each kills what it started on exit.
need_ports() {
  local p
  for p in "$@"; do port_free "$p" || { echo "port 127.0.0.1:$p is in use (set CORVID_TEST_PORT_BASE)"; return 1; }; done
}

am_live() {
  trap bg_cleanup EXIT
  local am_port=$((BASE + 90)) hook_port=$((BASE + 91)) dir="$TMP/am"
  need_ports "$am_port" "$hook_port"
  mkdir -p "$dir"
  "$PY" deploy/lib/render.py alertmanager --out "$dir/alertmanager.yml" \
    --webhook "http://127.0.0.1:$hook_port/hook" --fast
  bg_start webhook "$dir" "$PY" "$HERE/webhook_receiver.py" "$hook_port" "$dir/notifications.jsonl"
  start_alertmanager alertmanager "$dir" "$dir/alertmanager.yml" "127.0.0.1:$am_port"
  local am_pid=$BG_LAST
  wait_http "http://127.0.0.1:$hook_port/" 10 || { echo "webhook receiver did not start"; return 1; }
  wait_http "http://127.0.0.1:$am_port/-/ready" 20 "$am_pid" || { cat "$dir/alertmanager.log"; return 1; }
  "$PY" "$HERE/test_alertmanager.py" "http://127.0.0.1:$am_port" "$dir/notifications.jsonl"
}
suite "alertmanager routing and inhibition (live)" am_live

# ---- nginx gateway ----------------------------------------------------------------------
suite "nginx gateway routing" env NGINX_TEST_PORT=$((BASE + 80)) "$PY" "$HERE/test_nginx.py"

# ---- Grafana ----------------------------------------------------------------------------
check "dashboards are up to date with build_dashboards.py" "$PY" deploy/grafana/build_dashboards.py --check
check "dashboards type-check against @grafana/schema (tsc, strict)" \
  node "$HERE/check_dashboards.mjs" "$NPMDIR" deploy/grafana/dashboards/corvid.json deploy/grafana/dashboards/vllm-compat.json
check "Grafana provisioning files parse" "$PY" -c '
import yaml, sys
for f in sys.argv[1:]:
    d = yaml.safe_load(open(f)); assert d["apiVersion"] == 1, f
' deploy/grafana/provisioning/datasources/prometheus.yaml deploy/grafana/provisioning/dashboards/corvid.yaml

# ---- the built-in dashboard's pieces (no corvid needed) ---------------------------------
vendored_uplot() {
  local f v="crates/corvid-server/assets/dashboard/uplot" n="$NPMDIR/node_modules/uplot"
  grep -q '"version": "1.6.32"' "$n/package.json" || { echo "npm uplot is not 1.6.32"; return 1; }
  for f in uPlot.iife.min.js uPlot.min.css; do cmp "$v/$f" "$n/dist/$f" || return 1; done
  cmp "$v/LICENSE" "$n/LICENSE"
}
check "uPlot vendored in the binary is npm uplot@1.6.32, byte for byte, with its MIT licence" vendored_uplot
promql_exact() {
  mkdir -p "$TMP/promql" && node "$HERE/browser/promql_exact.mjs" "$TMP/promql" && promtool test rules "$TMP/promql/promql_exact.yml"
}
check "the dashboard page's rate() and histogram_quantile() equal Prometheus' on the same samples (promtool test rules)" promql_exact

# ---- Kubernetes -------------------------------------------------------------------------
check "PrometheusRule is generated from the rule files (up to date)" "$PY" deploy/lib/render.py prometheusrule --check
prometheusrule_rules() {
  "$PY" -c 'import yaml,sys; d=yaml.safe_load(open(sys.argv[1])); yaml.safe_dump({"groups": d["spec"]["groups"]}, open(sys.argv[2],"w"), allow_unicode=True)' \
    deploy/kubernetes/prometheusrule.yaml "$TMP/prometheusrule-groups.yml"
  promtool check rules "$TMP/prometheusrule-groups.yml"
}
check "promtool check rules on the PrometheusRule's groups" prometheusrule_rules
check "kubernetes-validate --strict: Deployment, Services, HPA (Kubernetes 1.37 schemas)" \
  "$CORVID_CACHE/venv/bin/kubernetes-validate" --strict --quiet \
  deploy/kubernetes/deployment.yaml deploy/kubernetes/service.yaml deploy/kubernetes/hpa.yaml
check "kubernetes-validate --strict: same, Kubernetes 1.29 schemas (older clusters)" \
  "$CORVID_CACHE/venv/bin/kubernetes-validate" --strict --quiet -k 1.29.0 \
  deploy/kubernetes/deployment.yaml deploy/kubernetes/service.yaml deploy/kubernetes/hpa.yaml
crds() {
  local f
  for f in servicemonitor prometheusrule keda-scaledobject inference-pool; do
    "$PY" -c 'import sys,yaml,json; json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d], open(sys.argv[2],"w"))' \
      "deploy/kubernetes/$f.yaml" "$TMP/$f.json"
  done
  node "$HERE/check_crds.mjs" "$NPMDIR" "$TMP/servicemonitor.json" "$TMP/prometheusrule.json" \
    "$TMP/keda-scaledobject.json" "$TMP/inference-pool.json"
}
suite "custom resources against the operators' schemas" crds
# No registry publishes the Inference Extension's CRDs: a schema derived from its API reference.
suite "InferencePool + InferenceObjective: derived schema, consistency with the Deployment" \
  "$PY" "$HERE/check_inference_pool.py"
check "prometheus-adapter values: structure" "$PY" -c '
import yaml
v = yaml.safe_load(open("deploy/kubernetes/prometheus-adapter-values.yaml"))
assert v["rules"]["default"] is False
for r in v["rules"]["custom"]:
    assert set(r) == {"seriesQuery", "resources", "name", "metricsQuery"}, r.keys()
    assert set(r["resources"]["overrides"]) == {"namespace", "pod"}
    assert r["name"]["as"] and r["name"]["matches"]
assert v["prometheus"]["url"].startswith("http")
'

# ---- every query against a real Prometheus (parse + evaluate; no corvid needed) ----------
queries_parse() {
  trap bg_cleanup EXIT
  local port=$((BASE + 95)) dir="$TMP/prom-parse"
  need_ports "$port"
  mkdir -p "$dir"
  # the target is a closed loopback port: every query must still evaluate successfully
  "$PY" deploy/lib/render.py prometheus --out-dir "$dir" --listen "127.0.0.1:$port" \
    --target "127.0.0.1:$((BASE + 96))" --interval 1s
  start_prometheus prometheus "$dir" "127.0.0.1:$port"
  wait_http "http://127.0.0.1:$port/-/ready" 30 "$BG_LAST" || { tail -20 "$dir/prometheus.log"; return 1; }
  "$PY" "$HERE/panel_queries.py" --prometheus "http://127.0.0.1:$port" \
    --adapter deploy/kubernetes/prometheus-adapter-values.yaml --keda deploy/kubernetes/keda-scaledobject.yaml \
    deploy/grafana/dashboards/corvid.json deploy/grafana/dashboards/vllm-compat.json
}
suite "dashboard, adapter and KEDA queries on a real Prometheus" queries_parse

# ---- deploy/stack.sh (without corvid: Prometheus + Alertmanager + gateway) --------------
stack_smoke() {
  trap bg_cleanup EXIT
  local b=$((BASE + 100)) prom
  prom="http://127.0.0.1:$((b + 90))"
  need_ports $((b + 80)) $((b + 90)) $((b + 93)) $((b + 94))
  bg_start stack "$TMP" env STACK_PORT_BASE="$b" STACK_DURATION=60 STACK_INTERVAL=1s bash deploy/stack.sh --no-corvid
  local spid=$BG_LAST
  wait_http "$prom/-/ready" 30 "$spid" || { cat "$TMP/stack.log"; return 1; }
  "$PY" - "$prom" <<'PYEOF'
import json, sys, time, urllib.request
prom = sys.argv[1]
def get(p):
    with urllib.request.urlopen(prom + p, timeout=5) as r:
        return json.load(r)["data"]
end = time.time() + 20
while True:
    groups = {g["name"] for g in get("/api/v1/rules")["groups"]}
    ams = get("/api/v1/alertmanagers")["activeAlertmanagers"]
    if (groups == {"corvid-recording", "corvid-alerts"} and ams) or time.time() > end:
        break
    time.sleep(0.5)
assert groups == {"corvid-recording", "corvid-alerts"}, groups
assert len(ams) == 1, ams
PYEOF
  grep -q "Prometheus      http://127.0.0.1:$((b + 90))" "$TMP/stack.log"
  kill -TERM "$spid"
  local end=$((SECONDS + 15))
  while kill -0 "$spid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.5; done
  ! kill -0 "$spid" 2>/dev/null || { echo "stack.sh did not stop on SIGTERM"; return 1; }
  port_free $((b + 90)) && port_free $((b + 93)) || { echo "stack.sh left processes behind"; return 1; }
}
check "stack.sh --no-corvid: Prometheus loads the rules, finds Alertmanager, and everything stops on SIGTERM" stack_smoke

# ---- shell scripts ----------------------------------------------------------------------
check "bash -n on deploy/stack.sh and deploy/tests/*.sh" bash -c '
for f in deploy/stack.sh deploy/tests/*.sh; do bash -n "$f" || exit 1; done'

# ---- end to end with the real corvid -----------------------------------------------------
if [ -x "$CORVID_BIN" ]; then
  suite "end to end with corvid" timeout -k 15 900 env E2E_PORT_BASE="$BASE" bash "$HERE/e2e.sh"
else
  echo "SKIP e2e: no corvid binary at $CORVID_BIN (build it with: cargo build --release -p corvid)"
fi

# ---- three replicas behind vLLM's router: cache-aware vs round-robin, a replica killed ----
if [ -x "$CORVID_BIN" ]; then
  suite "vllm-router in front of three corvid replicas" \
    timeout -k 15 900 env ROUTER_PORT_BASE=$((BASE + 80)) bash "$HERE/routers.sh"
else
  echo "SKIP routers: no corvid binary at $CORVID_BIN"
fi

# ---- KV-cache events read by an independent subscriber (pyzmq + msgpack) -----------------
if [ -x "$CORVID_BIN" ]; then
  suite "KV-cache events: replay, evictions, and a subscriber's view equal to the replica's" \
    timeout -k 15 300 env KV_EVENTS_PORT_BASE=$((BASE + 150)) bash "$HERE/kv_events.sh"
else
  echo "SKIP kv-events: no corvid binary at $CORVID_BIN"
fi

# ---- the load tools users benchmark with (inference-perf, guidellm, corvid bench serve) -----
if [ -x "$CORVID_BIN" ]; then
  suite "load tools: inference-perf, guidellm and corvid bench serve against corvid" \
    timeout -k 15 300 env LOAD_TOOLS_PORT_BASE=$((BASE + 160)) bash "$HERE/load_tools.sh"
else
  echo "SKIP load-tools: no corvid binary at $CORVID_BIN"
fi

# ---- the dashboards in a real browser (Chromium + Playwright) with the real corvid ---------
if [ -x "$CORVID_BIN" ]; then
  suite "browser: built-in /dashboard and every Grafana panel in Chromium" \
    timeout -k 15 600 env BROWSER_PORT_BASE=$((BASE + 60)) bash "$HERE/browser.sh"
else
  echo "SKIP browser: no corvid binary at $CORVID_BIN"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
