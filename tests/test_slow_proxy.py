"""The delaying proxy of `nerve bench store`: every request to the store pays the delay once, is
passed through whole (bodies, lengths, listings) and is counted by kind; asked to, it refuses and
drops requests as a loaded store does, and a retrying client still gets its answers."""
import time

import pytest

from pipeline.bench.slow_proxy import SlowProxy, free_ports, request_kind

pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[test]')")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")


def test_requests_are_classified_as_s3_kinds():
    assert request_kind("GET", "/b?list-type=2&prefix=out%2F&delimiter=%2F") == "LIST"
    assert request_kind("GET", "/b/out/x.json") == "GET"
    assert request_kind("HEAD", "/b/out/x.json") == "HEAD"


@pytest.fixture
def store_port():
    port, = free_ports()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield port
    server.stop()


def _client(proxy: SlowProxy):
    import fsspec

    return fsspec.filesystem("s3", endpoint_url=f"http://127.0.0.1:{proxy.port}", key="k", secret="s",
                             skip_instance_cache=True)


def test_a_store_behind_the_proxy_reads_back_what_was_written_and_pays_the_delay(store_port):
    with SlowProxy(store_port, 0.05) as proxy:
        fs = _client(proxy)
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


def test_refused_and_dropped_requests_are_retried_by_the_client_until_answered(store_port):
    with SlowProxy(store_port, 0.0, refuse_rate=0.2, drop_rate=0.1, seed=3) as proxy:
        fs = _client(proxy)
        fs.mkdir("faulty")
        for i in range(30):
            fs.pipe(f"faulty/x{i}.bin", bytes([i]) * 1000)
        assert fs.cat([f"faulty/x{i}.bin" for i in range(30)]) == {f"faulty/x{i}.bin": bytes([i]) * 1000 for i in range(30)}
        assert sorted(fs.ls("faulty", detail=False)) == sorted(f"faulty/x{i}.bin" for i in range(30))
        assert proxy.faults["refused"] > 5 and proxy.faults["dropped"] > 2
