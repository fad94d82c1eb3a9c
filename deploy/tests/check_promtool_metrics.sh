#!/usr/bin/env bash
# `promtool check metrics` on a live corvid /metrics (text format): every finding must be
# one of the exceptions documented in docs/metrics.md ("promtool check metrics
# exceptions"), all fixed by a contract (the user's names, vLLM's names). Prints one
# PASS/FAIL line in e2e.sh's style; exits 1 on an undocumented finding.
#
#   check_promtool_metrics.sh http://127.0.0.1:PORT/metrics
set -euo pipefail
url="$1"
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
body="$("$PY" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$url")"
samples=$(printf '%s\n' "$body" | grep -vc '^#' || true)
findings="$(printf '%s\n' "$body" | promtool check metrics 2>&1 || true)"
allowed='^(vllm_request_throughput counter metrics should have "_total" suffix|vllm:[a-z0-9_:]+ metric names should not contain '"':'"'|vllm:iteration_tokens_total non-counter metrics should not have "_total" suffix)$'
unexpected="$(printf '%s\n' "$findings" | grep -v '^$' | grep -Ev "$allowed" || true)"
name="promtool check metrics on the live /metrics ($samples samples): only the documented exceptions"
if [ "$samples" -gt 100 ] && [ -z "$unexpected" ]; then
  echo "PASS e2e: $name"
else
  echo "FAIL e2e: $name -- unexpected: ${unexpected:-<none>}; samples: $samples"
  exit 1
fi
