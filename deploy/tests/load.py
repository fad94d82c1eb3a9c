#!/usr/bin/env python3
"""Bounded load generator for corvid's OpenAI-compatible API (loopback only).

  load.py --url http://127.0.0.1:PORT --model NAME [--concurrency 16] [--max-seconds 90]
          [--max-requests 400] [--max-tokens 64] [--stream] [--chat] [--stop-file PATH]
          [--request-timeout 60] [--latencies PATH]

Runs `concurrency` workers, each sending one request after another until --max-seconds
pass, --max-requests were sent, or --stop-file exists. Prints one JSON summary line:
{"sent", "ok", "failed", "statuses", "stream_ok", "request_ids_echoed", "errors"}.
With --stream each response must be text/event-stream with `data:` events ending in
`data: [DONE]` to count as stream_ok. With --latencies, each request also appends a JSON
line {"start", "end", "seconds", "ok"} (wall-clock Unix seconds, as Prometheus' query
times) to PATH, so a caller can compare its own RPS and latencies with Prometheus'.
Exits 0 (the caller judges the summary).
"""
import argparse
import http.client
import json
import os
import threading
import time
import urllib.parse
import uuid

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--model", required=True)
ap.add_argument("--concurrency", type=int, default=16)
ap.add_argument("--max-seconds", type=float, default=90)
ap.add_argument("--max-requests", type=int, default=400)
ap.add_argument("--max-tokens", type=int, default=64)
ap.add_argument("--stream", action="store_true")
ap.add_argument("--chat", action="store_true")
ap.add_argument("--stop-file")
ap.add_argument("--request-timeout", type=float, default=60)
ap.add_argument("--latencies")
a = ap.parse_args()

u = urllib.parse.urlparse(a.url)
assert u.hostname in ("127.0.0.1", "localhost", "::1"), "load.py only targets loopback"
deadline = time.time() + a.max_seconds
lock = threading.Lock()
stats = {"sent": 0, "ok": 0, "failed": 0, "statuses": {}, "stream_ok": 0,
         "request_ids_echoed": 0, "errors": []}
PROMPTS = [
    "Write a short story about a crow who learns to count.",
    "Explain what a KV cache is, in three sentences.",
    "List five uses of a paperclip.",
    "请用三句话介绍一下你自己。",
]


def stop():
    return time.time() >= deadline or (a.stop_file and os.path.exists(a.stop_file))


def take():
    with lock:
        if stats["sent"] >= a.max_requests:
            return None
        stats["sent"] += 1
        return stats["sent"]


def one(i):
    prompt = PROMPTS[i % len(PROMPTS)]
    if a.chat:
        path = "/v1/chat/completions"
        body = {"model": a.model, "messages": [{"role": "user", "content": prompt}]}
    else:
        path = "/v1/completions"
        body = {"model": a.model, "prompt": prompt}
    body.update({"max_tokens": a.max_tokens, "temperature": 0.8, "stream": a.stream})
    rid = f"load-{uuid.uuid4().hex[:16]}"
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=a.request_timeout)
    start, ok = time.time(), False
    try:
        c.request("POST", path, body=json.dumps(body),
                  headers={"Content-Type": "application/json", "X-Request-Id": rid})
        r = c.getresponse()
        data = r.read()
        ok = 200 <= r.status < 300
        stream_ok = False
        if ok and a.stream:
            events = [ln[5:].strip() for ln in data.decode(errors="replace").splitlines() if ln.startswith("data:")]
            stream_ok = (r.getheader("Content-Type", "").startswith("text/event-stream")
                         and len(events) >= 2 and events[-1] == "[DONE]")
        with lock:
            stats["statuses"][str(r.status)] = stats["statuses"].get(str(r.status), 0) + 1
            stats["ok" if ok else "failed"] += 1
            stats["stream_ok"] += int(stream_ok)
            stats["request_ids_echoed"] += int(r.getheader("X-Request-Id") == rid)
            if not ok and len(stats["errors"]) < 5:
                stats["errors"].append(f"{r.status}: {data[:200]!r}")
    except Exception as e:  # noqa: BLE001 - any failure is counted, the run goes on
        with lock:
            stats["failed"] += 1
            if len(stats["errors"]) < 5:
                stats["errors"].append(repr(e)[:200])
    finally:
        c.close()
        if a.latencies:
            end = time.time()
            with lock, open(a.latencies, "a", encoding="utf-8") as f:
                f.write(json.dumps({"start": start, "end": end, "seconds": end - start, "ok": ok}) + "\n")


def worker():
    while not stop():
        i = take()
        if i is None:
            return
        one(i)


threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.concurrency)]
for t in threads:
    t.start()
for t in threads:
    t.join(a.max_seconds + a.request_timeout + 5)
print(json.dumps(stats, ensure_ascii=False), flush=True)
