#!/usr/bin/env bash
# Throughput from Python vs from the Rust API on the same offline mix, in one run:
# `corvid bench throughput --workload sharegpt --num-prompts 64` (the Rust API, EngineHandle
# directly) and bench/python_api.py (corvid.LLM.generate from the installed wheel, same
# requests) alternate PAIRS times, each a fresh process. Prints and writes the A/B table.
# Env: PAIRS (default 2), CORVID_BIN, MODEL, THREADS, OUT (see bench/common.sh).
set -euo pipefail
. "$(dirname "$0")/common.sh"
PAIRS="${PAIRS:-2}"
write_env python-api
wheel="$(bash "$root/crates/corvid-py/build_wheel.sh" "$RAW/dist")"
python3 -m venv "$RAW/venv"
"$RAW/venv/bin/pip" install --quiet --disable-pip-version-check "$wheel"
export GGUF
for i in $(seq 1 "$PAIRS"); do
  echo "pair $i: Rust API" >&2
  "$CORVID" bench throughput --model "$GGUF" --workload sharegpt --num-prompts 64 --seed 0 \
    --write-workload "$RAW/workload.jsonl" --result-json "$RAW/rust-$i.json" >&2
  echo "pair $i: Python API" >&2
  "$RAW/venv/bin/python" "$root/bench/python_api.py" run "$RAW/workload.jsonl" "$RAW/python-$i.json"
done
python3 "$root/bench/python_api.py" report "$RAW" "$OUT"
echo "results: $OUT/results.md"
