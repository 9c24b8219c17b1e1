"""Faults of the machinery around the actors: the driver SIGKILLed mid-run and rerun, and a node of
a two-node Ray cluster removed mid-run. Both run drivers in subprocesses (one needs its own
cluster; the other must be killable without taking the test session with it)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.cli import main as nerve
from nerve_core.models.tiny import dotlist
from pipeline.output.pngcodec import decode_index_png as decode_png
from pipeline.score.verify import verify_output
from tests.shards import demo_shards_dir, make_demo_shards

ROOT = Path(__file__).resolve().parents[1]
NUM_SHARDS = 6


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory):
    return demo_shards_dir(tmp_path_factory, "cluster_shards", NUM_SHARDS, max_size=72)


def _label_args(tiny_models, shards_dir, out):
    return ["label", "dataset=demo", *dotlist(tiny_models), "engine.device=cpu", "engine.batch_size=1",
            f"input.shards={shards_dir}", f"output.dir={out}", "progress=false", "ray.num_actors=1", "ray.poll_s=0.1"]


def _python(code: str, **kwargs):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, start_new_session=True, **kwargs)


def _same_outputs(out, reference):
    for path in sorted((reference / "shards").glob("*.parquet")):
        got = pq.read_table(out / "shards" / path.name).to_pylist()
        want = pq.read_table(path).to_pylist()
        assert [(r["key"], r["status"]) for r in got] == [(r["key"], r["status"]) for r in want]
        for a, b in zip(got, want):
            np.testing.assert_array_equal(decode_png(a["mask_png"]), decode_png(b["mask_png"]))
    summary, expected = (json.loads((d / "summary.json").read_text()) for d in (out, reference))
    for key in ("num_images", "num_errors", "miou", "confusion", "fingerprint"):
        assert summary[key] == expected[key], key


def test_driver_sigkilled_mid_run_then_rerun_resumes_exactly(ray_session, tiny_models, shards_dir, tmp_path):
    reference = tmp_path / "reference"
    assert nerve(_label_args(tiny_models, shards_dir, reference)) == 0
    out = tmp_path / "out"
    # A second driver on the session's cluster, in its own process so that it can be SIGKILLed.
    argv = _label_args(tiny_models, shards_dir, out) + [f"ray.address={ray_session.get_runtime_context().gcs_address}"]
    code = f"import sys; from jobs.cli import main; sys.exit(main({argv!r}))"
    driver = _python(code)
    try:
        deadline = time.monotonic() + 240
        while not list((out / "shards").glob("*.stats.json")) and time.monotonic() < deadline:
            assert driver.poll() is None, "the driver ended before it could be killed"
            time.sleep(0.05)
        os.kill(driver.pid, signal.SIGKILL)
    finally:
        driver.kill()
        driver.wait()
    done_at_kill = len(list((out / "shards").glob("*.stats.json")))
    assert 1 <= done_at_kill < NUM_SHARDS
    assert not verify_output(str(out)).ok and not (out / "summary.json").exists()

    rerun = _python(code)
    assert rerun.wait(timeout=300) == 0
    run = json.loads((out / "summary.json").read_text())["last_run"]
    assert run["shards_skipped"] >= done_at_kill and run["shards_skipped"] + run["shards_labeled"] == NUM_SHARDS
    report = verify_output(str(out))
    assert report.ok, report.format()
    assert report.inputs == report.ok_rows == 2 * NUM_SHARDS and not report.duplicated_keys
    _same_outputs(out, reference)


def test_node_removed_mid_run_its_shards_finish_on_the_other(tmp_path):
    shards_dir, out = tmp_path / "in", tmp_path / "out"
    make_demo_shards(shards_dir, 32, per_shard=8, max_size=72)  # four shards of 8
    # The stand-in engine at 10 images/s: a shard takes 0.8 s on any machine, so the driver's
    # once-a-second progress always finds the worker node's labeler mid-shard (with the tiny models
    # a fast machine finished shards between two progress reports, and nothing was removed).
    code = ("import json; from tests.faults import two_node_job; "
            f"print('RESULT', json.dumps(two_node_job({str(shards_dir)!r}, {str(out)!r}, images_per_second=10)))")
    proc = _python(code, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, output[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    removed = result["removed"]
    assert removed and removed["images"] < 8, f"the worker node was not removed mid-shard: {removed}"
    assert result["ok"] and not result["failed"]
    # The lost labeler's first shard is charged a retry; the one handed ahead of it goes back uncharged.
    # Which of the two was caught mid-way depends on whether the driver had heard the first one finish.
    assert len(result["retry"]) == 1 and removed["shard"] in result["retry"] + result["requeue"]
    assert result["done_on"][removed["shard"]] == result["head"]  # finished on the other node
    report = verify_output(str(out))
    assert report.ok, report.format()
    assert report.inputs == report.ok_rows == 32
