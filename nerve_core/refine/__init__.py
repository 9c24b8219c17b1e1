"""Refiners: from CLIP class probabilities (and SD attention) to refined class scores.

Every refiner has the signature `refine(G_clip, layers, cfg) -> (K, h, w) scores`:
G_clip (K, hc, wc) class probabilities on the CLIP patch grid of one image, `layers` the
captured SD self-attention q/k of that image (`nerve_core.sd.features.LayerQK`, batch axis
removed), cfg a `RefineConfig`. The registry says which need the SD attention, so that an
engine without them never loads Stable Diffusion, and which also take a batch of images with the
same K at once (G_clip (B, K, hc, wc), layers with their batch axis -> (B, K, h, w)), so that the
engine pays their fixed per-call cost once per batch, which return per-image diagnostics
(`diagnosed(G_clip, layers, cfg) -> (scores, diagnostics)`), and whose scores stay on CLIP's
probability scale (`probabilities`: the open-vocabulary threshold reads them as they are; other
refiners' scores are renormalised over the classes first).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nerve_core.refine.dslo import refine_dslo_max_velocity, refine_dslo_optimal_path
from nerve_core.refine.iseg import refine_iseg
from nerve_core.refine.walk import refine_random_walk, refine_random_walk_diagnosed


@dataclass(frozen=True)
class Refiner:
    fn: Callable
    needs_attention: bool
    batched: bool = False
    diagnosed: Callable | None = None
    probabilities: bool = False


def refine_none(G_clip, layers, cfg):
    """No refinement: the CLIP probabilities themselves (NACLIP)."""
    return G_clip


REFINERS: dict[str, Refiner] = {
    "none": Refiner(refine_none, needs_attention=False, probabilities=True),
    "random_walk": Refiner(refine_random_walk, needs_attention=True, batched=True, diagnosed=refine_random_walk_diagnosed,
                           probabilities=True),
    "iseg": Refiner(refine_iseg, needs_attention=True),
    "dslo_optimal_path": Refiner(refine_dslo_optimal_path, needs_attention=True),
    "dslo_max_velocity": Refiner(refine_dslo_max_velocity, needs_attention=True),
}


def get_refiner(name: str) -> Refiner:
    try:
        return REFINERS[name]
    except KeyError:
        raise ValueError(f"unknown refiner {name!r}; available: {', '.join(sorted(REFINERS))}") from None
