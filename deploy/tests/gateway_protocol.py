#!/usr/bin/env python3
"""The Gateway API Inference Extension's model server protocol, read as its endpoint
picker reads it (e2e.sh, phase d).

  gateway_protocol.py --url CORVID --model NAME --concurrency C --max-num-seqs N [--seconds 10]

The protocol (kubernetes-sigs/gateway-api-inference-extension,
docs/proposals/003-model-server-protocol) asks a model server's Prometheus endpoint for
gauges `vllm:num_requests_waiting`, `vllm:num_requests_running` and
`vllm:kv_cache_usage_perc` (0-1), optionally `vllm:cache_config_info{block_size,
num_gpu_blocks}`, and `vllm:lora_requests_info{max_lora, running_lora_adapters,
waiting_lora_adapters}` whose value is its update time; the picker scrapes every 50 ms and
treats data older than 2 s as stale.

This runs a closed loop of C streaming requests for --seconds while polling /metrics at
20 Hz, and checks at every scrape: the types and label sets above; waiting >= 0,
0 <= running <= N, running + waiting <= C (a closed loop of C never has more on the
server), usage within 0-1; block_size and num_gpu_blocks positive integers; the LoRA
timestamp within 2 s of the scrape and never going back. Over the run: the load shows
(running + waiting > 0 in most scrapes), every scrape answers well inside the picker's 2 s
staleness budget (p50/p99 printed), and the gauges follow the engine: the loop's end
reads as 0 running and 0 waiting within two polls (100 ms) of the last response.
Prints PASS/FAIL lines; exits 1 on failure.
"""
import argparse
import json
import re
import threading
import time
import urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--model", required=True)
ap.add_argument("--concurrency", type=int, required=True)
ap.add_argument("--max-num-seqs", type=int, required=True)
ap.add_argument("--seconds", type=float, default=10)
a = ap.parse_args()

ok_all = True


def report(ok, name, detail=""):
    global ok_all
    ok_all &= bool(ok)
    print(f"{'PASS' if ok else 'FAIL'} e2e: {name}{' -- ' + detail if detail and not ok else ''}", flush=True)


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{name: (type, [(labels dict, value)])} of the text exposition format."""
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            if m:
                samples.setdefault(m.group(1), []).append((dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return {n: (types.get(n), s) for n, s in samples.items()}


# ---- the closed loop -------------------------------------------------------------------------
stop = threading.Event()
state = {"done": 0, "errors": 0, "last_end": 0.0}
lock = threading.Lock()


def worker():
    body = json.dumps({"model": a.model, "prompt": "Count slowly from one to twenty:", "max_tokens": 24,
                       "temperature": 0, "stream": True}).encode()
    while not stop.is_set():
        req = urllib.request.Request(f"{a.url}/v1/completions", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                for _ in r:
                    pass
            err = 0
        except OSError:
            err = 1
        with lock:
            state["done"] += 1
            state["errors"] += err
            state["last_end"] = time.time()


threads = [threading.Thread(target=worker) for _ in range(a.concurrency)]
for t in threads:
    t.start()

# ---- 20 Hz polling -------------------------------------------------------------------------
problems, costs, loaded, scrapes = [], [], 0, 0
last_lora = 0.0
t_stop = time.time() + a.seconds
after = []  # (scrape start, running, waiting) once every request has returned
joined_at = None
while True:
    t0 = time.time()
    if t0 >= t_stop and not stop.is_set():
        stop.set()
        for t in threads:
            t.join()
        joined_at = time.time()
        t0 = time.time()
    with urllib.request.urlopen(f"{a.url}/metrics", timeout=5) as r:
        fams = parse(r.read().decode())
    cost = time.time() - t0
    costs.append(cost)
    scrapes += 1
    vals = {}
    for name in ("vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"):
        kind, samples = fams.get(name, (None, []))
        if kind != "gauge" or len(samples) != 1:
            problems.append(f"{name}: type {kind}, {len(samples)} series")
            continue
        vals[name] = samples[0][1]
    run_, wait_ = vals.get("vllm:num_requests_running", -1), vals.get("vllm:num_requests_waiting", -1)
    usage = vals.get("vllm:kv_cache_usage_perc", -1)
    if not (0 <= run_ <= a.max_num_seqs and wait_ >= 0 and run_ == int(run_) and wait_ == int(wait_)):
        problems.append(f"running {run_}, waiting {wait_} (max-num-seqs {a.max_num_seqs})")
    if joined_at is None and run_ + wait_ > a.concurrency:
        problems.append(f"running + waiting = {run_ + wait_} > {a.concurrency} clients")
    if not 0 <= usage <= 1:
        problems.append(f"kv_cache_usage_perc {usage}")
    kind, cc = fams.get("vllm:cache_config_info", (None, []))
    if kind != "gauge" or len(cc) != 1 or not all(cc[0][0].get(k, "").isdigit() and int(cc[0][0][k]) > 0
                                                  for k in ("block_size", "num_gpu_blocks")):
        problems.append(f"cache_config_info: {kind} {cc}")
    kind, lora = fams.get("vllm:lora_requests_info", (None, []))
    if kind != "gauge" or len(lora) != 1 or set(lora[0][0]) - {"engine", "model_name"} != {
            "max_lora", "running_lora_adapters", "waiting_lora_adapters"}:
        problems.append(f"lora_requests_info: {kind} {lora}")
    else:
        ts = lora[0][1]
        if abs(ts - t0) > 2 or ts < last_lora:
            problems.append(f"lora_requests_info timestamp {ts:.3f} at scrape {t0:.3f} (previous {last_lora:.3f})")
        last_lora = ts
    if joined_at is None:
        loaded += run_ + wait_ > 0
    else:
        after.append((t0, run_, wait_))
        if len(after) >= 3:
            break
    time.sleep(max(0.0, 0.05 - (time.time() - t0)))

costs.sort()
p50, p99 = costs[len(costs) // 2], costs[min(len(costs) - 1, int(0.99 * len(costs)))]
under = scrapes - len(after)
report(not problems, f"{scrapes} scrapes at 20 Hz under a closed loop of {a.concurrency}: the protocol's gauges, "
       "their types, label sets and ranges hold at every one", "; ".join(problems[:4]))
report(state["done"] > 0 and state["errors"] == 0 and loaded >= 0.8 * under,
       f"the load shows: running + waiting > 0 in {loaded} of {under} scrapes ({state['done']} requests, none failed)",
       json.dumps(state))
report(costs[-1] < 1.0, f"every scrape answers well inside the picker's 2 s staleness budget "
       f"(p50 {1000 * p50:.1f} ms, p99 {1000 * p99:.1f} ms, worst {1000 * costs[-1]:.1f} ms)")
zero = [x for x in after[:2] if x[1] == 0 and x[2] == 0]
report(bool(zero), "the gauges follow the engine: 0 running and 0 waiting within two polls of the loop's last response",
       json.dumps(after))
raise SystemExit(0 if ok_all else 1)
