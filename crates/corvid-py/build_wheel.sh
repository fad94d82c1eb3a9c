#!/usr/bin/env bash
# Builds the corvid wheel (abi3, Python >= 3.9) with maturin from scripts/setup.sh's build
# venv, into $1 (default: <target dir>/wheels), and prints the wheel's path. Shares the
# workspace's target dir, so the engine crates already built by `cargo build --release`
# are reused.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CORVID_HOME="${CORVID_HOME:-$HOME/.cache/corvid}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
out="${1:-$CARGO_TARGET_DIR/wheels}"
bash "$root/scripts/setup.sh" python >&2
rm -f "$out"/corvid-*.whl
"$CORVID_HOME/venv-build/bin/maturin" build --release --quiet -m "$here/Cargo.toml" -o "$out" >&2
ls "$out"/corvid-*.whl
