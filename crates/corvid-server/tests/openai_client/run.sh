#!/usr/bin/env bash
# Starts `corvid serve` (target/release/corvid, or $CORVID_BIN) on a free port with an
# API key, waits for /health, runs the official OpenAI client checks, then sends
# SIGTERM and checks the server drains and exits 0; then a second server with TLS
# (self-signed certificate made here) for test_tls.py.
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
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
key="test-key-$$"
log="$(mktemp /tmp/corvid-openai-XXXX.log)"

"$bin" serve --host 127.0.0.1 --port "$port" --api-key "$key" --max-model-len 2048 \
  --kv-cache-memory 512MiB --shutdown-timeout 20 >"$log" 2>&1 &
pid=$!
cleanup() { if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; fi; }
trap cleanup EXIT

ready=0
for _ in $(seq 1 600); do
  if curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1; then ready=1; break; fi
  if ! kill -0 "$pid" 2>/dev/null; then break; fi
  sleep 0.2
done
if [ "$ready" -ne 1 ]; then
  echo "FAIL server did not become healthy"; tail -n 30 "$log"; echo "0 passed, 1 failed"; exit 1
fi

out="$("$venv/bin/python" "$here/test_openai.py" "http://127.0.0.1:$port" "$key" 2>&1)"
echo "$out" | sed '$d'
last="$(echo "$out" | tail -n 1)"
passed="$(echo "$last" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1/p')"
failed="$(echo "$last" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\2/p')"
if [ -z "$passed" ]; then echo "$last"; passed=0; failed=1; fi

# Graceful shutdown: SIGTERM → drain → exit 0.
kill -TERM "$pid"
rc=124
for _ in $(seq 1 150); do
  if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; rc=$?; break; fi
  sleep 0.2
done
if [ "$rc" -eq 0 ]; then
  echo "PASS sigterm_exits_0"; passed=$((passed + 1))
else
  echo "FAIL sigterm_exits_0 (exit code $rc)"; tail -n 20 "$log"; failed=$((failed + 1))
fi
rm -f "$log"

# TLS (--ssl-keyfile/--ssl-certfile): a self-signed certificate made now, a second server,
# the official client over HTTPS (test_tls.py).
tls="$(mktemp -d /tmp/corvid-tls-XXXX)"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
  -keyout "$tls/key.pem" -out "$tls/cert.pem" >/dev/null 2>&1
tport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$bin" serve --host 127.0.0.1 --port "$tport" --ssl-keyfile "$tls/key.pem" \
  --ssl-certfile "$tls/cert.pem" --max-model-len 512 --kv-cache-memory 64MiB >"$tls/log" 2>&1 &
tpid=$!
trap 'cleanup; kill -KILL "$tpid" 2>/dev/null; rm -rf "$tls"' EXIT
ready=0
for _ in $(seq 1 600); do
  if curl -fsS --cacert "$tls/cert.pem" "https://127.0.0.1:$tport/health" >/dev/null 2>&1; then ready=1; break; fi
  if ! kill -0 "$tpid" 2>/dev/null; then break; fi
  sleep 0.2
done
if [ "$ready" -ne 1 ]; then
  echo "FAIL tls_server_healthy"; tail -n 20 "$tls/log"; failed=$((failed + 1))
else
  out="$("$venv/bin/python" "$here/test_tls.py" "https://127.0.0.1:$tport" "$tls/cert.pem" 2>&1)"
  echo "$out" | sed '$d'
  last="$(echo "$out" | tail -n 1)"
  p="$(echo "$last" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1/p')"
  f="$(echo "$last" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\2/p')"
  if [ -z "$p" ]; then echo "$last"; p=0; f=1; fi
  passed=$((passed + p)); failed=$((failed + f))
fi
kill -TERM "$tpid" 2>/dev/null; wait "$tpid" 2>/dev/null

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
