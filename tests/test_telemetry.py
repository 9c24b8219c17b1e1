"""The nerve_* metrics as Prometheus scrapes them from the session Ray's metrics port: a label job
with an error row, a killed actor and a shard that cannot be read, whose counters must equal its
summary; and the Grafana dashboard, whose every query must name a metric that scrape returns."""
from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from jobs.config import load_config
from nerve_core.models.tiny import dotlist
from pipeline.config import LabelJobConfig
from pipeline.run.driver import run_label_job
from pipeline.run.telemetry import RateWindow, job_tag
from tests import faults as F
from tests.faults import StallingFifo, wait_until_gone
from tests.shards import make_demo_shards, write_raw_tar

DASHBOARD = Path(__file__).resolve().parents[1] / "configs" / "ray" / "grafana-nerve.json"
EXPORT_DEADLINE_S = 90  # Ray's agents export every few seconds; a loaded machine may take longer
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
ACTOR_METRICS = {"ray_nerve_actor_images_per_second", "ray_nerve_engine_busy_share", "ray_nerve_decoded_queued",
                 "ray_nerve_engine_batch_seconds_count"}
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(port: int) -> list[tuple[str, dict, float]]:
    """(name, labels, value) of every sample the metrics port serves."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and not line.startswith("#"):
            samples.append((match[1], dict(LABEL.findall(match[2] or "")), float(match[3])))
    return samples


def totals(samples, job: str) -> dict:
    """{name: {labels that matter (reason): summed value}} of the job's nerve samples (summed over
    the workers that recorded them)."""
    out: dict = defaultdict(lambda: defaultdict(float))
    for name, labels, value in samples:
        if name.startswith("ray_nerve_") and labels.get("job") == job:
            out[name][labels.get("reason", "")] += value
    return out


@pytest.fixture(scope="module")
def labeled_with_faults(ray_session, ray_metrics_port, tiny_models, tmp_path_factory):
    """Run the job; return (its result, the job's metric totals once they match, every metric name)."""
    tmp = tmp_path_factory.mktemp("metrics")
    make_demo_shards(tmp, 8, per_shard=4, max_size=72)
    write_raw_tar(tmp / "shard-000002.tar", [("bad.jpg", F.corrupt_jpeg()), ("good.png", F.png(F.picture()))])
    (tmp / "shard-000003.tar").write_bytes(b"not a tar at all" * 64)  # fails every attempt
    fifo = StallingFifo(tmp / "fifo-000001.tar", (tmp / "shard-000001.tar").read_bytes())
    shards = [tmp / "shard-000000.tar", fifo.path, tmp / "shard-000002.tar", tmp / "shard-000003.tar"]
    killed = []

    def kill_mid_shard(event, **data):
        if event == "progress" and data["shard"] == "fifo-000001" and not killed:
            pid = ray_session.get(data["actor"].info.remote())["pid"]
            os.kill(pid, signal.SIGKILL)
            wait_until_gone(pid)
            killed.append(pid)
            fifo.release()

    out = tmp / f"metrics-{uuid.uuid4().hex[:8]}"  # the job tag: unique in the session's Ray
    cfg = load_config(LabelJobConfig, [
        "dataset=demo", *dotlist(tiny_models), "engine.device=cpu", "engine.batch_size=1", "ray.num_actors=1",
        f"input.shards=[{','.join(map(str, shards))}]", f"output.dir={out}", "progress=false", "ray.poll_s=0.1",
        "ray.max_retries=1", "ray.shard_timeout_s=300"])
    result = run_label_job(cfg, on_event=kill_mid_shard)
    assert killed, "the actor was never killed mid-shard"
    want = expected(result.summary)
    deadline = time.monotonic() + EXPORT_DEADLINE_S
    while True:
        samples = scrape(ray_metrics_port)
        got = totals(samples, job_tag(str(out)))
        if (observed(got) == want and ACTOR_METRICS <= set(got)) or time.monotonic() > deadline:
            mine = [(name, value) for name, labels, value in samples if labels.get("job") == job_tag(str(out))]
            return result, want, got, {name for name, _, _ in samples}, mine
        time.sleep(1)


def expected(summary: dict) -> dict:
    run = summary["last_run"]
    return {"images": summary["num_images"], "errors": summary["errors_by_reason"], "retried": run["retries"],
            "done": run["shards_labeled"], "failed": run["shards_failed"], "restarts": 1}


def observed(got: dict) -> dict:
    def total(name):
        return int(sum(got.get(name, {}).values()))

    return {"images": total("ray_nerve_images_total"),
            "errors": {reason: int(v) for reason, v in got.get("ray_nerve_errors_total", {}).items()},
            "retried": total("ray_nerve_shards_retried_total"), "done": total("ray_nerve_shards_done_total"),
            "failed": total("ray_nerve_shards_failed_total"), "restarts": total("ray_nerve_actor_restarts_total")}


def test_counters_equal_the_summary_of_a_job_with_errors_a_killed_actor_and_a_failed_shard(labeled_with_faults):
    result, want, got, _, samples = labeled_with_faults
    assert want["images"] == 10 and want["errors"] == {"decode_image": 1} and want["failed"] == 1
    assert want["retried"] == 2  # the killed actor's shard once, the unreadable shard once
    assert observed(got) == want
    # each finished shard's time went into the histogram (the driver's, so the kill loses none);
    # the actors' own figures are there
    assert got["ray_nerve_shard_seconds_count"][""] == want["done"]
    assert ACTOR_METRICS <= set(got) and got["ray_nerve_engine_batch_seconds_count"][""] >= 1
    # per series: a dead worker's last values may still be served beside its replacement's
    assert all(0 <= v <= 1 for name, v in samples if name == "ray_nerve_engine_busy_share")
    assert got["ray_nerve_actor_images_per_second"][""] > 0


def test_the_grafana_dashboard_queries_only_metrics_the_scrape_returns(labeled_with_faults):
    names = labeled_with_faults[3]
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 30 and dashboard["title"] and dashboard["panels"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert all(p["targets"] and p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"])
    exprs.append(variables["job"]["definition"])
    queried = {name for expr in exprs for name in re.findall(r"\bray_nerve_[a-z_]+", expr)}
    assert len(queried) >= 9 and queried <= names, sorted(queried - names)


def test_an_actors_rate_and_busy_share_cover_its_last_window():
    window = RateWindow(10.0)
    assert window.add(8, 0.04, now=100.04) == pytest.approx((200.0, 1.0))  # the first batch: its own span
    for i in range(2, 501):  # 8 images every 0.05 s, 0.04 s of it in the engine: 160 images/s, 80% busy
        rate, busy = window.add(8, 0.04, now=100.0 + 0.05 * i)
    assert rate == pytest.approx(160.0, rel=0.01) and busy == pytest.approx(0.8, rel=0.01)
    rate, busy = window.add(8, 0.04, now=100.0 + 0.05 * 500 + 8.0)  # 8 s idle: only the last 2 s of batches count
    assert rate == pytest.approx((8 + 8 * 40) / 10.0, rel=0.05) and busy < 0.2


def test_job_tag_is_the_output_directorys_name():
    assert job_tag("/data/labels/voc-train_aug-nerve") == "voc-train_aug-nerve"
    assert job_tag("s3://bucket/labels/voc-nerve/") == "voc-nerve"
