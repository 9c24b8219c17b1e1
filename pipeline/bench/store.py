"""`nerve bench store`: a label job on an object store that answers slowly, and its reruns.

A local S3 server (moto) behind a proxy that adds `delay_ms` to every request (pipeline.bench
.slow_proxy) stands in for a distant object store. `shards` one-sample shards are written there and
labeled with the stand-in engine (pipeline.bench.standin: the engine only waits); then the same
command is run again through the delay with every shard done, and once more after `removed`
done-markers were deleted.
Reported per run: wall seconds and the store's requests by method. The rerun with nothing to do is
what the run index (docs/design.md, "The run index") is for: it must cost a few listings and the
index's parts, not a request per shard.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field

from omegaconf import OmegaConf

from nerve_core.config import EngineConfig
from pipeline.bench.slow_proxy import SlowProxy, free_ports
from pipeline.bench.standin import standin_name, standin_ray
from pipeline.config import LabelJobConfig, RayConfig
from pipeline.output.outputdir import OutputDir
from pipeline.sources.shard_writer import write_shards
from pipeline.sources.synthetic import demo_samples

BUCKET = "nerve-bench-store"


@dataclass
class StoreBenchConfig:
    output: str = "bench-results/store"
    shards: int = 2000  # one sample each
    delay_ms: float = 20.0  # added to every request to the store
    removed: int = 5  # done-markers deleted before the last rerun: exactly these are relabeled
    images_per_second: float = 200.0  # the stand-in engine's rate
    ray: RayConfig = field(default_factory=lambda: RayConfig(num_actors=2, shards_ahead=1))


def _label(cfg: StoreBenchConfig, shards: str, out: str):
    from pipeline.run.driver import run_label_job

    job = OmegaConf.merge(OmegaConf.structured(LabelJobConfig), {
        "engine": OmegaConf.merge(OmegaConf.structured(EngineConfig), {"name": standin_name(cfg.images_per_second),
                                                                       "device": "cpu", "batch_size": 1}),
        "dataset": {"classes": "demo"}, "input": {"shards": shards}, "output": {"dir": out},
        "ray": OmegaConf.structured(cfg.ray), "progress": False})
    return run_label_job(job)


def _timed(proxy: SlowProxy, step) -> tuple[dict, object]:
    """(wall seconds and the requests the step made, by method; what the step returned)."""
    before, seen = dict(proxy.requests), len(proxy.paths)
    start = time.perf_counter()
    value = step()
    if proxy.paths:
        print("\n".join(proxy.paths[seen:]))
    requests = {k: v - before.get(k, 0) for k, v in proxy.requests.items() if v - before.get(k, 0)}
    return {"seconds": round(time.perf_counter() - start, 2), "requests": requests}, value


def _use_store(proxy: SlowProxy):
    """Point fsspec's s3:// at `proxy`, here and in the workers of a Ray started after this call."""
    import fsspec

    options = {"endpoint_url": f"http://127.0.0.1:{proxy.port}", "key": "bench", "secret": "bench"}
    os.environ["FSSPEC_S3"] = json.dumps(options)  # the bench Ray's workers inherit it
    fsspec.config.conf.setdefault("s3", {}).update(options)
    return fsspec.filesystem("s3", skip_instance_cache=True)


def run(cfg: StoreBenchConfig) -> dict:
    """The shards are written and labeled without the delay (the work itself is not what is
    measured, and would take an hour at 20 ms a request); the reruns go through the delay."""
    from moto.server import ThreadedMotoServer

    port, = free_ports()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    shards, out, steps = f"s3://{BUCKET}/shards", f"s3://{BUCKET}/out", {}
    try:
        log = bool(os.environ.get("NERVE_BENCH_STORE_LOG"))  # every request's path, printed after each step
        with SlowProxy(port, 0.0, log_paths=log) as direct:
            fs = _use_store(direct)
            fs.mkdir(BUCKET)
            steps["write shards (no delay)"], _ = _timed(direct, lambda: write_shards(
                demo_samples(cfg.shards, seed=0, max_size=64), shards, per_shard=1, progress=False))
            with standin_ray(cfg.ray):
                steps["label (no delay)"], first = _timed(direct, lambda: _label(cfg, shards, out))
            if not first.ok:
                raise RuntimeError(f"the label job failed: {first.failed[:3]}, not done {first.not_done[:3]}")
        with SlowProxy(port, cfg.delay_ms / 1000.0, log_paths=log) as slow:
            fs = _use_store(slow)
            with standin_ray(cfg.ray):
                steps["rerun, every shard done"], second = _timed(slow, lambda: _label(cfg, shards, out))
                markers = sorted(OutputDir(out).markers())
                removed = markers[:: max(1, len(markers) // max(1, cfg.removed))][: cfg.removed]
                fs.rm([OutputDir(out).paths(shard)["stats"] for shard in removed])
                steps[f"rerun, {len(removed)} markers removed"], third = _timed(slow, lambda: _label(cfg, shards, out))
    finally:
        server.stop()
    gone = sorted(removed)
    return dict(benchmark="store", config=asdict(cfg), steps=steps, rerun_skipped=second.skipped,
                rerun_labeled=len(second.done), relabeled=sorted(third.done), removed=gone,
                relabeled_exactly_removed=sorted(third.done) == gone, load_average=os.getloadavg())
