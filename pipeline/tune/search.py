"""The search on Ray Tune: which settings to try, skipping the ones a run before finished.

grid and random choose their points up front (every combination; `trials` distinct ones drawn
with the seed), so finished points are left out before Tune starts. optuna is model-based
(Ray Tune's OptunaSearch, TPE): finished trials are handed to it as evaluated points, and it
proposes `trials` minus their number new ones. Each trial reserves tune.cpus_per_trial CPUs, or
tune.gpus_per_trial GPUs where the cluster has GPUs and engine.device is not cpu.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from nerve_core.errors import ConfigError
from pipeline.output.writers import read_json
from pipeline.storage import filesystem
from pipeline.tune.trial import TrialContext, run_trial


@dataclass
class SearchRun:
    ran: int = 0  # trials Tune ran this time (found-finished ones included, for optuna)
    reused: int = 0  # finished trials found from a run before and not started again
    errors: list[str] = field(default_factory=list)


def finished_trials(context: TrialContext) -> list[dict]:
    """Records of finished trials of this search (same base, settings inside the space)."""
    fs, root = filesystem(context.trials_dir)
    if not fs.exists(root):
        return []
    records = [read_json(fs, p) for p in sorted(fs.ls(root, detail=False)) if p.endswith(".json")]
    return [r for r in records if r.get("base") == context.base and context.space.contains(r["settings"])]


def trial_resources(cluster: dict, device: str, cpus: float, gpus: float) -> tuple[dict, str]:
    """(Ray resources of one trial, the device its engine runs on)."""
    if cluster.get("GPU", 0) > 0 and device != "cpu":
        return {"cpu": cpus, "gpu": gpus}, "cuda"
    if device.startswith("cuda"):
        raise ConfigError(f"engine.device={device} but the Ray cluster has no GPU")
    if cpus > cluster.get("CPU", 1):
        raise ConfigError(f"tune.cpus_per_trial={cpus} exceeds the cluster's {cluster.get('CPU')} CPUs")
    return {"cpu": cpus, "gpu": 0}, "cpu"


def run_search(context: TrialContext, tcfg, resources: dict, storage: str, max_failures: int) -> SearchRun:
    from ray import tune

    done = {r["trial"] for r in finished_trials(context)}
    run = SearchRun()
    if tcfg.search == "optuna":
        param_space, search_alg, samples, run.reused = _optuna(context, tcfg, done)
    else:
        points = context.space.grid() if tcfg.search == "grid" else context.space.sample(tcfg.trials or context.space.size, tcfg.seed)
        todo = tuple(p for p in points if context.key(p) not in done)
        run.reused = len(points) - len(todo)
        context = replace(context, points=todo)
        param_space, search_alg, samples = {"point": tune.grid_search(list(range(len(todo))))}, None, 1 if todo else 0
    if not samples:
        return run
    trainable = tune.with_resources(tune.with_parameters(run_trial, context=context), resources)
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        # One trial process serves many trials: the engine's imports (seconds) are paid once per process.
        tune_config=tune.TuneConfig(num_samples=samples, search_alg=search_alg, reuse_actors=True),
        run_config=tune.RunConfig(name=f"search-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=storage, verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=max_failures)),
    )
    results = tuner.fit()
    run.ran = len(results)
    run.errors = [f"{type(r.error).__name__}: {str(r.error).strip().splitlines()[-1]}" for r in results if r.error]
    return run


def optuna_searcher():
    """Ray Tune's OptunaSearch class, or a one-line error where optuna (an optional extra) is missing."""
    try:
        import optuna  # noqa: F401  (OptunaSearch itself only fails when built)
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise ConfigError("tune.search=optuna needs optuna: pip install 'nerve[optuna]' (or pip install optuna)") from None
    return OptunaSearch


def _optuna(context: TrialContext, tcfg, done: set):
    from ray import tune

    OptunaSearch = optuna_searcher()
    space = context.space
    finished = [r for r in finished_trials(context) if r["trial"] in done]
    points = [{f"p{j}": list(values).index(r["settings"][key]) for j, (key, values) in enumerate(zip(space.keys, space.values))}
              for r in finished]
    search_alg = OptunaSearch(metric="miou", mode="max", seed=tcfg.seed, points_to_evaluate=points or None,
                              evaluated_rewards=[r["miou"] for r in finished] or None)
    param_space = {f"p{j}": tune.choice(list(range(len(values)))) for j, values in enumerate(space.values)}
    remaining = max(0, (tcfg.trials or space.size) - len(finished))
    return param_space, search_alg, remaining, len(finished)
