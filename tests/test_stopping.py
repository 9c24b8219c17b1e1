"""A label job stopped by SIGTERM or SIGINT loses nothing (pipeline/run/stopping.py): the first signal
stops the handing out and lets the shard being labeled finish within ray.stop_grace_s; a second
signal, or a grace of 0, stops at once; the summary is written, the exit status is 75 with one line,
the previous handlers come back, and a rerun labels exactly the shards not done.

In-process jobs on the session's Ray signal themselves from the pool's "dispatch" event of shard 1, so
the moment is exact: the one actor is starting on shard 0 and holds shard 1, handed over ahead of it.
A subprocess job with its own Ray gets SIGINT the way Ctrl-C sends it (its whole process group).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.cli import main as nerve
from jobs.config import load_config
from nerve_core.models.tiny import dotlist
from pipeline.config import LabelJobConfig
from pipeline.run.driver import run_label_job
from pipeline.score.verify import verify_output
from tests.shards import demo_shards_dir, marker_times, settled_markers

ROOT = Path(__file__).resolve().parents[1]
SHARDS = 4


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory):
    return demo_shards_dir(tmp_path_factory, "stop-shards", SHARDS, max_size=64)


def _args(engine: list[str], shards_dir, out, *extra) -> list[str]:
    """`engine`: the tiny models' overrides (dotlist): an engine slow enough that a shard handed
    ahead is still unlabeled when the stopped job's actors are killed."""
    return ["dataset=demo", *engine, "engine.device=cpu", f"input.shards={shards_dir}",
            f"output.dir={out}", "progress=false", "ray.num_actors=1", "ray.poll_s=0.1", *extra]


def _signal_at_hand_over(*signums):
    """on_event: when shard 1 is handed over (ahead of shard 0), send these signals to this process."""
    def on_event(name, **data):
        if name == "dispatch" and data["shard"] == "shard-000001":
            for signum in signums:
                os.kill(os.getpid(), signum)
    return on_event


def _resume_labels_only_the_rest(engine: list[str], shards_dir, out) -> None:
    """A rerun skips exactly the shards done when the stopped run's actors were gone, and labels the rest."""
    kept = settled_markers(out)
    done = sorted(kept)
    result = run_label_job(load_config(LabelJobConfig, _args(engine, shards_dir, out)))
    assert result.ok and not result.stopped and result.skipped == len(done)
    assert len(result.done) == SHARDS - len(done) and not set(result.done) & set(done)
    assert {k: v for k, v in marker_times(out).items() if k in kept} == kept  # nothing labeled twice
    assert verify_output(str(out)).ok


def test_first_signal_lets_the_shard_being_labeled_finish_then_a_rerun_resumes(
        ray_session, tiny_models, shards_dir, tmp_path):
    signum = signal.SIGTERM  # SIGINT: test_ctrl_c_on_a_subprocess_job_then_a_rerun_resumes
    before = signal.getsignal(signum)
    cfg = load_config(LabelJobConfig, _args(dotlist(tiny_models), shards_dir, tmp_path, "ray.stop_grace_s=60"))
    result = run_label_job(cfg, on_event=_signal_at_hand_over(signum))
    assert result.stopped == signal.Signals(signum).name and not result.ok
    assert result.done == ["shard-000000"]  # the one being labeled finished in the grace
    # Shard 1 was let go; its actor may have labeled it in the moment before the pool stopped it.
    done = sorted(settled_markers(tmp_path))
    assert done in (["shard-000000"], ["shard-000000", "shard-000001"])
    assert len(result.not_done) == SHARDS - len(done) and not result.failed and result.retries == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["num_shards"] == len(done) and summary["last_run"]["shards_labeled"] == 1
    assert signal.getsignal(signum) is before  # the job's handler is gone
    _resume_labels_only_the_rest(dotlist(tiny_models), shards_dir, tmp_path)


@pytest.mark.parametrize("grace,signals", [(0, 1), (60, 2)], ids=["grace-0", "second-signal"])
def test_no_grace_or_a_second_signal_stops_at_once(grace, signals, ray_session, tiny_models, shards_dir, tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    cfg = load_config(LabelJobConfig, _args(dotlist(tiny_models), shards_dir, tmp_path, f"ray.stop_grace_s={grace}"))
    start = time.monotonic()
    result = run_label_job(cfg, on_event=_signal_at_hand_over(*[signal.SIGTERM] * signals))
    assert result.stopped == "SIGTERM" and result.done == []  # shard 0 was not waited for
    assert time.monotonic() - start < 60
    assert signal.getsignal(signal.SIGTERM) is before
    # Its actor, killed as the job ended, may have written it in that moment: then it is done.
    written = set(settled_markers(tmp_path))
    assert written <= {"shard-000000"}
    assert verify_output(str(tmp_path)).shards_not_done == [f"shard-{i:06d}" for i in range(SHARDS) if f"shard-{i:06d}" not in written]


def test_the_command_exits_75_with_one_line_that_says_a_rerun_resumes(
        ray_session, tiny_models, shards_dir, tmp_path, monkeypatch, capsys):
    import pipeline.run.driver

    job = pipeline.run.driver.run_label_job
    monkeypatch.setattr(pipeline.run.driver, "run_label_job",
                        lambda cfg: job(cfg, on_event=_signal_at_hand_over(signal.SIGTERM)))
    assert nerve(["label", *_args(dotlist(tiny_models), shards_dir, tmp_path)]) == 75
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("nerve: SIGTERM received: no more shards are handed out; waiting up to 60 s "
                             "for the 1 being labeled (0 labeled by this run so far")
    assert err[1:] == [f"nerve: stopped by SIGTERM: {SHARDS - len(marker_times(tmp_path))} of {SHARDS} shards are not done in {tmp_path}; "
                       "rerun the same command to resume"]


def test_ctrl_c_on_a_subprocess_job_then_a_rerun_resumes(ray_session, tiny_models, shards_dir, tmp_path):
    """Ctrl-C signals the terminal's whole process group: the job and the local Ray it started."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "jobs.cli", "label", *_args(dotlist(tiny_models), shards_dir, tmp_path),
            "ray.local_num_cpus=1", "engine.batch_size=1"]
    job = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "shards").glob("*.stats.json")) and job.poll() is None:
        assert time.monotonic() < deadline, "no shard was labeled within 120 s"
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGINT)
    _, err = job.communicate(timeout=90)
    assert job.returncode == 75, err
    assert err.strip().splitlines()[-1].startswith("nerve: stopped by SIGINT: ")
    assert 0 < len(settled_markers(tmp_path)) < SHARDS
    _resume_labels_only_the_rest(dotlist(tiny_models), shards_dir, tmp_path)
