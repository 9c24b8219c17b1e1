"""The label job end to end on generated shards, tiny models and the session's local Ray.

One uninterrupted reference run feeds every check: outputs against an independent mIoU, a resumed
run and a run whose actor is killed mid-shard must both reproduce it exactly.
"""
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.cli import main as nerve
from jobs.config import load_config
from nerve_core.models.tiny import dotlist
from pipeline.config import LabelJobConfig
from pipeline.output.outputdir import OutputDir
from pipeline.output.pngcodec import decode_index_png as decode_png
from pipeline.run.busy import busy_seconds
from pipeline.run.driver import run_label_job
from pipeline.score.verify import coco_loads, verify_output
from tests.faults import StallingFifo, wait_until_gone
from tests.shards import make_demo_shards, read_ground_truth, set_iou

SHARDS = ["shard-000000", "shard-000001", "shard-000002"]
NUM_CLASSES = 5  # configs/classes/demo.txt


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("shards")
    make_demo_shards(path, 10, per_shard=4, max_size=96)  # 4 + 4 + 2 samples
    return path


def _args(tiny_models, shards_dir, out, *extra):
    return ["dataset=demo", *dotlist(tiny_models), "engine.device=cpu", "engine.batch_size=2",
            f"input.shards={shards_dir}", f"output.dir={out}", "output.confidence=true",
            "progress=false", "ray.num_actors=1", "ray.poll_s=0.1", *extra]


@pytest.fixture(scope="module")
def reference(ray_session, tiny_models, shards_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    assert nerve(["label", *_args(tiny_models, shards_dir, out)]) == 0
    return out


def _rows(out, shard):
    return pq.read_table(out / "shards" / f"{shard}.parquet").to_pylist()


def _same_outputs(out, reference):
    for shard in SHARDS:
        got, want = _rows(out, shard), _rows(reference, shard)
        assert [r["key"] for r in got] == [r["key"] for r in want]
        for a, b in zip(got, want):
            np.testing.assert_array_equal(decode_png(a["mask_png"]), decode_png(b["mask_png"]))
            assert a["classes"] == b["classes"]
    summary, expected = (json.loads((d / "summary.json").read_text()) for d in (out, reference))
    for key in ("num_images", "num_errors", "miou", "per_class_iou", "aacc", "confusion", "fingerprint"):
        assert summary[key] == expected[key], key


def test_end_to_end_outputs_and_independent_miou(reference, shards_dir, capsys):
    summary = json.loads((reference / "summary.json").read_text())
    assert (summary["num_images"], summary["num_errors"], summary["num_shards"]) == (10, 0, 3)
    preds, gts = [], []
    for shard in SHARDS:
        gt = read_ground_truth(shards_dir / f"{shard}.tar")
        rows = _rows(reference, shard)
        assert sorted(r["key"] for r in rows) == sorted(gt)  # one row per input sample
        sizes = {}
        for row in rows:
            mask = decode_png(row["mask_png"])
            assert row["status"] == "ok" and mask.shape == gt[row["key"]].shape == (row["height"], row["width"])
            assert decode_png(row["confidence_png"]).shape == mask.shape
            preds.append(mask)
            gts.append(gt[row["key"]])
            sizes[row["image_id"]] = mask.shape
        coco = json.loads((reference / "shards" / f"{shard}.coco.json").read_text())
        assert coco_loads(coco, sizes) is None and len(coco) == sum(len(r["classes"]) for r in rows)
    iou = set_iou(preds, gts, NUM_CLASSES)
    assert summary["miou"] == pytest.approx(100 * np.nanmean(iou), abs=1e-3)
    names = ["background", "red circle", "green square", "blue triangle", "yellow bar"]
    for name, value in zip(names, iou):
        assert summary["per_class_iou"][name] == (None if np.isnan(value) else pytest.approx(100 * value, abs=1e-3))
    walks = [r["walk"] for shard in SHARDS for r in _rows(reference, shard)]  # the walk's diagnostics per image
    assert all(sum(w["head_weights"]) == pytest.approx(1, abs=1e-5) for w in walks)
    assert summary["walk"]["images"] == 10 and 0 <= summary["walk"]["global_rows_kept"]["mean"] <= 1
    # One actor was handed two shards at once (ray.shards_ahead=1): the second started before the
    # first finished, and the job's labeling time counts the overlap once.
    stats = sorted(OutputDir(str(reference)).stats().values(), key=lambda s: s.finished_at)
    assert len({s.actor_pid for s in stats}) == 1
    assert stats[1].started_at < stats[0].finished_at
    busy = busy_seconds(stats)[stats[0].actor_pid]
    assert busy < sum(s.seconds["total"] for s in stats)
    assert busy <= stats[-1].finished_at - min(s.started_at for s in stats) + 1e-6
    run = summary["last_run"]
    assert run["labeling_images_per_second"] == pytest.approx(10 / busy, rel=1e-9)
    print(f"\nend to end {run['images_per_second']:.2f} img/s, engine alone {run['engine_images_per_second']:.2f} img/s")

    assert verify_output(str(reference)).ok
    assert nerve(["verify", f"output.dir={reference}"]) == 0
    assert nerve(["score", f"output.dir={reference}", f"input.shards={shards_dir}"]) == 0
    rescored = json.loads((reference / "summary.json").read_text())
    assert rescored["miou"] == summary["miou"] and rescored["confusion"] == summary["confusion"]
    capsys.readouterr()


def test_resume_skips_done_shards_and_matches_uninterrupted(reference, tiny_models, shards_dir, tmp_path):
    # What an interrupted run leaves: config.yaml, shard 0 done, shard 1 half-written (no stats).
    out = tmp_path / "resumed"
    (out / "shards").mkdir(parents=True)
    shutil.copy(reference / "config.yaml", out / "config.yaml")
    for name in ("shard-000000.parquet", "shard-000000.coco.json", "shard-000000.stats.json", "shard-000001.parquet"):
        shutil.copy(reference / "shards" / name, out / "shards" / name)
    done_before = (out / "shards" / "shard-000000.parquet").stat().st_mtime_ns
    assert nerve(["label", *_args(tiny_models, shards_dir, out)]) == 0
    assert (out / "shards" / "shard-000000.parquet").stat().st_mtime_ns == done_before
    run = json.loads((out / "summary.json").read_text())["last_run"]
    assert (run["shards_skipped"], run["shards_labeled"]) == (1, 2)
    _same_outputs(out, reference)
    assert verify_output(str(out)).ok


def test_actor_killed_mid_shard_is_retried_without_loss(reference, tiny_models, shards_dir, tmp_path):
    import ray

    fifo = tmp_path / "pipe" / "shard-000001.tar"
    fifo.parent.mkdir()
    feeder = StallingFifo(fifo, (shards_dir / "shard-000001.tar").read_bytes())
    killed = feeder.released
    inputs = f"input.shards=[{shards_dir / 'shard-000000.tar'},{fifo},{shards_dir / 'shard-000002.tar'}]"
    cfg = load_config(LabelJobConfig, _args(tiny_models, shards_dir, tmp_path / "killed", "engine.batch_size=1", inputs,
                                                "ray.shard_timeout_s=300"))

    def kill_actor_mid_shard(event, **data):
        if event == "progress" and data["shard"] == "shard-000001" and not killed.is_set():
            pid = ray.get(data["actor"].info.remote())["pid"]
            ray.kill(data["actor"])
            wait_until_gone(pid)  # its end of the pipe is closed: the retry reads a fresh one
            feeder.release()

    result = run_label_job(cfg, on_event=kill_actor_mid_shard)
    assert killed.is_set() and result.ok and result.retries == 1
    stats = json.loads((tmp_path / "killed" / "shards" / "shard-000001.stats.json").read_text())
    assert stats["attempt"] == 1 and stats["samples"] == 4
    report = verify_output(str(tmp_path / "killed"), str(shards_dir))
    assert report.ok, report.format()
    assert report.inputs == report.ok_rows == 10
    _same_outputs(tmp_path / "killed", reference)


def test_one_actor_per_gpu_each_pinned_to_its_own(ray_session, tiny_models):
    from pipeline.job import ActorJob
    from pipeline.run.actors import plan_actors, start_labeler

    resources = ray_session.cluster_resources()
    assert resources.get("GPU") == 2
    plan = plan_actors(0, 0.0, "auto", resources)
    assert (plan.num_actors, plan.num_gpus) == (2, 1) and plan.num_cpus * 2 < resources["CPU"]
    job = ActorJob(LabelJobConfig(), (("background",),), "digest", plan.device)
    actors = [start_labeler(plan, job) for _ in range(plan.num_actors)]
    try:
        infos = ray_session.get([a.info.remote() for a in actors])
    finally:
        for actor in actors:
            ray_session.kill(actor)
    gpu_ids = [tuple(i["gpu_ids"]) for i in infos]
    assert all(len(g) == 1 for g in gpu_ids) and len(set(gpu_ids)) == 2
    assert [i["cuda_visible_devices"] for i in infos] == [g[0] for g in gpu_ids]
    assert all(i["engine_device"] is None for i in infos)  # no engine (and no CUDA) until a shard comes
    cpu_plan = plan_actors(0, 0.0, "cpu", resources)
    assert (cpu_plan.num_actors, cpu_plan.num_gpus, cpu_plan.device) == (1, 0, "cpu")
    with pytest.raises(ValueError, match="GPU"):
        plan_actors(3, 0.0, "cuda", resources)
    with pytest.raises(ValueError, match="no GPU"):
        plan_actors(0, 0.0, "cuda", {"CPU": 2})


def test_bad_samples_and_truncated_shard_are_accounted_for(ray_session, tiny_models, shards_dir, tmp_path, capsys):
    from PIL import Image

    from pipeline.sources.synthetic import encode_image
    from tests.shards import write_raw_tar

    inputs = tmp_path / "in"
    inputs.mkdir()
    good = encode_image(Image.new("RGB", (40, 30), (90, 90, 90)), "png")
    write_raw_tar(inputs / "odd-000000.tar", [("broken.jpg", b"not a jpeg"), ("fine.png", good)])
    data = (shards_dir / "shard-000000.tar").read_bytes()
    (inputs / "odd-000001.tar").write_bytes(data[: int(len(data) * 0.7)])
    out = tmp_path / "out"
    assert nerve(["label", *_args(tiny_models, inputs, out, "ray.max_retries=0")]) == 1
    assert "failed shard odd-000001" in capsys.readouterr().err
    failed = json.loads((out / "failed_shards.json").read_text())["failed"]
    assert [f["shard"] for f in failed] == ["odd-000001"] and failed[0]["reason"].startswith("partial shard")
    rows = _rows(out, "odd-000000")
    assert [(r["key"], r["status"]) for r in rows] == [("broken", "error"), ("fine", "ok")]
    assert rows[0]["error"].startswith("decode_image")
    partial = _rows(out, "odd-000001")  # the samples before the damage, though the shard is not done
    assert 0 < len(partial) <= 4 and all(r["status"] == "ok" for r in partial[:-1])
    assert partial[-1]["error"].startswith("truncated")  # the sample the cut falls in
    report = verify_output(str(out))
    assert not report.ok and report.shards_not_done == ["odd-000001"] and report.unreadable_inputs
    assert report.partial_shards and not report.missing_keys
    assert report.error_rows == {"decode_image": 1, "truncated": 1}


def test_verify_lists_what_is_wrong(reference, shards_dir, tmp_path, capsys):
    out = tmp_path / "tampered"
    shutil.copytree(reference, out)
    (out / "shards" / "shard-000002.stats.json").unlink()
    table = pq.read_table(out / "shards" / "shard-000000.parquet")
    rows = table.to_pylist()
    pq.write_table(pa.Table.from_pylist([rows[0], rows[0], *rows[2:]], schema=table.schema),
                   out / "shards" / "shard-000000.parquet")
    coco_path = out / "shards" / "shard-000001.coco.json"
    coco = json.loads(coco_path.read_text())
    coco[0]["image_id"] = 10_000
    coco_path.write_text(json.dumps(coco))
    assert nerve(["verify", f"output.dir={out}", f"input.shards={shards_dir}"]) == 1
    text = capsys.readouterr().out
    for expected in ("PROBLEMS", "shards not done (1): shard-000002", "missing keys (1): shard-000000/demo000001",
                     "duplicated keys (1): shard-000000/demo000000",
                     # shard 0's results still hold the dropped row's image; shard 1 names an unknown one
                     "coco problems (2): shard-000000: COCO.loadRes refuses", "shard-000001: COCO.loadRes refuses"):
        assert expected in text, text
