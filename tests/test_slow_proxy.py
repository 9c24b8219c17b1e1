"""The delaying proxy of `nerve bench store`: every request to the store pays the delay once, is
passed through whole (bodies, lengths, listings) and is counted by kind."""
import socket
import time

import pytest

from pipeline.bench.slow_proxy import SlowProxy, request_kind

pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[test]')")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")


def test_requests_are_classified_as_s3_kinds():
    assert request_kind("GET", "/b?list-type=2&prefix=out%2F&delimiter=%2F") == "LIST"
    assert request_kind("GET", "/b/out/x.json") == "GET"
    assert request_kind("HEAD", "/b/out/x.json") == "HEAD"


def test_a_store_behind_the_proxy_reads_back_what_was_written_and_pays_the_delay():
    import fsspec

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        with SlowProxy(port, 0.05) as proxy:
            fs = fsspec.filesystem("s3", endpoint_url=f"http://127.0.0.1:{proxy.port}", key="k", secret="s",
                                   skip_instance_cache=True)
            fs.mkdir("proxy-test")
            fs.pipe("proxy-test/a/x.bin", b"x" * 100_000)
            assert fs.size("proxy-test/a/x.bin") == 100_000  # a HEAD's length passes through
            before = sum(proxy.requests.values())
            start = time.perf_counter()
            assert fs.cat("proxy-test/a/x.bin") == b"x" * 100_000
            assert fs.ls("proxy-test/a", detail=False) == ["proxy-test/a/x.bin"]
            made = sum(proxy.requests.values()) - before
            assert time.perf_counter() - start >= 0.05 * made and made >= 2
            assert proxy.requests["LIST"] >= 1 and proxy.requests["PUT"] >= 1
    finally:
        server.stop()
