#!/usr/bin/env bash
# corvid's KV-cache events (--kv-events-endpoint, vLLM's ZMQ/msgpack format) read by an
# independent subscriber (kv_events_check.py: pyzmq + msgpack from PyPI). One corvid with a
# small KV pool (so the workload evicts), a replay socket, about a minute on 2 cores.
#
#   bash deploy/tests/kv_events.sh
#
# Prints PASS/FAIL lines; exits non-zero on a failure. Skips (exit 0) when the corvid binary
# does not exist. Environment: CORVID_BIN, CORVID_MODEL, KV_EVENTS_PORT_BASE (default 27800;
# uses BASE+1..BASE+3: the API, the PUB and the replay sockets).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

corvid_bin_or_skip kv-events
BASE="${KV_EVENTS_PORT_BASE:-27800}"
API=$((BASE + 1)); PUB=$((BASE + 2)); REPLAY=$((BASE + 3))
MODEL="${CORVID_MODEL:-SmolLM2-135M-Instruct}"
TMP="$(mktemp -d -t corvid-kv-events.XXXXXX)"
trap 'bg_cleanup; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM HUP PIPE
for p in $API $PUB $REPLAY; do
  port_free "$p" || { echo "FAIL kv-events: port 127.0.0.1:$p is in use (set KV_EVENTS_PORT_BASE)"; exit 1; }
done

# 12 MiB of KV: about 34 blocks of 16 tokens for the default model.
bg_start corvid "$TMP" "$CORVID_BIN" serve --model "$MODEL" --host 127.0.0.1 --port "$API" \
  --served-model-name kv --kv-cache-memory 12MiB --max-model-len 256 --max-num-seqs 2 \
  --kv-events-endpoint "tcp://127.0.0.1:$PUB" --kv-events-replay-endpoint "tcp://127.0.0.1:$REPLAY" \
  --kv-events-topic "kv@corvid-test@kv"
if ! wait_http "http://127.0.0.1:$API/health" 180 "$BG_LAST"; then
  echo "FAIL kv-events: corvid did not become healthy"; tail -20 "$TMP/corvid.log"; exit 1
fi
"$PY" "$HERE/kv_events_check.py" --url "http://127.0.0.1:$API" --pub "tcp://127.0.0.1:$PUB" \
  --replay "tcp://127.0.0.1:$REPLAY" --model kv
