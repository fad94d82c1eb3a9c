#!/usr/bin/env bash
# The same serving workload from three load generators, against corvid and llama.cpp's
# llama-server, in one run on one machine: `corvid bench serve`, inference-perf (Kubernetes
# wg-serving) and guidellm (vLLM project). Each server is started once (as in bench/race.sh:
# same GGUF, same threads, 64 slots) and warmed up; then every tool runs every concurrency
# against it. bench/load_tools_report.py reads each tool's own output file and writes
# $OUT/results.md: output tok/s and TTFT p50/p99 per server and tool, and corvid/llama-server
# per tool. The ratios should agree across tools; where absolute numbers differ the report
# says how each tool counts (see the comments there).
#
# Workload: /v1/completions, streaming, random prompts of INPUT_LEN tokens, exactly OUTPUT_LEN
# output tokens (every tool sends ignore_eos, and no temperature: each server samples at its
# default, `corvid bench serve --server-default-sampling`), concurrency from CONCURRENCIES, REQUESTS_PER_CONC
# × concurrency requests (at least 16) per run. Offline: both Python tools read the tokenizer
# folder TOKENIZER (default: the default model's HF conversion made by scripts/setup.sh) with
# HF_HUB_OFFLINE=1; the venv comes from bench/setup_load_tools.sh.
#
# Env: CONCURRENCIES ("16 64"), INPUT_LEN (128), OUTPUT_LEN (64), REQUESTS_PER_CONC (2),
#      SYSTEMS ("corvid llama-server"), TOOLS ("corvid-bench inference-perf guidellm"),
#      TOKENIZER, PORT (18080), RUN_TIMEOUT (900 s per tool run), OUT, RAW, THREADS, MODEL.
set -euo pipefail
source "$(dirname "$0")/common.sh"
# shellcheck source=load_tools_runs.sh
source "$(dirname "$0")/load_tools_runs.sh"
CONCURRENCIES="${CONCURRENCIES:-16 64}"
INPUT_LEN="${INPUT_LEN:-128}"
OUTPUT_LEN="${OUTPUT_LEN:-64}"
REQUESTS_PER_CONC="${REQUESTS_PER_CONC:-2}"
SYSTEMS="${SYSTEMS:-corvid llama-server}"
TOOLS="${TOOLS:-corvid-bench inference-perf guidellm}"
TOKENIZER="${TOKENIZER:-${CORVID_HOME:-$HOME/.cache/corvid}/models/smollm2-135m-hf-f32}"
PORT="${PORT:-18080}"
RUN_TIMEOUT="${RUN_TIMEOUT:-900}"
NP=64
CTX="${CTX:-$((NP * 2048))}"
[ -f "$TOKENIZER/tokenizer.json" ] || {
  echo "no tokenizer.json in $TOKENIZER (run scripts/setup.sh all, or set TOKENIZER)" >&2; exit 1; }
TOOLS_BIN="$(bash "$root/bench/setup_load_tools.sh")"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
write_env load-tools
log="$RAW/load_tools.log"
base="http://127.0.0.1:$PORT"
pid=""
trap '[ -n "$pid" ] && stop_pid "$pid"' EXIT

start_system() {
  case "$1" in
    corvid)
      "$CORVID" serve --host 127.0.0.1 --port "$PORT" --model "$GGUF" \
        --served-model-name "$MODEL_NAME" --max-num-seqs "$NP" --kv-cache-memory 1GiB >>"$log" 2>&1 &
      ;;
    llama-server)
      [ -x "$LLAMA_BIN/llama-server" ] || { echo "no llama-server in $LLAMA_BIN" >&2; return 1; }
      # shellcheck disable=SC2086
      "$LLAMA_BIN/llama-server" -m "$GGUF" -t "$THREADS" -np "$NP" -c "$CTX" --cont-batching $LLAMA_ARGS \
        --host 127.0.0.1 --port "$PORT" --alias "$MODEL_NAME" >>"$log" 2>&1 &
      ;;
  esac
  pid=$!
  wait_http "$base/v1/models" 180
}

# run_tool TOOL SYSTEM CONCURRENCY REQUESTS DIR: one run; the tool's output lands in DIR.
run_tool() {
  local tool=$1 sys=$2 c=$3 n=$4 dir=$5
  mkdir -p "$dir"
  case "$tool" in
    corvid-bench)
      timeout "$RUN_TIMEOUT" "$CORVID" bench serve --base-url "$base" --endpoint /v1/completions --model "$MODEL_NAME" \
        --workload fixed --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --num-prompts "$n" \
        --max-concurrency "$c" --request-rate inf --warmup 0 --seed 0 --request-timeout 600 \
        --idle-timeout 120 --label "$sys" --no-progress --server-default-sampling \
        --result-json "$dir/result.json"
      ;;
    inference-perf) inference_perf_run "$dir" "$base" "$MODEL_NAME" "$n" "$c" "$RUN_TIMEOUT" 600 ;;
    guidellm) guidellm_run "$dir" "$base" "$MODEL_NAME" "$n" "$c" "$RUN_TIMEOUT" ;;
  esac
}

for sys in $SYSTEMS; do
  echo "=== $sys ===" | tee -a "$log"
  if ! start_system "$sys"; then
    [ -n "$pid" ] && stop_pid "$pid"; pid=""
    continue
  fi
  # One warm-up for every tool's runs: page-in the weights, grow the KV pool, fill caches.
  "$CORVID" bench serve --base-url "$base" --endpoint /v1/completions --model "$MODEL_NAME" \
    --workload fixed --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --num-prompts 16 \
    --max-concurrency 16 --warmup 0 --seed 1 --no-progress >>"$log" 2>&1 || true
  for c in $CONCURRENCIES; do
    n=$((c * REQUESTS_PER_CONC)); [ "$n" -lt 16 ] && n=16
    for tool in $TOOLS; do
      echo "--- $sys $tool concurrency $c ($n requests)" | tee -a "$log"
      run_tool "$tool" "$sys" "$c" "$n" "$RAW/$tool-$sys-c$c" >>"$log" 2>&1 || echo "run failed or timed out: $sys $tool c=$c (see $log)" | tee -a "$log"
    done
  done
  stop_pid "$pid"; pid=""
done

python3 "$root/bench/load_tools_report.py" "$RAW" "$OUT/results.md"
echo "results: $OUT/results.md"
