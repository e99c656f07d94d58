#!/usr/bin/env python3
"""A loopback proxy in front of a blob server that answers `503 ServerBusy`
to the first N requests of chosen operation kinds and forwards everything
else unchanged (Shared Key signs the path, not the host, so signatures stay
valid). For testing that every control request is retried.

Usage: busy_proxy.py UPSTREAM_PORT PORT_FILE [OP:N[:RETRY_AFTER_S] ...]
OP: create, head, container, ranges, clear, props, get, put, delete; the
503s carry Retry-After: RETRY_AFTER_S (default 0).
GET /_proxy/stats answers the count of 503s given per OP as JSON."""
import http.client
import http.server
import json
import os
import sys
import threading
from urllib.parse import parse_qs, urlsplit

UPSTREAM = int(sys.argv[1])
PLAN = {}
RETRY_AFTER = {}
for spec in sys.argv[3:]:
    op, n, *ra = spec.split(":")
    PLAN[op] = int(n)
    RETRY_AFTER[op] = ra[0] if ra else "0"
GIVEN = {}
LOCK = threading.Lock()


def op_of(method, path, headers):
    q = parse_qs(urlsplit(path).query)
    comp = q.get("comp", [""])[0]
    if method == "HEAD":
        return "head"
    if method == "DELETE":
        return "delete"
    if method == "GET":
        return "ranges" if comp == "pagelist" else "get"
    if q.get("restype", [""])[0] == "container":
        return "container"
    if comp == "page":
        return "clear" if headers.get("x-ms-page-write", "").lower() == "clear" else "put"
    if comp == "properties":
        return "props"
    return "create"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path == "/_proxy/stats":
            with LOCK:
                out = json.dumps(GIVEN).encode()
            self.answer(200, [("Content-Length", str(len(out)))], out)
            return
        op = op_of(self.command, self.path, self.headers)
        with LOCK:
            busy = GIVEN.get(op, 0) < PLAN.get(op, 0)
            if busy:
                GIVEN[op] = GIVEN.get(op, 0) + 1
        if busy:
            xml = (b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code>'
                   b"<Message>The server is busy.</Message></Error>")
            hdrs = [("x-ms-error-code", "ServerBusy"), ("Retry-After", RETRY_AFTER[op]),
                    ("Content-Type", "application/xml"), ("Content-Length", str(len(xml)))]
            self.answer(503, hdrs, xml)
            return
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=30)
        fwd = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
        conn.request(self.command, self.path, body=body if n else None, headers=fwd)
        resp = conn.getresponse()
        data = resp.read()
        hdrs = [(k, v) for k, v in resp.getheaders()
                if k.lower() not in ("connection", "transfer-encoding", "content-length")]
        length = resp.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
        hdrs.append(("Content-Length", length or "0"))
        conn.close()
        self.answer(resp.status, hdrs, data)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = handle_any


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
server.serve_forever()
