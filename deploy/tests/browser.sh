#!/usr/bin/env bash
# Browser tests of the dashboards, in Debian's Chromium driven by Playwright
# (browser/check.mjs), against the real corvid under load, all on 127.0.0.1:
#
#   corvid (--metrics-port, so /dashboard is on the metrics listener) <- load.py
#   Prometheus (the repo's recording rules, 1 s scrape of the metrics listener)
#   Chromium: the built-in /dashboard page, then grafana.html drawing every panel of
#   deploy/grafana/dashboards/*.json from Prometheus' query_range; then corvid is
#   restarted under the page's eyes.
#
#   bash deploy/tests/browser.sh                  # the checks (about 3 minutes)
#   SCREENSHOTS=docs/screenshots bash deploy/tests/browser.sh   # also the screenshots
#
# Prints PASS/FAIL lines and "N passed, M failed"; exits non-zero on any failure. Skips
# (exit 0) when the corvid binary does not exist. Environment: CORVID_BIN, CORVID_MODEL,
# BROWSER_PORT_BASE (default 27600; uses BASE+1..BASE+3, and BASE+4..BASE+6 with
# SECOND_MODEL), SCREENSHOTS (a folder), CHROMIUM (default /usr/bin/chromium), REFRESH (the
# page's refresh, 1-5 s, default 2), SECOND_MODEL (a model path: a second replica serves
# it under its own load, and the Grafana dashboards are drawn from a second Prometheus
# scraping both replicas, so their per-model panels and compare-models region show two
# models; the built-in page and its checks stay on the first replica and its Prometheus;
# screenshots.sh sets it to Gemma 3 270M).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

corvid_bin_or_skip browser
BASE="${BROWSER_PORT_BASE:-27600}"
API=$((BASE + 1)); MET=$((BASE + 2)); PROM=$((BASE + 3))
API2=$((BASE + 4)); MET2=$((BASE + 5)); PROM2=$((BASE + 6))
MODEL="${CORVID_MODEL:-SmolLM2-135M-Instruct}"
NAME="corvid-browser"
WARM=65   # seconds of load Prometheus holds before the comparisons and the Grafana panels
SKIP=25   # the panels are drawn from this many seconds into the load (a latency quantile
          # needs requests finished in its window, else it is NaN, and Grafana would show
          # a gap: the range starts once the first ones are in)

TMP="$(mktemp -d -t corvid-browser.XXXXXX)"
trap 'bg_cleanup; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM HUP PIPE
fatal() { echo "FAIL browser: $*"; for f in "$TMP"/*.log "$TMP"/prom/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -15 "$f"; }; done; exit 1; }

for p in $API $MET $PROM ${SECOND_MODEL:+$API2 $MET2 $PROM2}; do
  port_free "$p" || fatal "port 127.0.0.1:$p is in use (set BROWSER_PORT_BASE)"
done
if [ -n "${SCREENSHOTS:-}" ]; then mkdir -p "$SCREENSHOTS"; SCREENSHOTS="$(cd "$SCREENSHOTS" && pwd)"; fi

start_corvid() {  # -> pid in BG_LAST
  bg_start "corvid-$1" "$TMP" "$CORVID_BIN" serve --model "$MODEL" --host 127.0.0.1 --port "$API" \
    --metrics-port "$MET" --max-num-seqs 4 --served-model-name "$NAME"
}
start_corvid 1; PC=$BG_LAST
mkdir -p "$TMP/prom"
"$PY" "$DEPLOY_DIR/lib/render.py" prometheus --out-dir "$TMP/prom" --listen "127.0.0.1:$PROM" \
  --target "127.0.0.1:$MET" --interval 1s
start_prometheus prometheus "$TMP/prom" "127.0.0.1:$PROM"; PP=$BG_LAST
wait_http "http://127.0.0.1:$API/health" 180 "$PC" || fatal "corvid did not become healthy"
wait_http "http://127.0.0.1:$PROM/-/ready" 30 "$PP" || fatal "prometheus did not start"
GRAFANA_PROM="http://127.0.0.1:$PROM"
if [ -n "${SECOND_MODEL:-}" ]; then
  NAME2="gemma3-browser"
  bg_start corvid-second "$TMP" "$CORVID_BIN" serve --model "$SECOND_MODEL" --host 127.0.0.1 --port "$API2" \
    --metrics-port "$MET2" --max-num-seqs 4 --served-model-name "$NAME2"; PC2=$BG_LAST
  mkdir -p "$TMP/prom2"
  "$PY" "$DEPLOY_DIR/lib/render.py" prometheus --out-dir "$TMP/prom2" --listen "127.0.0.1:$PROM2" \
    --target "127.0.0.1:$MET" --target "127.0.0.1:$MET2" --interval 1s
  start_prometheus prometheus2 "$TMP/prom2" "127.0.0.1:$PROM2"; PP2=$BG_LAST
  wait_http "http://127.0.0.1:$API2/health" 180 "$PC2" || fatal "corvid serving $SECOND_MODEL did not become healthy"
  wait_http "http://127.0.0.1:$PROM2/-/ready" 30 "$PP2" || fatal "second prometheus did not start"
  GRAFANA_PROM="http://127.0.0.1:$PROM2"
fi

# The gateway port refuses the dashboard: it lives on the metrics listener only.
code="$("$PY" -c 'import sys,urllib.request,urllib.error
try: print(urllib.request.urlopen(sys.argv[1], timeout=5).status)
except urllib.error.HTTPError as e: print(e.code)' "http://127.0.0.1:$API/dashboard")"
if [ "$code" = 404 ]; then echo "PASS browser: with --metrics-port, /dashboard is not on the API port (404)"
else echo "FAIL browser: /dashboard on the API port answered $code with --metrics-port set"; fi

STOP="$TMP/stop-load"
load() {  # load NAME PORT MODEL CONCURRENCY; bounded: stops on the stop file or after 8 minutes
  bg_start "load-$1" "$TMP" "$PY" "$HERE/load.py" --url "http://127.0.0.1:$2" --model "$3" \
    --concurrency "$4" --max-seconds 480 --max-requests 100000 --max-tokens 32 --stop-file "$STOP" \
    --request-timeout 30
}
load 1 "$API" "$NAME" 6
[ -z "${SECOND_MODEL:-}" ] || load second "$API2" "$NAME2" 2
T0=$(( $(date +%s) * 1000 ))
WARM_UNTIL=$(( T0 + WARM * 1000 ))

mkdir -p "$TMP/state"
bg_start check "$TMP" node "$HERE/browser/check.mjs" --npm "$CORVID_CACHE/npm" \
  --metrics "http://127.0.0.1:$MET" --prom "http://127.0.0.1:$PROM" --grafana-prom "$GRAFANA_PROM" --state "$TMP/state" \
  --warm-until "$WARM_UNTIL" --stop-load "$STOP" --range-from $(( T0 + SKIP * 1000 )) --refresh "${REFRESH:-2}" ${SCREENSHOTS:+--screenshots "$SCREENSHOTS"} \
  "$DEPLOY_DIR"/grafana/dashboards/*.json
PN=$BG_LAST

# The restart the checker asks for: SIGTERM (graceful drain), then a new corvid on the
# same ports, under the same load.
end=$((SECONDS + 600))
while kill -0 "$PN" 2>/dev/null && [ ! -e "$TMP/state/restart-requested" ] && [ "$SECONDS" -lt "$end" ]; do sleep 0.5; done
if [ -e "$TMP/state/restart-requested" ]; then
  kill -TERM "$PC"
  t=$((SECONDS + 60))
  while kill -0 "$PC" 2>/dev/null && [ "$SECONDS" -lt "$t" ]; do sleep 0.2; done
  kill -0 "$PC" 2>/dev/null && fatal "corvid did not stop on SIGTERM"
  t=$((SECONDS + 30))   # until the page has seen it down
  while [ ! -e "$TMP/state/seen-down" ] && [ "$SECONDS" -lt "$t" ]; do sleep 0.2; done
  start_corvid 2; PC=$BG_LAST
  wait_http "http://127.0.0.1:$API/health" 180 "$PC" || fatal "restarted corvid did not become healthy"
  touch "$TMP/state/restarted"
fi
t=$((SECONDS + 300))
while kill -0 "$PN" 2>/dev/null && [ "$SECONDS" -lt "$t" ]; do sleep 0.5; done
kill -0 "$PN" 2>/dev/null && { kill "$PN"; echo "FAIL browser: check.mjs did not finish in time"; }
touch "$STOP"
grep -E '^(PASS|FAIL|SKIP|\(waiting)' "$TMP/check.log" || true
if ! tail -1 "$TMP/check.log" | grep -q ' 0 failed$'; then
  grep -vE '^(PASS|FAIL|SKIP|\(waiting)' "$TMP/check.log" | tail -40 | sed 's/^/    /'
  exit 1
fi
[ -z "${SCREENSHOTS:-}" ] || ls -l "$SCREENSHOTS"/*.png
echo "browser: all checks passed"
