"""Every expected failure is one line, `nerve: ...`, exit 2, with no traceback; what failed is named
(a missing model with the cache and the ways to provide it, missing shards before Ray starts, a
misspelt device before any work); anything else keeps its traceback. Also: local runs start their
own Ray, Ray's own lines stay quiet, no bars with progress=false, and `models=tiny` anywhere."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.cli import main as nerve
from nerve_core.models.tiny import dotlist
from tests.shards import make_demo_shards

ROOT = Path(__file__).resolve().parents[1]
MISSING_SD = "nerve-tests/no-such-model"


def one_line(err: str) -> str:
    """The single `nerve: ...` line that stderr must consist of."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nerve: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-shards")
    make_demo_shards(path, 4, per_shard=2, max_size=80)
    return path


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if the job gets as far as starting (or joining) Ray."""
    import pipeline.run.driver

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started although the job should have failed before")

    monkeypatch.setattr(pipeline.run.driver, "ray_session", refuse)


def test_missing_input_shards_are_named_before_ray_starts(shards, tmp_path, no_ray, capsys):
    missing = "/no/such/dir/x.tar"
    assert nerve(["label", f"input.shards=[{shards}/shard-000000.tar,{missing}]", f"output.dir={tmp_path / 'o'}"]) == 2
    line = one_line(capsys.readouterr().err)
    assert missing in line and "1 of 2 input shards" in line and "shard-000000.tar" not in line
    assert not (tmp_path / "o").exists()  # refused before the output directory was touched


def test_remote_shards_are_checked_with_fsspec(tmp_path, no_ray, capsys):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/cli-bucket/present.tar", b"x")
    urls = "[memory://cli-bucket/present.tar,memory://cli-bucket/absent.tar]"
    assert nerve(["label", f"input.shards={urls}", f"output.dir={tmp_path / 'o'}"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "memory://cli-bucket/absent.tar" in line and "present.tar" not in line


def test_regress_names_missing_shards_not_missing_ground_truth(tmp_path, no_ray, capsys):
    args = ["regress", "--update-baseline", f"baseline={tmp_path / 'b.json'}", "input.shards=/no/such/s.tar",
            f"output.dir={tmp_path / 'o'}"]
    assert nerve(args) == 2
    line = one_line(capsys.readouterr().err)
    assert "/no/such/s.tar" in line and "ground truth" not in line


@pytest.mark.parametrize("device", ["gpu", "cuda:-1", "CPU", "mps", "cuda:x"])
def test_device_names_are_checked_before_any_work(device, shards, tmp_path, no_ray, capsys):
    assert nerve(["label", f"input.shards={shards}", f"output.dir={tmp_path / 'o'}", f"engine.device={device}"]) == 2
    line = one_line(capsys.readouterr().err)
    assert repr(device) in line and "auto | cpu | cuda | cuda:N" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("setting", ["ray.shards_ahead=-1", "ray.decode_threads=0", "ray.prefetch=0", "ray.max_retries=-1"])
def test_ray_counts_that_would_stall_the_job_are_refused_before_ray(setting, shards, tmp_path, no_ray, capsys):
    assert nerve(["label", f"input.shards={shards}", f"output.dir={tmp_path / 'o'}", setting]) == 2
    key, value = setting.split("=")
    line = one_line(capsys.readouterr().err)
    assert f"{key} must be >=" in line and f"got {value}" in line and not (tmp_path / "o").exists()


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_valid_device_names_pass(device):
    from nerve_core.devices import check_device_name

    assert check_device_name(device) == device


def test_model_not_found_is_one_line_with_cache_and_three_ways(monkeypatch):
    from nerve_core.models.errors import ModelNotFoundError, hub_cache

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    text = str(ModelNotFoundError("Stable Diffusion", "org/model (unet)", OSError("first line\nsecond line")))
    assert "\n" not in text and "org/model (unet)" in text and hub_cache() in text
    assert "network access" in text and "HF_HUB_OFFLINE=1" in text and "engine.sd.model=DIR" in text
    assert "Cause: OSError: first line" in text and "second line" not in text


def _missing_model_args(tiny_models, shards, out):
    engine = dict(tiny_models, sd=dict(tiny_models["sd"], model=MISSING_SD))
    return ["dataset=demo", *dotlist(engine), "engine.device=cpu", f"input.shards={shards}", f"output.dir={out}",
            "progress=false", "ray.num_actors=1", "ray.poll_s=0.1"]


def test_label_with_a_missing_model_says_so_in_one_line(ray_session, tiny_models, shards, tmp_path, capsys):
    assert nerve(["label", *_missing_model_args(tiny_models, shards, tmp_path / "o")]) == 2
    line = one_line(capsys.readouterr().err)
    assert "Stable Diffusion model not found" in line and MISSING_SD in line and "Hugging Face cache" in line
    failed = json.loads((tmp_path / "o" / "failed_shards.json").read_text())["failed"]
    assert len(failed) == 2 and all(MISSING_SD in f["reason"] for f in failed)


def test_regress_with_a_missing_model_names_it(ray_session, tiny_models, shards, tmp_path, capsys):
    args = ["regress", "--update-baseline", f"baseline={tmp_path / 'b.json'}",
            *_missing_model_args(tiny_models, shards, tmp_path / "o")]
    assert nerve(args) == 2
    line = one_line(capsys.readouterr().err)
    assert MISSING_SD in line and "ground truth" not in line
    assert not (tmp_path / "b.json").exists()


def test_unexpected_errors_keep_their_traceback(shards, tmp_path, monkeypatch):
    import pipeline.run.driver

    def bug(cfg):
        raise RuntimeError("a bug")

    monkeypatch.setattr(pipeline.run.driver, "run_label_job", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        nerve(["label", f"input.shards={shards}", f"output.dir={tmp_path / 'o'}"])


def _fake_ray(monkeypatch, init):
    """ray.init replaced by `init`, as if no Ray were running in this process (the session's stays up)."""
    import ray

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: (calls.append(kwargs), init(**kwargs)))
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))
    return calls


def test_a_local_run_starts_its_own_ray_whatever_the_environment_names(monkeypatch):
    from pipeline.run.driver import ray_session

    monkeypatch.setenv("RAY_ADDRESS", "10.255.255.1:6379")  # like a dead `ray start` cluster's record
    calls = _fake_ray(monkeypatch, lambda **kwargs: None)
    with ray_session("", 2):
        pass
    assert calls[0]["address"] == "local" and calls[0]["num_cpus"] == 2 and calls[-1] == "shutdown"


def test_ray_lines_are_quiet_unless_verbose(monkeypatch):
    from pipeline.run.driver import ray_session

    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    seen = []
    _fake_ray(monkeypatch, lambda **kwargs: seen.append((notice.isEnabledFor(logging.WARNING), kwargs["log_to_driver"])))
    for verbose in (False, True):
        with ray_session("", 1, verbose):
            pass
    assert seen == [(False, False), (True, True)]


def test_a_ray_connection_failure_is_reported_as_such(shards, tmp_path, monkeypatch, capsys):
    def unreachable(**kwargs):
        raise ConnectionError("Failed to connect to Ray cluster")

    _fake_ray(monkeypatch, unreachable)
    args = ["label", f"input.shards={shards}", f"output.dir={tmp_path / 'o'}", "ray.address=10.255.255.1:6379"]
    assert nerve(args) == 2
    line = one_line(capsys.readouterr().err)
    assert "cannot connect to the Ray cluster at ray.address=10.255.255.1:6379" in line and "write" not in line


def test_a_local_ray_that_cannot_start_is_one_line(shards, tmp_path, monkeypatch, capsys):
    def timed_out(**kwargs):
        raise Exception("The current node timed out during startup.")

    _fake_ray(monkeypatch, timed_out)
    assert nerve(["label", f"input.shards={shards}", f"output.dir={tmp_path / 'o'}"]) == 2
    assert "cannot start a local Ray: Exception: The current node timed out" in one_line(capsys.readouterr().err)


def test_loading_models_status_until_the_first_image(capsys):
    from pipeline.run.progress import JobProgress

    bar = JobProgress(4, 2)
    bar.update(0, 0, 0, 0)
    assert "loading models" in capsys.readouterr().err
    bar.update(2, 0, 1, 0)
    bar.close()
    assert "labeling" in capsys.readouterr().err


def test_tiny_models_write_without_library_bars_when_asked(tmp_path, capsys):
    from nerve_core.models.tiny import write_tiny_models

    write_tiny_models(tmp_path / "quiet", progress=False)
    assert "Writing model shards" not in capsys.readouterr().err
    write_tiny_models(tmp_path / "loud", progress=True)
    assert "Writing model shards" in capsys.readouterr().err


@pytest.fixture(scope="module")
def regress_demo(ray_session, tmp_path_factory):
    """`nerve regress --config configs/jobs/regress-demo.yaml models=tiny`, run from an empty directory."""
    root = tmp_path_factory.mktemp("regress-demo")
    cwd, cache = root / "elsewhere", root / "cache"
    cwd.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        mp.setenv("NERVE_CACHE", str(cache))
        rc = nerve(["regress", "--config", "configs/jobs/regress-demo.yaml", "models=tiny", "demo_shards=4"])
    return rc, cwd, cache


def test_regress_demo_runs_anywhere_with_tiny_models(regress_demo):
    rc, cwd, cache = regress_demo
    assert rc == 0
    assert list(cwd.iterdir()) == []  # nothing written into the current directory
    work = cache / "regress-demo"
    assert len(list((work / "shards").glob("*.tar"))) == 1  # the demo images it made (4 per shard)
    assert json.loads((work / "baseline-tiny.json").read_text())["num_images"] == 4
    assert (work / "out-tiny" / "report" / "report.html").is_file()
    assert (cache / "tiny-models-0" / "overrides.json").is_file()


def test_models_tiny_reuses_the_cache(regress_demo, monkeypatch, capsys):
    from jobs.config import load_config
    from jobs.models import apply_models
    from pipeline.config import LabelJobConfig

    _, _, cache = regress_demo
    monkeypatch.setenv("NERVE_CACHE", str(cache))
    ready = cache / "tiny-models-0" / "overrides.json"
    written = ready.stat().st_mtime_ns
    cfg = apply_models(load_config(LabelJobConfig, ["models=tiny", "engine.sd.model=elsewhere"]))
    assert ready.stat().st_mtime_ns == written and "Writing model shards" not in capsys.readouterr().err
    assert cfg.engine.sd.model == str(cache / "tiny-models-0" / "sd")
    assert cfg.engine.clip.pretrained.startswith(str(cache / "tiny-models-0"))
    with pytest.raises(Exception, match="models must be one of real, tiny"):
        apply_models(load_config(LabelJobConfig, ["models=huge"]))


def test_export_threshold_on_a_run_without_confidence_is_refused(regress_demo, tmp_path, capsys):
    _, _, cache = regress_demo
    out = cache / "regress-demo" / "out-tiny"
    assert nerve(["export", "png", f"output.dir={out}", f"to={tmp_path / 'png'}", "confidence_threshold=0.5"]) == 2
    assert "output.confidence=true" in one_line(capsys.readouterr().err)


@pytest.mark.slow
def test_demo_without_real_weights_fails_in_one_line_on_its_own_ray(tmp_path):
    """The real CLI in a fresh process: an empty Hugging Face cache offline, and RAY_ADDRESS naming a
    dead cluster; the demo starts its own Ray, says nothing of Ray, and names the missing model."""
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", RAY_ADDRESS="127.0.0.1:9",
               PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "demo", "models=real", f"dir={tmp_path / 'demo'}",
                           "num_samples=2", "per_shard=2", "progress=false"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert "CLIP model not found" in line and "ViT-L-14-336" in line and str(tmp_path / "hf") in line
    assert "Token authentication" not in proc.stderr + proc.stdout
