#!/usr/bin/env bash
# Creates (once) the venv holding the third-party load generators bench/load_tools.sh and the
# deploy kit's smoke test drive: inference-perf (Kubernetes wg-serving) and guidellm, pinned,
# under $CORVID_CACHE/venv-loadtools (default ~/.cache/corvid). Prints the venv's bin folder.
#
# inference-perf 0.7.0 needs Python >= 3.12: the interpreter is $LOAD_TOOLS_PYTHON, else the
# first python3.13 / python3.12 on PATH that runs (a pyenv shim for a version pyenv has not
# selected is on PATH but fails), else pyenv's newest 3.13 / 3.12 (Debian 12 has 3.11). guidellm pulls
# PyTorch (its data loader is torch's), which from PyPI brings the CUDA libraries: ~5 GB.
# Both tools then run offline (HF_HUB_OFFLINE=1) with a local tokenizer folder.
set -euo pipefail
CACHE="${CORVID_CACHE:-$HOME/.cache/corvid}"
venv="$CACHE/venv-loadtools"
PKGS=("inference-perf==0.7.0" "guidellm==0.8.1")

pick_python() {
  local p
  if [ -n "${LOAD_TOOLS_PYTHON:-}" ]; then echo "$LOAD_TOOLS_PYTHON"; return; fi
  for p in python3.13 python3.12; do
    if command -v "$p" >/dev/null && "$p" -c pass 2>/dev/null; then command -v "$p"; return; fi
  done
  for p in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[23].* 2>/dev/null | sort -V -r); do
    if [ -x "$p/bin/python3" ]; then echo "$p/bin/python3"; return; fi
  done
  echo "setup_load_tools: inference-perf needs Python >= 3.12; none found (set LOAD_TOOLS_PYTHON)" >&2
  return 1
}

want="$(printf '%s\n' "${PKGS[@]}")"
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$want" ]; then
  py="$(pick_python)"
  echo "setup_load_tools: pip install ${PKGS[*]} into $venv (Python $("$py" -c 'import platform; print(platform.python_version())'))" >&2
  "$py" -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "${PKGS[@]}" >&2
  printf '%s' "$want" > "$venv/.installed"
fi
echo "$venv/bin"
