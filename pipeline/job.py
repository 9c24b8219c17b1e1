"""The label job as typed, frozen objects, from the command line to the actors.

`label_job` turns the loaded config into a frozen `LabelJobConfig` once, at the driver's door;
the driver adds what it decides for the run (the engine device of its actor plan, torch threads,
the vocabulary, the fingerprint) in a frozen `ActorJob`, which is what every Labeler is built
from. Nothing on the way is an untyped dict: a setting is read where it is used, under the name
the user typed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from nerve_core.config import EngineConfig
from nerve_core.errors import NerveError
from pipeline.config import LabelJobConfig


def label_job(cfg) -> LabelJobConfig:
    """The frozen, typed job: a loaded omegaconf config is converted, a LabelJobConfig passes."""
    if isinstance(cfg, LabelJobConfig):
        return cfg
    from omegaconf import OmegaConf

    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(LabelJobConfig), cfg))


def label_part(cfg, *changes: dict) -> LabelJobConfig:
    """The typed label job inside the config of a command that adds sections of its own (regress,
    tune, evaluate): its label-job keys, with `changes` (nested dicts) merged over them."""
    from omegaconf import OmegaConf

    keys = list(LabelJobConfig.__dataclass_fields__)
    return label_job(OmegaConf.merge(OmegaConf.structured(LabelJobConfig), OmegaConf.masked_copy(cfg, keys), *changes))


class EngineBuildError(NerveError):
    """The engine could not be built: retrying the shard elsewhere would fail the same way."""


@dataclass(frozen=True)
class ActorJob:
    """What a Labeler actor is built from: the user's job plus the driver's decisions for this run."""

    config: LabelJobConfig
    classes: tuple[tuple[str, ...], ...]  # the vocabulary: each class's synonyms, in class-id order
    fingerprint: str  # digest of the job fingerprint, stamped on every row
    device: str = "cpu"  # engine device inside the actor (the actor plan's; a pinned GPU is "cuda")
    torch_threads: int = 0  # CPU actors: torch threads; 0 = leave torch's default
    # The builder nerve_core.registry holds for the engine's name in the driver (None: nerve's
    # Engine). Pickled by its module path, so the actor's process imports it and needs no registry
    # of its own.
    engine_builder: Callable | None = None

    @property
    def engine(self) -> EngineConfig:
        """The engine config with the device this actor runs on."""
        return replace(self.config.engine, device=self.device)

    def build_engine(self):
        """The engine this actor runs; EngineBuildError naming the cause when it cannot be built."""
        try:
            if self.engine_builder is not None:
                return self.engine_builder(self.engine)
            from nerve_core.engine import build_engine

            return build_engine(self.engine)
        except Exception as exc:
            detail = str(exc) if isinstance(exc, NerveError) else f"{type(exc).__name__}: {exc}"
            raise EngineBuildError(f"cannot build the engine: {detail}") from exc
