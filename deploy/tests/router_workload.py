#!/usr/bin/env python3
"""Multi-turn chat load for the router test (routers.sh): conversations whose prompt
grows turn by turn, so a replica that served a conversation's last turn holds most of
its next prompt in its prefix cache.

  router_workload.py --url ROUTER --model NAME --seed S [--conversations 12] [--turns 4]
                     [--max-tokens 16] [--replicas URL,URL,...] [--kill-after N --kill-pid PID]

Each conversation starts from its own system prompt (~250 tokens of words drawn with
--seed, so runs with different seeds share nothing) and runs its turns one after another
(streaming, greedy); all conversations run at once. With --replicas, each replica's
vllm:prefix_cache_hits_total and vllm:prefix_cache_queries_total are read before and after,
and the hit rate of the run is their summed increase. With --kill-pid, that process is
killed (SIGKILL) once --kill-after requests have completed, and requests are split into
those in flight at that moment and those started later.

Prints one JSON line: requests, errors, TTFT p50/p99 (s), output tokens/s, hit rate, and
with a kill, errors among the requests in flight then and among those started later.
"""
import argparse
import json
import os
import random
import re
import signal
import threading
import time
import urllib.request

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--model", required=True)
ap.add_argument("--seed", type=int, required=True)
ap.add_argument("--conversations", type=int, default=12)
ap.add_argument("--turns", type=int, default=4)
ap.add_argument("--max-tokens", type=int, default=16)
ap.add_argument("--replicas", default="")
ap.add_argument("--kill-after", type=int)
ap.add_argument("--kill-pid", type=int)
ap.add_argument("--timeout", type=float, default=120)
a = ap.parse_args()

WORDS = ("river stone cloud lantern market harbor orchard violin meadow engine signal "
         "garden copper winter archive canyon ember falcon glacier quartz saddle timber "
         "velvet compass beacon cedar delta harvest island jasmine kettle ledger marble "
         "nectar oyster pepper quiver ribbon summit thistle umbrella valley willow").split()


def system_prompt(rng):
    return "You are a helpful assistant. Background notes: " + " ".join(rng.choice(WORDS) for _ in range(220)) + "."


def counters(url):
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for name in ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"):
        out[name] = sum(float(m) for m in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))
    return out


def chat(messages, session):
    """One streaming chat request: (ok, ttft seconds, completion tokens, text)."""
    body = json.dumps({"model": a.model, "messages": messages, "max_tokens": a.max_tokens,
                       "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    req = urllib.request.Request(f"{a.url}/v1/chat/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "X-Session-ID": session})
    t0 = time.monotonic()
    ttft, tokens, text = None, 0, []
    try:
        with urllib.request.urlopen(req, timeout=a.timeout) as r:
            for raw in r:
                line = raw.decode().strip()
                if not line.startswith("data:") or line == "data: [DONE]":
                    continue
                ev = json.loads(line[5:])
                if "error" in ev:
                    return False, None, 0, ""
                for ch in ev.get("choices") or []:
                    piece = (ch.get("delta") or {}).get("content")
                    if piece:
                        if ttft is None:
                            ttft = time.monotonic() - t0
                        text.append(piece)
                if ev.get("usage"):
                    tokens = ev["usage"]["completion_tokens"]
    except Exception:  # refused, reset mid-stream, timeout: all count as an error
        return False, None, 0, ""
    return ttft is not None, ttft, tokens, "".join(text)


records = []  # (start, end, ok, ttft, tokens)
lock = threading.Lock()


def conversation(i):
    rng = random.Random(a.seed * 1000 + i)
    messages = [{"role": "system", "content": system_prompt(rng)}]
    for turn in range(a.turns):
        messages.append({"role": "user", "content": f"Question {turn + 1}: name one word from the notes."})
        start = time.monotonic()
        ok, ttft, tokens, text = chat(messages, f"conv-{a.seed}-{i}")
        with lock:
            records.append((start, time.monotonic(), ok, ttft, tokens))
        messages.append({"role": "assistant", "content": text or "(no answer)"})


replicas = [u for u in a.replicas.split(",") if u]
before = [counters(u) for u in replicas]
t_start = time.monotonic()
kill_at = None
if a.kill_pid:
    def killer():
        global kill_at
        while len(records) < a.kill_after:
            time.sleep(0.01)
        kill_at = time.monotonic()
        os.kill(a.kill_pid, signal.SIGKILL)
    threading.Thread(target=killer, daemon=True).start()
threads = [threading.Thread(target=conversation, args=(i,)) for i in range(a.conversations)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.monotonic() - t_start
# A killed replica's counters are gone: the hit rate is over the replicas still up.
after = []
for u, b in zip(replicas, before):
    try:
        after.append((b, counters(u)))
    except OSError:
        pass
hits = sum(c["vllm:prefix_cache_hits_total"] - b["vllm:prefix_cache_hits_total"] for b, c in after)
queries = sum(c["vllm:prefix_cache_queries_total"] - b["vllm:prefix_cache_queries_total"] for b, c in after)
ttfts = sorted(r[3] for r in records if r[2])


def pct(xs, q):
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


out = {
    "requests": len(records),
    "errors": sum(1 for r in records if not r[2]),
    "ttft_p50": pct(ttfts, 0.5),
    "ttft_p99": pct(ttfts, 0.99),
    "output_tok_s": sum(r[4] for r in records) / wall,
    "wall_s": wall,
    "hit_rate": hits / queries if queries else None,
}
if kill_at is not None:
    inflight = [r for r in records if r[0] <= kill_at < r[1]]
    later = [r for r in records if r[0] > kill_at]
    out.update({
        "in_flight_at_kill": len(inflight),
        "errors_in_flight_at_kill": sum(1 for r in inflight if not r[2]),
        "started_after_kill": len(later),
        "errors_started_after_kill": sum(1 for r in later if not r[2]),
        "errors_started_10s_after_kill": sum(1 for r in later if not r[2] and r[0] > kill_at + 10),
    })
print(json.dumps(out))
