#!/usr/bin/env bash
# End-to-end test of the observability kit with the real corvid server, all on 127.0.0.1:
#
#  (a) corvid overloaded (small --max-num-seqs, many concurrent requests from a bounded
#      load loop) -> real Prometheus (1s scrape/eval) evaluating a copy of the alert rules
#      (same expressions; HighWaitingRequests' threshold lowered and its `for` shortened by
#      sed on the copy) -> real Alertmanager (the repo's routing tree) -> webhook receiver:
#      HighWaitingRequests fires with the right labels and annotations, and the resolved
#      notification arrives once the load stops.
#  (b) every dashboard panel query (both dashboards), the prometheus-adapter query and the
#      KEDA query return data from Prometheus scraping the live corvid under load.
#  (c) two corvid instances serving two different real models (SmolLM2 on the first,
#      Gemma 3 270M on the second) behind the nginx gateway (the repo's config, loopback
#      copy rendered with one upstream per model): a streaming load for each model through
#      the gateway reaches only its model's replica (the replicas' own counters); an
#      unknown model gets the gateway's OpenAI 404; GET /v1/models lists both models;
#      every per-model panel query returns both models, the compare-models panels
#      different non-zero numbers for each, the per-instance ones both instances;
#      /metrics through the gateway is refused.
#  (d) a third, fresh corvid scraped alone by a second Prometheus (1s, default Accept
#      header, so OpenMetrics) under a steady 75 s closed-loop load: the source document's
#      `rate(vllm_request_throughput[1m])` and P95 expression, and the HighWaitingRequests
#      and CorvidHighP95Latency expressions, agree with the client's own RPS and latencies
#      (prom_agreement.py). `promtool check metrics` runs on the live /metrics under load.
#      That Prometheus remote-writes (the repo's remote_write example) to a fourth one run
#      as a remote-write receiver, standing in for Thanos Receive / Mimir: the document's
#      PromQL, the recording rules and the alert expressions answer the same on both
#      (remote_write_agreement.py). Then /metrics is read at 20 Hz under a closed loop as
#      the Gateway API Inference Extension's endpoint picker reads it (gateway_protocol.py).
#
# Skips (exit 0) only when the corvid binary does not exist. Everything is bounded in time
# and every process started here is killed on exit.
#
# Environment: CORVID_BIN (default <repo>/target/release/corvid), CORVID_MODEL (default
# SmolLM2-135M-Instruct), GEMMA_GGUF (default: Gemma 3 270M as scripts/setup.sh installs it
# in $CORVID_HOME), E2E_PORT_BASE (default 27400; uses BASE+1..BASE+19),
# E2E_METRICS_PORT=1 to run corvid with --metrics-port and scrape that port instead.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

corvid_bin_or_skip e2e

BASE="${E2E_PORT_BASE:-27400}"
C1=$((BASE + 1)); C2=$((BASE + 2)); M1=$((BASE + 3)); M2=$((BASE + 4)); C3=$((BASE + 5))
GW=$((BASE + 10)); PROM=$((BASE + 11)); AM=$((BASE + 12)); HOOK=$((BASE + 13)); PROM3=$((BASE + 14))
RECV=$((BASE + 15))
MODEL="${CORVID_MODEL:-SmolLM2-135M-Instruct}"
NAME="smollm2-e2e"
# shellcheck source=../../scripts/gemma_model.env
. "$REPO/scripts/gemma_model.env"
GEMMA="${GEMMA_GGUF:-${CORVID_HOME:-$HOME/.cache/corvid}/$GEMMA_MODEL_GGUF}"
GEMMA_NAME="gemma3-e2e"
MAX_SEQS=2
THRESHOLD=3            # HighWaitingRequests threshold in the test copy (production: 100)
CHECKS=("$PY" "$HERE/e2e_checks.py")

TMP="$(mktemp -d -t corvid-e2e.XXXXXX)"
cleanup() {
  bg_cleanup
  if [ -n "${E2E_KEEP:-}" ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

FAILS=0
run() { "$@" || FAILS=$((FAILS + 1)); }
fatal() { echo "FAIL e2e: $*"; for f in "$TMP"/*.log; do echo "--- $f"; tail -15 "$f"; done; exit 1; }

for p in $C1 $C2 $C3 $GW $PROM $PROM3 $RECV $AM $HOOK; do
  port_free "$p" || fatal "port 127.0.0.1:$p is in use (set E2E_PORT_BASE)"
done
[ -f "$GEMMA" ] || fatal "the second model $GEMMA is missing: run scripts/setup.sh (or set GEMMA_GGUF)"

# ---- corvid x2: SmolLM2 and Gemma 3 --------------------------------------------------------
start_corvid() {  # start_corvid NAME PORT METRICS_PORT MODEL SERVED_NAME
  local extra=()
  [ -n "${E2E_METRICS_PORT:-}" ] && extra=(--metrics-port "$3")
  bg_start "$1" "$TMP" "$CORVID_BIN" serve --model "$4" --host 127.0.0.1 --port "$2" \
    --max-num-seqs "$MAX_SEQS" --served-model-name "$5" "${extra[@]}"
}
start_corvid corvid1 "$C1" "$M1" "$MODEL" "$NAME"; P1=$BG_LAST
start_corvid corvid2 "$C2" "$M2" "$GEMMA" "$GEMMA_NAME"; P2=$BG_LAST
# the fresh instance of phase (d); started now so it loads while (a)-(c) run
bg_start corvid3 "$TMP" "$CORVID_BIN" serve --model "$MODEL" --host 127.0.0.1 --port "$C3" \
  --max-num-seqs "$MAX_SEQS" --served-model-name "$NAME"; P3=$BG_LAST
wait_http "http://127.0.0.1:$C1/health" 180 "$P1" || fatal "corvid on :$C1 did not become healthy"
wait_http "http://127.0.0.1:$C2/health" 180 "$P2" || fatal "corvid on :$C2 did not become healthy"
echo "PASS e2e: two corvid instances healthy: $NAME on 127.0.0.1:$C1, $GEMMA_NAME on :$C2"
if [ -n "${E2E_METRICS_PORT:-}" ]; then S1="127.0.0.1:$M1"; S2="127.0.0.1:$M2"; else S1="127.0.0.1:$C1"; S2="127.0.0.1:$C2"; fi

# ---- Prometheus (rules copy with the lowered threshold) + Alertmanager + webhook ----------
mkdir -p "$TMP/prom"
"$PY" "$DEPLOY_DIR/lib/render.py" prometheus --out-dir "$TMP/prom" --listen "127.0.0.1:$PROM" \
  --target "$S1" --target "$S2" --alertmanager "127.0.0.1:$AM" --interval 1s
RULES="$TMP/prom/rules/corvid-alerts.rules.yml"
sed -i -e "s/expr: vllm_waiting_requests > 100\$/expr: vllm_waiting_requests > $THRESHOLD/" \
       -e "/alert: HighWaitingRequests/,/for:/ s/for: 2m/for: 3s/" "$RULES"
grep -q "expr: vllm_waiting_requests > $THRESHOLD\$" "$RULES" && grep -A2 "alert: HighWaitingRequests" "$RULES" | grep -q "for: 3s" \
  || fatal "sed on the rules copy did not apply"
promtool check config "$TMP/prom/prometheus.yml" >/dev/null || fatal "rendered Prometheus config invalid"
# The adapter/KEDA queries select namespace="llm" and pods: give the scraped series the
# labels prometheus-operator would attach (namespace, pod).
"$PY" - "$TMP/prom/prometheus.yml" "$S1" "$S2" <<'PYEOF'
import sys, yaml
path, s1, s2 = sys.argv[1:]
cfg = yaml.safe_load(open(path))
job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "corvid")
job["static_configs"] = [{"targets": [s1], "labels": {"namespace": "llm", "pod": "corvid-0"}},
                         {"targets": [s2], "labels": {"namespace": "llm", "pod": "corvid-1"}}]
yaml.safe_dump(cfg, open(path, "w"), sort_keys=False)
PYEOF

"$PY" "$DEPLOY_DIR/lib/render.py" alertmanager --out "$TMP/alertmanager.yml" \
  --webhook "http://127.0.0.1:$HOOK/hook" --fast
bg_start webhook "$TMP" "$PY" "$HERE/webhook_receiver.py" "$HOOK" "$TMP/notifications.jsonl"
start_alertmanager alertmanager "$TMP" "$TMP/alertmanager.yml" "127.0.0.1:$AM"; PAM=$BG_LAST
start_prometheus prometheus "$TMP/prom" "127.0.0.1:$PROM"; PPROM=$BG_LAST
wait_http "http://127.0.0.1:$HOOK/" 10 || fatal "webhook receiver did not start"
wait_http "http://127.0.0.1:$AM/-/ready" 30 "$PAM" || fatal "alertmanager did not start"
wait_http "http://127.0.0.1:$PROM/-/ready" 30 "$PPROM" || fatal "prometheus did not start"
PROMURL="http://127.0.0.1:$PROM"

run "${CHECKS[@]}" prom "$PROMURL" 'up{job="corvid"} == 1' --min-series 2 --timeout 30 \
  --name "Prometheus scrapes both corvid instances (up == 1)"
run "${CHECKS[@]}" metrics "http://$S1/metrics" --docs "$REPO/docs/metrics.md"

# ---- (a) overload instance 1 -> HighWaitingRequests fires -> resolves --------------------
STOP="$TMP/stop-load"
bg_start load-a "$TMP" "$PY" "$HERE/load.py" --url "http://127.0.0.1:$C1" --model "$NAME" \
  --concurrency 16 --max-seconds 150 --max-requests 2000 --max-tokens 48 --stop-file "$STOP"
PLOAD=$BG_LAST

run "${CHECKS[@]}" prom "$PROMURL" "vllm_waiting_requests{instance=\"$S1\"} > $THRESHOLD" --timeout 60 \
  --name "overload shows in vllm_waiting_requests (> $THRESHOLD) on the loaded instance"
run "${CHECKS[@]}" notification "$TMP/notifications.jsonl" --alertname HighWaitingRequests --status firing \
  --timeout 90 --label severity=warning --label job=corvid --label "instance=$S1" --label "model_name=$NAME" \
  --annotation-regex 'summary=等待请求过多' \
  --annotation-regex 'description=当前有 [0-9]+ 个请求在排队,建议扩容' \
  --receiver team-warning
run "${CHECKS[@]}" no-notification "$TMP/notifications.jsonl" --alertname HighWaitingRequests --label "instance=$S2"
run bash "$HERE/check_promtool_metrics.sh" "http://$S1/metrics"

# ---- (b) every panel query returns data from the live corvid under load ------------------
# Histogram quantiles need finished requests in the last minute: wait for some first.
run "${CHECKS[@]}" prom "$PROMURL" "instance_model:vllm_request_latency_seconds_count:rate1m{instance=\"$S1\"} > 0" \
  --timeout 90 --name "recording rules produce data from the live corvid"
run "$PY" "$HERE/panel_queries.py" --prometheus "$PROMURL" --require-data \
  --var job=corvid --var "instance=$S1" --var "model_name=$NAME" --var "pods=corvid-0|corvid-1" \
  --adapter "$DEPLOY_DIR/kubernetes/prometheus-adapter-values.yaml" \
  --keda "$DEPLOY_DIR/kubernetes/keda-scaledobject.yaml" \
  "$DEPLOY_DIR/grafana/dashboards/corvid.json" "$DEPLOY_DIR/grafana/dashboards/vllm-compat.json"

touch "$STOP"
end=$((SECONDS + 90))
while kill -0 "$PLOAD" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 1; done
kill -0 "$PLOAD" 2>/dev/null && fatal "load generator did not stop within 90s"
run "${CHECKS[@]}" load <(tail -1 "$TMP/load-a.log") --min-ok 10 --max-failed-ratio 0.05 --name "overload phase requests"
run "${CHECKS[@]}" notification "$TMP/notifications.jsonl" --alertname HighWaitingRequests --status resolved \
  --timeout 90 --label "instance=$S1" --label severity=warning --receiver team-warning

# ---- (c) two models behind the gateway, each routed to its own replica ---------------------
mkdir -p "$TMP/nginx"
"$PY" "$DEPLOY_DIR/lib/render.py" nginx --out "$TMP/nginx/nginx.conf" --prefix "$TMP/nginx" \
  --listen "127.0.0.1:$GW" --model "$NAME=127.0.0.1:$C1" --model "$GEMMA_NAME=127.0.0.1:$C2"
nginx -t -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" -g "daemon off;" 2>"$TMP/nginx-t.log" \
  || fatal "nginx -t failed: $(cat "$TMP/nginx-t.log")"
bg_start nginx "$TMP" nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" -g "daemon off;"; PNG=$BG_LAST
wait_http "http://127.0.0.1:$GW/gateway/health" 15 "$PNG" || fatal "nginx did not start"

run "${CHECKS[@]}" http "http://127.0.0.1:$GW/metrics" --status 403 --name "/metrics through the gateway is refused (403)"
run "${CHECKS[@]}" http "http://127.0.0.1:$GW/health" --status 200 --header-echo X-Request-Id \
  --name "gateway proxies /health to corvid and passes X-Request-Id through"
run "${CHECKS[@]}" http "http://$S1/metrics" --status 200 --name "/metrics served directly by the replica"
run "${CHECKS[@]}" http "http://127.0.0.1:$GW/dashboard" --status 403 --name "/dashboard through the gateway is refused (403)"
run "${CHECKS[@]}" http "http://$S1/dashboard" --status 200 --name "/dashboard served directly by the replica"

REPLICAS=(--replica "$NAME=http://$S1/metrics" --replica "$GEMMA_NAME=http://$S2/metrics")
run "${CHECKS[@]}" served "$TMP/served-before.json" "${REPLICAS[@]}"
run "${CHECKS[@]}" http "http://127.0.0.1:$GW/v1/completions" --post '{"model": "no-such-model", "prompt": "hi"}' \
  --status 404 --error-code model_not_found --name "an unknown model gets the OpenAI 404 from the gateway"
run "${CHECKS[@]}" http "http://127.0.0.1:$GW/v1/models" --status 200 --list-models "$NAME,$GEMMA_NAME" \
  --name "GET /v1/models through the gateway lists both models"
# A streaming load per model, both at once (Gemma is about twice as slow per token); the
# panels are queried while it runs, so every rate and quantile window holds both models.
PLOADC=()
LOAD_C_START=$SECONDS
for m in "$NAME" "$GEMMA_NAME"; do
  bg_start "load-c-$m" "$TMP" "$PY" "$HERE/load.py" --url "http://127.0.0.1:$GW" --model "$m" \
    --concurrency 3 --max-seconds 45 --max-requests 60 --max-tokens 32 --stream
  PLOADC+=("$BG_LAST")
done
for m in "$NAME" "$GEMMA_NAME"; do
  run "${CHECKS[@]}" prom "$PROMURL" "instance_model:vllm_request_latency_seconds_count:rate1m{model_name=\"$m\"} > 0" \
    --timeout 40 --name "requests for $m finish through the gateway"
done
# queried 25 s into the 45 s load: every 1m window holds a good share of both models' requests
sleep $((LOAD_C_START + 25 > SECONDS ? LOAD_C_START + 25 - SECONDS : 0))
run "$PY" "$HERE/panel_queries.py" --prometheus "$PROMURL" --require-data \
  --var job=corvid --var "instance=$S1|$S2" --var "model_name=$NAME|$GEMMA_NAME" \
  --expect-instances "$S1,$S2" --expect-models "$NAME,$GEMMA_NAME" "$DEPLOY_DIR/grafana/dashboards/corvid.json"
run "$PY" "$HERE/panel_queries.py" --prometheus "$PROMURL" --require-data \
  --var "model_name=$GEMMA_NAME" "$DEPLOY_DIR/grafana/dashboards/vllm-compat.json"
end=$((SECONDS + 90))
for pid in "${PLOADC[@]}"; do
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 1; done
  kill -0 "$pid" 2>/dev/null && fatal "a load generator of phase (c) did not stop within 90s"
done
for m in "$NAME" "$GEMMA_NAME"; do
  tail -1 "$TMP/load-c-$m.log" >"$TMP/summary-c-$m.json"
  run "${CHECKS[@]}" load "$TMP/summary-c-$m.json" --min-ok 6 --max-failed-ratio 0.05 --stream --ids \
    --name "streaming load for $m through the gateway"
done
run "${CHECKS[@]}" routed "$TMP/served-before.json" "${REPLICAS[@]}" --min-ok 6 \
  --load "$NAME=$TMP/summary-c-$NAME.json" --load "$GEMMA_NAME=$TMP/summary-c-$GEMMA_NAME.json"

# ---- (d) real Prometheus agrees with the client -------------------------------------------
mkdir -p "$TMP/prom3" "$TMP/receiver"
cp "$DEPLOY_DIR/prometheus/receiver.yml" "$TMP/receiver/prometheus.yml"
start_prometheus receiver "$TMP/receiver" "127.0.0.1:$RECV" --web.enable-remote-write-receiver; PRECV=$BG_LAST
wait_http "http://127.0.0.1:$RECV/-/ready" 30 "$PRECV" || fatal "remote-write receiver did not start"
"$PY" "$DEPLOY_DIR/lib/render.py" prometheus --out-dir "$TMP/prom3" --listen "127.0.0.1:$PROM3" \
  --target "127.0.0.1:$C3" --interval 1s --remote-write "http://127.0.0.1:$RECV/api/v1/write"
promtool check config "$TMP/prom3/prometheus.yml" >/dev/null || fatal "rendered remote-write config invalid"
start_prometheus prometheus3 "$TMP/prom3" "127.0.0.1:$PROM3"; PPROM3=$BG_LAST
wait_http "http://127.0.0.1:$C3/health" 180 "$P3" || fatal "corvid on :$C3 did not become healthy"
wait_http "http://127.0.0.1:$PROM3/-/ready" 30 "$PPROM3" || fatal "second prometheus did not start"
CONC_D=6
"$PY" "$HERE/load.py" --url "http://127.0.0.1:$C3" --model "$NAME" --concurrency "$CONC_D" \
  --max-seconds 75 --max-requests 100000 --max-tokens 24 --latencies "$TMP/latencies-d.jsonl" \
  >"$TMP/load-d.log" 2>&1 || true
run "$PY" "$HERE/prom_agreement.py" --prometheus "http://127.0.0.1:$PROM3" \
  --latencies "$TMP/latencies-d.jsonl" --rules "$DEPLOY_DIR/prometheus/rules/corvid-alerts.rules.yml" \
  --concurrency "$CONC_D" --max-num-seqs "$MAX_SEQS"
run "$PY" "$HERE/remote_write_agreement.py" --scraper "http://127.0.0.1:$PROM3" \
  --receiver "http://127.0.0.1:$RECV" --rules "$DEPLOY_DIR"/prometheus/rules/*.rules.yml
run "$PY" "$HERE/gateway_protocol.py" --url "http://127.0.0.1:$C3" --model "$NAME" \
  --concurrency "$CONC_D" --max-num-seqs "$MAX_SEQS" --seconds 10

if [ "$FAILS" -eq 0 ]; then echo "e2e: all checks passed"; else echo "e2e: $FAILS check group(s) failed"; fi
[ "$FAILS" -eq 0 ]
