#!/usr/bin/env python3
"""Alertmanager webhook receiver for the tests: appends each notification (Alertmanager's
JSON payload, plus the receiver name from the URL query) as one line to a file.

usage: webhook_receiver.py PORT OUTFILE   (binds 127.0.0.1 only)
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

PORT, OUT = int(sys.argv[1]), sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {"unparsable": body.decode(errors="replace")}
        payload["_url_receiver"] = parse_qs(urlparse(self.path).query).get("receiver", [""])[0]
        with open(OUT, "a", encoding="utf-8") as f:
            f.write(json.dumps(payload, ensure_ascii=False) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
