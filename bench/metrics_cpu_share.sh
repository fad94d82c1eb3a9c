#!/usr/bin/env bash
# The share of the server's CPU time spent on metrics, measured directly: `perf record`
# (call graphs) on `corvid serve` while `corvid bench serve` drives the fixed workload and
# /metrics is scraped once a second (like Prometheus with a 1 s interval, 15x its default
# rate); then the fraction of samples whose call stack contains metrics code (recording
# in the engine's stats sink, HTTP metrics middleware, encoding, RSS reading). With
# DASHBOARD=1 (the default when Playwright and Debian's chromium are installed, as
# deploy/tests/install.sh does) the built-in /dashboard page is also open in headless
# Chromium for the whole run, refreshing every second (the fastest setting), and the share
# of the dashboard's own code is counted apart: the once-a-second history sampler (gauge
# refresh, gather, ring append) and the page's JSON and files. Complements
# bench/metrics_overhead.sh, whose on/off throughput comparison is limited by run-to-run
# noise; this one is not.
#
#   bash bench/metrics_cpu_share.sh      # needs `perf` (Debian: linux-perf)
#
# `perf record -g` walks frame pointers, which a default release build omits: then most
# samples carry only their leaf function, and time spent in a callee that is not metrics
# code itself (the formatting of numbers, serde_json, the allocator) is not attributed to
# its metrics caller. For whole call chains build the server with frame pointers first:
#   RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR=target-fp cargo build --release -p corvid
#   CORVID_BIN=target-fp/release/corvid bash bench/metrics_cpu_share.sh
#
# Env: NUM_PROMPTS (128), CONCURRENCY (16), INPUT_LEN (128), OUTPUT_LEN (64), PORT (18095),
#      DASHBOARD (1 when possible), DASHBOARD_REFRESH (1),
#      OUT, RAW, THREADS (see common.sh). Writes $RAW/metrics-cpu-share.txt (log and load
#      JSON there too, gitignored scratch), prints it and adds it to $OUT/results.md.
set -euo pipefail
source "$(dirname "$0")/common.sh"
NUM_PROMPTS="${NUM_PROMPTS:-128}"
CONCURRENCY="${CONCURRENCY:-16}"
INPUT_LEN="${INPUT_LEN:-128}"
OUTPUT_LEN="${OUTPUT_LEN:-64}"
PORT="${PORT:-18095}"
command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 1; }
write_env metrics-cpu-share
data="$(mktemp -d)/perf.data"
log="$RAW/metrics-cpu-share.log"
perf record -g -o "$data" -- "$CORVID" serve --host 127.0.0.1 --port "$PORT" --model "$GGUF" \
  --served-model-name smollm2 --max-num-seqs 64 --kv-cache-memory 1GiB >"$log" 2>&1 &
pid=$!
scraper=""
viewer=""
trap '[ -n "$scraper" ] && kill "$scraper" 2>/dev/null; [ -n "$viewer" ] && kill "$viewer" 2>/dev/null; stop_pid "$pid"' EXIT
wait_http "http://127.0.0.1:$PORT/health" 180
(while sleep 1; do curl -s --noproxy '*' "http://127.0.0.1:$PORT/metrics" >/dev/null; done) &
scraper=$!
npm_dir="${CORVID_HOME:-$HOME/.cache/corvid}/npm"
if [ -z "${DASHBOARD:-}" ]; then
  DASHBOARD=0
  [ -x /usr/bin/chromium ] && [ -d "$npm_dir/node_modules/playwright-core" ] && DASHBOARD=1
fi
if [ "$DASHBOARD" = 1 ]; then
  CORVID_NPM="$npm_dir" node "$root/bench/open_dashboard.mjs" "http://127.0.0.1:$PORT" 3600 \
    "${DASHBOARD_REFRESH:-1}" >"$RAW/metrics-cpu-share-page.txt" 2>&1 &
  viewer=$!
  sleep 3   # the page loaded (its first, full history answer is part of the run)
fi
"$CORVID" bench serve --base-url "http://127.0.0.1:$PORT" --model smollm2 --workload fixed \
  --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --num-prompts "$NUM_PROMPTS" \
  --max-concurrency "$CONCURRENCY" --request-rate inf --warmup 2 --seed 0 --no-progress \
  --result-json "$RAW/metrics-cpu-share-load.json" >>"$log" 2>&1
kill "$scraper"; scraper=""
if [ -n "$viewer" ]; then kill -TERM "$viewer"; wait "$viewer" || true; viewer=""; fi
kill -INT "$pid"; wait "$pid" || true   # perf writes its data when the server exits
perf script -i "$data" -F comm,tid,ip,sym 2>/dev/null | python3 -c '
import re, sys
metrics = re.compile(r"prometheus::|corvid_server::metrics|StatsSink|corvid_engine::stats|corvid_server::handlers::dashboard")
dashboard = re.compile(r"corvid_server::metrics::history|corvid_server::handlers::dashboard")
sampler = re.compile(r"corvid_server::metrics::history|dashboard::sample_history")
api = re.compile(r"corvid_server::handlers::dashboard::series")
total = hit = dash = samp = json = 0
stack = []
def flush():
    global total, hit, dash, samp, json, stack
    if stack:
        total += 1
        hit += any(metrics.search(line) for line in stack)
        dash += any(dashboard.search(line) for line in stack)
        samp += any(sampler.search(line) for line in stack)
        json += any(api.search(line) for line in stack)
    stack = []
for line in sys.stdin:
    if line.strip() and not line[0].isspace():
        flush()
    if line.strip():
        stack.append(line)
flush()
print(f"perf samples: {total}; with metrics code on the stack: {hit} ({100 * hit / max(total, 1):.4f} %)")
pct = lambda n: f"{n} ({100 * n / max(total, 1):.4f} %)"
print(f"of which the dashboard (history sampler, /dashboard JSON and files): {pct(dash)}")
print(f"  the history sampler (refresh, gather, ring append; 1/s): {pct(samp)}")
print(f"  /dashboard/api/series: {pct(json)}; the page and its files: {pct(dash - samp - json)}")
' | tee "$RAW/metrics-cpu-share.txt"
[ ! -s "$RAW/metrics-cpu-share-page.txt" ] || tee -a "$RAW/metrics-cpu-share.txt" <"$RAW/metrics-cpu-share-page.txt"
python3 - "$RAW/metrics-cpu-share-load.json" <<'PYEOF' | tee -a "$RAW/metrics-cpu-share.txt" || true
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
print(f"load: {m['request_throughput']:.2f} req/s, output {m['output_throughput']:.1f} tok/s over {m['duration_s']:.0f} s")
PYEOF
report
