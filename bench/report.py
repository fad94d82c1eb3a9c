#!/usr/bin/env python3
"""Turns one results folder of bench/race.sh and bench/single_stream.sh into results.md
(tables with the ratios that matter) and PNG throughput-vs-latency curves.

Usage: report.py RESULTS_DIR
Reads serve-<system>-<workload>-c<conc>.json (corvid bench serve --result-json),
llama-bench.json, corvid-single-stream.json, corvid-*.json from bench throughput, env-*.json.
"""
import glob
import json
import os
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
        rows.setdefault(key, {})[r.get("label") or os.path.basename(p)] = r["metrics"]
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


def plots(rows, d):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["(matplotlib not available: no plots)"]
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
            out.append(f"\ncorvid / llama.cpp: prefill {s['prefill_tps_mean'] / ll['pp'][0]:.2f}x, decode {s['decode_tps_mean'] / ll['tg'][0]:.2f}x\n")
    return out


def main():
    d = sys.argv[1]
    md = [f"# Benchmark results — {os.path.basename(os.path.normpath(d))}\n"]
    for p in sorted(glob.glob(os.path.join(d, "env-*.json"))):
        e = load(p)
        md.append(f"- `{os.path.basename(p)}`: commit {e['commit']}, {e['cpu']}, {e['nproc']} cores, "
                  f"{e['threads']} threads, {e['mem_gib']} GiB, load avg at start {e['loadavg_at_start']}, "
                  f"model {e['model']}, {e['date_utc']}")
    md.append("")
    md += single_stream(d)
    rows = serve_results(d)
    if rows:
        md.append("## Serving race (corvid bench serve, streaming, ignore_eos)\n")
        md += serve_tables(rows)
        md += plots(rows, d)
    with open(os.path.join(d, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
