#!/usr/bin/env bash
# Idempotent: creates ~/.cache/corvid/venv-openai with the official `openai` client
# (pinned) unless it is already there with that version.
set -euo pipefail
OPENAI_VERSION="1.109.1"
VENV="${CORVID_OPENAI_VENV:-${CORVID_HOME:-$HOME/.cache/corvid}/venv-openai}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION"
"$VENV/bin/python" -c "import openai; print('openai', openai.__version__, 'installed in $VENV')"
