#!/usr/bin/env python3
"""An independent KV-cache event subscriber (pyzmq + msgpack, nothing of corvid's) against a
running corvid started with --kv-events-endpoint and --kv-events-replay-endpoint.

  kv_events_check.py --url http://127.0.0.1:PORT --pub tcp://127.0.0.1:P --replay tcp://127.0.0.1:R
                     --model NAME [--block-size 16]

1. A few requests run before it subscribes, so the first batch it sees has a sequence number
   above 0: it fetches the missed batches from the replay socket and applies everything in
   sequence order (gaps and reordering are failures).
2. A workload of prompts with shared prefixes overflows the (small) KV pool, so cached blocks
   are evicted: BlockRemoved events must arrive.
3. From the events alone it keeps the replica's cached blocks as a prefix tree keyed by
   (parent hash, block tokens). Then it probes: for each probe prompt it predicts how many
   prompt tokens the replica will reuse (the cached chain of whole blocks from the start,
   leaving at least one token to compute), sends the prompt, and compares with the increase
   of the replica's vllm:prefix_cache_hits_total. Every prediction must be exact, some probes
   must hit and some must miss (evicted or never stored).

Prints PASS/FAIL lines and exits non-zero on a failure.
"""
import argparse
import json
import random
import re
import sys
import threading
import time
import urllib.request

import msgpack
import zmq

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--pub", required=True)
ap.add_argument("--replay", required=True)
ap.add_argument("--model", required=True)
ap.add_argument("--block-size", type=int, default=16)
a = ap.parse_args()
BS = a.block_size
FAILS = []


def report(ok, what, detail=""):
    print(f"{'PASS' if ok else 'FAIL'} kv-events: {what}" + (f" -- {detail}" if detail and not ok else ""))
    if not ok:
        FAILS.append(what)


def complete(tokens, max_tokens=4):
    body = json.dumps({"model": a.model, "prompt": tokens, "max_tokens": max_tokens, "temperature": 0}).encode()
    req = urllib.request.Request(f"{a.url}/v1/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def hits():
    with urllib.request.urlopen(f"{a.url}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(v) for v in re.findall(r"^vllm:prefix_cache_hits_total(?:\{[^}]*\})? (\S+)$", text, re.M))


class Replica:
    """The cached blocks of one replica, rebuilt from its events."""

    def __init__(self):
        self.blocks = {}  # hash -> (parent, tokens)
        self.children = {}  # (parent, tokens) -> hash
        self.stored = self.removed = 0

    def apply(self, batch):
        ts, events, _rank = batch
        for e in events:
            kind = e["type"]
            if kind == "BlockStored":
                parent, toks, bs = e["parent_block_hash"], e["token_ids"], e["block_size"]
                assert bs == BS and len(toks) == len(e["block_hashes"]) * bs, e
                for i, h in enumerate(e["block_hashes"]):
                    key = (parent, tuple(toks[i * bs:(i + 1) * bs]))
                    self.blocks[h] = key
                    self.children[key] = h
                    parent = h
                    self.stored += 1
            elif kind == "BlockRemoved":
                for h in e["block_hashes"]:
                    key = self.blocks.pop(h)
                    if self.children.get(key) == h:
                        del self.children[key]
                    self.removed += 1
            elif kind == "AllBlocksCleared":
                self.blocks.clear()
                self.children.clear()
            else:
                raise ValueError(f"unknown event {kind}")

    def predicted_hit(self, tokens):
        parent, n = None, 0
        for i in range((len(tokens) - 1) // BS):
            h = self.children.get((parent, tuple(tokens[i * BS:(i + 1) * BS])))
            if h is None:
                break
            parent, n = h, n + BS
        return n


ctx = zmq.Context()
replica = Replica()
live = []  # (seq, batch) as received
lock = threading.Lock()
stop = threading.Event()


def subscribe(ready):
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(a.pub)
    ready.set()
    while not stop.is_set():
        if sub.poll(100):
            _topic, seq, payload = sub.recv_multipart()
            with lock:
                live.append((int.from_bytes(seq, "big"), msgpack.unpackb(payload)))
    sub.close(0)


rng = random.Random(7)
prefixes = [[rng.randrange(1000, 40000) for _ in range(4 * BS)] for _ in range(6)]
history = []


def prompt():
    p = rng.choice(prefixes) + [rng.randrange(1000, 40000) for _ in range(rng.randrange(8, 3 * BS))]
    history.append(p)
    return p


# 1. Batches published before anyone listens.
for _ in range(3):
    complete(prompt())
ready = threading.Event()
t = threading.Thread(target=subscribe, args=(ready,), daemon=True)
t.start()
ready.wait()
time.sleep(0.5)  # the subscription reaches the publisher

# 2. The workload that overflows the pool (two requests at a time).
for _ in range(20):
    ts = [threading.Thread(target=complete, args=(prompt(),)) for _ in range(2)]
    [x.start() for x in ts]
    [x.join() for x in ts]


def settle():
    """Waits until no batch arrived for 0.5 s, then applies everything received, in order."""
    while True:
        with lock:
            n = len(live)
        time.sleep(0.5)
        with lock:
            if len(live) == n:
                break


applied = -1  # highest sequence number applied


def apply_in_order(batches):
    """Applies `(seq, batch)` pairs past the last one applied; a gap is a failure."""
    global applied
    for seq, batch in batches:
        if seq <= applied:
            continue
        assert seq == applied + 1, f"gap: batch {seq} after {applied}"
        replica.apply(batch)
        applied = seq


def apply_live():
    with lock:
        batches, live[:] = list(live), []
    apply_in_order(batches)


settle()
with lock:
    first = live[0][0] if live else None
report(first is not None and first > 0, f"the first live batch has sequence number {first} (> 0: some were missed)")
# Fetch the missed batches from the replay socket.
dealer = ctx.socket(zmq.DEALER)
dealer.connect(a.replay)
dealer.send_multipart([b"", (0).to_bytes(8, "big")])
replayed = []
while dealer.poll(5000):
    _empty, seq, payload = dealer.recv_multipart()
    seq = int.from_bytes(seq, "big", signed=True)
    if seq == -1:
        break
    replayed.append((seq, msgpack.unpackb(payload)))
dealer.close(0)
report(bool(replayed) and replayed[0][0] == 0 and [s for s, _ in replayed] == list(range(len(replayed))),
       f"replay from 0 returned batches 0..{len(replayed) - 1} in order, then the end marker")
try:
    apply_in_order(replayed)
    apply_live()
    report(True, f"{applied + 1} batches applied in sequence order without a gap")
except AssertionError as e:
    report(False, "batches applied in sequence order without a gap", str(e))
report(replica.removed > 0,
       f"the workload evicted cached blocks ({replica.stored} stored, {replica.removed} removed)")

# 3. Probes: recent prompts (their blocks cached), old ones (evicted), fresh ones (never stored).
probes = history[-4:] + history[:6] + [prompt() for _ in range(2)] + [p[:3 * BS + 5] for p in prefixes[:3]]
results = []
for p in probes:
    settle()
    apply_live()
    want = replica.predicted_hit(p)
    before = hits()
    complete(p, max_tokens=1)
    got = hits() - before
    results.append((want, got))
exact = all(w == g for w, g in results)
report(exact, f"predicted prefix-cache hits equal the replica's for all {len(results)} probes "
       f"(tokens predicted/seen: {results})", str(results))
report(any(w > 0 for w, _ in results) and any(w == 0 for w, _ in results),
       "the probes include hits and misses")
stop.set()
t.join()
sys.exit(1 if FAILS else 0)
