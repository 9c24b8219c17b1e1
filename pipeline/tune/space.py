"""The search space: which engine keys a trial may set, their value lists, and the points to try.

Only keys that act after the models are tunable (refinement, upsampling, background), since a
trial reads cached model outputs. engine.background.class_id is excluded: it decides each image's
class set in WSSS mode, which the cache has already fixed.
"""
from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from math import prod

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nerve_core.config import EngineConfig
from nerve_core.errors import ConfigError, first_line

TUNABLE_PREFIXES = ("engine.refine.", "engine.background.", "engine.upsample.")
FIXED_KEYS = ("engine.background.class_id",)


def flatten(space: Mapping, prefix: str = "") -> dict[str, list]:
    """Dotted key -> value list. Nested mappings (what `tune.space.engine.refine.alpha=[...]` on
    the command line gives) are flattened; a list is always a leaf."""
    out = {}
    for key, value in space.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def engine_with(engine: dict, settings: Mapping) -> dict:
    """A copy of the engine config dict with the dotted `engine.*` settings applied."""
    out = copy.deepcopy(engine)
    for key, value in settings.items():
        *parents, leaf = key.split(".")[1:]
        node = out
        for part in parents:
            node = node[part]
        node[leaf] = copy.deepcopy(value)
    return out


def _check_key(key: str, values, engine: dict) -> list:
    if not key.startswith(TUNABLE_PREFIXES) or key in FIXED_KEYS:
        tunable = ", ".join(p + "*" for p in TUNABLE_PREFIXES)
        why = "it decides the cached class sets" if key in FIXED_KEYS else f"only {tunable} act on cached features"
        raise ConfigError(f"tune.space: {key} cannot be searched: {why}")
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(f"tune.space.{key} must be a non-empty list of values, got {values!r}")
    schema = OmegaConf.structured(EngineConfig)
    if not _is_leaf(schema, key):
        raise ConfigError(f"tune.space: unknown engine key {key}")
    for value in values:
        try:
            OmegaConf.merge(schema, engine_with(engine, {key: value}))
        except OmegaConfBaseException as exc:
            raise ConfigError(f"tune.space.{key}: invalid value {value!r}: {first_line(exc)}") from exc
    return list(values)


def _is_leaf(schema, key: str) -> bool:
    *parents, leaf = key.split(".")[1:]
    node = schema
    for part in parents:
        if part not in node:
            return False
        node = node[part]
    return leaf in node and not OmegaConf.is_config(node[leaf])


@dataclass(frozen=True)
class SearchSpace:
    keys: tuple[str, ...]
    values: tuple[tuple, ...]

    @classmethod
    def from_config(cls, space, engine: dict) -> SearchSpace:
        """Validated against the engine schema: every value of every key must make a valid config."""
        plain = OmegaConf.to_container(space) if OmegaConf.is_config(space) else dict(space)
        flat = flatten(plain)
        if not flat:
            raise ConfigError("tune.space is empty: give at least one key with a list of values")
        checked = {key: _check_key(key, values, engine) for key, values in flat.items()}
        return cls(tuple(checked), tuple(tuple(v) for v in checked.values()))

    @property
    def size(self) -> int:
        return prod(len(v) for v in self.values)

    def settings(self, indices) -> dict:
        """{key: value} of one point given one value index per key."""
        return {k: v[i] for k, v, i in zip(self.keys, self.values, indices)}

    def point(self, number: int) -> dict:
        """The settings of grid point `number` (mixed radix, the last key varying fastest)."""
        indices = []
        for values in reversed(self.values):
            number, i = divmod(number, len(values))
            indices.append(i)
        return self.settings(reversed(indices))

    def grid(self) -> list[dict]:
        return [self.point(n) for n in range(self.size)]

    def sample(self, count: int, seed: int) -> list[dict]:
        """`count` distinct points drawn at random (all of them, shuffled, when count >= size)."""
        numbers = random.Random(seed).sample(range(self.size), min(count, self.size))
        return [self.point(n) for n in numbers]

    def contains(self, settings: Mapping) -> bool:
        return set(settings) == set(self.keys) and all(settings[k] in v for k, v in zip(self.keys, self.values))


def digest(obj) -> str:
    """16 hex chars of the SHA-256 of obj's canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()[:16]
