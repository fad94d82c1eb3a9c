#!/usr/bin/env python3
"""Turns one benchmark run into the record kept in git: results.md (tables with the ratios
that matter and the summary statistics of every measurement) and PNG
throughput-vs-latency curves. See bench/results/README.md.

Usage: report.py RAW_DIR [OUT_DIR]

RAW_DIR is the run's scratch folder (bench/scratch/<run>/, gitignored), where the bench
scripts put everything they dump:
  serve-<system>-<workload>-c<conc>.json   corvid bench serve --result-json (per request)
  llama-bench.json, corvid-single-stream.json    bench/single_stream.sh
  metrics-overhead.md, metrics-cpu-share.txt     bench/metrics_overhead.sh, metrics_cpu_share.sh
  any other *.json with a "mode"           corvid bench throughput --result-json (offline)
OUT_DIR (default: RAW_DIR) is the run's folder in bench/results/: it holds env-*.json and
receives results.md and curve-<workload>.png. Nothing written there names a path of the
machine (files are named by their base name only).
"""
import glob
import json
import os
import re
import sys

SYSTEMS = ["corvid", "corvid-nobatch", "llama-server", "llama-cpp-python"]


def load(path):
    with open(path) as f:
        return json.load(f)


def serve_results(d):
    rows = {}
    for p in sorted(glob.glob(os.path.join(d, "serve-*.json"))):
        r = load(p)
        a = r["args"]
        key = (a["workload"]["workload"], a.get("max_concurrency") or 0)
        rows.setdefault(key, {})[r.get("label") or os.path.basename(p)] = dict(
            r["metrics"], num_prompts=a["workload"].get("num_prompts"))
    return rows


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "–"


def serve_tables(rows):
    out = []
    workloads = sorted({w for w, _ in rows})
    for wl in workloads:
        out.append(f"### Workload `{wl}`\n")
        out.append("| conc | system | req/s | out tok/s | TTFT p50 / p99 (ms) | ITL p50 (ms) | E2E p50 / p99 (ms) | failed |")
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|")
        for (w, c) in sorted(k for k in rows if k[0] == wl):
            for sys_ in SYSTEMS:
                m = rows[(w, c)].get(sys_)
                if not m:
                    continue
                out.append(
                    f"| {c} | {sys_} | {m['request_throughput']:.2f} | {m['output_throughput']:.1f} | "
                    f"{m['ttft_ms']['p50']:.0f} / {m['ttft_ms']['p99']:.0f} | {m['itl_ms']['p50']:.1f} | "
                    f"{m['e2el_ms']['p50']:.0f} / {m['e2el_ms']['p99']:.0f} | {m['failed']} |"
                )
        out.append("")
        out.append("| conc | corvid / corvid-nobatch (out tok/s) | corvid / llama-server (out tok/s) | P99 E2E corvid-nobatch / corvid | P99 E2E llama-server / corvid |")
        out.append("|---:|---:|---:|---:|---:|")
        for (w, c) in sorted(k for k in rows if k[0] == wl):
            g = rows[(w, c)]
            cv, nb, ls = g.get("corvid"), g.get("corvid-nobatch"), g.get("llama-server")
            tp = lambda m: m and m["output_throughput"]
            p99 = lambda m: m and m["e2el_ms"]["p99"]
            out.append(f"| {c} | {ratio(tp(cv), tp(nb))} | {ratio(tp(cv), tp(ls))} | {ratio(p99(nb), p99(cv))} | {ratio(p99(ls), p99(cv))} |")
        out.append("")
    return out


def serve_stats(rows):
    """The remaining summary statistics of every serving run (the per-request data stays in
    the scratch folder)."""
    out = ["### Summary statistics of every serving run\n"]
    out.append("| workload | conc | system | prompts | ok / failed | wall (s) | in / out tokens | total tok/s | TTFT mean / p90 (ms) | TPOT p50 / p99 (ms) | ITL p90 / p99 (ms) | E2E mean / p90 (ms) |")
    out.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    errors = []
    for (w, c) in sorted(rows):
        for sys_ in SYSTEMS + sorted(set(rows[(w, c)]) - set(SYSTEMS)):
            m = rows[(w, c)].get(sys_)
            if not m:
                continue
            out.append(
                f"| {w} | {c} | {sys_} | {m['num_prompts']} | {m['completed']} / {m['failed']} | {m['duration_s']:.2f} | "
                f"{m['total_input_tokens']} / {m['total_output_tokens']} | {m['total_token_throughput']:.1f} | "
                f"{m['ttft_ms']['mean']:.0f} / {m['ttft_ms']['p90']:.0f} | {m['tpot_ms']['p50']:.1f} / {m['tpot_ms']['p99']:.1f} | "
                f"{m['itl_ms']['p90']:.1f} / {m['itl_ms']['p99']:.1f} | {m['e2el_ms']['mean']:.0f} / {m['e2el_ms']['p90']:.0f} |"
            )
            for kind, n in sorted((m.get("errors") or {}).items()):
                example = (m.get("error_examples") or {}).get(kind, "")
                errors.append(f"- {w} c={c} {sys_}: {n} × `{kind}` ({example})")
    out.append("")
    if errors:
        out += ["Failed requests:\n"] + errors + [""]
    return out


def plots(rows, d):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        # No matplotlib in this python: keep linking the curves an earlier call drew.
        existing = sorted(glob.glob(os.path.join(d, "curve-*.png")))
        if not existing:
            return ["(matplotlib not available: no plots)"]
        return [f"![{os.path.basename(p)[6:-4]}]({os.path.basename(p)})" for p in existing]
    lines = []
    for wl in sorted({w for w, _ in rows}):
        fig, ax = plt.subplots(figsize=(6, 4))
        for sys_ in SYSTEMS:
            pts = sorted(
                (c, m["output_throughput"], m["e2el_ms"]["p50"] / 1000)
                for (w, c), g in rows.items() if w == wl
                for s, m in g.items() if s == sys_
            )
            if not pts:
                continue
            ax.plot([p[1] for p in pts], [p[2] for p in pts], marker="o", label=sys_)
            for c, x, y in pts:
                ax.annotate(f"c={c}", (x, y), fontsize=7)
        ax.set_xlabel("output tokens/s")
        ax.set_ylabel("median end-to-end latency (s)")
        ax.set_title(f"throughput vs latency — {wl}")
        ax.grid(True, alpha=0.3)
        ax.legend()
        name = f"curve-{wl}.png"
        fig.tight_layout()
        fig.savefig(os.path.join(d, name), dpi=110)
        plt.close(fig)
        lines.append(f"![{wl}]({name})")
    return lines


def single_stream(d):
    out = []
    lb = os.path.join(d, "llama-bench.json")
    cs = os.path.join(d, "corvid-single-stream.json")
    if not (os.path.exists(lb) or os.path.exists(cs)):
        return out
    out.append("## Single stream (pp128 / tg128, 2 threads)\n")
    out.append("| system | prefill t/s | decode t/s |")
    out.append("|---|---:|---:|")
    ll = {}
    if os.path.exists(lb):
        for t in load(lb):
            kind = "pp" if t.get("n_prompt", 0) > 0 else "tg"
            ll[kind] = (t["avg_ts"], t["stddev_ts"])
        out.append(f"| llama.cpp llama-bench | {ll['pp'][0]:.1f} ± {ll['pp'][1]:.1f} | {ll['tg'][0]:.1f} ± {ll['tg'][1]:.1f} |")
    if os.path.exists(cs):
        s = load(cs)["single_stream"]
        out.append(f"| corvid | {s['prefill_tps_mean']:.1f} ± {s['prefill_tps_std']:.1f} | {s['decode_tps_mean']:.1f} ± {s['decode_tps_std']:.1f} |")
        if ll:
            out.append(f"\ncorvid / llama.cpp: prefill {s['prefill_tps_mean'] / ll['pp'][0]:.2f}x, decode {s['decode_tps_mean'] / ll['tg'][0]:.2f}x")
    out.append("")
    return out


def engine_arg(args, name):
    """One field of the EngineArgs debug string (which also names the model's path, never
    copied into results.md)."""
    m = re.search(rf"\b{name}: ([^,}}]+)", args or "")
    return m.group(1).strip() if m else "?"


def offline(d):
    """Summaries of `corvid bench throughput --result-json` files (modes throughput and
    prefix-ttft; single-stream is reported above)."""
    tput, ttft = [], []
    for p in sorted(glob.glob(os.path.join(d, "*.json"))):
        name = os.path.basename(p)
        if name.startswith(("serve-", "llama-bench", "kernels-", "single-stream-")) or name == "corvid-single-stream.json":
            continue
        try:
            r = load(p)
        except (OSError, ValueError):
            continue
        if not isinstance(r, dict):
            continue
        if r.get("mode") == "throughput" and r.get("throughput"):
            tput.append((name, r))
        elif r.get("mode") == "prefix-ttft" and r.get("prefix_ttft"):
            ttft.append((name, r))
    out = []
    if tput:
        out.append("## Offline engine (`corvid bench throughput`)\n")
        out.append("| run (result file) | workload | prompts | batching | KV memory | wall (s) | in / out tokens | req/s | out tok/s | total tok/s | peak running | peak blocks | preemptions | TTFT mean / p50 / p99 (ms) |")
        out.append("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, r in tput:
            w, t, a = r["workload"], r["throughput"], r.get("engine_args")
            lens = (f"{w['prompt_len_range'][0]}–{w['prompt_len_range'][1]} / {w['output_len_range'][0]}–{w['output_len_range'][1]}"
                    if w.get("prompt_len_range") and w.get("output_len_range")
                    else ("default lengths" if w["workload"] == "sharegpt" else f"{w['input_len']} / {w['output_len']}"))
            kv = engine_arg(a, "kv_cache_memory")
            kv = re.sub(r"Bytes\((\d+)\)", lambda m: f"{int(m.group(1)) / 2**20:.0f} MiB", kv)
            batching = "`--no-batching`" if engine_arg(a, "no_batching") == "true" else "continuous"
            out.append(
                f"| `{name}` | {w['workload']} ({lens}) | {t['num_requests']} | {batching} | {kv} | {t['elapsed_s']:.1f} | "
                f"{t['total_input_tokens']} / {t['total_output_tokens']} | {t['requests_per_s']:.2f} | "
                f"{t['output_tokens_per_s']:.1f} | {t['total_tokens_per_s']:.1f} | {t['peak_running']} | "
                f"{t['peak_blocks_used']} | {t['preemptions']} | "
                f"{t['ttft_ms']['mean']:.0f} / {t['ttft_ms']['p50']:.0f} / {t['ttft_ms']['p99']:.0f} |"
            )
        out.append("")
        out.append("KV capacity (blocks of 16 tokens; contiguous = one max_model_len slot per sequence, "
                   "paged = requests of this workload that fit at their actual length):\n")
        out.append("| run (result file) | KV blocks | max_model_len | mean blocks / request | contiguous max seqs | paged max seqs | all fit | paged / contiguous |")
        out.append("|---|---:|---:|---:|---:|---:|---|---:|")
        for name, r in tput:
            k = r["throughput"].get("kv_capacity")
            if k:
                out.append(f"| `{name}` | {k['blocks_total']} | {k['max_model_len']} | {k['mean_blocks_per_request']:.2f} | "
                           f"{k['contiguous_max_seqs']} | {k['paged_max_seqs']} | {'yes' if k['paged_all_fit'] else 'no'} | {k['ratio']:.1f}x |")
        out.append("")
    if ttft:
        out.append("## Prefix caching and TTFT (`corvid bench throughput --mode prefix-ttft`)\n")
        out.append("| run (result file) | prefix caching | engine TTFT mean / p50 / p90 / p99 / max (ms) | client TTFT mean / p50 (ms) | prompt tokens from cache |")
        out.append("|---|---|---:|---:|---:|")
        for name, r in ttft:
            x = r["prefix_ttft"]
            for side in ("on", "off"):
                s = x[side]
                e, c = s["ttft_ms"], s["client_ttft_ms"]
                out.append(f"| `{name}` | {side} | {e['mean']:.0f} / {e['p50']:.0f} / {e['p90']:.0f} / {e['p99']:.0f} / {e['max']:.0f} | "
                           f"{c['mean']:.0f} / {c['p50']:.0f} | {s['cached_tokens']} |")
        out.append("")
        for name, r in ttft:
            x, w = r["prefix_ttft"], r["workload"]
            out.append(f"`{name}`: {x['system_prompt_len']}-token shared system prompt, {x['user_len']}-token user message, "
                       f"{w['output_len']} output tokens, {x['on']['ttft_ms']['count']} requests; "
                       f"off / on: **{x['speedup_mean']:.2f}x mean, {x['speedup_p50']:.2f}x p50**")
        out.append("")
    return out


def tiers(d):
    """`bench/tiers.sh`: corvid per kernel tier (kernels, single stream, offline batching
    win) beside each llama.cpp build's llama-bench."""
    ss = {os.path.basename(p)[len("single-stream-"):-5]: load(p)["single_stream"]
          for p in sorted(glob.glob(os.path.join(d, "single-stream-*.json")))}
    if not ss:
        return []
    lb = {}
    for p in sorted(glob.glob(os.path.join(d, "llama-bench-*.json"))):
        v = {}
        for t in load(p):
            v["pp" if t.get("n_prompt", 0) > 0 else "tg"] = (t["avg_ts"], t["stddev_ts"])
        lb[os.path.basename(p)[len("llama-bench-"):-5]] = v
    out = ["## Kernel tiers side by side (`bench/tiers.sh`)\n"]
    out.append("### Single stream (pp128 / tg128)\n")
    out.append("| system | prefill t/s | decode t/s |" + "".join(f" prefill / llama.cpp {b} | decode / llama.cpp {b} |" for b in lb))
    out.append("|---|---:|---:|" + "---:|---:|" * len(lb))
    for b, v in lb.items():
        out.append(f"| llama.cpp ({b} build) | {v['pp'][0]:.1f} ± {v['pp'][1]:.1f} | {v['tg'][0]:.1f} ± {v['tg'][1]:.1f} |" + " | |" * len(lb))
    for tier, x in ss.items():
        row = f"| corvid, tier {tier} | {x['prefill_tps_mean']:.1f} ± {x['prefill_tps_std']:.1f} | {x['decode_tps_mean']:.1f} ± {x['decode_tps_std']:.1f} |"
        for v in lb.values():
            row += f" **{x['prefill_tps_mean'] / v['pp'][0]:.2f}x** | **{x['decode_tps_mean'] / v['tg'][0]:.2f}x** |"
        out.append(row)
    out.append("")
    out.append("### Batching win, issue #3's offline mix (prompts 32–512, outputs 32–256, seed 0)\n")
    out.append("| tier | batched out tok/s | `--no-batching` out tok/s | ratio |")
    out.append("|---|---:|---:|---:|")
    for tier in ss:
        f = lambda m: os.path.join(d, f"offline-{tier}-{m}.json")
        if os.path.exists(f("batched")) and os.path.exists(f("nobatch")):
            b, n = (load(f(m))["throughput"]["output_tokens_per_s"] for m in ("batched", "nobatch"))
            out.append(f"| {tier} | {b:.1f} | {n:.1f} | **{b / n:.2f}x** |")
    out.append("")
    for p in sorted(glob.glob(os.path.join(d, "kernels-*.json"))):
        k = load(p)
        wide = (f"; 512-bit `vpdpbusd` {k['peak_gmacs_512']:.1f} (the limit of the x16 kernel, against which its % is given)"
                if k.get("peak_gmacs_512") else "")
        out.append(f"### `corvid bench kernels`, tier {k['tier']}, {k['threads']} threads\n")
        out.append(f"int8 peak {k['peak_gmacs_per_core']:.1f} GMAC/s per core, {k['peak_gmacs']:.1f} on all cores{wide}; "
                   f"read bandwidth {k['read_gbytes_per_s']:.1f} GB/s over 512 MiB. One forward's matrices of the default model's shapes "
                   "(30 layers + output head), random weights; % of bandwidth is of reading as many bytes as the "
                   "forward's weights (the last-level cache's rate when it holds them):\n")
        out.append("| format | m | ms / forward | GMAC/s | weight GB/s | % of int8 peak | read GB/s at the weights' size | % of bandwidth |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for g in k["gemm"]:
            # The sixteen-row kernel's limit is the 512-bit peak (files written before
            # `corvid bench kernels` said so themselves hold the 256-bit fraction).
            peak = k["peak_gmacs_512"] if "x16" in g["format"] and k.get("peak_gmacs_512") else k["peak_gmacs"]
            roof = g.get("footprint_read_gbytes_per_s", k["read_gbytes_per_s"])
            out.append(f"| {g['format']} | {g['m']} | {g['seconds'] * 1e3:.2f} | {g['gmacs']:.1f} | {g['gbytes_per_s']:.2f} | "
                       f"{100 * g['gmacs'] / peak:.1f} % | {roof:.1f} | {100 * g['of_bandwidth']:.1f} % |")
        out.append("")
    return out


def profiles(d):
    """`bench/profile.sh`: perf samples grouped by what the code does, per run."""
    runs = []
    for p in sorted(glob.glob(os.path.join(d, "profile-*.txt"))):
        with open(p) as f:
            line = f.read().strip()
        if line:
            runs.append(json.loads(line))
    if not runs:
        return []
    groups = []
    for r in runs:
        for g in r["groups"]:
            if g not in groups:
                groups.append(g)
    out = ["## Where the time goes (`bench/profile.sh`, perf self time, share of samples)\n"]
    out.append("| what | " + " | ".join(f"{r['name']} ({r['samples']} samples)" for r in runs) + " |")
    out.append("|---|" + "---:|" * len(runs))
    for g in groups:
        out.append(f"| {g} | " + " | ".join(f"{r['groups'].get(g, 0):.1f} %" for r in runs) + " |")
    out.append("")
    for r in runs:
        out.append(f"Top symbols, {r['name']}: " + "; ".join(f"{p:.1f} % `{s}`" for p, s in r["top"][:8]))
        out.append("")
    return out


def metrics_sections(d):
    out = []
    mo = os.path.join(d, "metrics-overhead.md")
    if os.path.exists(mo):
        out.append("## Metrics overhead (`bench/metrics_overhead.sh`)\n")
        out.append(open(mo).read().strip())
        out.append("")
    cs = os.path.join(d, "metrics-cpu-share.txt")
    if os.path.exists(cs):
        out.append("## CPU share of metrics code (`bench/metrics_cpu_share.sh`, perf)\n")
        out.append(open(cs).read().strip())
        out.append("")
    return out


def main():
    raw = sys.argv[1]
    d = sys.argv[2] if len(sys.argv) > 2 else raw
    os.makedirs(d, exist_ok=True)
    md = [f"# Benchmark results — {os.path.basename(os.path.normpath(d))}\n"]
    for p in sorted(glob.glob(os.path.join(d, "env-*.json"))):
        e = load(p)
        md.append(f"- `{os.path.basename(p)}`: commit {e['commit']}, {e['cpu']}, {e['nproc']} cores, "
                  f"{e['threads']} threads, {e['mem_gib']} GiB, load avg at start {e['loadavg_at_start']}, "
                  f"model {e['model']}, {e['date_utc']}"
                  + (f", sampling temperature {e['temperature']}" if e.get("temperature", "0") != "0" else ""))
    md.append("")
    md += single_stream(raw)
    md += tiers(raw)
    md += profiles(raw)
    rows = serve_results(raw)
    if rows:
        md.append("## Serving race (corvid bench serve, streaming, ignore_eos)\n")
        md += serve_tables(rows)
        md += serve_stats(rows)
        md += plots(rows, d)
        md.append("")
    md += offline(raw)
    md += metrics_sections(raw)
    while md and md[-1] == "":
        md.pop()
    with open(os.path.join(d, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
