"""Groups a `perf report --sort symbol --stdio` listing (stdin) by what the code does and
prints one JSON line: {"name", "samples", "groups": {group: percent}, "top": [[percent, symbol]]}.
Used by bench/profile.sh; bench/report.py turns the lines into a table."""
import json
import re
import sys

# First match wins; the order puts specific kernels before the crates that hold them.
GROUPS = [
    ("matmul: packed Q4_1 / Q8_0 kernels", r"gemv_q|packed::"),
    ("matmul: row-major dots", r"corvid_kernels::dot::"),
    ("matmul: activation quantization", r"quantize_(block|row|q8)|quantize_rows"),
    ("matmul: other (dispatch, scatter)", r"corvid_kernels::matmul::"),
    ("attention: scores and values", r"corvid_kernels::attention::"),
    ("softmax / expf", r"softmax|expf|exp_shifted"),
    ("SwiGLU", r"silu|vexp"),
    ("norms, RoPE, other ops", r"corvid_kernels::ops::|rms_norm|rope"),
    ("model (layer glue, KV writes)", r"corvid_model::"),
    ("engine (scheduler, sampler, detokenizer)", r"corvid_engine::|tokenizers::|corvid_model::tokenizer"),
    ("idle: pool threads spinning or parked", r"rayon|crossbeam|sched_yield|futex|__lll_|pthread_cond|syscall|do_syscall|schedule|_raw_spin|intel_idle|native_safe_halt|cpuidle"),
    ("memory (memcpy, memset, allocation)", r"memcpy|memmove|memset|malloc|free|realloc|_int_"),
    ("kernel (page faults, other)", r"\[k\]"),
]

name = sys.argv[1]
total = 0.0
groups = {g: 0.0 for g, _ in GROUPS}
groups["other"] = 0.0
top = []
samples = 0
for line in sys.stdin:
    m = re.match(r"# Samples: (\d+)([KM]?)", line)
    if m:
        samples = int(m.group(1)) * {"": 1, "K": 1000, "M": 1000000}[m.group(2)]
    m = re.match(r"\s+([\d.]+)%\s+(\[.\])\s+(.*)$", line)
    if not m:
        continue
    pct, space, sym = float(m.group(1)), m.group(2), m.group(3).strip().rstrip("- ").strip()
    total += pct
    text = f"{space} {sym}"
    for g, pat in GROUPS:
        if re.search(pat, text):
            groups[g] += pct
            break
    else:
        groups["other"] += pct
    top.append([pct, sym[:100]])
top.sort(reverse=True)
print(json.dumps({"name": name, "samples": samples,
                  "groups": {g: round(v, 2) for g, v in groups.items() if v > 0},
                  "top": top[:12]}))
