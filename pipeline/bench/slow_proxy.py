"""A reverse proxy on loopback that adds a fixed delay to every request and counts them by kind.

Put in front of a local S3 server (moto), it makes the store behave like a distant one: each
request costs `delay_s` more, as one to an object store across a network does, so that a run's
cost in requests shows as time (`docs/benchmarks.md`, "The driver at scale"). Bodies are passed
through whole; responses are re-sent with their length, never chunked.

It can also misbehave as a loaded store does (the fault soak, tests/test_faults_soak.py): a
`refuse_rate` share of requests is answered 503 SlowDown without reaching the store, and a
`drop_rate` share reaches the store but its answer is lost (the connection closes unanswered), so
a client that retries finds a write already done.
"""
from __future__ import annotations

import http.client
import random
import socket
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "content-length"}
_SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
              b"<Message>Please reduce your request rate.</Message></Error>")


def free_ports(count: int = 1) -> list[int]:
    """`count` distinct free ports on loopback (all held open until every one is chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def request_kind(method: str, path: str) -> str:
    """S3's kind of request: a GET with a listing query is a LIST."""
    query = path.partition("?")[2]
    listing = any(key in query for key in ("list-type=", "prefix=", "delimiter="))
    return "LIST" if method == "GET" and listing else method


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client gone mid-request (a killed actor, a client's own time-out) is no error of the proxy's."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class SlowProxy:
    """`with SlowProxy(upstream_port, delay_s) as proxy:` serves on 127.0.0.1:proxy.port; with
    `refuse_rate` and `drop_rate` it refuses and drops those shares of requests (drawn from `seed`)."""

    def __init__(self, upstream_port: int, delay_s: float, refuse_rate: float = 0.0, drop_rate: float = 0.0,
                 seed: int = 0, port: int = 0, log_paths: bool = False):
        """`port`: where to serve (0: any free one); the rates may be changed while it serves;
        `log_paths`: keep every request's method and path in `paths`."""
        self.refuse_rate, self.drop_rate = refuse_rate, drop_rate
        self.requests: Counter = Counter()  # by kind: LIST, GET, HEAD, PUT, POST, DELETE
        self.faults: Counter = Counter()  # "refused", "dropped"
        self.paths: list[str] = []  # every request, in order (with log_paths)
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        proxy = self

        def fault() -> str | None:
            with proxy._lock:
                draw, refuse = proxy._rng.random(), proxy.refuse_rate
                found = "refused" if draw < refuse else "dropped" if draw < refuse + proxy.drop_rate else None
                if found:
                    proxy.faults[found] += 1
                return found

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                time.sleep(delay_s)
                with proxy._lock:
                    proxy.requests[request_kind(self.command, self.path)] += 1
                    if log_paths:
                        proxy.paths.append(f"{self.command} {self.path}")
                failure = fault()
                if failure == "refused":
                    self._answer(503, "Slow Down", [("Content-Type", "application/xml")], _SLOW_DOWN)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    reply = upstream.getresponse()
                    data = reply.read()
                finally:
                    upstream.close()
                if failure == "dropped":  # done in the store, never answered
                    self.close_connection = True
                    return
                # HEAD answers carry the object's length, with no body
                length = reply.getheader("Content-Length", "0") if self.command == "HEAD" else None
                self._answer(reply.status, reply.reason,
                             [(k, v) for k, v in reply.getheaders() if k.lower() not in _HOP_HEADERS], data, length)

            def _answer(self, status: int, reason: str, headers: list, data: bytes, length: str | None = None):
                self.send_response(status, reason)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", length if length is not None else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

            def log_message(self, *args):  # quiet: thousands of requests
                pass

        self.server = _Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]

    def __enter__(self) -> SlowProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
