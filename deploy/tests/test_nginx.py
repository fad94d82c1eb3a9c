#!/usr/bin/env python3
"""Gateway routing test: the real nginx with a loopback copy of deploy/nginx/nginx.conf in
front of two stub upstreams (stub_upstream.py), first as shipped (one model: least_conn over
both), then rendered for two models (one upstream each, routed by the body's "model").
Prints PASS/FAIL lines; exits 1 on any FAIL.

Ports (all 127.0.0.1): NGINX_TEST_PORT (gateway, default 27480), the two following ports
for the stubs, and the third following for the two-model gateway.
"""
import http.client
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
DEPLOY = HERE.parent
GW = int(os.environ.get("NGINX_TEST_PORT", "27480"))
UP = [GW + 1, GW + 2]
GW2 = GW + 3
NAMES = ["alpha", "beta"]
MODELS = ["alpha-model", "beta-model"]  # what each stub serves (in the two-model test)

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'PASS' if ok else 'FAIL'} nginx: {name}" + (f" ({detail})" if detail and not ok else ""),
          flush=True)


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/gateway/health" if port in (GW, GW2) else "/health")
            c.getresponse().read()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def request(port, method, path, body=None, headers=None, timeout=15):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json", **(headers or {})})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def stream(port, body):
    """A streamed completion of 4 events a second apart (plus [DONE]) from a stub: the
    response, its first line, when that line and the whole stream arrived, the events."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    t0 = time.time()
    c.request("POST", "/v1/completions",
              body=json.dumps({**body, "stream": True, "chunks": 4, "interval": 1.0}),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    first = r.readline()
    t_first = time.time() - t0
    rest = r.read()
    t_all = time.time() - t0
    c.close()
    events = [ln for ln in (first + rest).decode().splitlines() if ln.startswith("data:")]
    return r, first, t_first, t_all, events


def two_models(tmp, procs):
    """The gateway rendered for two models, alpha-model on the first stub and beta-model on
    the second: each model's requests reach only its replica, even while that replica is
    busy and the other idle (least_conn alone would pick the idle one)."""
    conf = tmp / "two" / "nginx.conf"
    conf.parent.mkdir()
    subprocess.run([sys.executable, str(DEPLOY / "lib" / "render.py"), "nginx",
                    "--out", str(conf), "--prefix", str(tmp / "two" / "prefix"),
                    "--listen", f"127.0.0.1:{GW2}",
                    "--model", f"{MODELS[0]}=127.0.0.1:{UP[0]}", "--model", f"{MODELS[1]}=127.0.0.1:{UP[1]}"],
                   check=True)
    procs.append(subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp / "two" / "prefix"),
                                   "-g", "daemon off;"]))
    up = wait_port(GW2)
    check("two models: gateway listens", up)
    if not up:
        return

    holder = threading.Thread(target=request, args=(GW2, "GET", "/slow?seconds=3"))
    routed = {m: [] for m in MODELS}
    for i in range(12):
        if i == 6:  # from now on one replica holds a long request
            holder.start()
            time.sleep(0.5)
        for model in MODELS:
            r, data = request(GW2, "POST", "/v1/chat/completions",
                              {"model": model, "messages": [{"role": "user", "content": "hi"}]})
            routed[model].append(r.getheader("X-Upstream") if r.status == 200 else r.status)
    holder.join(10)
    check("two models: every request reaches the replica of its model, busy or not",
          routed == {MODELS[0]: [NAMES[0]] * 12, MODELS[1]: [NAMES[1]] * 12}, str(routed))

    r, data = request(GW2, "POST", "/v1/completions", {"model": "nobody-serves-this", "prompt": "x"},
                      headers={"X-Request-Id": "client-id-404"})
    try:
        err = json.loads(data)["error"]
    except (ValueError, KeyError):
        err = {}
    check("two models: an unknown model gets the OpenAI 404 from the gateway itself",
          r.status == 404 and r.getheader("X-Upstream") is None
          and r.getheader("Content-Type", "").startswith("application/json")
          and err.get("code") == "model_not_found" and err.get("param") == "model"
          and "`nobody-serves-this`" in err.get("message", "")
          and r.getheader("X-Request-Id") == "client-id-404", f"{r.status} {r.getheaders()} {data[:300]}")

    r, data = request(GW2, "GET", "/v1/models")
    ids = sorted(m["id"] for m in json.loads(data)["data"]) if r.status == 200 else data
    check("two models: GET /v1/models lists both models once", ids == sorted(MODELS), str(ids))

    hits = {n: 0 for n in NAMES}
    for _ in range(10):
        r, _ = request(GW2, "GET", "/health")
        hits[r.getheader("X-Upstream")] += 1
    check("two models: requests naming no model (/health) go to every replica",
          all(v >= 2 for v in hits.values()), str(hits))

    r, first, t_first, t_all, events = stream(GW2, {"model": MODELS[1]})
    check("two models: SSE streams unbuffered from the model's replica",
          r.getheader("X-Upstream") == NAMES[1] and first.startswith(b"data:") and t_first < 2.0
          and t_all > 3.5 and len(events) == 5 and events[-1] == "data: [DONE]",
          f"upstream {r.getheader('X-Upstream')}, first after {t_first:.2f}s, all after {t_all:.2f}s")


def main():
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="corvid-nginx-test-"))
    procs = []

    def cleanup(*_):
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    signal.signal(signal.SIGTERM, lambda *a: (cleanup(), sys.exit(1)))
    try:
        conf = tmp / "nginx.conf"
        subprocess.run([sys.executable, str(DEPLOY / "lib" / "render.py"), "nginx",
                        "--out", str(conf), "--prefix", str(tmp / "prefix"),
                        "--listen", f"127.0.0.1:{GW}",
                        "--upstream", f"127.0.0.1:{UP[0]}", "--upstream", f"127.0.0.1:{UP[1]}"],
                       check=True)
        t = subprocess.run(["nginx", "-t", "-c", str(conf), "-p", str(tmp / "prefix"),
                            "-g", "daemon off;"], capture_output=True, text=True)
        check("nginx -t accepts the rendered config", t.returncode == 0, t.stderr.strip())
        if t.returncode:
            return

        for name, port, model in zip(NAMES, UP, MODELS):
            procs.append(subprocess.Popen([sys.executable, str(HERE / "stub_upstream.py"), name, str(port),
                                           model]))
        procs.append(subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp / "prefix"),
                                       "-g", "daemon off;"]))
        up = all(wait_port(p) for p in UP + [GW])
        check("gateway and stubs listen", up)
        if not up:
            return

        # --- /metrics is refused through the gateway (but served by the upstream itself)
        r, _ = request(UP[0], "GET", "/metrics")
        direct_ok = r.status == 200
        refused = {}
        for path in ("/metrics", "/metrics/", "/metrics?format=text", "//metrics",
                     "/./metrics", "/%6Detrics", "/v1/../metrics"):
            r, _ = request(GW, "GET", path)
            refused[path] = r.status
        check("/metrics refused via the gateway in every spelling (403)",
              direct_ok and all(s == 403 for s in refused.values()), str(refused))
        refused = {}
        for path in ("/dashboard", "/dashboard/", "/dashboard/api/series", "/dashboard/assets/dashboard.js",
                     "//dashboard", "/./dashboard", "/%64ashboard", "/v1/../dashboard"):
            r, _ = request(GW, "GET", path)
            refused[path] = r.status
        check("/dashboard refused via the gateway in every spelling (403)",
              all(s == 403 for s in refused.values()), str(refused))

        # --- X-Request-Id
        r, data = request(GW, "GET", "/v1/echo", headers={"X-Request-Id": "client-id-42"})
        seen = json.loads(data).get("request_id")
        check("client X-Request-Id passed to the replica and echoed",
              seen == "client-id-42" and r.getheader("X-Request-Id") == "client-id-42",
              f"seen={seen} echoed={r.getheader('X-Request-Id')}")
        r, data = request(GW, "GET", "/v1/echo")
        seen = json.loads(data).get("request_id")
        check("missing X-Request-Id is generated, forwarded and echoed",
              bool(seen) and len(seen) == 32 and r.getheader("X-Request-Id") == seen,
              f"seen={seen} echoed={r.getheader('X-Request-Id')}")

        # --- both replicas serve
        hits = {n: 0 for n in NAMES}
        for _ in range(20):
            r, _ = request(GW, "GET", "/v1/echo")
            hits[r.getheader("X-Upstream")] += 1
        check("requests are spread over both replicas", all(v >= 5 for v in hits.values()), str(hits))

        # --- least_conn: while one replica holds 2 long requests, new ones go to the other
        slow_ups = []

        def slow():
            r, _ = request(GW, "GET", "/slow?seconds=3")
            slow_ups.append(r.getheader("X-Upstream"))

        threads = [threading.Thread(target=slow) for _ in range(2)]
        for th in threads:
            th.start()
            time.sleep(0.3)
        time.sleep(0.3)
        for th in threads:
            th.join(10)
        # One long request holds a replica: every new request goes to the idle one.
        one_busy = []
        holders = []
        hold_ups = []

        def hold():
            r, _ = request(GW, "GET", "/slow?seconds=4")
            hold_ups.append(r.getheader("X-Upstream"))
        th = threading.Thread(target=hold)
        th.start()
        holders.append(th)
        time.sleep(1.0)
        for _ in range(6):
            r, _ = request(GW, "GET", "/v1/echo")
            one_busy.append(r.getheader("X-Upstream"))
        for th in holders:
            th.join(10)
        busy = hold_ups[0] if hold_ups else None
        check("least_conn: two concurrent long requests go to different replicas",
              sorted(slow_ups) == sorted(NAMES), str(slow_ups))
        check("least_conn: while a replica is busy, new requests go to the idle one",
              busy is not None and all(u != busy for u in one_busy), f"busy={busy} got={one_busy}")

        # --- SSE streaming passes through unbuffered
        r, first, t_first, t_all, events = stream(GW, {})
        check("SSE: first event arrives before the stream ends (no proxy buffering)",
              first.startswith(b"data:") and t_first < 2.0 and t_all > 3.5,
              f"first after {t_first:.2f}s, all after {t_all:.2f}s")
        check("SSE: content type and every event preserved, ends with [DONE]",
              r.getheader("Content-Type", "").startswith("text/event-stream")
              and len(events) == 5 and events[-1] == "data: [DONE]", str(events))

        # --- settings that cannot be timed here are checked in the rendered file
        text = conf.read_text()
        # (plain nginx forwards these small chunks promptly even with buffering on, so the
        # timing check above cannot prove `proxy_buffering off` by itself)
        check("proxy_buffering off, long proxy_read_timeout, least_conn, HTTP/1.1 upstream",
              "proxy_buffering off;" in text and "proxy_read_timeout 600s;" in text
              and "least_conn;" in text and "proxy_http_version 1.1;" in text)

        # --- one model (as shipped): a model the replicas do not serve reaches a replica,
        # which answers corvid's 404
        r, data = request(GW, "GET", "/v1/models", headers={"X-Request-Id": "client-id-43"})
        ids = [m["id"] for m in json.loads(data)["data"]] if r.status == 200 else data
        check("one model: GET /v1/models is a replica's list",
              len(ids) == 1 and ids[0] in MODELS and r.getheader("X-Request-Id") == "client-id-43", str(ids))
        r, data = request(GW, "POST", "/v1/completions", {"model": "nobody-serves-this", "prompt": "x"})
        check("one model: an unknown model is answered 404 by a replica",
              r.status == 404 and r.getheader("X-Upstream") in NAMES
              and json.loads(data)["error"]["code"] == "model_not_found", f"{r.status} {data[:200]}")

        two_models(tmp, procs)
    finally:
        cleanup()


main()
print(f"nginx: {sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if results and all(results) else 1)
