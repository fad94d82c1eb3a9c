#!/usr/bin/env python3
"""Routing and inhibition of deploy/alertmanager/alertmanager.yml on a real Alertmanager.

Expects an Alertmanager already running (started by run.sh) with the loopback copy of the
config (render.py alertmanager --fast: every receiver is a webhook to the local
webhook_receiver.py, tagged with its name; routes and inhibit rules unchanged).

usage: test_alertmanager.py AM_URL WEBHOOK_LOG
Posts alerts through Alertmanager's API and checks
  - severity=critical -> oncall-critical, warning -> team-warning, other -> default-webhook
  - CorvidInstanceDown on an instance inhibits that instance's other alerts (only that one)
  - a critical alert inhibits the warning alert of the same name on the same instance
Prints PASS/FAIL lines; exits 1 on any failure.
"""
import datetime
import json
import sys
import time
import urllib.request

AM, LOG = sys.argv[1].rstrip("/"), sys.argv[2]
results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'} alertmanager: {name}" + (f" -- {detail}" if detail and not ok else ""),
          flush=True)


def post(alerts):
    now = datetime.datetime.now(datetime.timezone.utc)
    body = [{"labels": a, "annotations": {"summary": "test"},
             "startsAt": now.isoformat(), "endsAt": (now + datetime.timedelta(minutes=5)).isoformat()}
            for a in alerts]
    req = urllib.request.Request(f"{AM}/api/v2/alerts", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=5).read()


def alerts():
    with urllib.request.urlopen(f"{AM}/api/v2/alerts", timeout=5) as r:
        return json.load(r)


def notifications():
    try:
        with open(LOG, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def wait_for(pred, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.3)
    return pred()


base = {"job": "corvid", "model_name": "m"}
post([
    {**base, "alertname": "CorvidRequestErrors", "severity": "critical", "instance": "r1:8000"},
    {**base, "alertname": "HighWaitingRequests", "severity": "warning", "instance": "r2:8000"},
    {**base, "alertname": "SomethingElse", "instance": "r3:8000"},
])


def receivers_for():
    got = {}
    for n in notifications():
        for a in n.get("alerts", []):
            got[a["labels"]["alertname"]] = (n["receiver"], n["_url_receiver"])
    return got if len(got) >= 3 else None


got = wait_for(receivers_for) or {}
check("critical alerts go to oncall-critical",
      got.get("CorvidRequestErrors") == ("oncall-critical",) * 2, got)
check("warning alerts go to team-warning", got.get("HighWaitingRequests") == ("team-warning",) * 2, got)
check("alerts without severity go to default-webhook", got.get("SomethingElse") == ("default-webhook",) * 2, got)
grouped = all(len({(a["labels"]["alertname"], a["labels"]["instance"]) for a in n["alerts"]}) == 1
              for n in notifications())
check("notifications are grouped by alertname and instance", grouped)

# ---- inhibition -----------------------------------------------------------------------
post([
    {"job": "corvid", "alertname": "CorvidInstanceDown", "severity": "critical", "instance": "down:8000"},
    {**base, "alertname": "CorvidKVCacheNearlyFull", "severity": "warning", "instance": "down:8000"},
    {**base, "alertname": "CorvidThroughputStalled", "severity": "critical", "instance": "down:8000"},
    {**base, "alertname": "CorvidKVCacheNearlyFull", "severity": "warning", "instance": "up:8000"},
    {**base, "alertname": "CorvidPreemptionSpike", "severity": "critical", "instance": "crit:8000"},
    {**base, "alertname": "CorvidPreemptionSpike", "severity": "warning", "instance": "crit:8000"},
])


def state():
    s = {}
    for a in alerts():
        key = (a["labels"]["alertname"], a["labels"]["instance"], a["labels"].get("severity"))
        s[key] = (a["status"]["state"], bool(a["status"]["inhibitedBy"]))
    return s


def settled():
    s = state()
    return s if s.get(("CorvidKVCacheNearlyFull", "down:8000", "warning"), ("", False))[1] else None


s = wait_for(settled, 10) or state()
check("instance down inhibits that instance's warning alerts",
      s.get(("CorvidKVCacheNearlyFull", "down:8000", "warning")) == ("suppressed", True), s)
check("instance down inhibits that instance's critical alerts",
      s.get(("CorvidThroughputStalled", "down:8000", "critical")) == ("suppressed", True), s)
check("instance down itself stays active",
      s.get(("CorvidInstanceDown", "down:8000", "critical")) == ("active", False), s)
check("other instances are not inhibited",
      s.get(("CorvidKVCacheNearlyFull", "up:8000", "warning")) == ("active", False), s)
check("a critical alert inhibits the warning of the same name on the same instance",
      s.get(("CorvidPreemptionSpike", "crit:8000", "warning")) == ("suppressed", True)
      and s.get(("CorvidPreemptionSpike", "crit:8000", "critical")) == ("active", False), s)

print(f"alertmanager: {sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) else 1)
