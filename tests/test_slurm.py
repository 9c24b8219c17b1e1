"""configs/slurm/nerve.sbatch on a real SLURM (tests/slurm_cluster.py: Debian's slurm-wlm, two nodes
on this host): a label job across two nodes completes with every row and Ray stopped everywhere; a bad
key fails the job with nerve's exit status; TERM mid-run stops the job within the grace with exit 75,
the job requeues itself and its next run finishes without labeling any shard twice. The nightly
scrontab entry submits the script with options sbatch accepts.

The sbatch script's Ray is its own (a head and srun workers with this job's port and temp dir), so the
session's Ray may run beside it. `python -m pytest tests/test_slurm.py -s` prints the timings that
docs/operations.md quotes.
"""
from __future__ import annotations

import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from nerve_core.models.tiny import dotlist
from pipeline.output.outputdir import OutputDir
from pipeline.score.verify import verify_output
from tests.shards import make_demo_shards, marker_times
from tests.slurm_cluster import FINAL_STATES, SlurmCluster, unavailable

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "configs" / "slurm" / "nerve.sbatch"
SCRONTAB = ROOT / "configs" / "slurm" / "nerve-regress.scrontab"
WHY_NOT = unavailable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


@pytest.fixture(scope="module")
def slurm():
    for last in (False, True):  # a port found free may be taken before a daemon binds it: one more try
        cluster = SlurmCluster()
        try:
            cluster.start()
            break
        except RuntimeError:
            cluster.stop()
            if last:
                raise
    try:
        yield cluster
    finally:
        cluster.stop()


def _label(tiny_models, shards: Path, out: Path, *extra: str) -> list[str]:
    return ["label", "dataset=demo", *dotlist(tiny_models), "engine.device=cpu", f"input.shards={shards}",
            f"output.dir={out}", "progress=false", "ray.poll_s=0.1", *extra]


def _submit(slurm, tmp_path: Path, options: list[str], args: list[str]) -> tuple[int, Path]:
    job_id = slurm.sbatch([f"--output={tmp_path}/job-%j.out", *options], SCRIPT, args, tmp_path)
    return job_id, tmp_path / f"job-{job_id}.out"


def _ray_processes(job_id: int, slurm) -> list[str]:
    """Command lines of live processes that use this job's Ray temp dirs."""
    mark, found = f"{slurm.root}/ray/ray-{job_id}-".encode(), []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
        except OSError:
            continue
        if mark in text:
            found.append(text.replace(b"\0", b" ").decode(errors="replace"))
    return found


def test_label_job_on_two_nodes_completes_with_every_row_and_stops_ray(slurm, tiny_models, tmp_path):
    make_demo_shards(tmp_path / "shards", 8, per_shard=2, max_size=64)
    out, cpus = tmp_path / "out", slurm.cpus
    job_id, log = _submit(slurm, tmp_path, ["--nodes=2", f"--cpus-per-task={cpus}"],
                          _label(tiny_models, tmp_path / "shards", out, "ray.num_actors=2", f"ray.cpus_per_actor={cpus}"))
    job = slurm.wait(job_id, timeout=300)
    output = log.read_text()
    assert (job["JobState"], job["ExitCode"]) == ("COMPLETED", "0:0"), output
    assert "Ray is up on 2 node(s)" in output and "labeled 8 images in 4 shards" in output
    assert verify_output(str(out)).ok
    # One actor per node (each takes all of a node's CPUs): the worker that srun started did half the work.
    actors = {stats.actor["node_id"] for stats in OutputDir(str(out)).stats().values()}
    assert len(actors) == 2
    assert _ray_processes(job_id, slurm) == []


def test_a_bad_key_fails_the_job_with_nerve_exit_status_2_and_one_line(slurm, tmp_path):
    job_id, log = _submit(slurm, tmp_path, [f"--cpus-per-task={slurm.cpus}"],
                          ["label", "no_such_key=1", f"output.dir={tmp_path / 'out'}"])
    job = slurm.wait(job_id, timeout=120)
    assert (job["JobState"], job["ExitCode"]) == ("FAILED", "2:0")
    nerve_lines = [line for line in log.read_text().splitlines() if line.startswith("nerve:")]
    assert nerve_lines == ["nerve: unknown config key 'no_such_key': Key 'no_such_key' not in 'LabelJobConfig'"]
    assert _ray_processes(job_id, slurm) == []


def test_term_mid_run_stops_within_the_grace_and_the_requeued_job_finishes(slurm, tiny_models, tmp_path, capsys):
    shards, out, grace = 24, tmp_path / "out", 30
    make_demo_shards(tmp_path / "shards", 2 * shards, per_shard=2, max_size=64)
    submitted = time.time()
    job_id, log = _submit(slurm, tmp_path, [f"--cpus-per-task={slurm.cpus}"],
                          _label(tiny_models, tmp_path / "shards", out, "ray.num_actors=1", f"ray.stop_grace_s={grace}"))
    _until(lambda: marker_times(out) or slurm.job(job_id)["JobState"] in FINAL_STATES, 180, "no shard labeled in 180 s")
    assert marker_times(out), log.read_text()
    termed = time.time()
    slurm.client("scancel", "--batch", "--signal=TERM", str(job_id))  # what --signal=B:TERM@90 sends before the time limit
    requeued = {"Restarts": "1", "JobState": "PENDING"}  # pending again once the first run has ended
    _until(lambda: requeued.items() <= slurm.job(job_id).items(), 120, "the job did not requeue itself")
    first = log.read_text()
    exited = float(re.search(r"nerve exited with 75 at (\S+)", first)[1])
    ray_stopped = float(re.search(r"Ray stopped at (\S+)", first)[1])
    assert "nerve: stopped by SIGTERM: " in first and "rerun the same command to resume" in first, first
    labeling, before = map(int, re.search(r"for the (\d+) being labeled \((\d+) labeled by this run", first).groups())
    _until(lambda: not _ray_processes(job_id, slurm), 60, "the first run's Ray did not stop")
    done = marker_times(out)  # the first run's, its actors gone with its Ray
    assert 0 < len(done) < shards and exited - termed < grace
    finished = len(done) - before  # after TERM: the shard being labeled, and the one handed ahead if it was quick
    assert finished <= labeling + 1, "shards were handed out after TERM"
    relabeled = max(0, labeling - finished)  # being labeled at TERM, not done when the run ended
    # SLURM holds a requeued job for two minutes before it may start again. Release it now, but not
    # within the second of the requeue: slurmd refuses a job whose credential was revoked that second.
    time.sleep(2)
    slurm.client("scontrol", "update", f"JobId={job_id}", "StartTime=now")
    job = slurm.wait(job_id, timeout=300)
    assert (job["JobState"], job["ExitCode"], job["Restarts"]) == ("COMPLETED", "0:0", "1"), log.read_text()
    after = marker_times(out)
    assert len(after) == shards and {s: after[s] for s in done} == done  # no done shard was labeled again
    last_run = OutputDir(str(out)).summary()["last_run"]
    assert (last_run["shards_skipped"], last_run["shards_labeled"]) == (len(done), shards - len(done))
    assert verify_output(str(out)).ok and relabeled == 0
    first_shard = min(done.values()) / 1e9 - submitted
    with capsys.disabled():
        print(f"\nSLURM: sbatch to the first labeled shard {first_shard:.1f} s; TERM to nerve's exit "
              f"{exited - termed:.1f} s (to Ray stopped: {ray_stopped - termed:.1f} s); {len(done)} of {shards} shards "
              f"done at the stop, {labeling} being labeled at TERM, {relabeled} relabeled by the requeued run")


def test_nightly_scrontab_entry_submits_nerve_regress_into_a_dated_folder(slurm, tmp_path):
    options, entries = [], []
    for line in SCRONTAB.read_text().splitlines():
        if line.startswith("#SCRON"):
            options += shlex.split(line[len("#SCRON"):], comments=True)
        elif line.strip() and not line.startswith("#"):
            entries.append(line.split(None, 5))
    (minute, hour, *days, command), = entries
    assert days == ["*", "*", "*"] and minute.isdigit() and hour.isdigit(), "every night"
    words = shlex.split(command)
    assert words[:3] == ["exec", "configs/slurm/nerve.sbatch", "regress"], "exec: the script receives the job's signals"
    assert (ROOT / words[words.index("--config") + 1]).is_file()
    assert re.search(r" report=\S+/\$\(date -u -I\)$", command), "each night's report in its own folder (no %: cron's newline)"
    assert {"--requeue", "--signal=B:TERM@90"} <= set(options)
    # scrontab submits the entry as a batch job with these options (src/scrontab in Slurm); sbatch
    # checks them here, bar the site's paths and the GPUs and CPUs, more than this cluster's nodes have.
    script = tmp_path / "entry.sh"
    script.write_text(f"#!/bin/sh\n{command}\n")
    usable = [o for o in options if not o.startswith(("--gpus", "--cpus", "--chdir", "--output"))]
    check = subprocess.run(["sbatch", "--test-only", *usable, str(script)], env=slurm.env, capture_output=True, text=True)
    assert check.returncode == 0 and "to start at" in check.stderr, check.stderr


def _until(ready, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
