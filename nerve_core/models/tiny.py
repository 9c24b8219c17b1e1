"""Small random-weight models in the real on-disk formats, for tests and the offline demo.

They load through exactly the code path real weights use (open_clip for CLIP, diffusers
`from_pretrained` for Stable Diffusion); only their sizes differ.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

from nerve_core.models import tiny_clip, tiny_sd
from nerve_core.models.tiny_clip import write_tiny_clip
from nerve_core.models.tiny_sd import write_tiny_sd

_READY = "overrides.json"  # written last: the cached models are complete and of this code's format


def write_tiny_models(path, seed: int = 0, progress: bool = True) -> dict:
    """Write tiny CLIP and SD models under `path`; return engine-config overrides that load them.

    The returned dict is nested like `EngineConfig` ({"clip": {...}, "sd": {...}}); merge it into
    an engine config, or pass `dotlist(overrides)` on the command line. progress=False silences
    the libraries' own "Writing model shards" bars.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    with library_progress_bars(progress):
        return {"clip": write_tiny_clip(root / "clip", seed=seed), "sd": write_tiny_sd(root / "sd", seed=seed)}


def cached_tiny_models(cache: str | Path, seed: int = 0, progress: bool = True) -> dict:
    """The tiny models under `cache`/tiny-models-<seed>, written on first use and reused after that
    (by any process: the write holds a file lock). Rewritten when the writers' code has changed."""
    folder = Path(cache).expanduser() / f"tiny-models-{seed}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    ready, version = folder / _READY, _writers_version()
    with open(folder.parent / f".tiny-models-{seed}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.is_file():
            record = json.loads(ready.read_text(encoding="utf-8"))
            if record.get("version") == version:
                return record["overrides"]
        overrides = write_tiny_models(folder, seed=seed, progress=progress)
        tmp = ready.with_name(f".{_READY}.tmp")
        tmp.write_text(json.dumps({"version": version, "overrides": overrides}), encoding="utf-8")
        os.replace(tmp, ready)
    return overrides


def _writers_version() -> str:
    """Digest of the code that writes the models: a cache written by other code is not reused."""
    digest = hashlib.sha256()
    for module in (tiny_clip, tiny_sd):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


@contextmanager
def library_progress_bars(enabled: bool):
    """transformers' and diffusers' tqdm bars on or off for the block, then as they were."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    libraries = [lib for lib in (transformers_logging, diffusers_logging) if lib.is_progress_bar_enabled() != enabled]
    for lib in libraries:
        (lib.enable_progress_bar if enabled else lib.disable_progress_bar)()
    try:
        yield
    finally:
        for lib in libraries:
            (lib.disable_progress_bar if enabled else lib.enable_progress_bar)()


def dotlist(overrides: dict, prefix: str = "engine") -> list[str]:
    """Flatten nested overrides into `engine.clip.model=...` strings for the CLI."""
    items = []
    for key, value in overrides.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            items.extend(dotlist(value, name))
        elif isinstance(value, (list, tuple)):
            items.append(f"{name}=[{','.join(str(v) for v in value)}]")
        else:
            items.append(f"{name}={value}")
    return items
