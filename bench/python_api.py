"""The Python side of bench/python_api.sh, in the venv holding the corvid wheel.

    python_api.py run WORKLOAD.jsonl RESULT.json   one measured pass over the workload
    python_api.py report RAW OUT                   the A/B table from RAW's JSON files

`run` replays the requests `corvid bench throughput --write-workload` wrote (same prompt
token ids, greedy, ignore_eos, each its own max_tokens) through `corvid.LLM.generate`,
with the engine's defaults, as the Rust run uses, after one warm-up request."""

from __future__ import annotations

import glob
import json
import os
import sys
import time


def run(workload: str, result: str) -> None:
    from corvid import LLM, SamplingParams

    reqs = [json.loads(line) for line in open(workload, encoding="utf-8") if line.strip()]
    llm = LLM(model=os.environ["GGUF"])
    warm = list(range(1000, 1032))  # 32 tokens that share no block with the workload
    llm.generate([warm], SamplingParams(temperature=0, ignore_eos=True, max_tokens=8), use_tqdm=False)
    prompts = [{"prompt_token_ids": r["prompt_token_ids"]} for r in reqs]
    params = [SamplingParams(temperature=0, ignore_eos=True, max_tokens=r["max_tokens"]) for r in reqs]
    start = time.perf_counter()
    outs = llm.generate(prompts, params)
    elapsed = time.perf_counter() - start
    out_tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    with open(result, "w", encoding="utf-8") as f:
        json.dump({"elapsed_s": elapsed, "total_output_tokens": out_tokens,
                   "output_tokens_per_s": out_tokens / elapsed}, f)


def report(raw: str, out: str) -> None:
    rows = []
    for i in range(1, 100):
        rust, py = f"{raw}/rust-{i}.json", f"{raw}/python-{i}.json"
        if not (os.path.exists(rust) and os.path.exists(py)):
            break
        r = json.load(open(rust))["throughput"]
        p = json.load(open(py))
        rows.append((i, r["output_tokens_per_s"], r["elapsed_s"], r["total_output_tokens"],
                     p["output_tokens_per_s"], p["elapsed_s"], p["total_output_tokens"]))
    lines = [
        "| pair | Rust API out tok/s | wall (s) | out tokens | Python API out tok/s | wall (s) | out tokens | Python / Rust |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, rt, rw, rn, pt, pw, pn in rows:
        lines.append(f"| {i} | {rt:.1f} | {rw:.1f} | {rn} | {pt:.1f} | {pw:.1f} | {pn} | {pt / rt:.3f} |")
    mean_r = sum(r[1] for r in rows) / len(rows)
    mean_p = sum(r[4] for r in rows) / len(rows)
    lines.append(f"| mean | {mean_r:.1f} | | | {mean_p:.1f} | | | **{mean_p / mean_r:.3f}** |")
    text = "\n".join(lines) + "\n"
    with open(f"{out}/results.md", "w", encoding="utf-8") as f:
        f.write("# Python API vs Rust API, 64-prompt ShareGPT-like offline mix (bench/python_api.sh)\n\n")
        f.write("Alternating runs (Rust, Python, Rust, Python, ...), each a fresh process on the same\n")
        f.write("requests: greedy, ignore_eos, engine defaults (64 seqs, 1 GiB KV, prefix caching on).\n\n")
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    {"run": run, "report": report}[sys.argv[1]](*sys.argv[2:])
