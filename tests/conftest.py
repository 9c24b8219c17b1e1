"""Shared fixtures: tiny models written once per session, one local Ray per session, one S3 store."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.bench.slow_proxy import SlowProxy, free_ports

ROOT = Path(__file__).resolve().parents[1]
# Ray workers inherit the environment of the process that starts Ray: let them import the
# project from the source tree even when it is not installed.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# The session's S3 store (`s3_store`): its address is fixed before the session's Ray starts, whose
# workers reach s3:// through fsspec's environment config.
S3_OPTIONS = {"endpoint_url": f"http://127.0.0.1:{free_ports()[0]}", "key": "testing", "secret": "testing"}
os.environ["FSSPEC_S3"] = json.dumps(S3_OPTIONS)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Engine-config overrides (nested dict) that load tiny random-weight models."""
    from nerve_core.models.tiny import write_tiny_models

    return write_tiny_models(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="session")
def tiny_engine_config(tiny_models):
    """An EngineConfig (omegaconf) on CPU that loads the tiny models."""
    from omegaconf import OmegaConf

    from nerve_core.config import EngineConfig

    return OmegaConf.merge(OmegaConf.structured(EngineConfig), tiny_models, {"device": "cpu"})


@pytest.fixture
def eager_dynamo(monkeypatch):
    """torch.compile with dynamo's eager backend, from a clean cache: the tracing, guards and graph
    breaks of real use without inductor's code generation (minutes of gcc on a small CPU)."""
    import functools

    import torch

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.fixture(scope="session")
def ray_metrics_port():
    """The Prometheus port of the session's Ray (its metrics agent serves the nerve_* metrics there)."""
    return free_ports()[0]


@pytest.fixture(scope="session")
def s3_store():
    """moto's S3 server on loopback, reached through the proxy of pipeline/bench/slow_proxy.py at
    S3_OPTIONS' address: no delay, no faults, unless a test sets the proxy's refuse and drop rates."""
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install -e '.[test]')")
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install -e '.[test]')")
    import fsspec

    fsspec.config.conf.setdefault("s3", {}).update(S3_OPTIONS)  # fsspec read the environment at import
    backend, = free_ports()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=backend, verbose=False)
    server.start()
    try:
        with SlowProxy(backend, 0.0, port=int(S3_OPTIONS["endpoint_url"].rsplit(":", 1)[1])) as proxy:
            yield proxy
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ray_session(ray_metrics_port):
    """One local Ray for the whole test session (2 CPUs), shut down at the end.

    It declares 2 logical GPUs so that GPU actor placement (one actor per GPU, each pinned to its
    own CUDA_VISIBLE_DEVICES) is tested without hardware. No CUDA engine is built on them: an
    engine with device=cpu gets CPU actors, and device=auto falls back to CPU where torch sees no GPU.
    """
    import ray

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _metrics_export_port=ray_metrics_port)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (tests/browser.py); skipped, with the reason, where
    Playwright's package or a Chromium cannot be found."""
    from tests.browser import chromium_path

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set NERVE_CHROMIUM to its path)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def standin_engine() -> list[str]:
    """Overrides that label with the bench's stand-in engine (pipeline/bench/standin.py: a label map
    per image at 500 images/s, every other stage real), for the tests of what a run does around
    the engine (resume, the index, an actor killed, outputs that cannot be written): no engine to
    build in each actor. Importing the module registers its builder, which the driver hands its
    actors with their job; a job started from the command line in another process cannot name it."""
    from pipeline.bench.standin import standin_name

    return [f"engine.name={standin_name(500)}"]
