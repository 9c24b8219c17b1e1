"""The best trial's walk diagnostics on one cached image, where the walk has a diagnostics
function (nerve_core.refine.random_walk.walk_diagnostics) and the best trial walks."""
from __future__ import annotations

import importlib

from pipeline.storage import filesystem
from pipeline.tune.cache import load_image
from pipeline.tune.space import engine_with


def walk_diagnostics_of(context, settings: dict) -> dict | None:
    """{"image": name, **diagnostics} of the first tune image, or None where there are none."""
    walk = importlib.import_module("nerve_core.refine.random_walk")
    diagnose = getattr(walk, "walk_diagnostics", None)
    engine = engine_with(context.engine, settings)
    refine = engine["refine"]
    if diagnose is None or refine["name"] != "random_walk" or not context.parts["tune"] or not context.layers:
        return None
    import torch

    from nerve_core.refine.walk import node_probabilities

    entry = context.parts["tune"][0]
    fs, root = filesystem(context.cache_dir)
    image = load_image(fs, root, entry)
    grid = tuple(context.layers[0]["grid"])
    q = torch.cat([image[f"q.{j}"] for j in range(len(context.layers))]).float()
    k = torch.cat([image[f"k.{j}"] for j in range(len(context.layers))]).float()
    G = node_probabilities(image["probs"], grid, q.device)[0]
    try:
        figures = diagnose(G, q, k, grid, beta=refine["beta"], c=refine["c"], eps_self=refine["eps_self"],
                           affinity=refine["global_affinity"], temperature=refine["temperature"], power=refine["power"],
                           features=refine["features"], block_size=refine["block_size"])
    except Exception as exc:  # noqa: BLE001  (a report figure must not fail a finished search)
        figures = {"unavailable": f"{type(exc).__name__}: {exc}"}
    return {"image": f"{entry['shard']}/{entry['key']}", **figures}
