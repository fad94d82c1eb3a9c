#!/usr/bin/env bash
# Installs the fuzzing toolchain into $CORVID_HOME/afl, idempotently: cargo-afl (crates.io,
# pinned, built from source with the stable toolchain) and the AFL++ runtime it builds
# from the sources shipped in its crate (`cargo afl config --build`, no download).
set -euo pipefail
export CORVID_HOME="${CORVID_HOME:-$HOME/.cache/corvid}"
version="0.18.2"
root="$CORVID_HOME/afl"
export PATH="$root/bin:$PATH" XDG_DATA_HOME="$root/share"
if ! "$root/bin/cargo-afl" afl --version 2>/dev/null | grep -q "^cargo-afl $version "; then
  echo "[fuzz] installing cargo-afl $version" >&2
  CARGO_TARGET_DIR="$root/build" cargo install --quiet --locked --force --root "$root" cargo-afl --version "$version"
  rm -rf "$root/build"
fi
# AFL++ lives under XDG_DATA_HOME/afl.rs, per rustc (version and short commit) and
# cargo-afl version.
rustc_id="$(rustc -V | awk '{print $2 "-" substr($3, 2, 7)}')"
if [ ! -x "$XDG_DATA_HOME/afl.rs/rustc-$rustc_id/afl.rs-$version/afl/bin/afl-fuzz" ]; then
  echo "[fuzz] building AFL++ (cargo afl config --build)" >&2
  cargo afl config --build --force >&2
fi
