"""A reverse proxy on loopback that adds a fixed delay to every request and counts them by kind.

Put in front of a local S3 server (moto), it makes the store behave like a distant one: each
request costs `delay_s` more, as one to an object store across a network does, so that a run's
cost in requests shows as time (`docs/benchmarks.md`, "The driver at scale"). Bodies are passed
through whole; responses are re-sent with their length, never chunked.
"""
from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "content-length"}


def request_kind(method: str, path: str) -> str:
    """S3's kind of request: a GET with a listing query is a LIST."""
    query = path.partition("?")[2]
    listing = any(key in query for key in ("list-type=", "prefix=", "delimiter="))
    return "LIST" if method == "GET" and listing else method


class SlowProxy:
    """`with SlowProxy(upstream_port, delay_s) as proxy:` serves on 127.0.0.1:proxy.port."""

    def __init__(self, upstream_port: int, delay_s: float):
        self.requests: Counter = Counter()  # by kind: LIST, GET, HEAD, PUT, POST, DELETE
        self.paths: list[str] = []  # every request, in order
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                time.sleep(delay_s)
                with proxy._lock:
                    proxy.requests[request_kind(self.command, self.path)] += 1
                    proxy.paths.append(f"{self.command} {self.path}")
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    reply = upstream.getresponse()
                    data = reply.read()
                finally:
                    upstream.close()
                self.send_response(reply.status, reply.reason)
                for key, value in reply.getheaders():
                    if key.lower() not in _HOP_HEADERS:
                        self.send_header(key, value)
                # HEAD answers carry the object's length, with no body
                length = reply.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

            def log_message(self, *args):  # quiet: thousands of requests
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def __enter__(self) -> SlowProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
