"""`nerve bench engine`: every stage reported and compile modes compared, with its measuring tools (FLOP
counts per stage, op counts, peak memory, module bytes) checked against independent counts."""
import time

import pytest
import torch

from jobs.bench import main as bench_main
from pipeline.bench.flops import FlopStageTimer
from pipeline.bench.measure import module_bytes, peak_memory
from tests.bench_results import read_results


def test_flop_stage_timer_counts_matmul_flops_per_stage():
    a, b, c = torch.ones(8, 16), torch.ones(16, 4), torch.ones(4, 2)
    timer = FlopStageTimer(torch.device("cpu"))
    with timer.stage("outer"):
        a @ b
        with timer.stage("inner"):
            (a @ b) @ c
    assert timer.flops["inner"] == 2 * 8 * 16 * 4 + 2 * 8 * 4 * 2
    assert timer.flops["outer"] == 2 * 8 * 16 * 4 + timer.flops["inner"]
    assert set(timer.take()) == {"outer", "inner"}


def test_peak_memory_sees_a_transient_tensor():
    size = 64 * 2**20

    def hold():  # freed before returning; held long enough for the sampler on a busy machine
        block = torch.ones(size // 4)
        time.sleep(0.2)
        return float(block.sum())

    peak, method = peak_memory(hold, torch.device("cpu"))
    assert method.startswith("rss_sampled")
    assert peak >= 0.75 * size


def test_engine_bench_reports_every_stage(tmp_path):
    argv = [
        "engine", f"output={tmp_path}", f"cache_dir={tmp_path / 'models'}", "classes=demo", "engine.device=cpu",
        "image_height=40", "image_width=56", "batch_sizes=[1,2]", "batches=1", "threads=1",
    ]
    assert bench_main(argv) == 0
    results = read_results(tmp_path, "engine")
    assert results["stages"] == ["prepare", "clip", "vae", "unet", "sd_other", "refine", "upsample", "encode"]
    assert [r["batch_size"] for r in results["runs"]] == [1, 2]
    for run in results["runs"]:
        assert set(run["stage_seconds_per_image"]) == set(results["stages"])
        assert all(v >= 0 for v in run["stage_seconds_per_image"].values())
        assert run["images_per_second"] > 0 and run["engine_images_per_second"] > 0
        for stage in ("clip", "vae", "unet", "refine"):
            assert run["flops_per_image"][stage] > 0
        assert run["peak_fraction"] is None  # CPU: no reference peak
        assert run["model_bytes"] > 0 and run["engine_peak_bytes"] >= run["model_bytes"]
        assert run["compile"] == "none" and run["speedup"] == 1.0 and run["warmup_seconds"] > 0


def test_module_bytes_counts_shared_tensors_once():
    shared = torch.nn.Linear(3, 4)  # 12 + 4 float32
    tied = torch.nn.Sequential(shared, torch.nn.BatchNorm1d(4))  # + 4 + 4 parameters, 4 + 4 + 1 buffers
    assert module_bytes([shared, tied, shared]) == 16 * 4 + 8 * 4 + 8 * 4 + 8


def test_engine_bench_compares_compile_modes(tmp_path, eager_dynamo):
    argv = [
        "engine", f"output={tmp_path}", f"cache_dir={tmp_path / 'models'}", "classes=demo", "engine.device=cpu",
        "image_height=40", "image_width=56", "batch_sizes=[1]", "batches=1", "threads=1", "compiles=[none,default]",
        "engine.refine.name=none",  # CLIP only: the sweep is what is tested here (tests/test_compile.py: the UNet)
    ]
    assert bench_main(argv) == 0
    eager, compiled = read_results(tmp_path, "engine")["runs"]
    assert (eager["compile"], compiled["compile"]) == ("none", "default")
    assert compiled["speedup"] == pytest.approx(compiled["engine_images_per_second"] / eager["engine_images_per_second"])
    assert compiled["flops_per_image"] == eager["flops_per_image"]  # counted eagerly, the same models
    assert "default" in (tmp_path / "engine.txt").read_text()


def test_count_ops_counts_compute_and_not_views():
    from pipeline.bench.ops import count_ops

    x = torch.randn(4, 5)
    assert count_ops(lambda: (x.T @ x).view(-1).sum()) == 2  # mm, sum; the transpose and view touch no data
    assert count_ops(lambda: x[1:, :2].permute(1, 0).unsqueeze(0)) == 0
