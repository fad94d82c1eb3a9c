#!/usr/bin/env python3
"""Tiny HTTP upstream for the nginx ROUTING test only (test_nginx.py).

It stands in for a corvid replica where only the gateway's behaviour is under test:
which replica gets a request (least_conn, routing by the body's model), whether streamed
chunks pass through unbuffered, whether X-Request-Id is forwarded and whether /metrics is
refused. The real corvid behind the real gateway is exercised by deploy/tests/e2e.sh.

usage: stub_upstream.py NAME PORT [MODEL]   (binds 127.0.0.1 only)
With MODEL, GET /v1/models lists MODEL, and a POST whose body names another model gets
corvid's 404 (as a replica of MODEL would).
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

NAME = sys.argv[1]
PORT = int(sys.argv[2])
MODEL = sys.argv[3] if len(sys.argv) > 3 else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _send(self, code, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Upstream", NAME)
        self.send_header("X-Seen-Request-Id", self.headers.get("X-Request-Id", ""))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        u = urlparse(self.path)
        if u.path == "/metrics":
            self._send(200, f'stub_up{{name="{NAME}"}} 1\n', "text/plain; version=0.0.4")
        elif u.path == "/v1/models" and MODEL:
            self._send(200, json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}))
        elif u.path == "/slow":
            time.sleep(min(float(parse_qs(u.query).get("seconds", ["1"])[0]), 10))
            self._send(200, json.dumps({"upstream": NAME}))
        else:
            self._send(200, json.dumps({"upstream": NAME, "path": self.path,
                                        "request_id": self.headers.get("X-Request-Id", "")}))

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if MODEL and "model" in body and body["model"] != MODEL:
            self._send(404, json.dumps({"error": {"message": f"The model `{body.get('model')}` does not exist.",
                                                  "type": "invalid_request_error", "param": "model",
                                                  "code": "model_not_found"}}))
            return
        if not body.get("stream"):
            self._send(200, json.dumps({"upstream": NAME, "model": body.get("model")}))
            return
        # Server-sent events, one chunk every `interval` seconds, chunked encoding.
        n, interval = int(body.get("chunks", 3)), float(body.get("interval", 0.7))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Upstream", NAME)
        self.end_headers()

        def chunk(s):
            b = s.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
            self.wfile.flush()

        for i in range(n):
            chunk(f"data: {json.dumps({'upstream': NAME, 'i': i, 't': time.time()})}\n\n")
            time.sleep(interval)
        chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
