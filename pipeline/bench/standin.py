"""A stand-in engine that costs the host what a GPU-bound engine costs it: waiting.

`nerve bench pipeline models=standin standin.images_per_second=R` labels with it in place of the
models. The labeler calls it as it calls the engine (`cfg`, `device`, `prepare`, `run`,
`fingerprint`); `prepare` is the engine's own GPU-side preparation (the decoded pixels once, to be
resized on the device), and `run` returns a label map at each image's size after 1/R s per image
spent asleep, the GIL and the CPU released, as a thread waiting on a GPU is. Everything else is the
real thing (tar reading, decoding, mask encoding, RLE, scoring, Parquet, Ray), so the highest R the
label job keeps up with is the fastest GPU engine one actor's host path can feed.

It is reachable only from the benchmark: importing this module registers the "standin" engine
family (nerve_core.registry), and the bench is what imports it. The driver hands its actors the
registered builder (pipeline.job.ActorJob), so Ray workers build `standin:R` engines without any
set-up of their own; a `nerve label` command naming one never imports this module.
"""
from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager

import numpy as np
import torch

from nerve_core.config import as_engine_config
from nerve_core.engine import Engine, Segmentation
from nerve_core.imageprep import Prepared, prepare_image
from nerve_core.registry import engine_family, register_engine
from nerve_core.timing import StageTimer
from nerve_core.vocab import Vocabulary
from pipeline.source_path import source_pythonpath

PREFIX = "standin:"  # engine.name of a stand-in: "standin:<images per second>"
GRID = 24  # label-map detail: the CLIP ViT-L/14-336 patch grid, upsampled to each image's size
MAX_CLASSES = 4  # classes per label map (VOC images hold 1-3 objects besides the background)


def standin_name(images_per_second: float) -> str:
    if not images_per_second > 0:
        raise ValueError(f"standin.images_per_second must be > 0, got {images_per_second}")
    return f"{PREFIX}{images_per_second:g}"


class StandinEngine:
    """The engine's interface as the labeler uses it, with a fixed rate instead of models."""

    def __init__(self, cfg):
        self.cfg = as_engine_config(cfg)
        self.images_per_second = float(self.cfg.name.removeprefix(PREFIX))
        self.device = f"standin ({self.images_per_second:g} images/s)"
        self.timer = StageTimer(torch.device("cpu"))  # the benchmarks read stage times from it

    def prepare(self, image) -> Prepared:
        clip = self.cfg.clip
        return prepare_image(image, clip.image_size, clip.resize, self.cfg.sd.image_size, guided=False, on_device=True)

    def run(self, prepared: list[Prepared], vocab, image_labels=None, confidence: bool = False) -> list[Segmentation]:
        """Label maps following each image's brightness, ready len(prepared) / R seconds after the call."""
        ready = time.perf_counter() + len(prepared) / self.images_per_second
        vocab = Vocabulary.coerce(vocab)
        out = []
        with self.timer.stage("standin"):
            for i, p in enumerate(prepared):
                classes = Engine.classes_for(self, vocab, None if image_labels is None else image_labels[i])
                labels = label_map(p.pixels, p.size, classes)
                out.append(Segmentation(labels, np.full(p.size, 200, dtype=np.uint8) if confidence else None))
            time.sleep(max(0.0, ready - time.perf_counter()))
        return out

    def fingerprint(self) -> dict:
        return {"engine": {"name": self.cfg.name}, "code": "standin",
                "digest": hashlib.sha256(self.cfg.name.encode()).hexdigest()[:16]}


register_engine(engine_family(PREFIX), StandinEngine)


def label_map(pixels: np.ndarray, size: tuple[int, int], classes: list[int]) -> np.ndarray:
    """(H, W) = `size` uint8: brightness bands of a GRID x GRID sample of `pixels` (the image at any
    scale), one class per band, nearest-upsampled. At most MAX_CLASSES of `classes` appear, the
    first (background) always, as in real pseudo-masks. Its own cost is kept to what a GPU engine's
    map costs the host (a D2H copy and a little indexing): integer sums and rank-picked band edges,
    no float quantiles nor random generators, which made it a tenth of the measured host path."""
    rows, cols = (np.arange(GRID) * pixels.shape[0]) // GRID, (np.arange(GRID) * pixels.shape[1]) // GRID
    grey = pixels[rows[:, None], cols[None, :], :3].sum(axis=2, dtype=np.uint16)
    if len(classes) > MAX_CLASSES:  # which ones: a run of the others fixed by the picture, so reruns agree
        first = int(grey.sum()) % (len(classes) - 1)
        classes = [classes[0], *(classes[1 + (first + i) % (len(classes) - 1)] for i in range(MAX_CLASSES - 1))]
    edges = np.sort(grey, axis=None)[np.arange(1, len(classes)) * grey.size // len(classes)]
    small = np.asarray(classes, dtype=np.uint8)[np.searchsorted(edges, grey)]
    h, w = size
    return small[:, np.arange(w) * GRID // w][np.arange(h) * GRID // h]  # one axis at a time: two cheap gathers


@contextmanager
def standin_ray(ray_cfg):
    """A local Ray of the bench's own, shut down after (its workers import the project from this tree)."""
    import ray

    if ray.is_initialized():
        raise RuntimeError("models=standin starts a Ray of its own; run it in a process that has not started Ray")
    if ray_cfg.address:
        raise ValueError("models=standin runs on a local Ray of its own: leave ray.address empty")
    env = {"PYTHONPATH": source_pythonpath()}  # workers import the project from this tree
    ray.init(num_cpus=ray_cfg.local_num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _metrics_export_port=ray_cfg.metrics_export_port or None,
             runtime_env={"env_vars": env})
    try:
        yield
    finally:
        ray.shutdown()
