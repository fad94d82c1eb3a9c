#!/usr/bin/env bash
# Coverage-guided fuzzing for a bounded time: builds the AFL driver (fuzz/afl) with
# cargo-afl and runs each target for FUZZ_SECONDS (default 25) from its committed seeds
# (fuzz/corpus/TARGET) and past crashes (fuzz/regressions/TARGET). Fails if AFL finds a
# crash (a panic, an abort, an allocation beyond FUZZ_MEMORY_MB) or a hang (an input
# running longer than FUZZ_TIMEOUT_MS); the inputs stay in the printed folder, to fix the
# bug and commit them under fuzz/regressions/TARGET.
# Usage: fuzz/run.sh [TARGET...]   (default: every target)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
export CORVID_HOME="${CORVID_HOME:-$HOME/.cache/corvid}"
bash "$here/fuzz/install.sh"
export PATH="$CORVID_HOME/afl/bin:$PATH" XDG_DATA_HOME="$CORVID_HOME/afl/share"
seconds="${FUZZ_SECONDS:-25}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf safetensors tokenizer chat_template request)

# Its own target folder, kept in the cache between runs: AFL's instrumentation flags
# differ from a normal build's, and a warm folder rebuilds only corvid's changed crates.
target_dir="$CORVID_HOME/cache/fuzz-target"
cargo afl build --release --quiet --manifest-path "$here/fuzz/afl/Cargo.toml" --target-dir "$target_dir"
driver="$target_dir/release/corvid-fuzz-afl"

# Run without root changes to the machine: no CPU-governor or core_pattern demands, no
# core pinning (other jobs share the cores), no terminal UI.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 \
  AFL_NO_UI=1 AFL_QUIET=1 AFL_SKIP_CRASHES=1
out="${FUZZ_OUT:-$(mktemp -d -t corvid-fuzz.XXXXXX)}"
found=0
for t in "${targets[@]}"; do
  seeds="$out/$t/seeds"
  mkdir -p "$seeds"
  cp "$here/fuzz/corpus/$t"/* "$seeds/"
  if [ -d "$here/fuzz/regressions/$t" ]; then cp "$here/fuzz/regressions/$t"/* "$seeds/"; fi
  echo "[fuzz] $t: ${seconds}s" >&2
  cargo afl fuzz -i "$seeds" -o "$out/$t/findings" -V "$seconds" \
    -t "${FUZZ_TIMEOUT_MS:-2000}" -m "${FUZZ_MEMORY_MB:-2048}" -- "$driver" "$t" >"$out/$t/afl.log" 2>&1 ||
    { cat "$out/$t/afl.log" >&2; found=1; continue; }
  stats="$out/$t/findings/default/fuzzer_stats"
  grep -E '^(execs_done|corpus_count|bitmap_cvg|saved_crashes|saved_hangs) ' "$stats" | tr -s ' ' | paste -sd' ' | sed "s/^/[fuzz] $t: /" >&2
  for kind in crashes hangs; do
    for f in "$out/$t/findings/default/$kind"/id:*; do
      [ -e "$f" ] || continue
      echo "[fuzz] $t: $kind input $f" >&2
      found=1
    done
  done
done
if [ "$found" -ne 0 ]; then echo "[fuzz] failures found; inputs under $out" >&2; exit 1; fi
rm -rf "$out"
echo "[fuzz] no crash or hang in ${#targets[@]} target(s)" >&2
