#!/usr/bin/env bash
# Where the time goes, per kernel tier: `perf record` (self time, no call graphs) on the
# offline engine benchmark (issue #3's mix, batched) and on single-stream decode, then the
# samples grouped by what the code does (matmul kernels, attention, softmax, ..., idle
# pool threads spinning or parked) into a table in $OUT/results.md.
#
#   bash bench/profile.sh          # needs `perf` (Debian: linux-perf)
#
# Env: TIERS (default: the best tier and avx2), OFFLINE_PROMPTS (32), OUT, RAW, THREADS.
set -euo pipefail
source "$(dirname "$0")/common.sh"
command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 1; }
OFFLINE_PROMPTS="${OFFLINE_PROMPTS:-32}"
best="$("$CORVID" cpu --tiers 2>/dev/null | tail -1)"
TIERS="${TIERS:-$best avx2}"
write_env profile
data="$(mktemp -d)/perf.data"

# profile NAME ARGS...: records `corvid ARGS` and writes $RAW/profile-NAME.txt.
profile() {
  local name=$1; shift
  perf record -F 999 -o "$data" -- "$CORVID" "$@" >"$RAW/profile-$name.log" 2>&1
  perf report -i "$data" --no-children --sort symbol --percent-limit 0 --stdio 2>/dev/null \
    | python3 "$root/bench/profile_groups.py" "$name" > "$RAW/profile-$name.txt"
  cat "$RAW/profile-$name.txt"
}

for tier in $TIERS; do
  export CORVID_ISA="$tier"
  profile "offline-$tier" bench throughput --workload sharegpt --prompt-len-range 32:512 \
    --output-len-range 32:256 --num-prompts "$OFFLINE_PROMPTS" --seed 0
  profile "decode-$tier" bench throughput --mode single-stream --input-len 128 \
    --output-len 256 --repetitions 2
  unset CORVID_ISA
done
report
