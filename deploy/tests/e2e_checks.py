#!/usr/bin/env python3
"""Checks used by e2e.sh. Each subcommand prints PASS/FAIL lines and exits 1 on failure.

  notification LOG --alertname A --status firing|resolved --timeout S
               [--label k=v ...] [--annotation-regex k=REGEX ...] [--receiver R]
      waits (bounded) for an Alertmanager webhook notification (webhook_receiver.py log)
      holding alert A with that status, then checks its labels/annotations/receiver.
  no-notification LOG --alertname A --label k=v
      no notification ever held alert A with these labels.
  prom PROM_URL EXPR --timeout S [--min-series N] [--label-set LABEL=v1,v2] [--name TEXT]
      waits until the instant query returns >= N series (and, with --label-set, series
      covering each listed value of LABEL).
  load SUMMARY_JSON --min-ok N [--max-failed-ratio R] [--stream] [--ids] --name TEXT
      judges a load.py summary.
  metrics METRICS_URL --docs docs/metrics.md
      the live /metrics exposes the names of docs/metrics.md (event counters that did not
      happen yet excepted), each sample carrying model_name.
  http URL --status CODE [--header-echo X-Request-Id] [--post JSON] [--error-code C]
       [--list-models a,b] --name TEXT
      with --post, POSTs that JSON body; with --error-code, the answer must be an OpenAI
      error body {"error": {"code": C}}; with --list-models, an OpenAI model list holding
      exactly these ids, each once.
  served OUT --replica MODEL=METRICS_URL ...
      records what each replica served so far (its own counters: finished requests,
      HTTP 404s) in OUT.
  routed BEFORE --replica MODEL=METRICS_URL ... --load MODEL=SUMMARY_JSON ... --min-ok N
      since BEFORE, each replica finished exactly the requests its model's load got
      answered (so none of another model's requests reached it) and answered no 404.
"""
import argparse
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ok_all = True


def report(ok, name, detail=""):
    global ok_all
    ok_all &= bool(ok)
    print(f"{'PASS' if ok else 'FAIL'} e2e: {name}" + (f" -- {detail}" if detail and not ok else ""), flush=True)


def read_log(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def find(path, alertname, status, labels):
    for n in read_log(path):
        for al in n.get("alerts", []):
            if al["labels"].get("alertname") == alertname and al["status"] == status and \
                    all(al["labels"].get(k) == v for k, v in labels.items()):
                return n, al
    return None


def kv(items):
    return dict(i.split("=", 1) for i in items or [])


def cmd_notification(a):
    labels = kv(a.label)
    end = time.time() + a.timeout
    hit = None
    while time.time() < end and not hit:
        hit = find(a.log, a.alertname, a.status, labels)
        if not hit:
            time.sleep(0.5)
    report(bool(hit), f"{a.alertname} {a.status} notification received with labels {labels}",
           f"none within {a.timeout}s; got {[(al['labels'], al['status']) for n in read_log(a.log) for al in n['alerts']]}")
    if not hit:
        return
    n, al = hit
    for k, rx in kv(a.annotation_regex).items():
        v = al["annotations"].get(k, "")
        report(re.fullmatch(rx, v) is not None, f"{a.alertname} annotation {k} = {v!r}", f"want /{rx}/")
    if a.receiver:
        report(n["receiver"] == a.receiver, f"{a.alertname} routed to {a.receiver}", n["receiver"])


def cmd_no_notification(a):
    labels = kv(a.label)
    hit = find(a.log, a.alertname, "firing", labels)
    report(not hit, f"no {a.alertname} for {labels}", json.dumps(hit[1]["labels"]) if hit else "")


def query(prom, expr):
    url = f"{prom.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except (OSError, ValueError) as e:
        return {"status": "error", "error": str(e)}


def cmd_prom(a):
    end = time.time() + a.timeout
    want_label, want_vals = (a.label_set.split("=", 1) if a.label_set else (None, ""))
    want_vals = set(filter(None, want_vals.split(",")))
    last = None
    while True:
        last = query(a.prom, a.expr)
        res = last.get("data", {}).get("result", []) if last.get("status") == "success" else []
        got_vals = {s["metric"].get(want_label) for s in res} if want_label else set()
        if len(res) >= a.min_series and want_vals <= got_vals:
            report(True, a.name or a.expr)
            return
        if time.time() >= end:
            break
        time.sleep(1)
    report(False, a.name or a.expr, f"{a.expr} -> {json.dumps(last)[:400]}")


def cmd_load(a):
    s = json.load(open(a.summary))
    total = s["ok"] + s["failed"]
    report(s["ok"] >= a.min_ok and total and s["failed"] / total <= a.max_failed_ratio,
           f"{a.name}: {s['ok']} ok / {s['failed']} failed", json.dumps(s)[:400])
    if a.stream:
        report(s["stream_ok"] == s["ok"] and s["ok"] > 0,
               f"{a.name}: every streamed response is SSE ending in [DONE] ({s['stream_ok']}/{s['ok']})")
    if a.ids:
        report(s["request_ids_echoed"] == s["ok"] and s["ok"] > 0,
               f"{a.name}: X-Request-Id passed through and echoed ({s['request_ids_echoed']}/{s['ok']})")


EVENTS = {"vllm_preemptions_total", "vllm_request_timeout_total", "vllm_request_aborted_total",
          "vllm:num_preemptions_total"}


def cmd_metrics(a):
    doc = open(a.docs, encoding="utf-8").read()
    names = set(re.findall(r"`(vllm[_:][a-z0-9_:]+)[`{]", doc))
    try:
        with urllib.request.urlopen(a.url, timeout=10) as r:
            text = r.read().decode()
    except OSError as e:
        report(False, "live /metrics readable", str(e))
        return
    samples = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    present = {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", ln).group(0) for ln in samples}
    base = {re.sub(r"_(bucket|sum|count)$", "", n) for n in present} | present
    missing = sorted(n for n in names - base if n not in EVENTS)
    report(not missing, f"live /metrics exposes the docs/metrics.md names ({len(names)})", f"missing: {missing}")
    no_model = [ln for ln in samples if ln.startswith("vllm") and "model_name=" not in ln]
    report(not no_model, "every vllm sample carries model_name", f"{no_model[:3]}")


def cmd_http(a):
    headers = {"X-Request-Id": "e2e-request-id-1"} if a.header_echo else {}
    data = None
    if a.post is not None:
        data = a.post.encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(a.url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, headers, body = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, headers, body = e.code, e.headers, e.read()
    except OSError as e:
        report(False, a.name, str(e))
        return
    ok = status == a.status
    if a.header_echo:
        ok &= headers.get(a.header_echo) == "e2e-request-id-1"
    try:
        if a.error_code:
            ok &= json.loads(body)["error"]["code"] == a.error_code
        if a.list_models:
            ids = [m["id"] for m in json.loads(body)["data"]]
            ok &= sorted(ids) == sorted(a.list_models.split(","))
    except (ValueError, KeyError, TypeError):
        ok = False
    report(ok, a.name, f"status {status}, {a.header_echo}={headers.get(a.header_echo) if a.header_echo else ''}, "
                       f"body {body[:200]!r}")


def served(url):
    """(finished requests, HTTP 404 answers) from a replica's own /metrics."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    done = not_found = 0.0
    for ln in text.splitlines():
        if ln.startswith("vllm:request_success_total{"):
            done += float(ln.rsplit(" ", 1)[1])
        elif ln.startswith("vllm_http_requests_total{") and 'status="404"' in ln:
            not_found += float(ln.rsplit(" ", 1)[1])
    return done, not_found


def cmd_served(a):
    counts = {m: served(u) for m, u in kv(a.replica).items()}
    json.dump(counts, open(a.out, "w"))
    report(True, f"counters of {sorted(counts)} recorded")


def cmd_routed(a):
    before = json.load(open(a.before))
    loads = {m: json.load(open(f)) for m, f in kv(a.load).items()}
    for model, url in kv(a.replica).items():
        want = loads[model]["ok"]
        end = time.time() + 10  # a stream's last bytes can precede the counter's update
        while True:
            done, not_found = served(url)
            got = done - before[model][0], not_found - before[model][1]
            if (got[0] == want and got[1] == 0) or time.time() >= end:
                break
            time.sleep(0.5)
        report(want >= a.min_ok and got == (want, 0),
               f"the replica of {model} finished exactly its model's {want} requests and answered no 404 "
               f"(routed by model)", f"finished {got[0]:g}, 404s {got[1]:g}, load {loads[model]}")


ap = argparse.ArgumentParser()
sub = ap.add_subparsers(dest="cmd", required=True)
p = sub.add_parser("notification")
p.add_argument("log"); p.add_argument("--alertname", required=True); p.add_argument("--status", required=True)
p.add_argument("--timeout", type=float, default=60); p.add_argument("--label", action="append")
p.add_argument("--annotation-regex", action="append"); p.add_argument("--receiver")
p = sub.add_parser("no-notification")
p.add_argument("log"); p.add_argument("--alertname", required=True); p.add_argument("--label", action="append")
p = sub.add_parser("prom")
p.add_argument("prom"); p.add_argument("expr"); p.add_argument("--timeout", type=float, default=30)
p.add_argument("--min-series", type=int, default=1); p.add_argument("--label-set"); p.add_argument("--name")
p = sub.add_parser("load")
p.add_argument("summary"); p.add_argument("--min-ok", type=int, default=1)
p.add_argument("--max-failed-ratio", type=float, default=0.0); p.add_argument("--stream", action="store_true")
p.add_argument("--ids", action="store_true"); p.add_argument("--name", required=True)
p = sub.add_parser("metrics")
p.add_argument("url"); p.add_argument("--docs", required=True)
p = sub.add_parser("http")
p.add_argument("url"); p.add_argument("--status", type=int, required=True)
p.add_argument("--header-echo"); p.add_argument("--name", required=True)
p.add_argument("--post"); p.add_argument("--error-code"); p.add_argument("--list-models")
p = sub.add_parser("served")
p.add_argument("out"); p.add_argument("--replica", action="append", required=True)
p = sub.add_parser("routed")
p.add_argument("before"); p.add_argument("--replica", action="append", required=True)
p.add_argument("--load", action="append", required=True); p.add_argument("--min-ok", type=int, default=1)
args = ap.parse_args()
{"notification": cmd_notification, "no-notification": cmd_no_notification, "prom": cmd_prom,
 "load": cmd_load, "metrics": cmd_metrics, "http": cmd_http, "served": cmd_served,
 "routed": cmd_routed}[args.cmd](args)
sys.exit(0 if ok_all else 1)
