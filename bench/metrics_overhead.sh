#!/usr/bin/env bash
# What the metrics cost: serving throughput with metrics on vs `--disable-metrics`, and the
# latency of a /metrics scrape under load. One machine, one run, the same workload
# (`corvid bench serve`, fixed lengths, seeded) against the default model on 127.0.0.1.
#
#   bash bench/metrics_overhead.sh
#
# Rounds alternate the order (on,off / off,on / ...) so slow drift of a shared machine
# falls on both sides; each run gets a fresh server. The scrape phase starts a server with
# metrics, runs the same load in the background and times SCRAPES scrapes with curl
# (`time_total`), half with Prometheus' Accept header (OpenMetrics), half without (text).
# Writes $RAW/metrics-overhead.md (and the per-run JSON, scrape timings and log, all in the
# gitignored scratch folder), prints it and adds it to $OUT/results.md.
#
# Env: ROUNDS (5), NUM_PROMPTS (64), CONCURRENCY (16), INPUT_LEN (128), OUTPUT_LEN (64),
#      SCRAPES (200), PORT (18090), OUT, RAW, THREADS (see common.sh).
set -euo pipefail
source "$(dirname "$0")/common.sh"
ROUNDS="${ROUNDS:-5}"
NUM_PROMPTS="${NUM_PROMPTS:-64}"
CONCURRENCY="${CONCURRENCY:-16}"
INPUT_LEN="${INPUT_LEN:-128}"
OUTPUT_LEN="${OUTPUT_LEN:-64}"
SCRAPES="${SCRAPES:-200}"
PORT="${PORT:-18090}"
PROM_ACCEPT='application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
write_env metrics-overhead
log="$RAW/metrics-overhead.log"
: >"$log"
pid=""
load=""
trap '[ -n "$load" ] && stop_pid "$load"; [ -n "$pid" ] && stop_pid "$pid"' EXIT

start_server() {  # start_server on|off
  local extra=()
  [ "$1" = off ] && extra=(--disable-metrics)
  "$CORVID" serve --host 127.0.0.1 --port "$PORT" --model "$GGUF" --served-model-name smollm2 \
    --max-num-seqs 64 --kv-cache-memory 1GiB "${extra[@]}" >>"$log" 2>&1 &
  pid=$!
  wait_http "http://127.0.0.1:$PORT/health" 180
}

bench() {  # bench JSON_OUT
  "$CORVID" bench serve --base-url "http://127.0.0.1:$PORT" --model smollm2 --workload fixed \
    --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --num-prompts "$NUM_PROMPTS" \
    --max-concurrency "$CONCURRENCY" --request-rate inf --warmup 2 --seed 0 \
    --request-timeout 600 --no-progress --result-json "$1" >>"$log" 2>&1
}

for round in $(seq 1 "$ROUNDS"); do
  order="on off"
  [ $((round % 2)) -eq 0 ] && order="off on"
  for mode in $order; do
    echo "round $round: metrics $mode" | tee -a "$log"
    start_server "$mode"
    bench "$RAW/overhead-$mode-$round.json"
    stop_pid "$pid"; pid=""
  done
done

echo "scrape latency under load ($SCRAPES scrapes)" | tee -a "$log"
start_server on
bench "$RAW/overhead-scrape-load.json" & load=$!
sleep 3
: >"$RAW/scrape-om.txt"; : >"$RAW/scrape-text.txt"
for i in $(seq 1 $((SCRAPES / 2))); do
  curl -s --noproxy '*' -o /dev/null -w '%{time_total}\n' -H "Accept: $PROM_ACCEPT" \
    "http://127.0.0.1:$PORT/metrics" >>"$RAW/scrape-om.txt"
  curl -s --noproxy '*' -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$PORT/metrics" >>"$RAW/scrape-text.txt"
done
kill -0 "$load" 2>/dev/null && under_load=yes || under_load="no (the load ended first: raise NUM_PROMPTS)"
wait "$load" || true; load=""
stop_pid "$pid"; pid=""

python3 - "$RAW" "$ROUNDS" "$under_load" <<'PYEOF' | tee "$RAW/metrics-overhead.md"
import json, statistics, sys
out, rounds, under_load = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def tput(mode):
    return [json.load(open(f"{out}/overhead-{mode}-{r}.json"))["metrics"]["output_throughput"] for r in range(1, rounds + 1)]
on, off = tput("on"), tput("off")
pairs = [100 * (a - b) / b for a, b in zip(on, off)]
print("| metrics | output tok/s per round | median |")
print("|---|---|---|")
for name, xs in (("on", on), ("off (--disable-metrics)", off)):
    print(f"| {name} | {', '.join(f'{x:.1f}' for x in xs)} | {statistics.median(xs):.1f} |")
print(f"\nmedian throughput difference (on vs off): {100 * (statistics.median(on) / statistics.median(off) - 1):+.2f} %;"
      f" per round: {', '.join(f'{p:+.1f}' for p in pairs)} %\n")
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]
print(f"scrape latency under load (curl time_total; still under load at the end: {under_load}):\n")
print("| format | scrapes | p50 ms | p99 ms | max ms |")
print("|---|---|---|---|---|")
for fmt in ("om", "text"):
    xs = [1000 * float(l) for l in open(f"{out}/scrape-{fmt}.txt") if l.strip()]
    name = "OpenMetrics (Prometheus' Accept)" if fmt == "om" else "text 0.0.4"
    print(f"| {name} | {len(xs)} | {pct(xs, 50):.2f} | {pct(xs, 99):.2f} | {max(xs):.2f} |")
PYEOF
report
