"""A run directory written by release 0.1.0 (tests/fixtures/release-0.1.0) is still read by `score`,
`verify`, `report` and `export`, and `label` resumes it: nothing its fingerprint covers changed."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from jobs.cli import main as nerve
from pipeline.output.outputdir import OutputDir
from tests.release_run import FIXTURE, copy_release_run

RECORDED = json.loads((FIXTURE / "run" / "summary.json").read_text())


@pytest.fixture
def release(tmp_path, monkeypatch):
    """(the label command of the copy, the copy's folder), with the copy as the working directory."""
    command = copy_release_run(tmp_path / "release")
    monkeypatch.chdir(tmp_path / "release")
    return command, tmp_path / "release"


def test_its_record_reads_as_the_typed_job(release):
    record = OutputDir("run").existing_record()
    assert record.config.input.shards == "shards" and record.config.dataset.name == "demo"
    assert record.class_names == RECORDED["class_names"] and record.digest == RECORDED["fingerprint"]


def test_score_and_verify_read_it(release, capsys):
    assert nerve(["score", "output.dir=run"]) == 0
    assert f"mIoU {RECORDED['miou']:.2f}" in capsys.readouterr().out
    assert json.loads((release[1] / "run" / "summary.json").read_text())["miou"] == RECORDED["miou"]
    assert nerve(["verify", "output.dir=run"]) == 0


def test_report_and_exports_read_it(release):
    folder = release[1]
    assert nerve(["report", "output.dir=run", "progress=false"]) == 0
    data = (folder / "run" / "report" / "data.js").read_text()
    cards = json.loads(data[data.index("{"): data.rindex("}") + 1])["cards"]
    assert len(cards) == RECORDED["num_images"] - RECORDED["num_errors"] == 8
    # labeled with models=real but the tiny models' paths: their files say the weights are random
    assert "RANDOM weights (clip: models/clip/nerve-tiny-clip.safetensors; sd: models/sd)" in (
        folder / "run" / "report" / "index.html").read_text()
    assert nerve(["export", "png", "output.dir=run", "to=png", "progress=false"]) == 0
    assert len(list((folder / "png").glob("*.png"))) == 8
    assert nerve(["export", "coco", "output.dir=run", "to=coco.json"]) == 0
    assert len(json.loads((folder / "coco.images.json").read_text())["images"]) == 8


def _label(command: list[str], folder) -> subprocess.CompletedProcess:
    """The recorded command, as a user runs it from the fixture's folder: its own local Ray, whose
    actors resolve the relative shard and model paths from there."""
    return subprocess.run([sys.executable, "-m", "jobs.cli", *command, "ray.local_num_cpus=2"], cwd=folder,
                          capture_output=True, text=True, timeout=600)


def test_label_resumes_it_and_relabels_only_a_shard_whose_marker_is_gone(release):
    command, folder = release
    shards = folder / "run" / "shards"
    before = yaml.safe_load((folder / "run" / "config.yaml").read_text())["fingerprint"]
    stats = {p.name: p.read_bytes() for p in shards.glob("*.stats.json")}
    proc = _label(command, folder)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load((folder / "run" / "config.yaml").read_text())["fingerprint"] == before
    assert {p.name: p.read_bytes() for p in shards.glob("*.stats.json")} == stats  # every shard skipped
    (shards / "demo-000001.stats.json").unlink()
    proc = _label(command, folder)
    assert proc.returncode == 0, proc.stderr
    after = {p.name: p.read_bytes() for p in shards.glob("*.stats.json")}
    assert sorted(after) == sorted(stats)
    assert [name for name in stats if after[name] != stats[name]] == ["demo-000001.stats.json"]  # relabeled: new timings
    summary = json.loads((folder / "run" / "summary.json").read_text())
    assert (summary["num_images"], summary["num_errors"]) == (RECORDED["num_images"], 1)
    assert summary["miou"] == RECORDED["miou"]  # the same models and settings label it as 0.1.0 did
