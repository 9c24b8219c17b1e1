"""The object-store path: shards and outputs on s3://, against moto's standalone S3 server on loopback.

Covers what the README promises for `s3://` URLs: shard making, labeling, a killed actor's retry,
resume, verify and export. Ray workers reach the server through fsspec's environment config,
which must be in place before the session's Ray starts: tests/conftest.py sets it (`s3_store`).
"""
import json
import os
import signal

import pytest

from jobs.cli import main as nerve
from nerve_core.models.tiny import dotlist


@pytest.fixture(scope="module")
def bucket(s3_store):
    import fsspec

    fsspec.filesystem("s3").mkdir("nerve-test")
    return "s3://nerve-test"


@pytest.mark.timeout(1500)  # two label jobs and an actor restart: minutes on a busy 2-core machine
def test_label_retry_resume_verify_and_export_on_s3(bucket, ray_session, tiny_models, tmp_path, capsys):
    import fsspec

    from pipeline.score.verify import verify_output

    shards, out = f"{bucket}/shards", f"{bucket}/out"
    assert nerve(["shards", "demo", f"output={shards}", "num_samples=4", "per_shard=2", "progress=false"]) == 0
    assert nerve(["shards", "demo", f"output={shards}", "num_samples=2", "progress=false"]) == 2  # holds shards

    from jobs.config import load_config
    from pipeline.config import LabelJobConfig
    from pipeline.run.driver import run_label_job

    cfg = load_config(LabelJobConfig, [
        "dataset=demo", *dotlist(tiny_models), "engine.device=cpu", "engine.batch_size=1", f"input.shards={shards}",
        f"output.dir={out}", "output.confidence=true", "progress=false", "ray.num_actors=1", "ray.poll_s=0.1"])
    killed = []

    def kill_once(event, **data):  # SIGKILL the labeler at its first sign of progress
        if event == "progress" and not killed:
            killed.append(ray_session.get(data["actor"].info.remote())["pid"])
            os.kill(killed[0], signal.SIGKILL)

    first = run_label_job(cfg, on_event=kill_once)
    assert killed and first.ok and first.retries >= 1 and first.summary["num_images"] == 4

    fs = fsspec.filesystem("s3")
    stats = [p for p in fs.ls(f"{out}/shards", detail=False) if p.endswith(".stats.json")]
    assert len(stats) == 2
    fs.rm(stats[1])  # one shard undone: a rerun labels it alone
    second = run_label_job(cfg)
    assert second.ok and second.skipped == 1 and second.summary["num_images"] == 4

    report = verify_output(out)
    assert report.ok and report.inputs == report.ok_rows == 4, report.format()
    assert nerve(["verify", f"output.dir={out}"]) == 0

    assert nerve(["export", "png", f"output.dir={out}", f"to={tmp_path / 'png'}", "confidence_threshold=0.2",
                  "progress=false"]) == 0
    assert len(list((tmp_path / "png").glob("*.png"))) == 4
    assert nerve(["export", "coco", f"output.dir={out}", f"to={tmp_path / 'coco.json'}"]) == 0
    images = json.loads((tmp_path / "coco.images.json").read_text())["images"]
    assert len(images) == 4
    capsys.readouterr()

    # The browsable report reads OUT and the shards from the bucket and is written locally.
    assert nerve(["report", f"output.dir={out}", f"to={tmp_path / 'report'}", "progress=false"]) == 0
    data = (tmp_path / "report" / "data.js").read_text()
    gallery = json.loads(data[data.index("{"): data.rindex("}") + 1])
    cards = [dict(zip(gallery["card_columns"], c)) for c in gallery["cards"]]
    assert len(cards) == 4 and all(c["miou"] is not None and c["confidence"] is not None for c in cards)
    assert all((tmp_path / "report" / "thumbs" / c["thumb"]).is_file() for c in cards)
