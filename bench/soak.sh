#!/usr/bin/env bash
# The soak of issue #17: `corvid serve` with the default model, then `corvid bench soak`:
# REQUESTS mixed requests at concurrency 64 (chat and completions, streamed and not, n = 2,
# logprobs, stop strings, seeds, mid-stream cancellations, client timeouts of 200-500 ms,
# garbage bodies, over-long prompts), then its checks: no failure, no 5xx, running =
# waiting = KV blocks used = 0, the finish-reason counters account for every request,
# /health OK, resident memory within RSS_BOUND_MIB of its value after WARMUP requests. Last,
# SIGTERM must drain the server to exit 0. Exits non-zero if anything fails.
#
#   bash bench/soak.sh                                   # 10,000 requests, default flags
#   REQUESTS=400 WARMUP=200 SERVE_ARGS="--kv-cache-memory 64MiB --max-model-len 2048" \
#     OUT=/tmp/x RAW=/tmp/x bash bench/soak.sh           # the short variant of scripts/test.sh
#
# WARMUP: resident memory grows until the KV pool has been touched once (blocks are handed
# out least recently freed first, so a long run cycles through all of them: with the 1 GiB
# default pool that takes ~1,500 requests of this mix); the bound applies after it.
# Writes the summary to $OUT/results.md and the JSON and server log to $RAW.
set -euo pipefail
RUN_NAME="${RUN_NAME:-soak}"
source "$(dirname "$0")/common.sh"
REQUESTS="${REQUESTS:-10000}"
WARMUP="${WARMUP:-2000}"
RSS_BOUND_MIB="${RSS_BOUND_MIB:-64}"
SERVE_ARGS="${SERVE_ARGS:-}"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
write_env soak
log="$RAW/server.log"
# shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
"$CORVID" serve --host 127.0.0.1 --port "$PORT" --model "$GGUF" $SERVE_ARGS >"$log" 2>&1 &
pid=$!
trap 'stop_pid "$pid"' EXIT
wait_http "http://127.0.0.1:$PORT/health" 300
status=0
"$CORVID" bench soak --url "http://127.0.0.1:$PORT" --requests "$REQUESTS" --concurrency 64 \
  --warmup "$WARMUP" --rss-bound-mib "$RSS_BOUND_MIB" --json "$RAW/soak.json" \
  | tee "$RAW/summary.md" || status=1
kill -TERM "$pid"
if wait "$pid"; then echo "SIGTERM: drained, exit 0"; else echo "SIGTERM: exit $?"; status=1; fi
trap - EXIT
if grep -q "panicked" "$log"; then echo "the server log shows a panic"; status=1; fi
{
  echo "# Soak: $REQUESTS requests at concurrency 64"
  echo
  echo "\`REQUESTS=$REQUESTS WARMUP=$WARMUP SERVE_ARGS=\"$SERVE_ARGS\" bash bench/soak.sh\`"
  echo "on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%d)."
  cat "$RAW/summary.md"
} > "$OUT/results.md"
echo "results: $OUT/results.md"
exit "$status"
