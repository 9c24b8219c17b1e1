"""The fixed split of the cached images into a tune part (trials are ranked on it) and a check
part (held out: how well the ranking carries over to images it never saw).

An image's part depends only on its name and the seed (images ordered by a hash of both, the
first round(fraction * n) held out), not on shard order or on which actor cached it, so every run
over the same images makes the same split; it is recorded in OUT/tune/split.json.
"""
from __future__ import annotations

import hashlib

from nerve_core.errors import ConfigError


def split_images(names: list[str], check_fraction: float, seed: int) -> dict[str, list[str]]:
    """{"tune": names, "check": names}, each in the input order."""
    if not 0 <= check_fraction < 1:
        raise ConfigError(f"tune.check_fraction must be in [0, 1), got {check_fraction}")
    if not names:
        raise ConfigError("the cache holds no image with ground truth: nothing to tune on")
    held = round(check_fraction * len(names))
    if held >= len(names):
        raise ConfigError(f"tune.check_fraction={check_fraction} leaves no image of {len(names)} in the tune part")

    def rank(name: str) -> str:
        return hashlib.sha256(f"{seed}\x00{name}".encode()).hexdigest()

    check = set(sorted(names, key=rank)[:held])
    return {"tune": [n for n in names if n not in check], "check": [n for n in names if n in check]}
