"""The best trial's walk diagnostics (nerve_core.refine.random_walk.walk_diagnostics) on one cached
image, where the best trial walks."""
from __future__ import annotations

from pipeline.storage import filesystem
from pipeline.tune.cache import load_image
from pipeline.tune.space import engine_with


def walk_diagnostics_of(context, settings: dict) -> dict | None:
    """{"image": name, **diagnostics} of the first tune image, or None where there are none."""
    engine = engine_with(context.engine, settings)
    refine = engine["refine"]
    if refine["name"] != "random_walk" or not context.parts["tune"] or not context.layers:
        return None
    import torch

    from nerve_core.refine.random_walk import walk_diagnostics
    from nerve_core.refine.walk import node_probabilities

    entry = context.parts["tune"][0]
    fs, root = filesystem(context.cache_dir)
    image = load_image(fs, root, entry)
    grid = tuple(context.layers[0]["grid"])
    q = torch.cat([image[f"q.{j}"] for j in range(len(context.layers))]).float()
    k = torch.cat([image[f"k.{j}"] for j in range(len(context.layers))]).float()
    G = node_probabilities(image["probs"], grid, q.device, refine["remainder"])[0]
    figures = walk_diagnostics(G, q, k, grid, beta=refine["beta"], c=refine["c"], eps_self=refine["eps_self"],
                               affinity=refine["global_affinity"], temperature=refine["temperature"], power=refine["power"],
                               features=refine["features"], block_size=refine["block_size"],
                               sign_handling=refine["sign_handling"], row_floor=refine["row_floor"])
    return {"image": f"{entry['shard']}/{entry['key']}", **figures}
