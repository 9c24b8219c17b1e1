"""The run directory release 0.1.0 wrote (tests/fixtures/release-0.1.0), copied where a test may change
it, with the tiny models its record names written beside it (its README says how it was made)."""
from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "release-0.1.0"


def copy_release_run(folder: Path, models: bool = True) -> list[str]:
    """Copy the fixture to `folder`, write the tiny models to folder/models (unless `models` is false:
    only `label` needs them), and return the command that labeled it. Relative paths: run it (and any
    command on `run`) from `folder`."""
    from nerve_core.models.tiny import dotlist, write_tiny_models

    shutil.copytree(FIXTURE, folder)
    if not models:
        return []
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        models = dotlist(write_tiny_models("models", seed=0, progress=False))
    finally:
        os.chdir(cwd)
    return ["label", "dataset=demo", "input.shards=shards", "output.dir=run", "engine.device=cpu", "progress=false",
            *models]


def replace_member(tar_path: Path, name: str, data: bytes) -> None:
    """Rewrite a shard with one member's bytes replaced, the others as they were, in order."""
    with tarfile.open(tar_path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(tar_path, "w") as tar:
        for member, content in members:
            content = data if member.name == name else content
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
