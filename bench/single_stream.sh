#!/usr/bin/env bash
# Single-stream speed, corvid vs llama.cpp, same GGUF (MODEL: see common.sh), same threads:
#   llama-bench -m GGUF -t 2 -p 128 -n 128      (pp128 / tg128)
#   corvid bench throughput --mode single-stream --input-len 128 --output-len 128
# Writes $RAW/llama-bench.json and $RAW/corvid-single-stream.json (scratch; they name the
# model's path), prints both, and adds the comparison to $OUT/results.md.
set -euo pipefail
source "$(dirname "$0")/common.sh"
REPS="${REPS:-5}"
write_env single-stream
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -x "$LLAMA_BIN/llama-bench" ]; then
  timeout 900 "$LLAMA_BIN/llama-bench" -m "$GGUF" -t "$THREADS" -p 128 -n 128 -r "$REPS" -o json \
    > "$RAW/llama-bench.json"
  python3 -c 'import json,sys
for t in json.load(open(sys.argv[1])):
    k = "pp%d" % t["n_prompt"] if t["n_prompt"] else "tg%d" % t["n_gen"]
    print("llama-bench %s: %.2f ± %.2f t/s" % (k, t["avg_ts"], t["stddev_ts"]))' "$RAW/llama-bench.json"
else
  echo "llama-bench not found in $LLAMA_BIN (build it with shared/peers/llama-server.sh)" >&2
fi
timeout 900 "$CORVID" bench throughput --model "$GGUF" --mode single-stream --input-len 128 --output-len 128 \
  --repetitions "$REPS" --result-json "$RAW/corvid-single-stream.json"
report
