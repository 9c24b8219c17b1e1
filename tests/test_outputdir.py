"""The one reader of an output directory: what a done shard is, and the same refusals from every command."""
import json

import numpy as np
import pytest

from jobs.cli import main as nerve
from pipeline.output.outputdir import NotAnOutputDir, OutputDir
from pipeline.output.shard_stats import ShardStats
from pipeline.output.writers import ShardResult


def _shard(out: OutputDir, shard: str, stats: ShardStats | None) -> None:
    result = ShardResult(shard, "fp")
    result.add_ok(f"{shard}-a", 1, np.zeros((2, 3), np.uint8), None)
    out.write_shard(result)
    if stats is not None:
        out.write_stats(stats)


def test_a_done_shard_has_a_complete_stats_file_not_marked_partial(tmp_path):
    out = OutputDir(str(tmp_path))
    out.prepare({"input": {"shards": []}}, {"digest": "d"}, "resume")
    _shard(out, "done", ShardStats("done", samples=1))
    _shard(out, "partial", ShardStats("partial", samples=1, partial=True, read_error="cut"))
    _shard(out, "running", None)
    _shard(out, "torn", None)
    (tmp_path / "shards" / "torn.stats.json").write_text('{"samples": ')  # not whole: no marker
    assert out.done_shards() == {"done"}
    assert sorted(out.stats()) == ["done", "partial"]
    assert out.labeled_shards() == ["done", "partial", "running", "torn"]
    assert [r["key"] for r in out.rows("done", ["key", "no_such_column"])] == ["done-a"]
    record = out.existing_record()  # the typed job: keys config.yaml lacks take the schema's defaults
    assert record.config.input.shards == [] and record.config.dataset.name == "demo" and record.digest == "d"


@pytest.mark.parametrize("command", [["verify"], ["score"], ["export", "coco", "to=x.json"], ["export", "png", "to=x"]])
def test_every_reader_refuses_the_same_way(command, tmp_path, capsys):
    assert nerve([*command, f"output.dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err == f"nerve: {tmp_path} has no config.yaml: not an output directory\n"
    assert nerve(command) == 2
    assert capsys.readouterr().err == "nerve: output.dir is required\n"


def test_a_fresh_directory_has_no_record(tmp_path):
    out = OutputDir(str(tmp_path / "new"))
    assert out.record() is None and out.done_shards() == set() and out.failures() == []
    with pytest.raises(NotAnOutputDir):
        out.existing_record()
    (tmp_path / "new").mkdir()
    out.record_failures([{"shard": "s", "reason": "r"}])
    assert json.loads((tmp_path / "new" / "failed_shards.json").read_text()) == {"failed": [{"shard": "s", "reason": "r"}]}
    out.record_failures([])
    assert out.failures() == [] and not (tmp_path / "new" / "failed_shards.json").exists()


def test_a_record_that_does_not_fit_the_job_schema_is_one_line(tmp_path, capsys):
    out = OutputDir(str(tmp_path))
    out.prepare({"input": {"shardz": "x"}}, {"digest": "d"}, "resume")  # a key this release does not know
    assert nerve(["verify", f"output.dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"nerve: {tmp_path}/config.yaml does not fit this release's job schema")
    (tmp_path / "config.yaml").write_text("config: {}\n")
    assert nerve(["score", f"output.dir={tmp_path}"]) == 2
    assert "is not a run record" in capsys.readouterr().err


def test_the_preflight_skips_indexed_shards_with_a_stats_file_and_reads_none(tmp_path, monkeypatch):
    out = OutputDir(str(tmp_path))
    out.prepare({"input": {"shards": []}}, {"digest": "d"}, "resume")
    for shard in ("a", "b", "c"):
        _shard(out, shard, ShardStats(shard, samples=1))
    out.index(writable=True).flush()  # the index holds a, b and c
    _shard(out, "late", ShardStats("late", samples=1))  # done after the index was last written
    (tmp_path / "shards" / "b.stats.json").unlink()  # removed by hand: relabeled by the next run
    monkeypatch.setattr(OutputDir, "read_stats", lambda self, shards: pytest.fail(f"read {shards}"))
    assert out.done_for({"digest": "d"}, "resume") == {"a", "c"}
    assert out.done_for({"digest": "other"}, "resume") == out.done_for({"digest": "d"}, "overwrite") == set()
