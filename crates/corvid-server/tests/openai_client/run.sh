#!/usr/bin/env bash
# Starts `corvid serve` (target/release/corvid, or $CORVID_BIN) on a free port with an
# API key, waits for /health, runs the official OpenAI client checks, then sends
# SIGTERM and checks the server drains and exits 0; then a second server with TLS
# (self-signed certificate made here) for test_tls.py; then test_connections.py (idle and
# byte-at-a-time clients, the connection limit) against a plain server with a metrics port
# and a TLS one.
# Prints `N passed, M failed`; exits non-zero on any failure.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
bin="${CORVID_BIN:-$repo/target/release/corvid}"
if [ ! -x "$bin" ]; then
  echo "no corvid binary at $bin (cargo build --release -p corvid)"; echo "0 passed, 1 failed"; exit 1
fi
bash "$here/install.sh" || { echo "0 passed, 1 failed"; exit 1; }
venv="${CORVID_OPENAI_VENV:-${CORVID_HOME:-$HOME/.cache/corvid}/venv-openai}"
work="$(mktemp -d /tmp/corvid-openai-XXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
passed=0
failed=0

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start NAME HEALTH_URL [CURL_FLAG...] -- SERVE_FLAG...: starts a server logging to
# $work/NAME.log, sets $pid, waits up to 2 minutes for HEALTH_URL; fails the check
# NAME_healthy (and returns 1) if it never answers.
start() {
  local name=$1 url=$2; shift 2
  local curl_flags=()
  while [ "$1" != "--" ]; do curl_flags+=("$1"); shift; done; shift
  "$bin" serve --host 127.0.0.1 "$@" >"$work/$name.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 600); do
    if curl -fsS "${curl_flags[@]}" "$url" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.2
  done
  echo "FAIL ${name}_healthy"; tail -n 30 "$work/$name.log"; failed=$((failed + 1))
  return 1
}

# run_py SCRIPT ARG...: runs a check script with the venv's python, shows its PASS/FAIL
# lines and adds its final `N passed, M failed` to the totals.
run_py() {
  local out last p f
  out="$("$venv/bin/python" "$here/$1" "${@:2}" 2>&1)"
  echo "$out" | sed '$d'
  last="$(echo "$out" | tail -n 1)"
  p="$(echo "$last" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1/p')"
  f="$(echo "$last" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\2/p')"
  if [ -z "$p" ]; then echo "$last"; p=0; f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
}

# The official client, then graceful shutdown: SIGTERM → drain → exit 0.
port="$(free_port)"
key="test-key-$$"
if start api "http://127.0.0.1:$port/health" -- --port "$port" --api-key "$key" \
  --max-model-len 2048 --kv-cache-memory 512MiB --shutdown-timeout 20; then
  run_py test_openai.py "http://127.0.0.1:$port" "$key"
  kill -TERM "$pid"
  rc=124
  for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; rc=$?; break; fi
    sleep 0.2
  done
  if [ "$rc" -eq 0 ]; then
    echo "PASS sigterm_exits_0"; passed=$((passed + 1))
  else
    echo "FAIL sigterm_exits_0 (exit code $rc)"; tail -n 20 "$work/api.log"; failed=$((failed + 1))
  fi
fi

# TLS (--ssl-keyfile/--ssl-certfile): a self-signed certificate made now, a second server,
# the official client over HTTPS (test_tls.py).
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
  -keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1
tls_flags=(--ssl-keyfile "$work/key.pem" --ssl-certfile "$work/cert.pem" --max-model-len 512
  --kv-cache-memory 64MiB)
tport="$(free_port)"
if start tls "https://127.0.0.1:$tport/health" --cacert "$work/cert.pem" -- --port "$tport" "${tls_flags[@]}"; then
  run_py test_tls.py "https://127.0.0.1:$tport" "$work/cert.pem"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null
fi

# Idle and byte-at-a-time clients and the connection limit (test_connections.py): plain
# HTTP with the default --timeout-keep-alive and a metrics port, then TLS with shorter
# timeouts. Arguments: keep-alive, body timeout and connection limit the server runs with.
limits=(--timeout-request-body 3 --max-connections 1100)
cport="$(free_port)"
mport="$(free_port)"
if start conn "http://127.0.0.1:$cport/health" -- --port "$cport" --metrics-port "$mport" \
  --max-model-len 512 --kv-cache-memory 64MiB "${limits[@]}"; then
  run_py test_connections.py "http://127.0.0.1:$cport" "$pid" 5 3 1100 \
    --metrics-url "http://127.0.0.1:$mport"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null
fi
tport="$(free_port)"
if start conn_tls "https://127.0.0.1:$tport/health" --cacert "$work/cert.pem" -- --port "$tport" \
  "${tls_flags[@]}" "${limits[@]}" --timeout-keep-alive 3; then
  run_py test_connections.py "https://127.0.0.1:$tport" "$pid" 3 3 1100 --cafile "$work/cert.pem"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
