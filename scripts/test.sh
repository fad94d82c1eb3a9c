#!/usr/bin/env bash
# The whole test suite: set-up, formatting and lints, the Rust tests (release build:
# the tensor code is too slow unoptimized), the deploy kit against real Prometheus,
# Alertmanager and nginx, and the official OpenAI client against a running server.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
export CORVID_HOME="${CORVID_HOME:-$HOME/.cache/corvid}"
bash scripts/setup.sh all
export CORVID_HF_MODEL="$CORVID_HOME/models/smollm2-135m-hf-f32"

failed=0
step() {
  local name="$1"; shift
  echo "=== $name"
  if "$@"; then echo "--- ok: $name"; else echo "--- FAILED: $name"; failed=$((failed + 1)); fi
}
step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --release --workspace --all-targets -- -D warnings
step "cargo build" cargo build --release --workspace
export CORVID_BIN="${CORVID_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/corvid}"
# Which CPU and kernel tier this run covers, so a failure can be traced to a machine.
echo "=== machine"
"$CORVID_BIN" cpu 2>/dev/null || grep -m1 'model name' /proc/cpuinfo
mapfile -t tiers < <("$CORVID_BIN" cpu --tiers 2>/dev/null || echo portable)
best="${tiers[-1]}"
# The kernel and model tests, golden comparison included, once per tier this machine has
# (CORVID_ISA forces the lower ones), best first, with their output shown: an AVX-512
# machine also checks what an AVX2-only one runs, and the golden test prints its per-case
# agreement and how far corvid's tiers are from each other (on 2 cores: ~1.5 min a SIMD
# tier, ~3 min the portable one).
for ((i = ${#tiers[@]} - 1; i >= 0; i--)); do
  step "kernel and model tests (tier ${tiers[$i]})" env CORVID_ISA="${tiers[$i]}" \
    cargo test --release -p corvid-kernels -p corvid-model -- --show-output
done
step "cargo test (the other crates, tier $best)" env CORVID_ISA="$best" \
  cargo test --release --workspace --exclude corvid-kernels --exclude corvid-model
# Coverage-guided fuzzing (AFL, fuzz/run.sh): each target 25 s from its committed seeds;
# a crash or hang fails the stage (~3 min on 2 cores with the driver's build cached).
step "fuzzing" bash fuzz/run.sh
# The Python package: wheel (maturin, reusing the release build) → fresh venv → pytest.
step "python package" bash crates/corvid-py/tests/run.sh
if [ -f deploy/tests/run.sh ]; then step "deploy kit" bash deploy/tests/run.sh; fi
if [ -f crates/corvid-server/tests/openai_client/run.sh ]; then
  step "openai client" bash crates/corvid-server/tests/openai_client/run.sh
fi
# The soak's short variant (bench/soak.sh runs 10,000): 300 mixed requests at concurrency 64
# (cancellations, client timeouts, garbage, over-long prompts) against the default model,
# then its checks on /metrics, /health and memory. A 64 MiB KV pool, so that warm-up touches
# all of it before the memory baseline is taken.
soak_out="$(mktemp -d /tmp/corvid-soak-XXXX)"
step "soak (short)" env REQUESTS=300 WARMUP=150 OUT="$soak_out" RAW="$soak_out" \
  SERVE_ARGS="--kv-cache-memory 64MiB --max-model-len 2048" bash bench/soak.sh
rm -rf "$soak_out"
if [ "$failed" -ne 0 ]; then echo "$failed test stage(s) failed"; exit 1; fi
echo "all test stages passed"
