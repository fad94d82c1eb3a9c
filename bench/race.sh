#!/usr/bin/env bash
# The serving race: one machine, one GGUF (the default model, or MODEL=gemma3 / a path: see
# common.sh), the same thread count.
# Starts, one after another, each system under test on 127.0.0.1, runs the same
# workloads at each concurrency with `corvid bench serve`, stops it, and finally writes
# $OUT/results.md (ratio tables, summary statistics) and PNG throughput-vs-latency curves
# via bench/report.py. Per-request JSON and the log go to $RAW (gitignored scratch).
#
#   corvid            corvid serve --max-num-seqs 64 (continuous batching, paged KV)
#   corvid-nobatch    corvid serve --no-batching (one request at a time: the naive baseline)
#   llama-server      llama.cpp llama-server -t 2 -np 64 -c CTX --cont-batching
#   llama-cpp-python  python -m llama_cpp.server (only if LLAMA_CPP_PYTHON is set to a
#                     python that can import it)
#
# Env: CONCURRENCIES ("1 4 16 64"), WORKLOADS ("fixed sharegpt shared-prefix"),
#      INPUT_LEN (128), OUTPUT_LEN (64), PROMPTS_PER_CONC (2: prompts = max(8, 2*conc)),
#      SYSTEMS ("corvid corvid-nobatch llama-server llama-cpp-python"), OUT, RAW, THREADS,
#      RUN_TIMEOUT (seconds per bench run, 900), PORT (18080), TEMPERATURE (0: greedy; 1.0
#      is what an API client that sends none gets).
set -euo pipefail
source "$(dirname "$0")/common.sh"
CONCURRENCIES="${CONCURRENCIES:-1 4 16 64}"
WORKLOADS="${WORKLOADS:-fixed sharegpt shared-prefix}"
INPUT_LEN="${INPUT_LEN:-128}"
OUTPUT_LEN="${OUTPUT_LEN:-64}"
PROMPTS_PER_CONC="${PROMPTS_PER_CONC:-2}"
SYSTEMS="${SYSTEMS:-corvid corvid-nobatch llama-server llama-cpp-python}"
RUN_TIMEOUT="${RUN_TIMEOUT:-900}"
PORT="${PORT:-18080}"
NP=64
CTX="${CTX:-$((NP * 2048))}"
write_env race
log="$RAW/race.log"
pid=""
trap '[ -n "$pid" ] && stop_pid "$pid"' EXIT

start_system() {
  local sys=$1
  case "$sys" in
    corvid)
      "$CORVID" serve --host 127.0.0.1 --port "$PORT" --model "$GGUF" \
        --served-model-name "$MODEL_NAME" --max-num-seqs "$NP" --kv-cache-memory 1GiB >>"$log" 2>&1 &
      ;;
    corvid-nobatch)
      "$CORVID" serve --host 127.0.0.1 --port "$PORT" --model "$GGUF" \
        --served-model-name "$MODEL_NAME" --no-batching --kv-cache-memory 1GiB >>"$log" 2>&1 &
      ;;
    llama-server)
      [ -x "$LLAMA_BIN/llama-server" ] || { echo "no llama-server in $LLAMA_BIN" >&2; return 1; }
      "$LLAMA_BIN/llama-server" -m "$GGUF" -t "$THREADS" -np "$NP" -c "$CTX" --cont-batching $LLAMA_ARGS \
        --host 127.0.0.1 --port "$PORT" --alias "$MODEL_NAME" >>"$log" 2>&1 &
      ;;
    llama-cpp-python)
      [ -n "${LLAMA_CPP_PYTHON:-}" ] && "$LLAMA_CPP_PYTHON" -c 'import llama_cpp.server' 2>/dev/null \
        || { echo "llama-cpp-python not present (set LLAMA_CPP_PYTHON); skipped" >&2; return 1; }
      "$LLAMA_CPP_PYTHON" -m llama_cpp.server --model "$GGUF" --n_threads "$THREADS" \
        --n_ctx 4096 --host 127.0.0.1 --port "$PORT" --model_alias "$MODEL_NAME" >>"$log" 2>&1 &
      ;;
  esac
  pid=$!
  wait_http "http://127.0.0.1:$PORT/v1/models" 180
}

for sys in $SYSTEMS; do
  echo "=== $sys ===" | tee -a "$log"
  if ! start_system "$sys"; then
    [ -n "$pid" ] && stop_pid "$pid"; pid=""
    continue
  fi
  for wl in $WORKLOADS; do
    endpoint=/v1/completions
    [ "$wl" = shared-prefix ] && endpoint=/v1/chat/completions
    input=$INPUT_LEN
    [ "$wl" = shared-prefix ] && input=32
    for c in $CONCURRENCIES; do
      n=$((c * PROMPTS_PER_CONC)); [ "$n" -lt 8 ] && n=8
      echo "--- $sys $wl concurrency $c ($n prompts)" | tee -a "$log"
      timeout "$RUN_TIMEOUT" "$CORVID" bench serve --base-url "http://127.0.0.1:$PORT" \
        --endpoint "$endpoint" --model "$MODEL_NAME" --workload "$wl" --input-len "$input" \
        --output-len "$OUTPUT_LEN" --num-prompts "$n" --max-concurrency "$c" \
        --request-rate inf --warmup 2 --seed 0 --request-timeout 600 --idle-timeout 120 \
        --temperature "${TEMPERATURE:-0}" --label "$sys" --no-progress \
        --result-json "$RAW/serve-$sys-$wl-c$c.json" 2>>"$log" | tee -a "$log" \
        || echo "run failed or timed out: $sys $wl c=$c" | tee -a "$log"
    done
  done
  stop_pid "$pid"; pid=""
done

py="$(bash "$root/bench/setup_venv.sh")"
report "$py"
