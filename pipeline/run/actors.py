"""How many Labeler actors, with what resources and which engine device; the job they are built
from; and starting them.

One actor per GPU, pinned by Ray (num_gpus=1, so Ray sets CUDA_VISIBLE_DEVICES and the engine
sees its GPU as cuda:0). With no GPU in the cluster, or engine.device=cpu, CPU actors with an
explicit CPU device. A GPU the cluster does not have is never requested.
"""
from __future__ import annotations

from dataclasses import dataclass

from nerve_core.errors import ConfigError
from nerve_core.registry import registered_builder
from nerve_core.vocab import Vocabulary
from pipeline.config import LabelJobConfig
from pipeline.job import ActorJob


@dataclass(frozen=True)
class ActorPlan:
    num_actors: int
    num_cpus: float
    num_gpus: int  # per actor: 1 or 0
    device: str  # engine.device inside each actor


def plan_actors(num_actors: int, cpus_per_actor: float, engine_device: str, cluster: dict) -> ActorPlan:
    """`cluster` is ray.cluster_resources(); raises ConfigError for a request it cannot meet."""
    gpus = int(cluster.get("GPU", 0))
    cpus = float(cluster.get("CPU", 1))
    wants_cuda = engine_device.startswith("cuda")
    use_gpu = gpus > 0 and engine_device != "cpu"
    if wants_cuda and gpus == 0:
        raise ConfigError(f"engine.device={engine_device} but the Ray cluster has no GPU")
    if num_actors < 0:
        raise ConfigError("ray.num_actors must be >= 0")
    count = num_actors or (gpus if use_gpu else 1)
    if use_gpu and count > gpus:
        raise ConfigError(f"ray.num_actors={count} GPU actors but the cluster has {gpus} GPUs")
    # Leave one actor's share free for Ray's own tasks (and the progress counter) on small machines.
    share = cpus_per_actor if cpus_per_actor > 0 else min(1.0, cpus / (count + 1))
    if share * count > cpus:
        raise ConfigError(f"{count} actors x {share} CPUs exceed the cluster's {cpus} CPUs")
    # Pinned actors see their one GPU as cuda:0, so cuda:N would point at a GPU they cannot see.
    device = ("cuda" if wants_cuda else engine_device) if use_gpu else "cpu"
    return ActorPlan(count, round(share, 4), 1 if use_gpu else 0, device)


def start_labeler(plan: ActorPlan, job, progress=None):
    """One Labeler actor with the plan's resources; never restarted by Ray (the driver decides).
    `job`: the run's pipeline.job.ActorJob."""
    import ray

    from pipeline.run.labeler import Labeler

    actor_cls = ray.remote(Labeler).options(
        num_cpus=plan.num_cpus,
        num_gpus=plan.num_gpus,
        max_restarts=0,
        # the shard being labeled, those handed over ahead of it, and `info`, which answers meanwhile
        max_concurrency=2 + job.config.ray.shards_ahead,
    )
    return actor_cls.remote(job, progress)


def start_progress_counter():
    """The progress counter lives on the driver's node, so that losing a worker node keeps it."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from pipeline.run.progress_counter import ProgressCounter

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    return ray.remote(ProgressCounter).options(num_cpus=0, scheduling_strategy=here).remote()


def actor_job(cfg: LabelJobConfig, vocab: Vocabulary, fingerprint: dict, device: str, torch_threads: int = 0) -> ActorJob:
    """The frozen job every Labeler actor of this run is built from."""
    return ActorJob(cfg, tuple(tuple(s) for s in vocab.synonyms), fingerprint["digest"], device, torch_threads,
                    registered_builder(cfg.engine.name))


def cpu_threads(cfg, plan, cluster: dict) -> int:
    """torch threads for each CPU actor (0 for GPU actors: their CPU work is light)."""
    if plan.device != "cpu":
        return 0
    return cfg.ray.torch_threads or max(1, int(cluster.get("CPU", 1) // plan.num_actors))
