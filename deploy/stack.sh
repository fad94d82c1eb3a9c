#!/usr/bin/env bash
# Run the observability stack locally, on loopback, without systemd or Docker:
#   corvid (serve) -> Prometheus (rules + alerts) -> Alertmanager -> local alert log
# plus the nginx gateway in front of corvid when nginx is installed.
#
#   deploy/stack.sh                 # runs until Ctrl-C, then stops everything it started
#   deploy/stack.sh --no-corvid     # Prometheus + Alertmanager only (e.g. corvid runs elsewhere)
#
# Environment:
#   CORVID_BIN        corvid binary (default: target/release/corvid)
#   CORVID_MODEL      --model (default: SmolLM2-135M-Instruct)
#   CORVID_NAME       --served-model-name (default: corvid)
#   CORVID_ARGS       extra `corvid serve` arguments (e.g. "--max-num-seqs 8")
#   CORVID_TARGETS    comma-separated host:port list to scrape instead of the started corvid
#   STACK_PORT_BASE   default 29400: corvid +1, gateway +80, Prometheus +90,
#                     Alertmanager +93, alert log receiver +94
#   STACK_DURATION    stop by itself after this many seconds (default: run until Ctrl-C)
#   STACK_INTERVAL    scrape/evaluation interval (default 15s, the documented value)
#
# Binaries: Debian's `prometheus` and `prometheus-alertmanager` packages (+ nginx with njs,
# libnginx-mod-http-js);
# `bash deploy/tests/install.sh` installs them. The configs used are generated copies of
# deploy/prometheus, deploy/alertmanager and deploy/nginx with loopback addresses, in a
# temporary directory that is printed (and removed on exit unless STACK_KEEP=1).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# shellcheck source=tests/lib.sh
source "$HERE/tests/lib.sh"

WITH_CORVID=1
[ "${1:-}" = "--no-corvid" ] && WITH_CORVID=0

BASE="${STACK_PORT_BASE:-29400}"
CPORT=$((BASE + 1)); GW=$((BASE + 80)); PROM=$((BASE + 90)); AM=$((BASE + 93)); HOOK=$((BASE + 94))
CORVID_BIN="${CORVID_BIN:-$REPO/target/release/corvid}"
INTERVAL="${STACK_INTERVAL:-15s}"

for tool in prometheus prometheus-alertmanager promtool; do
  command -v "$tool" >/dev/null || { echo "stack: $tool not found; run: bash deploy/tests/install.sh" >&2; exit 1; }
done
if [ "$WITH_CORVID" = 1 ] && [ ! -x "$CORVID_BIN" ]; then
  echo "stack: no corvid binary at $CORVID_BIN (cargo build --release -p corvid, or set CORVID_BIN, or --no-corvid)" >&2
  exit 1
fi

DIR="$(mktemp -d -t corvid-stack.XXXXXX)"
cleanup() {
  echo "stack: stopping" >&2
  bg_cleanup
  if [ "${STACK_KEEP:-0}" = 1 ]; then echo "stack: kept $DIR" >&2; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

for p in $PROM $AM $HOOK; do port_free "$p" || { echo "stack: port $p busy (set STACK_PORT_BASE)" >&2; exit 1; }; done

targets=()
if [ -n "${CORVID_TARGETS:-}" ]; then
  IFS=, read -r -a targets <<<"$CORVID_TARGETS"
elif [ "$WITH_CORVID" = 1 ]; then
  targets=("127.0.0.1:$CPORT")
else
  targets=("127.0.0.1:$CPORT")   # nothing there yet: `up` is 0 until something listens
fi

if [ "$WITH_CORVID" = 1 ]; then
  port_free "$CPORT" || { echo "stack: port $CPORT busy" >&2; exit 1; }
  # shellcheck disable=SC2086  # CORVID_ARGS is a list of words
  bg_start corvid "$DIR" "$CORVID_BIN" serve --model "${CORVID_MODEL:-SmolLM2-135M-Instruct}" \
    --host 127.0.0.1 --port "$CPORT" --served-model-name "${CORVID_NAME:-corvid}" ${CORVID_ARGS:-}
  CPID=$BG_LAST
  echo "stack: waiting for corvid on 127.0.0.1:$CPORT (model loading)..." >&2
  wait_http "http://127.0.0.1:$CPORT/health" 300 "$CPID" || { tail -20 "$DIR/corvid.log" >&2; exit 1; }
fi

mkdir -p "$DIR/prometheus"
targs=(); for t in "${targets[@]}"; do targs+=(--target "$t"); done
"$PY" "$HERE/lib/render.py" prometheus --out-dir "$DIR/prometheus" --listen "127.0.0.1:$PROM" \
  "${targs[@]}" --alertmanager "127.0.0.1:$AM" --interval "$INTERVAL"
promtool check config "$DIR/prometheus/prometheus.yml" >/dev/null
"$PY" "$HERE/lib/render.py" alertmanager --out "$DIR/alertmanager.yml" --webhook "http://127.0.0.1:$HOOK/alert"
bg_start alert-receiver "$DIR" "$PY" "$HERE/tests/webhook_receiver.py" "$HOOK" "$DIR/alerts.jsonl"
start_alertmanager alertmanager "$DIR" "$DIR/alertmanager.yml" "127.0.0.1:$AM"; PAM=$BG_LAST
start_prometheus prometheus "$DIR/prometheus" "127.0.0.1:$PROM"; PPROM=$BG_LAST
wait_http "http://127.0.0.1:$AM/-/ready" 30 "$PAM" || { tail -20 "$DIR/alertmanager.log" >&2; exit 1; }
wait_http "http://127.0.0.1:$PROM/-/ready" 30 "$PPROM" || { tail -20 "$DIR/prometheus/prometheus.log" >&2; exit 1; }

GATEWAY=""
if command -v nginx >/dev/null && port_free "$GW"; then
  mkdir -p "$DIR/nginx"
  ups=(); for t in "${targets[@]}"; do ups+=(--upstream "$t"); done
  "$PY" "$HERE/lib/render.py" nginx --out "$DIR/nginx/nginx.conf" --prefix "$DIR/nginx" \
    --listen "127.0.0.1:$GW" "${ups[@]}"
  bg_start nginx "$DIR" nginx -c "$DIR/nginx/nginx.conf" -p "$DIR/nginx" -g "daemon off;"
  wait_http "http://127.0.0.1:$GW/gateway/health" 10 "$BG_LAST" && GATEWAY="http://127.0.0.1:$GW"
fi

cat <<EOF

corvid observability stack (loopback only; generated configs in $DIR)
  corvid          ${targets[*]}   (API, /health, /metrics)
  gateway         ${GATEWAY:-not started (nginx missing or port busy)}   (/v1/..., /metrics refused)
  Prometheus      http://127.0.0.1:$PROM        targets: /targets, alerts: /alerts, rules: /rules
  Alertmanager    http://127.0.0.1:$AM
  alert log       $DIR/alerts.jsonl   (every notification Alertmanager sends, one JSON per line)
  process logs    $DIR/*.log, $DIR/prometheus/prometheus.log
  Grafana         none here: import deploy/grafana/dashboards/corvid.json (and vllm-compat.json)
                  into a Grafana that can reach http://127.0.0.1:$PROM, or use
                  deploy/grafana/provisioning with PROMETHEUS_URL=http://127.0.0.1:$PROM

  Try:  curl -s http://127.0.0.1:$PROM/api/v1/query --data-urlencode 'query=rate(vllm_request_throughput[1m])'
EOF

if [ -n "${STACK_DURATION:-}" ]; then
  echo "stack: running for ${STACK_DURATION}s" >&2
  end=$((SECONDS + STACK_DURATION))
  while [ "$SECONDS" -lt "$end" ]; do sleep 1; done
else
  echo "stack: Ctrl-C to stop" >&2
  while true; do sleep 3600; done
fi
