# Shared helpers for deploy/tests/*.sh and deploy/stack.sh (sourced, not run).
# Every process started with `bg_start` is killed by `bg_cleanup` (install it in a trap).

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CORVID_CACHE="${CORVID_CACHE:-$HOME/.cache/corvid}"
if [ -x "$CORVID_CACHE/venv/bin/python" ]; then PY="$CORVID_CACHE/venv/bin/python"; else PY="python3"; fi
BG_PIDS=()

# corvid_bin_or_skip STAGE   -> sets CORVID_BIN (default: the repository's release build); when
# that binary does not exist, prints that STAGE is skipped and exits 0.
corvid_bin_or_skip() {
  CORVID_BIN="${CORVID_BIN:-$(dirname "$DEPLOY_DIR")/target/release/corvid}"
  if [ ! -x "$CORVID_BIN" ]; then
    echo "SKIP $1: no corvid binary (looked for $CORVID_BIN)"
    exit 0
  fi
}

# bg_start NAME LOGDIR cmd...   -> starts cmd in the background, its output in LOGDIR/NAME.log;
# its pid is left in BG_LAST (do not call it in $(...): the pid would not be recorded)
bg_start() {
  local name="$1" logdir="$2"; shift 2
  "$@" >"$logdir/$name.log" 2>&1 &
  BG_LAST=$!
  BG_PIDS+=("$BG_LAST")
}

# bg_cleanup: TERM every started process, KILL the ones still alive after 5s.
bg_cleanup() {
  local pid alive i
  for pid in "${BG_PIDS[@]:-}"; do [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true; done
  for i in $(seq 1 50); do
    alive=0
    for pid in "${BG_PIDS[@]:-}"; do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${BG_PIDS[@]:-}"; do [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true; done
  BG_PIDS=()
}

# wait_http URL TIMEOUT_S [PID] -> 0 once URL answers 2xx; 1 on timeout or if PID died
wait_http() {
  local url="$1" timeout="$2" pid="${3:-}" end=$((SECONDS + $2))
  while [ "$SECONDS" -lt "$end" ]; do
    if "$PY" - "$url" <<'PYEOF' 2>/dev/null; then return 0; fi
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
PYEOF
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.3
  done
  return 1
}

# port_free PORT -> 0 when nothing listens on 127.0.0.1:PORT
port_free() {
  ! "$PY" -c 'import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1])))==0 else 1)' "$1"
}

# start_prometheus NAME DIR LISTEN [FLAG...] -> pid in BG_LAST (config in DIR/prometheus.yml)
start_prometheus() {
  local name="$1" dir="$2" listen="$3"
  shift 3
  bg_start "$name" "$dir" prometheus \
    --config.file="$dir/prometheus.yml" \
    --storage.tsdb.path="$dir/data" \
    --web.listen-address="$listen" \
    --web.enable-lifecycle \
    --rules.alert.resend-delay=1s "$@"
}

# start_alertmanager NAME DIR CONFIG LISTEN -> pid in BG_LAST (clustering off: no gossip port)
start_alertmanager() {
  local name="$1" dir="$2" config="$3" listen="$4"
  bg_start "$name" "$dir" prometheus-alertmanager \
    --config.file="$config" \
    --storage.path="$dir/am-data" \
    --web.listen-address="$listen" \
    --cluster.listen-address=
}
