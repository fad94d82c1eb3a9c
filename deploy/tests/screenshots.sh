#!/usr/bin/env bash
# Regenerates the screenshots in docs/screenshots/ (shown by README.md and deploy/README.md):
# the built-in /dashboard (1280 px and phone width) and both Grafana dashboards drawn by the
# browser harness, all while corvid is under load. It is the browser test run
# (deploy/tests/browser.sh) with its screenshots kept; it fails if any check fails.
#
#   bash deploy/tests/screenshots.sh      # needs target/release/corvid (or CORVID_BIN)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
bash "$HERE/install.sh" >&2
CORVID_BIN="${CORVID_BIN:-${CARGO_TARGET_DIR:-$REPO/target}/release/corvid}"
[ -x "$CORVID_BIN" ] || { echo "no corvid binary at $CORVID_BIN: cargo build --release -p corvid" >&2; exit 1; }
export CORVID_BIN
SCREENSHOTS="$REPO/docs/screenshots" exec bash "$HERE/browser.sh"
