#!/usr/bin/env python3
"""A small HTTP/1.1 keep-alive server for testing the HTTP engine (src/net).

It speaks the same control protocol as the C test server (test/server), so
tests written against one run against the other:

  POST /_control/faults   body "503:3", "500:2", "reset:2", "stall:1"
                          (comma-separated; each applies to that many of the
                          next requests that are not /_control ones)
  GET  /_control/stats    {"max_inflight":..,"inflight":..,"connections":..,
                           "requests":..}
  POST /_control/reset-stats  zeroes the stats

Everything else is a tiny object store keyed by path (query ignored):
  PUT/POST  store the body; 201 with X-Received-Length, X-Body-MD5 (hex) and
            X-Expect (the request's Expect header or "none")
  GET/HEAD  the stored body (200) or 404 with an XML error
            /_bytes/N answers N bytes of a pattern (byte i = i % 251)
  DELETE    202, or 404
  any /_echo  200, the request head as text, then "body-length: N"

Usage: echo_server.py --port 0 --port-file FILE
"""
import argparse
import hashlib
import http.server
import json
import os
import socket
import struct
import threading
import time

lock = threading.Lock()
store = {}
faults = []  # [kind, remaining]
stats = {"max_inflight": 0, "inflight": 0, "connections": 0, "requests": 0}


def take_fault():
    with lock:
        for f in faults:
            if f[1] > 0:
                f[1] -= 1
                return f[0]
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        with lock:
            stats["connections"] += 1

    def reply(self, status, body=b"", headers=None, head=False):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            return None
        n = int(self.headers.get("Content-Length", "0"))
        if self.headers.get("Expect", "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        path = self.path.split("?", 1)[0]
        if path.startswith("/_control/"):
            return self.control(path)
        with lock:
            stats["inflight"] += 1
            stats["requests"] += 1
            stats["max_inflight"] = max(stats["max_inflight"], stats["inflight"])
        try:
            self.serve(path)
        finally:
            with lock:
                stats["inflight"] -= 1

    def control(self, path):
        body = self.read_body() or b""
        if path == "/_control/faults":
            with lock:
                faults.clear()
                for part in body.decode().split(","):
                    if part.strip():
                        kind, _, count = part.strip().partition(":")
                        faults.append([kind, int(count or "1")])
            return self.reply(204)
        if path == "/_control/stats":
            with lock:
                data = json.dumps(stats).encode()
            return self.reply(200, data, {"Content-Type": "application/json"})
        if path in ("/_control/reset", "/_control/reset-stats"):
            with lock:
                for k in stats:
                    stats[k] = 0
            return self.reply(204)
        return self.reply(404)

    def serve(self, path):
        fault = take_fault()
        if fault == "reset":
            # RST, not FIN: linger 0 makes close() abort the connection.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        body = self.read_body()
        if body is None:
            return self.reply(400, b"chunked bodies are not accepted")
        if fault == "stall":
            time.sleep(3600)
            return
        if fault in ("500", "503"):
            code = "InternalError" if fault == "500" else "ServerBusy"
            xml = ("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code>"
                   "<Message>injected</Message></Error>" % code).encode()
            return self.reply(int(fault), xml, {"x-ms-error-code": code,
                                                "Content-Type": "application/xml"})
        m = self.command
        if path == "/_echo":
            text = "%s %s\n%s" % (m, self.path, str(self.headers))
            text += "body-length: %d\n" % len(body)
            return self.reply(200, text.encode(), {"Content-Type": "text/plain"})
        if m in ("PUT", "POST"):
            with lock:
                store[path] = body
            return self.reply(201, b"", {
                "X-Received-Length": str(len(body)),
                "X-Body-MD5": hashlib.md5(body).hexdigest(),
                "X-Expect": self.headers.get("Expect", "none"),
            })
        if m in ("GET", "HEAD"):
            if path.startswith("/_bytes/"):
                n = int(path[len("/_bytes/"):])
                data = bytes(i % 251 for i in range(n))
            else:
                with lock:
                    data = store.get(path)
            if data is None:
                return self.reply(404, b"<Error><Code>BlobNotFound</Code></Error>",
                                  {"x-ms-error-code": "BlobNotFound"}, head=(m == "HEAD"))
            return self.reply(200, data, {"X-Mixed-Case-Header": "Value"},
                              head=(m == "HEAD"))
        if m == "DELETE":
            with lock:
                found = store.pop(path, None) is not None
            return self.reply(202 if found else 404)
        return self.reply(405)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = handle_any


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    a = ap.parse_args()
    http.server.ThreadingHTTPServer.daemon_threads = True
    http.server.ThreadingHTTPServer.request_queue_size = 512
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    port = srv.server_address[1]
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, a.port_file)
    else:
        print(port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
