"""Faults inside one job: an actor SIGKILLed mid-shard, an engine error on one batch, a write
that fails. Each must end with nothing lost and `nerve verify` agreeing."""
import os
import shutil
import signal

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from jobs.cli import main as nerve
from jobs.config import load_config
from pipeline.config import LabelJobConfig
from pipeline.output.outputdir import OutputDir
from pipeline.output.pngcodec import decode_index_png as decode_png
from pipeline.run.driver import run_label_job
from pipeline.score.verify import verify_output
from tests import faults as F
from tests.faults import StallingFifo, in_process_labeler, wait_until_gone
from tests.shards import make_demo_shards, write_raw_tar


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("fault_shards")
    make_demo_shards(path, 8, per_shard=4, max_size=72)
    return path


def _cfg(engine, shards, out, *extra):
    return load_config(LabelJobConfig, [
        "dataset=demo", *engine, "engine.device=cpu", "engine.batch_size=1",
        f"input.shards={shards}", f"output.dir={out}", "progress=false", "ray.num_actors=1", "ray.poll_s=0.1",
        *extra])


def _rows(out, shard):
    return pq.read_table(out / "shards" / f"{shard}.parquet").to_pylist()


def test_actor_sigkilled_mid_shard_is_retried_without_loss(ray_session, standin_engine, shards_dir, tmp_path):
    fifo = StallingFifo(tmp_path / "shard-000001.tar", (shards_dir / "shard-000001.tar").read_bytes())
    shards = f"[{shards_dir / 'shard-000000.tar'},{fifo.path}]"
    killed = []

    def kill_mid_shard(event, **data):
        if event == "progress" and data["shard"] == "shard-000001" and not killed:
            pid = ray_session.get(data["actor"].info.remote())["pid"]
            os.kill(pid, signal.SIGKILL)
            wait_until_gone(pid)  # its end of the pipe is closed: the retry reads a fresh one
            killed.append(pid)
            fifo.release()

    out = tmp_path / "out"
    result = run_label_job(_cfg(standin_engine, shards, out, "ray.shard_timeout_s=300"), on_event=kill_mid_shard)
    assert killed and result.ok and result.retries == 1
    stats = OutputDir(str(out)).read_stats(["shard-000001"])["shard-000001"]
    assert stats.attempt == 1 and stats.samples == 4 and stats.actor_pid != killed[0]
    report = verify_output(str(out), [str(shards_dir / "shard-000000.tar"), str(shards_dir / "shard-000001.tar")])
    assert report.ok, report.format()
    assert report.inputs == report.ok_rows == 8


class _FaultyEngine:
    """The real engine, but a batch of more than two images runs out of memory and an image of
    the poisoned size always fails: what bisection must work around."""

    def __init__(self, engine, poison_size):
        self.engine, self.poison_size, self.batches = engine, poison_size, []

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def run(self, prepared, *args, **kwargs):
        self.batches.append(len(prepared))
        if len(prepared) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        if any(p.size == self.poison_size for p in prepared):
            raise RuntimeError("kernel failed on this image (injected)")
        return self.engine.run(prepared, *args, **kwargs)


def test_engine_error_on_a_batch_is_bisected_before_samples_fail(ray_session, tiny_models, tmp_path):
    members = [(f"img{i}.png", F.png(F.picture(40 + i, 30))) for i in range(5)]
    members.insert(2, ("poison.png", F.png(F.picture(33, 17))))
    write_raw_tar(tmp_path / "b-000000.tar", members)
    labeler = in_process_labeler(tiny_models, tmp_path, "engine.batch_size=6")
    labeler.label_shard(str(tmp_path / "b-000000.tar"))
    reference = {r["key"]: r for r in _rows(tmp_path, "b-000000")}
    faulty = labeler._engine = _FaultyEngine(labeler.engine, poison_size=(17, 33))
    stats = labeler.label_shard(str(tmp_path / "b-000000.tar"))  # the same shard again, same outputs
    # 6 -> OOM; 3 -> OOM, 3 -> OOM; then 1+2 and 1+2: the pair holding the poison splits again.
    assert faulty.batches == [6, 3, 1, 2, 1, 1, 3, 1, 2]
    assert stats.errors_by_reason == {"engine": 1} and stats.ok == 5
    rows = {r["key"]: r for r in _rows(tmp_path, "b-000000")}
    assert rows["poison"]["error"] == "engine: RuntimeError: kernel failed on this image (injected)"
    for key in (f"img{i}" for i in range(5)):
        np.testing.assert_array_equal(decode_png(rows[key]["mask_png"]), decode_png(reference[key]["mask_png"]))


def test_unwritable_output_is_retried_then_failed_with_a_clear_exit(ray_session, standin_engine, shards_dir, tmp_path,
                                                                     capsys):
    out = tmp_path / "out"
    blocked = []

    def block_writes(event, **data):
        # After the driver prepared the directory, `shards/` becomes a file: every write under it
        # fails, for root too (a chmod would not stop root).
        if event == "dispatch" and not blocked:
            shutil.rmtree(out / "shards")
            (out / "shards").write_bytes(b"")
            blocked.append(True)

    result = run_label_job(_cfg(standin_engine, shards_dir, out, "ray.max_retries=1"), on_event=block_writes)
    assert not result.ok and result.retries == 2 and sorted(result.not_done) == ["shard-000000", "shard-000001"]
    failed = OutputDir(str(out)).failures()
    assert [f["attempts"] for f in failed] == [2, 2]
    assert all("NotADirectoryError" in f["reason"] or "FileExistsError" in f["reason"] for f in failed)
    assert nerve(["verify", f"output.dir={out}"]) == 1

    # The same command once the location is writable again: everything is labeled, exit 0.
    (out / "shards").unlink()
    args = ["label", "dataset=demo", *standin_engine, "engine.device=cpu", f"input.shards={shards_dir}",
            f"output.dir={out}", "progress=false", "ray.num_actors=1", "ray.poll_s=0.1"]
    assert nerve(args) == 0
    assert not (out / "failed_shards.json").exists() and nerve(["verify", f"output.dir={out}"]) == 0

    # An output location that cannot be written at all: a one-line error and a non-zero exit.
    (tmp_path / "blocked").write_bytes(b"")
    capsys.readouterr()
    assert nerve([*args[:-4], f"output.dir={tmp_path / 'blocked' / 'out'}", *args[-3:]]) == 2
    assert "nerve: cannot write the outputs" in capsys.readouterr().err
