"""Typed job configs (omegaconf structured schemas) for `nerve label`, `nerve score`, `nerve verify`.

Plain dataclasses with types omegaconf accepts, so that a misspelt key or a wrong type fails with
the key's name before any work starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from nerve_core.config import EngineConfig


@dataclass(frozen=True)
class DatasetConfig:
    name: str = "demo"
    classes: str = "demo"  # configs/classes/<name>.txt, or a path to a class-name file
    ignore_index: int = 255  # GT value that is never scored
    # WSSS mode needs image-level labels; when a sample's json has none, take them from seg.png.
    labels_from_gt: bool = False
    # GT 0 is "unlabeled" (VOC20, PC59, ADE): 0 -> ignore, every other id shifts down by one.
    reduce_zero_label: bool = False


@dataclass(frozen=True)
class InputConfig:
    # A shard path or URL, a brace pattern (shard-{000000..000009}.tar), a directory, or a list of
    # any of these. Typed Any because omegaconf has no str-or-list type.
    shards: Any = None
    # Images (and seg.png) whose header announces more pixels than this become `too_large` error
    # rows before any pixel is decoded (decompression bombs). PIL's own default; 0 = no limit.
    max_image_pixels: int = 89_478_485


@dataclass(frozen=True)
class OutputConfig:
    dir: str = ""  # local path or fsspec URL (s3://, gs://, ...)
    mode: str = "resume"  # resume: skip done shards, refuse another fingerprint | overwrite
    confidence: bool = False  # also store the quantised top-class probability per pixel
    parquet_compression: str = "zstd"


@dataclass(frozen=True)
class RayConfig:
    # "" = start a local Ray for this job (even where an earlier `ray start` left a record or
    # RAY_ADDRESS is set); "auto" or "ray://host:port" = join that cluster
    address: str = ""
    local_num_cpus: Optional[int] = None  # CPUs of the local Ray (None = all)
    num_actors: int = 0  # 0 = one per GPU, or one CPU actor when the cluster has no GPU
    # CPUs reserved per actor; 0 = min(1, cluster CPUs / (actors + 1)), which leaves room for
    # Ray's own tasks on small machines.
    cpus_per_actor: float = 0.0
    decode_threads: int = 2  # per actor: image decoding + engine.prepare run ahead of the engine
    # CPU actors: torch threads per actor; 0 = the cluster's CPUs / actors. Ray limits an actor to
    # its CPU reservation (OMP_NUM_THREADS), which on a small machine would leave cores idle.
    torch_threads: int = 0
    prefetch: int = 16  # decoded samples queued ahead of the engine, per actor
    # shards handed to an actor beyond the one it labels: the next one reads and decodes while the
    # current one runs its last batches and writes, so the engine never waits between shards (0 =
    # none). Each holds up to `prefetch` decoded samples in host memory.
    shards_ahead: int = 1
    max_retries: int = 2  # extra attempts for a shard whose actor died or raised
    shard_timeout_s: float = 0.0  # > 0: a shard labeling longer (timed from when it is its actor's first) is killed and retried
    poll_s: float = 0.5  # driver loop tick (progress refresh, dead-actor checks)
    # After a first SIGTERM or SIGINT (SLURM's time limit, scancel or preemption; a deleted RayJob;
    # Ctrl-C) no more shards are handed out and those being labeled get this long to finish; then,
    # or at a second signal, the job stops, writes its summary and exits 75 (a rerun resumes).
    stop_grace_s: float = 60.0
    verbose: bool = False  # show Ray's own log lines (start-up notices, worker output) on the terminal
    # Prometheus port of a local Ray's metrics agent (the nerve_* metrics, see docs/operations.md); 0 = a
    # port Ray picks. Joining a cluster (ray.address set) it does nothing: the cluster's own
    # `ray start --metrics-export-port` applies.
    metrics_export_port: int = 0


@dataclass(frozen=True)
class LabelJobConfig:
    engine: EngineConfig = field(default_factory=EngineConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    # real: the engine's configured weights | tiny: random-weight test models, written once under
    # $NERVE_CACHE (default ~/.cache/nerve) and used in place of engine.clip.* and engine.sd.*
    models: str = "real"
    progress: bool = True


@dataclass(frozen=True)
class OutputDirConfig:
    dir: str = ""


@dataclass(frozen=True)
class ScoreJobConfig:
    """Input shards default to those recorded in OUT/config.yaml."""

    output: OutputDirConfig = field(default_factory=OutputDirConfig)
    input: InputConfig = field(default_factory=InputConfig)


@dataclass(frozen=True)
class VerifyJobConfig:
    output: OutputDirConfig = field(default_factory=OutputDirConfig)
    input: InputConfig = field(default_factory=InputConfig)
