"""Actor side of the feature cache: one shard's model outputs, stored image by image.

Per image one safetensors file `shards/{shard}/{n:06d}.safetensors` with the class probabilities
on the CLIP grid (`probs`, float32, exactly what the engine refines), the q and k of every
captured SD layer (`q.{j}`, `k.{j}`, in the engine's dtype or `cache_dtype`), the ground truth
(`gt`, uint8) and, when some trial's upsampler is image-guided, the original pixels (`guide`).
The shard's stats file (a ShardStats with its CacheIndex), written last through OutputDir, is its
done-marker and its index: per image the file, key, size and class set. Images without ground
truth are counted but not stored (a trial cannot score them). `CacheShard` is the task the
label job's actors run for it (pipeline.run.pool.ShardPool's `task`).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import torch

from nerve_core.engine import image_layers
from pipeline.output.outputdir import OutputDir
from pipeline.output.shard_stats import CacheIndex, ShardStats
from pipeline.read.shardlist import shard_id
from pipeline.reasons import reason_of
from pipeline.run.batch_split import run_bisecting
from pipeline.run.cpuclock import CpuClock
from pipeline.storage import join

DTYPES = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class CacheShard:
    """The tune cache's task on a Labeler actor: store one shard's features instead of labeling it."""

    qk_dtype: str = "engine"  # tune.cache_dtype

    def __call__(self, labeler, url: str, attempt: int, expected_samples: int | None) -> ShardStats:
        cache = ShardCache(labeler.engine, labeler.vocab, labeler.job, shard_id(url), self.qk_dtype, labeler.progress, attempt)
        read_error = labeler.read_batches(url, expected_samples, cache.add, CpuClock())
        return cache.close(url, attempt, read_error)


class ShardCache:
    def __init__(self, engine, vocab, job, shard: str, qk_dtype: str = "engine", progress=None, attempt: int = 0):
        self.engine, self.vocab, self.job, self.shard = engine, vocab, job, shard
        self.qk_dtype = DTYPES.get(qk_dtype, engine.dtype)
        self.progress, self.attempt = progress, attempt
        self.out = OutputDir(job.config.output.dir)
        self.fs, self.root = self.out.fs, self.out.root
        self.fs.makedirs(join(self.root, "shards", shard), exist_ok=True)
        self.images: list[dict] = []
        self.layers: list[dict] = []
        self.reasons: Counter = Counter()
        self.samples = self.no_gt = 0
        self.bytes = 0
        self.start = time.perf_counter()
        self.engine_seconds = 0.0

    def add(self, batch) -> None:
        """Run the models on the batch's decodable samples and store what each image needs."""
        good = [(s, p) for s, p in batch if p is not None]
        start = time.perf_counter()
        outputs = dict(zip((id(s) for s, _ in good), run_bisecting(self._features, good)))
        self.engine_seconds += time.perf_counter() - start
        errors = 0
        for sample, prepared in batch:
            self.samples += 1
            out = outputs.get(id(sample))
            if sample.ok and isinstance(out, str):
                sample.error = f"engine: {out}"
            if not sample.ok:
                errors += 1
                self.reasons[reason_of(sample.error)] += 1
            elif sample.gt is None:
                self.no_gt += 1
            else:
                self._store(sample, prepared, *out)
        if self.progress is not None and batch:
            self.progress.add.remote(self.shard, self.attempt, len(batch) - errors, errors)

    def _features(self, items) -> list[tuple]:
        labels = [s.meta["labels"] for s, _ in items] if self.engine.cfg.mode == "wsss" else None
        features = self.engine.features([p for _, p in items], self.vocab, labels)
        return [(features.probs[i], image_layers(features.layers, i), features.classes[i]) for i in range(len(items))]

    def _store(self, sample, prepared, probs, layers, classes) -> None:
        from safetensors.torch import save

        tensors = {"probs": probs.float().cpu().contiguous(), "gt": torch.from_numpy(sample.gt.copy())}
        for j, layer in enumerate(layers):
            tensors[f"q.{j}"] = layer.q.to(self.qk_dtype).cpu().contiguous()
            tensors[f"k.{j}"] = layer.k.to(self.qk_dtype).cpu().contiguous()
        if prepared.guide is not None:
            tensors["guide"] = torch.from_numpy(prepared.guide.copy())
        if not self.layers:
            self.layers = [{"name": layer.name, "grid": list(layer.grid)} for layer in layers]
        data = save(tensors)
        name = f"{self.shard}/{len(self.images):06d}.safetensors"
        with self.fs.open(join(self.root, "shards", name), "wb") as f:
            f.write(data)
        self.bytes += len(data)
        self.images.append({"file": name, "key": sample.key, "occurrence": sample.occurrence, "image_id": sample.image_id,
                            "size": list(prepared.size), "classes": list(classes), "bytes": len(data)})

    def close(self, url: str, attempt: int, read_error: str | None) -> ShardStats:
        """Write the stats file (done-marker and index) and return it to the driver."""
        errors = sum(self.reasons.values())
        index = CacheIndex(images=self.images, layers=self.layers, qk_dtype=str(self.qk_dtype).removeprefix("torch."),
                           bytes=self.bytes, no_gt=self.no_gt)
        stats = ShardStats(
            shard=self.shard, url=url, attempt=attempt, samples=self.samples, ok=self.samples - errors, errors=errors,
            errors_by_reason=dict(self.reasons), partial=read_error is not None,
            read_error=None if read_error is None else f"unreadable after {self.samples} samples: {read_error}",
            fingerprint=self.job.fingerprint, finished_at=time.time(),
            seconds={"engine": self.engine_seconds, "total": time.perf_counter() - self.start}, cache=index)
        self.out.write_stats(stats)
        return stats
