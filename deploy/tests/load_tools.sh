#!/usr/bin/env bash
# The load generators users benchmark with, each driving a tiny streaming load against a real
# corvid on the default model: `corvid bench serve`, inference-perf and guidellm (PyPI, pinned
# in bench/setup_load_tools.sh; install.sh installs them). Each tool's own output file must
# show every request answered with the requested token counts (bench/load_tools_report.py
# --check). Fully offline: the tools read the default model's tokenizer folder, made by
# scripts/setup.sh, with HF_HUB_OFFLINE=1. About 40 s on 2 cores.
#
#   bash deploy/tests/load_tools.sh
#
# Prints PASS/FAIL lines; exits non-zero on a failure. Skips (exit 0) when the corvid binary
# does not exist. Environment: CORVID_BIN, CORVID_MODEL, CORVID_HF_MODEL (the tokenizer
# folder), LOAD_TOOLS_PORT_BASE (default 27900; uses BASE+1).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
# shellcheck source=../../bench/load_tools_runs.sh
source "$REPO/bench/load_tools_runs.sh"

corvid_bin_or_skip load-tools
API=$(( ${LOAD_TOOLS_PORT_BASE:-27900} + 1 ))
MODEL="${CORVID_MODEL:-SmolLM2-135M-Instruct}"
TOKENIZER="${CORVID_HF_MODEL:-$CORVID_CACHE/models/smollm2-135m-hf-f32}"
REQUESTS=4 CONC=2 INPUT_LEN=32 OUTPUT_LEN=16
TMP="$(mktemp -d -t corvid-load-tools.XXXXXX)"
trap 'bg_cleanup; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM HUP PIPE
port_free "$API" || { echo "FAIL load-tools: port 127.0.0.1:$API is in use (set LOAD_TOOLS_PORT_BASE)"; exit 1; }
[ -f "$TOKENIZER/tokenizer.json" ] || {
  echo "FAIL load-tools: no tokenizer.json in $TOKENIZER (scripts/setup.sh all makes it)"; exit 1; }
TOOLS_BIN="$(bash "$REPO/bench/setup_load_tools.sh")"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

bg_start corvid "$TMP" "$CORVID_BIN" serve --model "$MODEL" --host 127.0.0.1 --port "$API" \
  --served-model-name smollm2 --max-num-seqs 4 --kv-cache-memory 64MiB
if ! wait_http "http://127.0.0.1:$API/health" 180 "$BG_LAST"; then
  echo "FAIL load-tools: corvid did not become healthy"; tail -20 "$TMP/corvid.log"; exit 1
fi
base="http://127.0.0.1:$API"
rc=0

verdict() {  # verdict TOOL DIR LOG: the tool's output file judged; its log shown on failure
  "$PY" "$REPO/bench/load_tools_report.py" --check "$1" "$2" --requests "$REQUESTS" \
    --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" || { rc=1; tail -15 "$3" | sed 's/^/    /'; }
}

mkdir -p "$TMP/corvid-bench"
timeout 120 "$CORVID_BIN" bench serve --base-url "$base" --endpoint /v1/completions --model smollm2 \
  --workload fixed --input-len "$INPUT_LEN" --output-len "$OUTPUT_LEN" --num-prompts "$REQUESTS" \
  --max-concurrency "$CONC" --warmup 0 --seed 0 --no-progress \
  --result-json "$TMP/corvid-bench/result.json" >"$TMP/corvid-bench.log" 2>&1 || true
verdict corvid-bench "$TMP/corvid-bench" "$TMP/corvid-bench.log"

inference_perf_run "$TMP/inference-perf" "$base" smollm2 "$REQUESTS" "$CONC" 120 60 \
  >"$TMP/inference-perf.log" 2>&1 || true
verdict inference-perf "$TMP/inference-perf" "$TMP/inference-perf.log"

guidellm_run "$TMP/guidellm" "$base" smollm2 "$REQUESTS" "$CONC" 120 >"$TMP/guidellm.log" 2>&1 || true
verdict guidellm "$TMP/guidellm" "$TMP/guidellm.log"

# The server's own count must agree: every tool's requests reached it and none failed.
"$PY" - "$base" $((3 * REQUESTS)) <<'PYEOF' || rc=1
import re, sys, urllib.request
base, want = sys.argv[1], int(sys.argv[2])
text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
done = sum(float(m[2]) for m in re.finditer(r'^vllm:request_success_total\{([^}]*)\} (\S+)', text, re.M))
ok = done >= want
print(f"{'PASS' if ok else 'FAIL'} load-tools: corvid counted {done:.0f} finished requests (the tools sent at least {want})")
sys.exit(0 if ok else 1)
PYEOF
exit "$rc"
