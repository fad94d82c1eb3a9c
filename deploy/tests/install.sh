#!/usr/bin/env bash
# Idempotent installer of what deploy/tests needs. Fast when everything is present.
#   apt:  prometheus (prometheus, promtool), prometheus-alertmanager (+ amtool), nginx,
#         libnginx-mod-http-js (njs: the gateway's routing by model, deploy/nginx/corvid_route.js),
#         chromium and fonts-noto-cjk (the browser tests: headless, the panels' Chinese titles)
#   npm:  @grafana/schema, typescript, @kubernetes-models/{prometheus-operator,keda,gateway-api},
#         playwright-core (drives the system chromium; downloads no browser), uplot (the
#         copy vendored in crates/corvid-server/assets/ is checked against it)
#         (pinned, in $CORVID_CACHE/npm, outside the repo)
#   PyPI: kubernetes-validate (pinned, venv in $CORVID_CACHE/venv; brings PyYAML), pyzmq and
#         msgpack (the KV-cache event subscriber),
#         vllm-router (pinned, venv in $CORVID_CACHE/venv-router: the router test),
#         inference-perf and guidellm (pinned in bench/setup_load_tools.sh, venv in
#         $CORVID_CACHE/venv-loadtools: the load tools' smoke test and bench/load_tools.sh)
# Only the package registries are used.
set -euo pipefail

CACHE="${CORVID_CACHE:-$HOME/.cache/corvid}"
NPM_PKGS=(
  "@grafana/schema@13.2.3"
  "typescript@5.6.3"
  "@kubernetes-models/prometheus-operator@6.0.0"
  "@kubernetes-models/keda@2.0.0"
  "@kubernetes-models/gateway-api@2.0.0"
  "playwright-core@1.65.1"
  "uplot@1.6.32"
)
PY_PKGS=("kubernetes-validate==1.37.0" "PyYAML==6.0.3" "pyzmq==27.3.0" "msgpack==1.2.4")

log() { echo "install: $*" >&2; }

# ---- Debian packages ------------------------------------------------------------------
missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
command -v nginx >/dev/null || missing+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_http_js_module.so ] || missing+=(libnginx-mod-http-js)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v chromium >/dev/null || missing+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] || missing+=(fonts-noto-cjk)
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # Keep the packages from starting their daemons (nginx on :80, prometheus on :9090):
  # the tests start private instances on loopback. Debian's policy-rc.d mechanism.
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  trap '[ -z "$made_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- npm packages ---------------------------------------------------------------------
mkdir -p "$CACHE/npm"
want_npm="$(printf '%s\n' "${NPM_PKGS[@]}")"
if [ "$(cat "$CACHE/npm/.installed" 2>/dev/null)" != "$want_npm" ]; then
  log "npm install ${NPM_PKGS[*]} into $CACHE/npm"
  [ -f "$CACHE/npm/package.json" ] || echo '{"private": true}' > "$CACHE/npm/package.json"
  (cd "$CACHE/npm" && npm install --no-audit --no-fund --loglevel=error --save-exact "${NPM_PKGS[@]}" >/dev/null)
  printf '%s' "$want_npm" > "$CACHE/npm/.installed"
fi

# ---- PyPI packages --------------------------------------------------------------------
want_py="$(printf '%s\n' "${PY_PKGS[@]}")"
if [ "$(cat "$CACHE/venv/.installed" 2>/dev/null)" != "$want_py" ]; then
  log "pip install ${PY_PKGS[*]} into $CACHE/venv"
  python3 -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install -q --disable-pip-version-check "${PY_PKGS[@]}"
  printf '%s' "$want_py" > "$CACHE/venv/.installed"
fi

# vLLM's router (a Rust binary in a wheel) in a venv of its own: its web stack's pins stay
# away from the test tools'.
ROUTER_PKG="vllm-router==0.1.17"
if [ "$(cat "$CACHE/venv-router/.installed" 2>/dev/null)" != "$ROUTER_PKG" ]; then
  log "pip install $ROUTER_PKG into $CACHE/venv-router"
  python3 -m venv "$CACHE/venv-router"
  "$CACHE/venv-router/bin/pip" install -q --disable-pip-version-check "$ROUTER_PKG"
  printf '%s' "$ROUTER_PKG" > "$CACHE/venv-router/.installed"
fi

# The load generators users benchmark with, in a venv of their own (Python >= 3.12, PyTorch).
bash "$(dirname "${BASH_SOURCE[0]}")/../../bench/setup_load_tools.sh" >/dev/null

log "ready (cache: $CACHE)"
