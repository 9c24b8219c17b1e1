"""The PYTHONPATH under which processes nerve starts (a local Ray's workers, the benches'
subprocesses) import the project from this source tree, ahead of the caller's own PYTHONPATH."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def source_pythonpath() -> str:
    return os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
