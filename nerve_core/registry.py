"""engine.name -> the builder of that engine: a plain dict, as model zoos keep their models.

Every preset's engine is nerve's (`nerve_core.engine.Engine`), built for any name without an
entry. Another engine registers its builder under its family, the part of engine.name before
the first ':' (the stand-in of `nerve bench pipeline models=standin`, named `standin:R`, registers
"standin" when pipeline.bench.standin is imported). No torch here: the driver looks a name up
to hand its actors the builder (pipeline.job.ActorJob) without loading the models' libraries.
"""
from __future__ import annotations

from collections.abc import Callable

ENGINES: dict[str, Callable] = {}  # family -> builder(EngineConfig) returning an engine


def engine_family(name: str) -> str:
    return name.partition(":")[0]


def register_engine(family: str, builder: Callable) -> None:
    ENGINES[family] = builder


def registered_builder(name: str) -> Callable | None:
    """The builder registered for engine.name `name`'s family, or None (nerve's Engine)."""
    return ENGINES.get(engine_family(name))
