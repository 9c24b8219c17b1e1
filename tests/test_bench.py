"""`nerve bench`: the harness runs at tiny sizes, reports every form and stage, and its numbers are right.

No timing is asserted anywhere: only that figures exist, are well-formed, and that the numerical
parts (dense walk, FLOP counts, exponent fit, memory probe) agree with independent formulations.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jobs.bench import main as bench_main
from tests.bench_results import read_results


@pytest.mark.slow
def test_pipeline_bench_measures_overhead(tmp_path, ray_session):
    argv = ["pipeline", f"output={tmp_path}", f"cache_dir={tmp_path / 'models'}", "images=8", "per_shard=4", "engine.device=cpu"]
    assert bench_main(argv) == 0
    results = read_results(tmp_path, "pipeline")
    assert results["measured"]["nerve label, end to end"]["images"] == 8
    assert results["overhead_ratio"] > 0


def test_bench_cli_rejects_unknown_benchmarks_and_keys(capsys):
    assert bench_main(["nope"]) == 2
    assert bench_main(["refine", "sizes_typo=[16]"]) == 2
    assert "sizes_typo" in capsys.readouterr().err


# ---- the host path: stand-in engine, real photographs, host ceiling, GPU acceptance command ----------
def test_standin_engine_waits_its_rate_and_labels_every_image_at_its_size():
    from pipeline.bench.photos import bench_photo
    from pipeline.bench.standin import StandinEngine, standin_name

    engine = StandinEngine({"name": standin_name(40), "mode": "wsss"})
    images = [bench_photo(0, i, 21)[0] for i in range(4)]
    prepared = [engine.prepare(image) for image in images]
    assert all(p.pixels is not None and p.clip is None for p in prepared)  # a GPU engine's preparation
    wall, cpu = time.perf_counter(), time.thread_time()
    out = engine.run(prepared, [f"class{i}" for i in range(21)], [[3], [5, 7], [0, 2], [20]], confidence=True)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    assert wall >= 4 / 40 and cpu < 0.5 * wall  # 1/R s per image, spent asleep
    for seg, image, labels in zip(out, images, [[3], [5, 7], [0, 2], [20]]):
        assert seg.labels.shape == seg.confidence.shape == (image.height, image.width)
        assert set(np.unique(seg.labels)) <= {0, *labels}  # background + the image's own labels
    assert engine.fingerprint()["digest"] != StandinEngine({"name": standin_name(41)}).fingerprint()["digest"]


def test_standin_label_maps_hold_a_few_classes_and_follow_the_picture():
    from pipeline.bench.standin import MAX_CLASSES, label_map

    pixels = np.zeros((30, 40, 3), dtype=np.uint8)
    pixels[:, 20:] = 200  # dark left half, bright right half
    labels = label_map(pixels, (300, 400), list(range(21)))
    assert labels.shape == (300, 400) and len(np.unique(labels)) <= MAX_CLASSES
    assert len(np.unique(labels[:, :190])) == 1 and len(np.unique(labels[:, 210:])) == 1
    assert labels[0, 0] != labels[0, -1]
    with pytest.raises(ValueError, match="images_per_second"):
        from pipeline.bench.standin import standin_name

        standin_name(0)


def test_the_standin_registers_like_any_engine():
    from nerve_core.engine import build_engine
    from nerve_core.registry import ENGINES
    from pipeline.bench.standin import StandinEngine

    assert ENGINES["standin"] is StandinEngine
    engine = build_engine({"name": "standin:5"})
    assert isinstance(engine, StandinEngine) and engine.images_per_second == 5


def test_actors_get_the_standin_builder_with_their_job_and_nothing_else_does():
    """An actor runs in a fresh process: the job the driver hands it carries the builder the
    driver's registry holds, and unpickling it there imports (so registers) the stand-in. A
    process that never imported the bench (a `nerve label` naming `standin:R`) has no entry."""
    driver = ("import pickle, sys; import pipeline.bench.standin; from jobs.config import load_config; "
              "from nerve_core.vocab import Vocabulary; from pipeline.config import LabelJobConfig; "
              "from pipeline.job import label_job; from pipeline.run.actors import actor_job; "
              "cfg = label_job(load_config(LabelJobConfig, ['dataset=demo', 'engine.name=standin:5'])); "
              "sys.stdout.buffer.write(pickle.dumps(actor_job(cfg, Vocabulary.coerce(['a']), {'digest': 'd'}, 'cpu')))")
    job = subprocess.run([sys.executable, "-c", driver], capture_output=True, check=True).stdout
    worker = ("import pickle, sys; from nerve_core.registry import registered_builder; print(registered_builder('standin:5')); "
              "job = pickle.loads(sys.stdin.buffer.read()); print(type(job.build_engine()).__name__)")
    out = subprocess.run([sys.executable, "-c", worker], input=job, capture_output=True, check=True).stdout.decode().split()
    assert out == ["None", "StandinEngine"]


def test_bench_photos_are_voc_sized_jpegs_with_ground_truth():
    import io

    from pipeline.bench.photos import PHOTOS, photo_samples

    samples = list(photo_samples(len(PHOTOS) + 2, num_classes=21, seed=3))
    assert len({s.meta["source"] for s in samples}) == len(PHOTOS)  # every photograph is used
    for sample in samples:
        with Image.open(io.BytesIO(sample.image)) as img:
            assert img.format == "JPEG" and img.size in ((500, 375), (375, 500))
        with Image.open(io.BytesIO(sample.seg_png)) as seg:
            gt = np.asarray(seg)
        assert gt.shape == (img.height, img.width) and sample.meta["labels"] == sorted(np.unique(gt).tolist())
        assert 0 in sample.meta["labels"] and max(sample.meta["labels"]) < 21
    assert [s.image for s in photo_samples(3, 21, seed=3)] == [s.image for s in samples[:3]]  # reproducible


def test_find_ceiling_brackets_the_highest_sustained_rate():
    from pipeline.bench.host import find_ceiling

    tried = []

    def sustains(rate):
        tried.append(rate)
        return rate <= 137

    ceiling = find_ceiling(sustains, start=50, precision=0.1)
    assert 137 / 1.1 <= ceiling <= 137 and len(tried) <= 8
    assert find_ceiling(lambda r: r <= 137, start=500, precision=0.1) <= 137
    assert find_ceiling(lambda r: False, start=50) == 0.0
    assert find_ceiling(lambda r: True, start=50, highest=400) == 400


def test_host_costs_and_actor_rates_from_shard_stats():
    from pipeline.bench.host import STAGES, actor_rates, cpu_ms_per_image, steady_state
    from pipeline.output.shard_stats import ShardStats

    def shard(pid, start, seconds, samples, cpu):
        return ShardStats("s", actor={"pid": pid}, finished_at=start + seconds, seconds={"total": seconds}, samples=samples,
                          cpu_seconds=cpu)

    # Actor 1's first shard (start-up, first fill) is left out: 20 images from t=101 to t=103,
    # the 0.5 s between its first two shards included. Actor 2 has one shard: its own rate.
    stats = [shard(1, 100.0, 1.0, 10, {"decode": 0.02, "encode": 0.01, "process": 0.05}),
             shard(1, 101.5, 0.5, 10, {"decode": 0.02, "write": 0.01, "process": 0.04}),
             shard(1, 102.0, 1.0, 10, {"process": 0.01}),
             shard(2, 100.0, 2.0, 10, {"process": 0.01})]
    assert sorted(actor_rates(stats)) == pytest.approx([5.0, 10.0])
    assert steady_state(stats) == stats[1:]  # actor 1's first shard left out
    cost = cpu_ms_per_image(stats)
    assert set(cost) == {*STAGES, "other", "total"}
    assert cost["decode"] == pytest.approx(40 / 40) and cost["total"] == pytest.approx(110 / 40)
    assert sum(cost[s] for s in (*STAGES, "other")) == pytest.approx(cost["total"])


def test_cpu_clock_counts_thread_time_per_stage_across_threads():
    import threading

    from pipeline.run.cpuclock import CpuClock

    clock = CpuClock()

    def spin(name, seconds):
        with clock.stage(name):
            end = time.thread_time() + seconds
            while time.thread_time() < end:
                pass
        with clock.stage("sleep"):
            time.sleep(0.05)  # waiting costs no CPU

    workers = [threading.Thread(target=spin, args=("work", 0.05)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert list(clock.timed(iter([1, 2]), "read")) == [1, 2]
    seconds = clock.seconds()
    assert seconds["work"] >= 0.1 and seconds["sleep"] < 0.02 and "read" in seconds
    assert seconds["process"] >= seconds["work"]


def test_gpu_bench_runs_its_three_parts_on_cpu_with_tiny_models(tmp_path, ray_session, eager_dynamo):
    """The plumbing of `nerve bench gpu` (the GPU figures need a GPU): engine sweep with a compiled
    point, refinement, and the label job on real photographs against the engine alone."""
    argv = [
        "gpu", f"output={tmp_path}", f"cache_dir={tmp_path / 'models'}", "models=tiny", "device=cpu", "dtype=float32",
        "classes=demo", "sweep.batch_sizes=[1,2]", "sweep.batches=1", "sweep.image_height=40", "sweep.image_width=56",
        "sweep.threads=1", "sweep.count_flops=false", "compile_batch_sizes=[1]", "sweep.engine.refine.name=none",
        "refine.sizes=[16]", "refine.classes=[3]", "refine.heads=2", "refine.dim=8", "refine.methods=[lowrank]",
        "refine.forms=[cosine]", "refine.images=[1,2]", "refine.walk.steps=6", "refine.threads=1",
        "label.images=2", "label.per_shard=2", "label_batch_size=2",
    ]
    assert bench_main(argv) == 0
    results = json.loads((tmp_path / "gpu.json").read_text())
    runs = results["engine"]["runs"]
    assert [(r["compile"], r["batch_size"]) for r in runs] == [("none", 1), ("none", 2), ("default", 1)]
    assert runs[-1]["speedup"] == pytest.approx(runs[-1]["engine_images_per_second"] / runs[0]["engine_images_per_second"])
    assert {(r["N"], r.get("images", 1)) for r in results["refine"]["runs"]} == {(16, 1), (16, 2)}
    assert results["pipeline"]["measured"]["nerve label, end to end"]["images"] == 2
    assert results["pipeline"]["config"]["source"] == "photos" and set(results["seconds"]) == {"engine", "refine", "label"}
    assert (tmp_path / "pipeline" / "label" / "summary.json").is_file()  # the label job writes under output=, nowhere else
    table = (tmp_path / "gpu.md").read_text()
    assert table.startswith("## nerve bench gpu") and "| compile | batch |" in table and "nerve label" in table


@pytest.mark.slow
def test_pipeline_bench_standin_finds_the_host_ceiling(tmp_path):
    """The CLI in a fresh process (the stand-in bench starts a Ray of its own)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "jobs.cli", "bench", "pipeline", "models=standin", f"output={tmp_path}", "images=16",
               "per_shard=4", "standin.images_per_second=40", "standin.decode_threads=[1]", "standin.trial_seconds=0.2",
               "standin.precision=1.0", "engine_alone=false"]
    subprocess.run(command, check=True, cwd=Path(__file__).resolve().parents[1], timeout=600)
    results = read_results(tmp_path, "pipeline")
    assert "engine alone" not in results["measured"] and results["overhead_ratio"] is None  # engine_alone=false
    assert results["host_ceiling_images_per_second"]["1"] > 0
    cost = results["cpu_ms_per_image"]["1"]
    assert cost["total"] > 0 and cost["decode"] > 0 and cost["encode"] > 0
    for trial in results["ceilings"][0]["trials"]:  # 16 images, yet every trial had its 0.2 s of work
        assert trial["images"] >= trial["images_per_second"] * 0.2
    label_cost = results["label_job"]["cpu_ms_per_image"]
    # the stand-in's engine thread draws each label map (CPU) and then waits out 1/40 s per image, the
    # CPU released as a thread waiting on a GPU is: far less CPU than wall time per image
    assert 0 < label_cost["engine"] < 0.5 * 1000 / 40 and label_cost["metrics"] > 0
    assert "host ceiling, 1 decode threads" in (tmp_path / "pipeline.txt").read_text()


def test_a_ceiling_trial_gets_all_the_shards_it_asks_for_whatever_images_is(tmp_path):
    from pipeline.bench.pipeline import trial_shards
    from pipeline.read.reader import raw_samples
    from pipeline.read.shardlist import expand_shards, shard_id
    from tests.shards import make_demo_shards

    make_demo_shards(tmp_path / "shards", 6, per_shard=2, min_size=32, max_size=48)
    shards = expand_shards(str(tmp_path / "shards"))
    assert trial_shards(shards, 2, tmp_path / "repeats") == shards[:2]
    chosen = trial_shards(shards, 7, tmp_path / "repeats")  # the three, twice over, and one more
    assert len(chosen) == len({shard_id(u) for u in chosen}) == 7 and chosen[:3] == shards
    for again, first in zip(chosen[3:], shards * 2):
        assert [r["__key__"] for r in raw_samples(again)] == [r["__key__"] for r in raw_samples(first)]
    assert trial_shards(shards, 7, tmp_path / "repeats") == chosen  # a later trial reuses the links


def test_shards_bench_times_every_maker_on_trees_it_writes(tmp_path):
    from sources_support import read_shards

    from pipeline.bench.shards import ShardsBenchConfig

    makers = ShardsBenchConfig().makers
    assert bench_main(["shards", f"output={tmp_path}", "images=4", "repeats=1", "width=64", "height=48"]) == 0
    results = read_results(tmp_path, "shards")
    assert list(results["makers"]) == makers and len(results["load_average"]) == 3
    for maker, result in results["makers"].items():
        assert result["images"] == 4 and len(result["runs"]) == 1, maker
        assert result["wall_ms_per_image"] > 0 and result["cpu_ms_per_image"] > 0
        samples = read_shards(Path(result["shards"]))
        assert len(samples) == 4 and all("seg.png" in s for s in samples.values()), maker
    assert results["makers"]["voc"]["cpu_vs_voc"] == 1
    assert "coco_stuff" in (tmp_path / "shards.txt").read_text() and (tmp_path / "shards.png").stat().st_size > 0


def test_shards_bench_needs_voc_and_known_makers(capsys):
    assert bench_main(["shards", "makers=[ade]"]) == 2
    assert bench_main(["shards", "makers=[voc,kitti]"]) == 2
    assert "kitti" in capsys.readouterr().err
