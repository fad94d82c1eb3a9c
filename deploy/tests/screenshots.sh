#!/usr/bin/env bash
# Regenerates the screenshots in docs/screenshots/ (shown by README.md and deploy/README.md):
# the built-in /dashboard (1280 px and phone width) and both Grafana dashboards drawn by the
# browser harness, all while corvid is under load. It is the browser test run
# (deploy/tests/browser.sh) with its screenshots kept and a second replica serving Gemma 3
# 270M (SECOND_MODEL), so the Grafana dashboards show two models side by side; it fails if
# any check fails.
#
#   bash deploy/tests/screenshots.sh      # needs target/release/corvid (or CORVID_BIN)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
bash "$HERE/install.sh" >&2
CORVID_BIN="${CORVID_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/corvid}"
[ -x "$CORVID_BIN" ] || { echo "no corvid binary at $CORVID_BIN: cargo build --release -p corvid" >&2; exit 1; }
export CORVID_BIN
# shellcheck source=../../scripts/gemma_model.env
. "$REPO/scripts/gemma_model.env"
export SECOND_MODEL="${SECOND_MODEL:-${CORVID_HOME:-$HOME/.cache/corvid}/$GEMMA_MODEL_GGUF}"
[ -f "$SECOND_MODEL" ] || { echo "no second model at $SECOND_MODEL: bash scripts/setup.sh" >&2; exit 1; }
SCREENSHOTS="$REPO/docs/screenshots" exec bash "$HERE/browser.sh"
