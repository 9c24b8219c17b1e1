"""Small random-weight models in the real on-disk formats, for tests and the offline demo.

They load through exactly the code path real weights use (open_clip for CLIP, diffusers
`from_pretrained` for Stable Diffusion); only their sizes differ.
"""
from __future__ import annotations

from pathlib import Path

from nerve_core.models.tiny_clip import write_tiny_clip
from nerve_core.models.tiny_sd import write_tiny_sd


def write_tiny_models(path, seed: int = 0) -> dict:
    """Write tiny CLIP and SD models under `path`; return engine-config overrides that load them.

    The returned dict is nested like `EngineConfig` ({"clip": {...}, "sd": {...}}); merge it into
    an engine config, or pass `dotlist(overrides)` on the command line.
    """
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    return {"clip": write_tiny_clip(root / "clip", seed=seed), "sd": write_tiny_sd(root / "sd", seed=seed)}


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
