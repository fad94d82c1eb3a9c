#!/usr/bin/env bash
# Idempotent: creates ~/.cache/corvid/venv-openai with the official `openai` client
# (pinned) unless it is already there with that version, and the `openssl` command (Debian)
# that makes the TLS test's self-signed certificate.
set -euo pipefail
if ! command -v openssl >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends openssl >/dev/null
fi
OPENAI_VERSION="1.109.1"
VENV="${CORVID_OPENAI_VENV:-${CORVID_HOME:-$HOME/.cache/corvid}/venv-openai}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION"
"$VENV/bin/python" -c "import openai; print('openai', openai.__version__, 'installed in $VENV')"
