#!/usr/bin/env bash
# The main job on the default model: install it, build corvid and its Python package (into
# .venv), and serve the OpenAI-compatible API with /metrics on 127.0.0.1:8000 (override
# with CORVID_HOST/CORVID_PORT).
# With arguments, runs `corvid ARGS...` instead (e.g. scripts/run.sh generate --prompt "Hi").
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
bash scripts/setup.sh model
cargo build --release --quiet --bin corvid
if [ "$#" -gt 0 ]; then exec ./target/release/corvid "$@"; fi
# The Python package (`from corvid import LLM`, and the `corvid` console script): its
# wheel, pip-installed into the project's venv, .venv.
wheel="$(bash crates/corvid-py/build_wheel.sh)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check --force-reinstall "$wheel"
echo "installed $(basename "$wheel") into .venv (.venv/bin/python -c 'from corvid import LLM')" >&2
exec ./target/release/corvid serve --host "${CORVID_HOST:-127.0.0.1}" --port "${CORVID_PORT:-8000}"
