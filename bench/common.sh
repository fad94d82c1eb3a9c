# Shared helpers of bench/*.sh (sourced). Everything listens on and talks to 127.0.0.1.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CORVID="${CORVID_BIN:-$root/target/release/corvid}"
# shellcheck source=../scripts/default_model.env
. "$root/scripts/default_model.env"
# shellcheck source=../scripts/gemma_model.env
. "$root/scripts/gemma_model.env"
# MODEL: a GGUF path, or `gemma3` for the installed Gemma 3 270M; default: the default model.
# MODEL_NAME: the name servers are asked to serve it under (smollm2 unless MODEL=gemma3).
case "${MODEL:-}" in
  gemma3) GGUF="${CORVID_HOME:-$HOME/.cache/corvid}/$GEMMA_MODEL_GGUF"; MODEL_NAME="${MODEL_NAME:-gemma3}" ;;
  "") GGUF="${CORVID_HOME:-$HOME/.cache/corvid}/$DEFAULT_MODEL_GGUF" ;;
  *) GGUF="$MODEL" ;;
esac
MODEL_NAME="${MODEL_NAME:-smollm2}"
LLAMA_BIN="${LLAMA_CPP_BIN:-$HOME/.cache/corvid-peers/llama.cpp-0.3.36/bin}"
THREADS="${THREADS:-2}"
# Extra flags for llama-server in bench/race.sh, e.g. LLAMA_ARGS=-nr where a native build's
# AMX weight buffers crash (seen on a Sapphire Rapids VM: SIGSEGV in ggml_backend_amx_mul_mat).
LLAMA_ARGS="${LLAMA_ARGS:-}"
export RAYON_NUM_THREADS="$THREADS"
# OUT: the run's folder kept in git, bench/results/<UTC date>-<what>[-<conditions>] (see
# bench/results/README.md); only results.md, env-*.json and curve-*.png go there.
# RAW: everything else the run dumps (per-request JSON, logs, tool outputs with machine
# paths), in the gitignored bench/scratch/<same name>/; bench/report.py summarizes it into OUT.
OUT="${OUT:-$root/bench/results/$(date -u +%Y-%m-%d)-${RUN_NAME:-$(basename "$0" .sh | tr _ -)}}"
RAW="${RAW:-$root/bench/scratch/$(basename "$OUT")}"
mkdir -p "$OUT" "$RAW"

# report [PYTHON]: (re)writes $OUT/results.md (and, given matplotlib, the curves) from all
# that $RAW holds so far; every script calls it last, so the runs sharing one OUT add up.
report() {
  "${1:-python3}" "$root/bench/report.py" "$RAW" "$OUT" >/dev/null
  echo "results: $OUT/results.md"
}

# Machine and commit facts, written once per results folder.
write_env() {
  {
    echo "{"
    echo "  \"date_utc\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
    echo "  \"commit\": \"$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)\","
    echo "  \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')\","
    echo "  \"nproc\": $(nproc),"
    echo "  \"threads\": $THREADS,"
    echo "  \"corvid_isa\": \"${CORVID_ISA:-}\","
    echo "  \"mem_gib\": $(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo),"
    echo "  \"loadavg_at_start\": \"$(cut -d' ' -f1-3 /proc/loadavg)\","
    echo "  \"temperature\": \"${TEMPERATURE:-0}\","
    echo "  \"model\": \"$(basename "$GGUF")\""
    echo "}"
  } > "$OUT/env-$1.json"
}

# wait_http URL SECONDS: polls until URL answers 2xx.
wait_http() {
  local url=$1 secs=$2 i=0
  while [ "$i" -lt "$((secs * 5))" ]; do
    if curl -sf --noproxy '*' -m 2 "$url" >/dev/null 2>&1; then return 0; fi
    sleep 0.2; i=$((i + 1))
  done
  echo "timed out waiting for $url" >&2
  return 1
}

# stop_pid PID: ends a server this script started (TERM, then KILL after 10 s).
stop_pid() {
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}
