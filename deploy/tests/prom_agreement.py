#!/usr/bin/env python3
"""Real Prometheus agrees with the client (e2e.sh, phase d).

  prom_agreement.py --prometheus URL --latencies FILE --rules ALERTS.yml
                    --concurrency C --max-num-seqs N

FILE is load.py's --latencies output of a steady closed-loop load (C workers) against a
fresh corvid (--max-num-seqs N) that Prometheus scrapes every second, alone. At the
instant T = last completion - 2 s (the 1-minute window [T-60s, T] lies inside the load):
  - Prometheus scraped OpenMetrics (its default Accept header) and stored the user's
    counter as `vllm_request_throughput` (metadata type `unknown`, no `_total` series);
  - the source document's `rate(vllm_request_throughput[1m])` is the client's completed
    requests per second in that window, within 20 %;
  - its `histogram_quantile(0.95, sum(rate(vllm_request_latency_seconds_bucket[1m])) by (le))`
    is within one bucket of the P95 of the client-measured latencies of that window;
  - HighWaitingRequests' expression: its left side (vllm_waiting_requests) is above 0
    and, with vllm_running_requests (<= N) from the same scrape, at most C — a closed loop
    of C requests never has more than C on the server — and the rule fires exactly when
    the client's C - N exceeds the threshold;
  - CorvidHighP95Latency's expression: its left side (P95 over 5m, i.e. the whole load on
    the fresh instance) is within one bucket of the client's P95 of all requests, and it
    fires exactly when the client's P95 exceeds the threshold.
Bucket bounds are read from the live series. Prints PASS/FAIL lines; exits 1 on failure.
"""
import argparse
import bisect
import json
import math
import re
import sys
import time
import urllib.parse
import urllib.request

import yaml

ap = argparse.ArgumentParser()
ap.add_argument("--prometheus", required=True)
ap.add_argument("--latencies", required=True)
ap.add_argument("--rules", required=True)
ap.add_argument("--concurrency", type=int, required=True)
ap.add_argument("--max-num-seqs", type=int, required=True)
a = ap.parse_args()

RATE = "rate(vllm_request_throughput[1m])"
P95 = "histogram_quantile(0.95, sum(rate(vllm_request_latency_seconds_bucket[1m])) by (le))"
ok_all = True


def report(ok, name, detail):
    global ok_all
    ok_all &= bool(ok)
    print(f"{'PASS' if ok else 'FAIL'} e2e: {name} -- {detail}", flush=True)


def query(expr, at):
    q = urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    with urllib.request.urlopen(f"{a.prometheus}/api/v1/query?{q}", timeout=10) as r:
        return json.load(r)["data"]["result"]


def scalar(expr, at):
    res = query(expr, at)
    assert len(res) == 1, f"{expr}: {len(res)} series"
    return float(res[0]["value"][1])


def p95(xs):
    xs = sorted(xs)
    return xs[max(0, math.ceil(0.95 * len(xs)) - 1)]


reqs = [json.loads(ln) for ln in open(a.latencies, encoding="utf-8") if ln.strip()]
done = [r for r in reqs if r["ok"]]
if len(done) < 20 or len(done) < 0.95 * len(reqs):
    report(False, "steady load", f"{len(done)} of {len(reqs)} requests succeeded")
    sys.exit(1)
T = math.floor(max(r["end"] for r in done)) - 2
first = min(r["start"] for r in reqs)
if T - 60 < first + 5:
    report(False, "steady load", f"load lasted {T - first:.0f}s, the 1m window needs > 65s")
    sys.exit(1)
while time.time() < T + 3:  # the scrapes covering T are in
    time.sleep(0.5)

# Prometheus negotiated OpenMetrics (the family's type is `unknown` only there) and still
# stores the user's counter under its own name.
with urllib.request.urlopen(f"{a.prometheus}/api/v1/metadata?metric=vllm_request_throughput", timeout=10) as r:
    meta = json.load(r)["data"].get("vllm_request_throughput", [])
renamed = query("vllm_request_throughput_total", T)
report([m["type"] for m in meta] == ["unknown"] and not renamed,
       "scraped as OpenMetrics, the series is still vllm_request_throughput",
       f"metadata {meta}, vllm_request_throughput_total series: {len(renamed)}")

bounds = sorted({float(s["metric"]["le"]) for s in query("vllm_request_latency_seconds_bucket", T)})


def bucket(v):
    return bisect.bisect_left(bounds, v)


window = [r for r in done if T - 60 < r["end"] <= T]
client_rps = len(window) / 60
prom_rps = scalar(RATE, T)
report(abs(prom_rps - client_rps) <= 0.2 * client_rps,
       f"{RATE} agrees with the client's RPS (20 %)",
       f"Prometheus {prom_rps:.3f}/s, client {client_rps:.3f}/s ({len(window)} requests in 60s)")

client_p95 = p95([r["seconds"] for r in window])
prom_p95 = scalar(P95, T)
report(abs(bucket(prom_p95) - bucket(client_p95)) <= 1,
       f"{P95} is within one bucket of the client's P95",
       f"Prometheus {prom_p95:.3f}s (bucket {bucket(prom_p95)}), client {client_p95:.3f}s "
       f"(bucket {bucket(client_p95)}), bounds {bounds}")

rules = {r["alert"]: r for g in yaml.safe_load(open(a.rules, encoding="utf-8"))["groups"]
         for r in g["rules"] if "alert" in r}


def split(expr):
    m = re.fullmatch(r"(.*?)\s*>\s*([0-9.]+)\s*", expr, re.S)
    assert m, expr
    return m.group(1), float(m.group(2))


expr = rules["HighWaitingRequests"]["expr"].strip()
lhs, threshold = split(expr)
waiting = scalar(lhs, T)
# Same scrape, same engine snapshot: the running gauge. A closed loop of C requests puts
# at most C on the server, at most N of them running. (waiting <= C - N alone does not
# hold: the snapshot published when a client's next request arrives can precede the step
# that moves a waiting request into the slot just freed.)
running = scalar("vllm_running_requests", T)
most = a.concurrency - a.max_num_seqs
report(0 < waiting and running <= a.max_num_seqs and waiting + running <= a.concurrency,
       f"HighWaitingRequests' {lhs} matches the client's closed loop",
       f"{waiting:g} waiting + {running:g} running; the client keeps {a.concurrency} in flight, "
       f"at most {a.max_num_seqs} run")
fires = bool(query(expr, T))
report(fires == (most > threshold), f"HighWaitingRequests ({expr}) fires iff the client's queue exceeds {threshold:g}",
       f"fires={fires}, client queue at most {most}")

expr = rules["CorvidHighP95Latency"]["expr"].strip()
lhs, threshold = split(expr)
all_p95 = p95([r["seconds"] for r in done if r["end"] <= T])
prom_all = scalar(lhs, T)
report(abs(bucket(prom_all) - bucket(all_p95)) <= 1,
       "CorvidHighP95Latency's P95 over 5m is within one bucket of the client's P95 of the load",
       f"Prometheus {prom_all:.3f}s, client {all_p95:.3f}s")
fires = bool(query(expr, T))
report(fires == (all_p95 > threshold), f"CorvidHighP95Latency fires iff the client's P95 exceeds {threshold:g}s",
       f"fires={fires}, client P95 {all_p95:.3f}s")
sys.exit(0 if ok_all else 1)
