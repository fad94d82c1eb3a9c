#!/usr/bin/env bash
# corvid on every kernel tier this machine has, side by side with llama.cpp, in one run:
#   corvid bench kernels                         (int8 peak, bandwidth, GEMM per format and m)
#   single stream pp128 / tg128                  (corvid bench throughput --mode single-stream)
#   issue #3's offline mix, batched vs --no-batching
#   llama-bench -p 128 -n 128                    (each llama.cpp build given)
# for TIERS (default: the best tier and avx2), alternating systems so drift hits all alike.
# Env: TIERS="avx512vnni avx2", REPS (default 3), LLAMA_BUILDS="native=DIR avx2=DIR" (llama.cpp
# bin folders; default: native = $LLAMA_BIN), OFFLINE_PROMPTS (default 64), LLAMA_BENCH_ARGS
# (extra llama-bench flags per build, e.g. "native=--repack 0"), KERNEL_SECONDS (least time per
# `corvid bench kernels` measurement, default 2: a 0.3 s forward at m = 256 then gets six or
# more tries at a quiet moment of a VM whose speed swings from second to second).
set -euo pipefail
source "$(dirname "$0")/common.sh"
REPS="${REPS:-3}"
OFFLINE_PROMPTS="${OFFLINE_PROMPTS:-64}"
KERNEL_SECONDS="${KERNEL_SECONDS:-2}"
best="$("$CORVID" cpu --tiers 2>/dev/null | tail -1)"
TIERS="${TIERS:-$best avx2}"
LLAMA_BUILDS="${LLAMA_BUILDS:-native=$LLAMA_BIN}"
write_env tiers
"$CORVID" cpu 2>/dev/null | tee "$RAW/cpu.txt"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

for build in $LLAMA_BUILDS; do
  name="${build%%=*}" dir="${build#*=}"
  if [ -x "$dir/llama-bench" ]; then
    echo "== llama-bench ($name build)"
    extra=""
    case "${LLAMA_BENCH_ARGS:-}" in *"$name="*) extra="${LLAMA_BENCH_ARGS#*"$name="}"; extra="${extra%%;*}";; esac
    # shellcheck disable=SC2086
    timeout 900 "$dir/llama-bench" -m "$GGUF" -t "$THREADS" -p 128 -n 128 -r "$REPS" -o json $extra \
      > "$RAW/llama-bench-$name.json"
  else
    echo "llama-bench not found in $dir (build it with shared/peers/llama-server.sh)" >&2
  fi
done

for tier in $TIERS; do
  echo "== corvid, tier $tier"
  export CORVID_ISA="$tier"
  timeout 900 "$CORVID" bench kernels --seconds "$KERNEL_SECONDS" --result-json "$RAW/kernels-$tier.json"
  timeout 900 "$CORVID" bench throughput --mode single-stream --input-len 128 --output-len 128 \
    --repetitions "$REPS" --result-json "$RAW/single-stream-$tier.json"
  for mode in batched nobatch; do
    flag=""; [ "$mode" = nobatch ] && flag="--no-batching"
    timeout 1800 "$CORVID" bench throughput --workload sharegpt --prompt-len-range 32:512 \
      --output-len-range 32:256 --num-prompts "$OFFLINE_PROMPTS" --seed 0 $flag \
      --result-json "$RAW/offline-$tier-$mode.json"
  done
  unset CORVID_ISA
done
report
