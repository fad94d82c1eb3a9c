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
step "cargo test" cargo test --release --workspace
export CORVID_BIN="$here/target/release/corvid"
if [ -f deploy/tests/run.sh ]; then step "deploy kit" bash deploy/tests/run.sh; fi
if [ -f crates/corvid-server/tests/openai_client/run.sh ]; then
  step "openai client" bash crates/corvid-server/tests/openai_client/run.sh
fi
if [ "$failed" -ne 0 ]; then echo "$failed test stage(s) failed"; exit 1; fi
echo "all test stages passed"
