"""The run index in real label jobs: the summary equals the merge of every stats file, a rerun with
every shard done reads none of them, and a driver killed at the index write loses nothing and
labels nothing twice."""
from __future__ import annotations

import json
import shutil

import pytest

from jobs.config import load_config
from nerve_core.models.tiny import dotlist
from pipeline.config import LabelJobConfig
from pipeline.output import run_index
from pipeline.output.outputdir import OutputDir
from pipeline.output.run_totals import merge_stats
from pipeline.run.driver import run_label_job
from tests import faults as F
from tests.shards import make_demo_shards, marker_times, settled_markers, write_raw_tar


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[str]:
    """Five demo shards, one holding an undecodable image, one cut inside a member (partial)."""
    base = tmp_path_factory.mktemp("index-inputs")
    make_demo_shards(base / "demo", 10, per_shard=2, max_size=72)
    demo = sorted(str(p) for p in (base / "demo").glob("*.tar"))
    write_raw_tar(base / "bad-000000.tar", [("broken.jpg", F.corrupt_jpeg()), ("fine.png", F.png(F.picture()))])
    (base / "trunc-000000.tar").write_bytes(F.cut_in_member((base / "demo" / "shard-000000.tar").read_bytes(), 3))
    return [*demo, str(base / "bad-000000.tar"), str(base / "trunc-000000.tar")]


def label(engine: list[str], shards: list[str], out, *extra: str):
    """`engine`: the tiny models' overrides (dotlist) or the stand-in's (the `standin_engine` fixture)."""
    cfg = load_config(LabelJobConfig, [
        "dataset=demo", *engine, "engine.device=cpu", "engine.batch_size=2",
        f"input.shards=[{','.join(shards)}]", f"output.dir={out}", "progress=false", "ray.num_actors=1",
        "ray.poll_s=0.05", "ray.max_retries=1", *extra])
    return run_label_job(cfg)


def merged_from_every_stats_file(out) -> dict:
    record = OutputDir(str(out)).existing_record()
    return json.loads(json.dumps(merge_stats(list(OutputDir(str(out)).stats().values()), record.class_names,
                                             record.fingerprint)))


@pytest.mark.parametrize("classes", ["voc21", "coco_stuff"])
def test_the_summary_from_the_index_equals_the_merge_of_every_stats_file(ray_session, tiny_models, inputs, tmp_path,
                                                                         classes):
    out = tmp_path / "out"
    result = label(dotlist(tiny_models), inputs, out, f"dataset.classes={classes}")  # the real engine: walk stats too
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("last_run")
    assert result.retries and summary["partial_shards"] == ["trunc-000000"] and summary["errors_by_reason"]
    assert summary == merged_from_every_stats_file(out)
    assert list((out / "index").glob("part-*.parquet")) and len(summary["class_names"]) in (21, 171)


def test_a_rerun_with_every_shard_done_reads_no_stats_file(ray_session, standin_engine, inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    label(standin_engine, inputs[:5], out)
    reads: list[list[str]] = []
    read_stats = OutputDir.read_stats
    monkeypatch.setattr(OutputDir, "read_stats", lambda self, shards: reads.append(list(shards)) or read_stats(self, shards))
    again = label(standin_engine, inputs[:5], out)
    assert again.ok and again.skipped == 5 and again.done == []
    assert [r for r in reads if r] == []  # what is done came from the index and one listing
    (out / "shards" / "shard-000002.stats.json").unlink()  # relabel exactly this one
    third = label(standin_engine, inputs[:5], out)
    assert third.done == ["shard-000002"] and third.summary["num_shards"] == 5


@pytest.mark.parametrize("where", ["before the index write", "inside the index write"])
def test_a_driver_killed_at_the_index_write_loses_nothing_and_labels_nothing_twice(ray_session, standin_engine, inputs,
                                                                                    tmp_path, monkeypatch, where):
    """Parts of two shards: the first part is written, then the driver dies at the second, either
    before anything of it reaches the store or with its temporary file half written."""
    monkeypatch.setattr(run_index, "PART_SHARDS", 2)
    out = tmp_path / "out"
    writes = []
    atomic_write = run_index.atomic_write

    def dies_at_the_second_part(fs, path, data):
        writes.append(path)
        if len(writes) >= 2:  # from here on the driver is dead: nothing it would write gets written
            if where == "inside the index write" and len(writes) == 2:
                fs.pipe(f"{path}.tmp-killed", data[: len(data) // 2])
            raise KeyboardInterrupt  # what a kill looks like from here: the driver stops where it is
        atomic_write(fs, path, data)

    monkeypatch.setattr(run_index, "atomic_write", dies_at_the_second_part)
    with pytest.raises(KeyboardInterrupt):
        label(standin_engine, inputs[:5], out)
    monkeypatch.setattr(run_index, "atomic_write", atomic_write)
    parts = sorted(p.name for p in (out / "index").iterdir())
    assert parts[0] == "part-000000.parquet" and "part-000001.parquet" not in parts
    before = settled_markers(out)
    again = label(standin_engine, inputs[:5], out)
    done_first = set(before)
    assert again.ok and sorted(again.done) == sorted({f"shard-00000{i}" for i in range(5)} - done_first)
    assert {k: v for k, v in marker_times(out).items() if k in before} == before  # no done shard relabeled
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("last_run")
    assert summary == merged_from_every_stats_file(out) and summary["num_shards"] == 5


def test_a_run_written_before_the_index_builds_it_on_its_first_resume(ray_session, standin_engine, inputs, tmp_path):
    out = tmp_path / "out"
    label(standin_engine, inputs[:5], out)
    shutil.rmtree(out / "index")  # as the previous release left it: stats files, no index
    before = marker_times(out)
    again = label(standin_engine, inputs[:5], out)
    assert again.skipped == 5 and marker_times(out) == before and list((out / "index").glob("part-*.parquet"))
