#!/usr/bin/env bash
# corvid behind a real LLM-aware router: vLLM's own `vllm-router` (PyPI, a Rust router
# shipped as a wheel) in front of three corvid replicas, all on 127.0.0.1.
#
#   bash deploy/tests/routers.sh        # about 3 minutes on 2 cores
#
# The same multi-turn chat workload (router_workload.py: 12 conversations of 4 turns at
# once, each prompt the conversation so far) runs once per policy, each with fresh
# conversations: round_robin, cache_aware (the router's approximate prefix tree),
# consistent_hash (each conversation's `X-Session-ID` header hashed to a replica), then
# kv_aware (the router subscribes to every replica's KV-cache events, `--kv-events-endpoint`,
# and sends a request where its blocks are). Checked: no request fails; the three affinity
# policies' prefix-cache hit rates, summed over the replicas' vllm:prefix_cache_hits_total /
# vllm:prefix_cache_queries_total, are clearly above round_robin's; kv_aware placed requests
# by the events (the router's vllm_router_kv_placement_lookups_total{result="hit"}). TTFT and
# tokens/s are printed for BENCHMARKS.md. Then one replica is
# killed (SIGKILL) a quarter into a cache_aware run: only requests in flight may fail, and
# none started 10 s after the kill.
#
# Prints PASS/FAIL lines; exits non-zero on a failure. Skips (exit 0) when the corvid binary
# does not exist. Environment: CORVID_BIN, CORVID_MODEL, ROUTER_PORT_BASE (default 27700;
# uses BASE+1..BASE+11: three APIs, their three KV-event ports, the router and its metrics).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

corvid_bin_or_skip routers
ROUTER="$CORVID_CACHE/venv-router/bin/vllm-router"
[ -x "$ROUTER" ] || { echo "FAIL routers: vllm-router not installed (bash deploy/tests/install.sh)"; exit 1; }
BASE="${ROUTER_PORT_BASE:-27700}"
R=($((BASE + 1)) $((BASE + 2)) $((BASE + 3)))
EV=($((BASE + 4)) $((BASE + 5)) $((BASE + 6)))  # each replica's KV-cache event (ZMQ PUB) port
RP=$((BASE + 10)); RM=$((BASE + 11))
MODEL="${CORVID_MODEL:-SmolLM2-135M-Instruct}"
NAME="corvid-router"

TMP="$(mktemp -d -t corvid-routers.XXXXXX)"
trap 'bg_cleanup; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM HUP PIPE
FAILS=0
report() {  # report OK NAME [DETAIL]
  if [ "$1" = 1 ]; then echo "PASS routers: $2"; else echo "FAIL routers: $2${3:+ -- $3}"; FAILS=$((FAILS + 1)); fi
}
fatal() { echo "FAIL routers: $*"; for f in "$TMP"/*.log; do echo "--- $f"; tail -15 "$f"; done; exit 1; }

for p in "${R[@]}" "${EV[@]}" $RP $RM; do port_free "$p" || fatal "port 127.0.0.1:$p is in use (set ROUTER_PORT_BASE)"; done

PIDS=()
URLS=()
for i in 0 1 2; do
  bg_start "corvid$i" "$TMP" "$CORVID_BIN" serve --model "$MODEL" --host 127.0.0.1 --port "${R[$i]}" \
    --max-num-seqs 4 --served-model-name "$NAME" --kv-events-endpoint "tcp://127.0.0.1:${EV[$i]}"
  PIDS+=("$BG_LAST"); URLS+=("http://127.0.0.1:${R[$i]}")
done
for i in 0 1 2; do
  wait_http "${URLS[$i]}/health" 180 "${PIDS[$i]}" || fatal "corvid on :${R[$i]} did not become healthy"
done
echo "PASS routers: three corvid replicas healthy"

start_router() {  # start_router POLICY -> pid in BG_LAST
  local events=()
  if [ "$1" = kv_aware ]; then
    for i in 0 1 2; do events+=(--kv-event-source "${URLS[$i]}=tcp://127.0.0.1:${EV[$i]}"); done
    events+=(--kv-event-block-size 16 --kv-event-model "$NAME")
  fi
  bg_start "router-$1" "$TMP" "$ROUTER" --host 127.0.0.1 --port "$RP" --policy "$1" \
    --worker-urls "${URLS[@]}" --prometheus-host 127.0.0.1 --prometheus-port "$RM" \
    --health-check-interval-secs 1 --health-failure-threshold 1 --log-level warning "${events[@]}"
  wait_http "http://127.0.0.1:$RP/health" 60 "$BG_LAST" || fatal "vllm-router ($1) did not start"
}
stop_router() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
workload() {  # workload SEED [ARGS...] -> JSON line on stdout
  local seed="$1"; shift
  "$PY" "$HERE/router_workload.py" --url "http://127.0.0.1:$RP" --model "$NAME" --seed "$seed" "$@"
}
field() { "$PY" -c 'import json,sys; v=json.loads(sys.argv[1])[sys.argv[2]]; print(v if not isinstance(v, float) else f"{v:.4f}")' "$1" "$2"; }

declare -A RESULT
seed=1
for policy in round_robin cache_aware consistent_hash kv_aware; do
  start_router "$policy"; PR=$BG_LAST
  RESULT[$policy]="$(workload $seed --replicas "$(IFS=,; echo "${URLS[*]}")")"
  seed=$((seed + 1))
  if [ "$policy" = kv_aware ]; then
    # The router's own count of requests it placed by a replica's published blocks.
    hits="$(curl -s "http://127.0.0.1:$RM/metrics" | awk '/^vllm_router_kv_placement_lookups_total\{result="hit"\}/ {print $2}')"
    report "$([ "${hits:-0}" -gt 0 ] 2>/dev/null && echo 1)" \
      "kv_aware: vllm-router decoded the replicas' KV-cache events and placed ${hits:-0} requests by them"
  fi
  stop_router "$PR"
  echo "routers: $policy ${RESULT[$policy]}"
  r="${RESULT[$policy]}"
  report "$([ "$(field "$r" errors)" = 0 ] && [ "$(field "$r" requests)" = 48 ] && echo 1)" \
    "$policy: 48 requests of 12 four-turn conversations through vllm-router, none failed" "$r"
done
rr="$(field "${RESULT[round_robin]}" hit_rate)"
for policy in cache_aware consistent_hash kv_aware; do
  r="${RESULT[$policy]}"; hr="$(field "$r" hit_rate)"
  report "$("$PY" -c 'import sys; rr, hr = map(float, sys.argv[1:]); print(1 if hr >= rr + 0.15 else 0)' "$rr" "$hr")" \
    "$policy routing raises the replicas' prefix-cache hit rate clearly above round_robin's ($hr vs $rr; TTFT p50 $(field "$r" ttft_p50) vs $(field "${RESULT[round_robin]}" ttft_p50) s, output $(field "$r" output_tok_s) vs $(field "${RESULT[round_robin]}" output_tok_s) tok/s)"
done

# One replica killed under the router, mid-run.
start_router cache_aware; PR=$BG_LAST
k="$(workload $seed --conversations 12 --turns 6 --kill-after 18 --kill-pid "${PIDS[2]}")"
echo "routers: replica killed: $k"
report "$("$PY" -c '
import json, sys
k = json.loads(sys.argv[1])
ok = (k["errors"] <= k["in_flight_at_kill"] and k["errors_started_10s_after_kill"] == 0
      and k["started_after_kill"] > 0)
print(1 if ok else 0)' "$k")" \
  "a replica killed mid-run: failures only among requests in flight at the kill, none 10 s after" "$k"
stop_router "$PR"

if [ "$FAILS" -eq 0 ]; then echo "routers: all checks passed"; else echo "routers: $FAILS check(s) failed"; fi
[ "$FAILS" -eq 0 ]
