"""Idle and byte-at-a-time clients against `corvid serve` (issue #17): 1,000 idle
connections, slowloris headers on the API and metrics ports, and bodies sent a byte at a
time, while real requests run; then more connections than `--max-connections`.

  python test_connections.py BASE_URL SERVER_PID HEADER_TIMEOUT BODY_TIMEOUT MAX_CONNECTIONS \
      [--metrics-url URL] [--cafile CERT.pem]

The server must run with those `--timeout-keep-alive`, `--timeout-request-body` and
`--max-connections`. Checks that real requests complete while the attack holds its
connections, that every slow client is cut off after its timeout (408 for a late body),
that the server's file descriptors stay within the limit and its memory flat, and that
beyond the limit new connections wait instead of costing the server anything.
Prints PASS/FAIL lines and a final `N passed, M failed`.
"""
import argparse
import json
import os
import resource
import selectors
import socket
import ssl
import time
import http.client
import urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("base")
ap.add_argument("pid", type=int)
ap.add_argument("header_timeout", type=float)
ap.add_argument("body_timeout", type=float)
ap.add_argument("max_connections", type=int)
ap.add_argument("--metrics-url")
ap.add_argument("--cafile")
args = ap.parse_args()

IDLE = 1000
SLOW_HEADERS = 40
SLOW_METRICS = 10 if args.metrics_url else 0
SLOW_BODIES = 20
DRIP = 0.25          # seconds between two bytes of a slow client
LATE = 15.0          # generous liveness bound on top of a timeout
BEYOND_LIMIT = 200

base = urllib.parse.urlsplit(args.base)
tls = base.scheme == "https"
ctx = ssl.create_default_context(cafile=args.cafile) if tls else None
results = []


def check(name, ok, detail):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} conn_{'tls_' if tls else ''}{name}: {detail}", flush=True)


def server_fds():
    return len(os.listdir(f"/proc/{args.pid}/fd"))


def server_rss_mib():
    with open(f"/proc/{args.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def connect(url, handshake):
    """A connected socket to `url`, wrapped in TLS (handshake done) when `handshake`."""
    s = socket.create_connection((url.hostname, url.port), timeout=30)
    if handshake and url.scheme == "https":
        s = ctx.wrap_socket(s, server_hostname=url.hostname)
    return s


def real_request(path, body=None, url=base):
    """One ordinary request on a fresh connection: (status, seconds)."""
    t = time.monotonic()
    cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    kw = {"context": ctx} if url.scheme == "https" else {}
    c = cls(url.hostname, url.port, timeout=120, **kw)
    headers = {"Content-Type": "application/json"}
    c.request("POST" if body else "GET", path, body=json.dumps(body) if body else None, headers=headers)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status, time.monotonic() - t


class Slow:
    """A client that sends `data` one byte every DRIP seconds and notes when the server
    closes its connection (and what it answered)."""

    def __init__(self, sock, data):
        self.sock, self.data, self.sent = sock, data, 0
        self.opened = time.monotonic()
        self.head_done = None  # when a slow body's head was complete
        self.closed = None
        self.answer = b""
        sock.setblocking(False)

    def drip(self, now):
        if self.closed is None and self.sent < len(self.data):
            try:
                self.sock.send(self.data[self.sent:self.sent + 1])
                self.sent += 1
            except (BlockingIOError, ssl.SSLWantWriteError):
                pass
            except OSError:
                self.closed = now

    def readable(self, now):
        try:
            chunk = self.sock.recv(4096)
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        except OSError:
            chunk = b""
        if chunk:
            self.answer += chunk
        else:
            self.closed = now


def slow_header(url):
    head = f"POST /v1/completions HTTP/1.1\r\nHost: {url.hostname}\r\n".encode()
    # The head never ends: a header value that grows a byte at a time.
    s = connect(url, handshake=True)
    s.sendall(head)
    return Slow(s, b"X-Slow: " + b"a" * 10_000)


def slow_body():
    body = b'{"prompt": "' + b"a" * 10_000 + b'"}'
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: {base.hostname}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    s = connect(base, handshake=True)
    s.sendall(head)
    c = Slow(s, body)
    c.head_done = time.monotonic()
    return c


def watch(clients, until, sel):
    """Drips and reads until every client is closed or `until` passes."""
    while time.monotonic() < until and any(c.closed is None for c in clients):
        now = time.monotonic()
        for c in clients:
            c.drip(now)
        for key, _ in sel.select(timeout=DRIP):
            key.data.readable(time.monotonic())
        for c in clients:
            if c.closed is not None and c.sock.fileno() != -1:
                try:
                    sel.unregister(c.sock)
                except (KeyError, ValueError):
                    pass
                c.sock.close()


def register(sel, clients):
    for c in clients:
        sel.register(c.sock, selectors.EVENT_READ, c)


def idle_clients(n):
    """`n` connections that send nothing (over TLS: not even a handshake)."""
    out = []
    for _ in range(n):
        s = socket.create_connection((base.hostname, base.port), timeout=30)
        out.append(Slow(s, b""))
    return out


soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
need = args.max_connections + BEYOND_LIMIT + 200
if soft < need:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
status, _ = real_request("/health")
assert status == 200, status
fds0, rss0 = server_fds(), server_rss_mib()
print(f"server before: {fds0} fds, {rss0:.0f} MiB resident", flush=True)

# ---- phase 1: the attack, with real requests in the middle of it ----
sel = selectors.DefaultSelector()
start = time.monotonic()
idle = idle_clients(IDLE)
slow = [slow_header(base) for _ in range(SLOW_HEADERS)]
if args.metrics_url:
    murl = urllib.parse.urlsplit(args.metrics_url)
    slow += [slow_header(murl) for _ in range(SLOW_METRICS)]
bodies = [slow_body() for _ in range(SLOW_BODIES)]
attack = idle + slow + bodies
register(sel, attack)
opened = time.monotonic() - start
watch(attack, time.monotonic() + 0.5, sel)
fds_attack, rss_attack = server_fds(), server_rss_mib()
real = []
body = {"prompt": "Hello", "max_tokens": 4, "ignore_eos": True}
for _ in range(3):
    real.append(real_request("/v1/completions", body))
    watch(attack, time.monotonic() + 0.05, sel)
    if args.metrics_url:
        real.append(real_request("/metrics", url=murl))
done_at = time.monotonic()
still_open = sum(1 for c in attack if c.closed is None)
check("real_requests_during_attack",
      all(s == 200 for s, _ in real) and still_open >= 0.9 * len(attack),
      f"{len(real)} real requests, statuses {sorted({s for s, _ in real})}, latencies "
      f"{', '.join(f'{t:.2f}s' for _, t in real)}, done while {still_open} of {len(attack)} "
      f"attacking connections were still open (opened in {opened:.1f}s)")

watch(attack, time.monotonic() + max(args.header_timeout, args.body_timeout) + LATE, sel)
T, B = args.header_timeout, args.body_timeout
lived = [c.closed - c.opened for c in idle + slow if c.closed is not None]
check("slow_and_idle_clients_cut",
      len(lived) == len(idle) + len(slow) and min(lived) >= T - 0.5 and max(lived) <= T + LATE,
      f"{len(lived)} of {len(idle) + len(slow)} idle or slow-header connections closed by the server, "
      f"after {min(lived, default=0):.1f}-{max(lived, default=0):.1f}s (--timeout-keep-alive {T}s)")
body_lived = [c.closed - c.head_done for c in bodies if c.closed is not None]
got_408 = sum(1 for c in bodies if c.answer.startswith(b"HTTP/1.1 408"))
check("slow_bodies_get_408",
      got_408 == len(bodies) and len(body_lived) == len(bodies)
      and min(body_lived) >= B - 0.5 and max(body_lived) <= B + LATE,
      f"{got_408} of {len(bodies)} byte-at-a-time bodies answered 408 and closed after "
      f"{min(body_lived, default=0):.1f}-{max(body_lived, default=0):.1f}s (--timeout-request-body {B}s)")
time.sleep(0.5)
fds_after, rss_after = server_fds(), server_rss_mib()
check("server_resources_bounded",
      fds_attack <= fds0 + len(attack) + 20 and fds_after <= fds0 + 10 and rss_attack - rss0 < 64,
      f"server fds {fds0} -> {fds_attack} under attack -> {fds_after} after; resident "
      f"{rss0:.0f} -> {rss_attack:.0f} -> {rss_after:.0f} MiB")

# ---- phase 2: more connections than --max-connections ----
limit = args.max_connections
crowd = idle_clients(limit + BEYOND_LIMIT)
register(sel, crowd)
peak = 0
until = time.monotonic() + 1.0
while time.monotonic() < until:
    peak = max(peak, server_fds())
    time.sleep(0.1)
status, waited = real_request("/v1/completions", body)
peak = max(peak, server_fds())
watch(crowd, time.monotonic() + 2 * T + LATE, sel)
closed = sum(1 for c in crowd if c.closed is not None)
check("connection_limit_holds",
      peak <= fds0 + limit + 10 and status == 200 and waited <= 2 * T + LATE and closed == len(crowd),
      f"{len(crowd)} connections for a limit of {limit}: server fds peaked at {peak} "
      f"(baseline {fds0}); a real request waited {waited:.1f}s for a free slot and got {status}; "
      f"{closed} of the crowd were served and cut in turn")

for c in attack + crowd:
    if c.sock.fileno() != -1:
        c.sock.close()
print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
