#!/usr/bin/env bash
# The Python package's test stage: builds the wheel, installs it with pip into a fresh
# venv (as a user would on a clean machine), checks `from corvid import LLM` outside the
# source tree, then runs this folder's pytest suite in that venv against the default model.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
work="$(mktemp -d /tmp/corvid-py-test-XXXX)"
trap 'rm -rf "$work"' EXIT
wheel="$(bash "$here/../build_wheel.sh" "$work/dist")"
echo "built $(basename "$wheel") ($(du -h "$wheel" | cut -f1))"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check "$wheel" "pytest==9.0.3"
(cd "$work" && "$work/venv/bin/python" -c "from corvid import LLM; import corvid; print('from corvid import LLM: ok, corvid', corvid.__version__)")
export CORVID_BIN="${CORVID_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/corvid}"
cd "$work"
"$work/venv/bin/python" -m pytest "$here" -p no:cacheprovider -q -rs "$@"
