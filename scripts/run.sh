#!/usr/bin/env bash
# The main job on the default model: install it, build corvid, and serve the
# OpenAI-compatible API with /metrics on 127.0.0.1:8000 (override with CORVID_HOST/CORVID_PORT).
# With arguments, runs `corvid ARGS...` instead (e.g. scripts/run.sh generate --prompt "Hi").
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
bash scripts/setup.sh model
cargo build --release --quiet --bin corvid
if [ "$#" -gt 0 ]; then exec ./target/release/corvid "$@"; fi
exec ./target/release/corvid serve --host "${CORVID_HOST:-127.0.0.1}" --port "${CORVID_PORT:-8000}"
