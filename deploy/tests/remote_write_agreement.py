#!/usr/bin/env python3
"""Long-term storage end to end (e2e.sh, phase d).

  remote_write_agreement.py --scraper URL --receiver URL --rules FILE...

The scraper is the Prometheus that scrapes corvid; its config has the repo's
`remote_write` example enabled (render.py --remote-write), pointed at the receiver: a
second Prometheus started with --web.enable-remote-write-receiver, standing in for Thanos
Receive or Mimir. Checks:
  - the scraper sent samples and none failed;
  - at three instants of the last minute of load, the source document's PromQL, every
    recording rule's output series, every alert expression and `up` answer the same on
    the receiver as on the scraper: the same series (the receiver's carry the scraper's
    external labels, which are set aside) and the same values, bit for bit, because
    the receiver holds the very samples the scraper took;
  - the answers are not trivially equal: the document's request rate is above 0.
Prints PASS/FAIL lines; exits 1 on failure.
"""
import argparse
import json
import sys
import time
import urllib.parse
import urllib.request

import yaml

ap = argparse.ArgumentParser()
ap.add_argument("--scraper", required=True)
ap.add_argument("--receiver", required=True)
ap.add_argument("--rules", nargs="+", required=True)
ap.add_argument("--timeout", type=float, default=60)
a = ap.parse_args()

RATE = "rate(vllm_request_throughput[1m])"
P95 = "histogram_quantile(0.95, sum(rate(vllm_request_latency_seconds_bucket[1m])) by (le))"
ok_all = True


def report(ok, name, detail=""):
    global ok_all
    ok_all &= bool(ok)
    print(f"{'PASS' if ok else 'FAIL'} e2e: {name}{' -- ' + detail if detail else ''}", flush=True)


def query(base, expr, at=None):
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    with urllib.request.urlopen(f"{base}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=10) as r:
        body = json.load(r)
    if body["status"] != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def scalar(base, expr):
    r = query(base, expr)
    return float(r[0]["value"][1]) if r else None


def external_labels(base):
    with urllib.request.urlopen(f"{base}/api/v1/status/config", timeout=10) as r:
        cfg = yaml.safe_load(json.load(r)["data"]["yaml"])
    return set((cfg.get("global") or {}).get("external_labels") or {})


def as_map(result, drop):
    return {
        tuple(sorted((k, v) for k, v in s["metric"].items() if k not in drop)): s["value"][1]
        for s in result
    }


# The expressions: the document's two, each recording rule's output, each alert's expression.
exprs = [RATE, P95, "up"]
for path in a.rules:
    for group in yaml.safe_load(open(path))["groups"]:
        for rule in group["rules"]:
            exprs.append(rule["record"] if "record" in rule else rule["expr"].strip())

# Wait until the receiver holds the scraper's samples up to an instant T in the past.
t_end = time.time() - 5
deadline = time.time() + a.timeout
while True:
    latest = scalar(a.receiver, "max(timestamp(vllm_request_throughput))")
    if latest is not None and latest >= t_end:
        break
    if time.time() > deadline:
        report(False, "the receiver caught up with the scraper", f"latest sample {latest}, wanted {t_end:.0f}")
        sys.exit(1)
    time.sleep(1)
report(True, "the receiver holds the scraper's samples up to 5 s ago (remote write kept up)")

sent = scalar(a.scraper, "sum(prometheus_remote_storage_samples_total)")
failed = scalar(a.scraper, "sum(prometheus_remote_storage_samples_failed_total)")
# "dropped" counts what the example's keep-list leaves out (process_*, go_*, ...) on purpose.
dropped = scalar(a.scraper, "sum(prometheus_remote_storage_samples_dropped_total)")
report(bool(sent) and failed == 0,
       "the scraper remote-wrote its samples with none failed",
       f"sent {sent}, failed {failed}, left out by the keep-list {dropped}")

drop = external_labels(a.scraper)
rate_now = query(a.scraper, RATE, t_end)
report(any(float(s["value"][1]) > 0 for s in rate_now), "the document's request rate is above 0 at the last instant",
       json.dumps(rate_now)[:200])
bad, compared, series = [], 0, 0
for at in (t_end - 40, t_end - 20, t_end):
    for expr in exprs:
        want = as_map(query(a.scraper, expr, at), set())
        got = as_map(query(a.receiver, expr, at), drop)
        compared += 1
        series += len(want)
        if want != got:
            missing = set(want) - set(got)
            differ = [k for k in set(want) & set(got) if want[k] != got[k]]
            extra = set(got) - set(want)
            bad.append(f"{expr.splitlines()[0][:60]} at {at:.0f}: {len(missing)} missing, "
                       f"{len(differ)} differ, {len(extra)} extra")
report(not bad and series > 0,
       f"the document's PromQL, {len(exprs) - 3} rules' series/expressions and `up` answer the same on the "
       f"receiver as on the scraper ({compared} queries, {series} series)",
       "; ".join(bad[:4]))
sys.exit(0 if ok_all else 1)
