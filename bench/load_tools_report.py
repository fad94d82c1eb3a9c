#!/usr/bin/env python3
"""Reads the output files of the three load generators bench/load_tools.sh runs.

Each tool measures in its own way, and this module reads what each one wrote, never
recomputing it from scratch, so that the table compares the tools as their users see them:

  corvid-bench    result.json: output tok/s = output tokens reported by the server's `usage`
                  / wall time from the first request sent to the last finished.
  inference-perf  summary_lifecycle_metrics.json: output tok/s = output tokens counted by
                  re-tokenizing each response's text with the local tokenizer (its default;
                  the count is compared to the server's `usage`: `token_count_mismatches`)
                  / `benchmark_time_seconds`, which includes its own start-up of the stage.
  guidellm        benchmarks.json: output tok/s = the mean of its per-second output-token
                  series over the benchmark (`output_tokens_per_second.successful.mean`).

Every row also gets one definition for all: output tokens (as the tool counted them) / the
tool's measured duration, so that a disagreement can be split into counting vs timing.

  load_tools_report.py RAW OUT.md        the summary of a bench/load_tools.sh run
  load_tools_report.py --check TOOL DIR --requests N --input-len I --output-len O
                                         PASS/FAIL lines for the deploy kit's smoke test
"""
import argparse
import json
import re
import sys
from pathlib import Path

TOOLS = ("corvid-bench", "inference-perf", "guidellm")


def read_corvid_bench(d: Path) -> dict:
    r = json.loads((d / "result.json").read_text())["metrics"]
    done = r["completed"]
    return {
        "ok": done, "failed": r["failed"],
        "out_tok_s": r["output_throughput"],
        "out_tokens": r["total_output_tokens"],
        "out_per_req": r["total_output_tokens"] / done if done else 0.0,
        "in_per_req": r["total_input_tokens"] / done if done else 0.0,
        "ttft_p50_ms": r["ttft_ms"]["p50"], "ttft_p99_ms": r["ttft_ms"]["p99"],
        "duration_s": r["duration_s"],
    }


def read_inference_perf(d: Path) -> dict:
    s = json.loads((d / "summary_lifecycle_metrics.json").read_text())
    ok = s["successes"]
    n = ok["count"]
    ttft = ok["latency"]["time_to_first_token"] if n else {"median": 0.0, "p99": 0.0}
    out_mean = ok["output_tokens"]["mean"] if n else 0.0
    return {
        "ok": n, "failed": s["failures"]["count"],
        "out_tok_s": ok["throughput"]["output_tokens_per_sec"],
        "out_tokens": out_mean * n,
        "out_per_req": out_mean,
        "in_per_req": ok["prompt_tokens"]["mean"] if n else 0.0,
        "ttft_p50_ms": ttft["median"] * 1000, "ttft_p99_ms": ttft["p99"] * 1000,
        "duration_s": s["benchmark_time_seconds"],
        "token_count_mismatches": ok.get("token_count_mismatches", 0),
    }


def read_guidellm(d: Path) -> dict:
    b = json.loads((d / "benchmarks.json").read_text())["benchmarks"][0]
    m = b["metrics"]
    totals = m["request_totals"]
    out = m["output_token_count"]["successful"]
    ttft = m["time_to_first_token_ms"]["successful"]
    return {
        "ok": totals["successful"], "failed": totals["errored"] + totals["incomplete"],
        "out_tok_s": m["output_tokens_per_second"]["successful"]["mean"],
        "out_tokens": out["total_sum"],
        "out_per_req": out["mean"],
        "in_per_req": m["prompt_token_count"]["successful"]["mean"],
        "ttft_p50_ms": ttft["median"], "ttft_p99_ms": ttft["percentiles"]["p99"],
        "duration_s": b["duration"],
    }


READERS = {"corvid-bench": read_corvid_bench, "inference-perf": read_inference_perf,
           "guidellm": read_guidellm}


def summary(raw: Path) -> str:
    """results.md of one run: a row per tool, server and concurrency, then the ratios."""
    rows = {}
    for d in sorted(raw.iterdir()):
        m = re.fullmatch(r"(corvid-bench|inference-perf|guidellm)-(.+)-c(\d+)", d.name)
        if not m or not d.is_dir():
            continue
        try:
            rows[(m[1], m[2], int(m[3]))] = READERS[m[1]](d)
        except (OSError, KeyError, IndexError, ValueError) as e:
            print(f"skipped {d.name}: {e}", file=sys.stderr)
    lines = ["| tool | server | conc. | ok / failed | out tok/req | output tok/s (tool) |"
             " tokens / duration | TTFT p50 / p99 (ms) |", "|---|---|---|---|---|---|---|---|"]
    for (tool, sys_, c), r in sorted(rows.items(), key=lambda kv: (TOOLS.index(kv[0][0]), kv[0][2], kv[0][1])):
        lines.append(f"| {tool} | {sys_} | {c} | {r['ok']} / {r['failed']} | {r['out_per_req']:.1f} |"
                     f" {r['out_tok_s']:.1f} | {r['out_tokens'] / r['duration_s']:.1f} |"
                     f" {r['ttft_p50_ms']:.0f} / {r['ttft_p99_ms']:.0f} |")
    lines += ["", "corvid / llama-server, per tool (output tok/s as the tool reports it; TTFT p50 as llama-server's / corvid's):", "",
              "| tool | conc. | output tok/s ratio | tokens/duration ratio | TTFT p50 llama/corvid |", "|---|---|---|---|---|"]
    for tool in TOOLS:
        for c in sorted({k[2] for k in rows}):
            a, b = rows.get((tool, "corvid", c)), rows.get((tool, "llama-server", c))
            if a and b and b["out_tok_s"] > 0 and a["ttft_p50_ms"] > 0:
                lines.append(f"| {tool} | {c} | {a['out_tok_s'] / b['out_tok_s']:.2f}× |"
                             f" {(a['out_tokens'] / a['duration_s']) / (b['out_tokens'] / b['duration_s']):.2f}× |"
                             f" {b['ttft_p50_ms'] / a['ttft_p50_ms']:.2f}× |")
    return "\n".join(lines) + "\n"


def check(tool: str, d: Path, requests: int, input_len: int, output_len: int) -> bool:
    """The smoke test's verdict on one tool's output: every request answered, plausible counts."""
    try:
        r = READERS[tool](d)
    except (OSError, KeyError, IndexError, ValueError) as e:
        print(f"FAIL {tool}: no readable output in {d}: {e!r}")
        return False
    checks = [
        (r["ok"] == requests and r["failed"] == 0,
         f"{tool}: {requests} requests succeeded (got {r['ok']} ok, {r['failed']} failed)"),
        # ignore_eos: the server generates exactly output_len; a tool that re-tokenizes the
        # text may count a few tokens more or less where BPE merges across token boundaries.
        (abs(r["out_per_req"] - output_len) <= max(2, output_len // 8),
         f"{tool}: ~{output_len} output tokens per request (got {r['out_per_req']:.1f})"),
        (abs(r["in_per_req"] - input_len) <= max(4, input_len // 4),
         f"{tool}: ~{input_len} prompt tokens per request (got {r['in_per_req']:.1f})"),
        (r["out_tok_s"] > 0 and 0 < r["ttft_p50_ms"] <= r["ttft_p99_ms"],
         f"{tool}: throughput and TTFT measured ({r['out_tok_s']:.1f} tok/s, TTFT p50 {r['ttft_p50_ms']:.0f} ms)"),
    ]
    for ok, what in checks:
        print(f"{'PASS' if ok else 'FAIL'} {what}")
    return all(ok for ok, _ in checks)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", nargs=2, metavar=("TOOL", "DIR"))
    ap.add_argument("--requests", type=int)
    ap.add_argument("--input-len", type=int)
    ap.add_argument("--output-len", type=int)
    ap.add_argument("paths", nargs="*", help="RAW OUT.md")
    a = ap.parse_args()
    if a.check:
        tool, d = a.check
        if tool not in READERS:
            ap.error(f"unknown tool {tool!r} (one of {', '.join(TOOLS)})")
        return 0 if check(tool, Path(d), a.requests, a.input_len, a.output_len) else 1
    if len(a.paths) != 2:
        ap.error("give RAW and OUT.md, or --check")
    raw, out = map(Path, a.paths)
    out.write_text("# Load tools: corvid vs llama-server\n\n" + summary(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
