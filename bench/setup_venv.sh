#!/usr/bin/env bash
# Creates (once) the Python venv bench/report.py uses for its PNG plots, with pinned
# versions, under ~/.cache/corvid/venv-bench. Prints the venv's python.
set -euo pipefail
venv="${CORVID_BENCH_VENV:-$HOME/.cache/corvid/venv-bench}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "matplotlib==3.10.3" "numpy==2.2.6" >&2
fi
echo "$venv/bin/python"
