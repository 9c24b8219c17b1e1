"""The engine: images + vocabulary -> per-pixel class ids at each image's original size.

Built from parts chosen by the config: a dense CLIP head (G), an optional Stable Diffusion
attention source (q, k of the configured layers), a refiner, an upsampler and the dataset's
background rule. A batch costs one CLIP forward and one SD forward; the output stage runs per
image because each image may have its own class subset (WSSS mode), and so does refinement unless
the refiner walks the images of one class count together (engine.refine.batching). With
engine.compile, CLIP's trunk, the VAE encoder and the UNet run under torch.compile.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from nerve_core.background import check_rule, class_ranges, decide, needs_ranges, softmax_classes
from nerve_core.clip.dense_head import class_probs
from nerve_core.compiling import check_compile_mode
from nerve_core.config import EngineConfig, as_engine_config
from nerve_core.devices import resolve_device, resolve_dtype
from nerve_core.identity import code_version, digest, engine_identity
from nerve_core.imageprep import Prepared, RGBImage, host_tensor, prepare_image, resize_on_device
from nerve_core.refine import get_refiner
from nerve_core.registry import registered_builder
from nerve_core.timing import StageTimer
from nerve_core.upsample import upsample_chunks
from nerve_core.vocab import Vocabulary, validate_labels

MODES = ("open", "wsss")
REFINE_BATCHINGS = ("auto", "batch", "image")  # engine.refine.batching


def refine_batching(batching: str, device) -> str:
    """engine.refine.batching resolved for a device: auto is batch on CUDA (kernel launches are the
    walk's fixed cost there), image elsewhere (one image's working set stays in a CPU's caches)."""
    if batching not in REFINE_BATCHINGS:
        raise ValueError(f"unknown engine.refine.batching {batching!r}; expected one of {REFINE_BATCHINGS}")
    if batching != "auto":
        return batching
    return "batch" if torch.device(device).type == "cuda" else "image"


@dataclass
class Features:
    """What the models give a batch: all that refinement and the output stage need of it."""

    probs: list[torch.Tensor]  # per image (K', hc, wc) float32 class probabilities on the CLIP grid
    layers: list  # LayerQK per captured SD layer, q and k (B, heads, N, d); empty without SD
    classes: list[list[int]]  # per image the class ids of its probs' rows


def image_layers(layers: list, i: int) -> list:
    """Image i's q, k of every captured layer (batch axis removed)."""
    return [replace(layer, q=layer.q[i], k=layer.k[i]) for layer in layers]


@dataclass
class Segmentation:
    labels: np.ndarray  # (H, W) uint8 class ids, 255 = unlabeled
    confidence: np.ndarray | None = None  # (H, W) uint8: round(255 * score of the chosen label)
    walk: dict | None = None  # random walk diagnostics (random_walk.walk_diagnostics); None without a walk


class Engine:
    def __init__(self, cfg: EngineConfig, load_models: bool = True):
        """load_models=False: no CLIP, no SD, for finishing cached features (`nerve tune`)."""
        if cfg.mode not in MODES:
            raise ValueError(f"unknown engine.mode {cfg.mode!r}; expected one of {MODES}")
        check_compile_mode(cfg.compile)  # before minutes of model loading
        refine_batching(cfg.refine.batching, "cpu")
        check_rule(cfg.background)
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.dtype, self.device)
        self.refiner = get_refiner(cfg.refine.name)
        self.refine_in_batches = self.refiner.batched and refine_batching(cfg.refine.batching, self.device) == "batch"
        self.timer = StageTimer(self.device)  # stages: prepare, clip, sd, refine, upsample
        self.resize_on_device = self.device.type == "cuda"  # see nerve_core.imageprep
        self.head = self.sd = None
        if not load_models:  # open_clip and diffusers are not even imported (seconds per process)
            return
        from nerve_core.clip.dense_head import DenseClipHead
        from nerve_core.models.clip_loader import load_clip

        model, tokenizer = load_clip(cfg.clip, self.device, self.dtype)
        self.head = DenseClipHead(model, tokenizer, cfg.clip)
        if self.refiner.needs_attention:
            from nerve_core.models.sd_loader import load_stable_diffusion
            from nerve_core.sd.features import SDQueryKeyExtractor

            models = load_stable_diffusion(cfg.sd, self.device, self.dtype)
            self.sd = SDQueryKeyExtractor(models, cfg.sd, self.device, self.dtype)
            self.sd.compile(cfg.compile)
        self.head.compile(cfg.compile)

    # ---- CPU side: safe to call from decode threads -------------------------------------------
    def prepare(self, image: RGBImage) -> Prepared:
        """Resize for the models (on CUDA: the pixels once, resized on the GPU); keep the original
        pixels only if the upsampler needs them."""
        guided = self.cfg.upsample.name != "bilinear" or self.cfg.upsample.pamr
        sd_size = self.cfg.sd.image_size if self.sd is not None else None
        return prepare_image(image, self.cfg.clip.image_size, self.cfg.clip.resize, sd_size, guided, self.resize_on_device)

    # ---- model side ---------------------------------------------------------------------------
    def segment(self, images, vocab, image_labels=None) -> list[np.ndarray]:
        """Per image an (H, W) uint8 class-id map at the image's original size."""
        out = []
        size = self.cfg.batch_size
        for start in range(0, len(images), size):
            batch = [self.prepare(im) for im in images[start : start + size]]
            labels = None if image_labels is None else image_labels[start : start + size]
            out.extend(s.labels for s in self.run(batch, vocab, labels))
        return out

    @torch.inference_mode()
    def run(self, prepared: list[Prepared], vocab, image_labels=None, confidence: bool = False) -> list[Segmentation]:
        """Segment a batch of prepared images (one CLIP and one SD forward)."""
        return self.finish(self.features(prepared, vocab, image_labels), prepared, confidence)

    @torch.inference_mode()
    def features(self, prepared: list[Prepared], vocab, image_labels=None) -> Features:
        """The models' part of `run`: class probabilities on the CLIP grid and the SD q, k."""
        if self.head is None:
            raise RuntimeError("this engine was built without models; it can only finish cached features")
        vocab = Vocabulary.coerce(vocab)
        if image_labels is not None and len(image_labels) != len(prepared):
            raise ValueError(f"{len(image_labels)} label lists for {len(prepared)} images")
        class_sets = [self.classes_for(vocab, None if image_labels is None else image_labels[i]) for i in range(len(prepared))]
        competing = [softmax_classes(self.cfg.background, self.cfg.mode, kept, len(vocab)) for kept in class_sets]
        class_sets = [kept for _, kept in competing]
        stage = self.timer.stage
        with stage("clip"):
            uploads = self._upload(prepared)
            logits = self._clip_logits(prepared, vocab, uploads)
        with stage("sd"):
            layers = self.sd(self._pixels(prepared, "sd", uploads)) if self.sd is not None else []
        _, owner = vocab.queries()
        with stage("refine"):
            probs = [kept_probs(logits[i], owner, *competing[i]) for i in range(len(prepared))]
        return Features(probs, layers, class_sets)

    @torch.inference_mode()
    def finish(self, features: Features, prepared: list[Prepared], confidence: bool = False) -> list[Segmentation]:
        """The rest of `run`: refine, upsample to each image's size, background rule. Needs no
        model, so it also runs on cached features (`Engine(cfg, load_models=False)`); of `prepared` it
        reads only the size and the guide."""
        stage = self.timer.stage
        with stage("refine"):
            scores, walks = self._refine(features.probs, features.layers)
        results = []
        for i, p in enumerate(prepared):
            with stage("upsample"):
                results.append(replace(self._finish(scores[i], p, features.classes[i], confidence), walk=walks[i]))
        return results

    def _refine(self, probs: list[torch.Tensor], layers) -> tuple[list[torch.Tensor], list[dict | None]]:
        """Per image refined scores and walk diagnostics (None where the refiner has none). With
        refine_in_batches the refiner gets the images whose probabilities have one shape (number of
        classes, CLIP grid: all of them in open mode with square CLIP inputs) in one call; otherwise
        one call per image (refine.batching). An image with no class to refine (WSSS without
        labels) is passed through."""
        cfg = self.cfg.refine
        diagnosed = self.refiner.diagnosed if cfg.diagnostics else None

        def refine(G, group_layers):
            return diagnosed(G, group_layers, cfg) if diagnosed else (self.refiner.fn(G, group_layers, cfg), None)

        scores: list = list(probs)
        walks: list = [None] * len(probs)
        todo = [i for i, p in enumerate(probs) if p.shape[0] > 0]
        if not self.refine_in_batches:
            for i in todo:
                scores[i], walks[i] = refine(probs[i], image_layers(layers, i))
            return scores, walks
        groups: dict[tuple, list[int]] = {}
        for i in todo:
            groups.setdefault(tuple(probs[i].shape), []).append(i)
        for members in groups.values():
            group_layers = layers if len(members) == len(probs) else [replace(l, q=l.q[members], k=l.k[members]) for l in layers]
            found, diagnostics = refine(torch.stack([probs[i] for i in members]), group_layers)
            for j, i in enumerate(members):
                scores[i], walks[i] = found[j], diagnostics and diagnostics[j]
        return scores, walks

    def classes_for(self, vocab: Vocabulary, labels) -> list[int] | None:
        """The class subset of one image: all (open mode) or background + its labels (WSSS)."""
        if self.cfg.mode == "open":
            return list(range(len(vocab)))
        validate_labels(labels, len(vocab))
        bg = [self.cfg.background.class_id] if self.cfg.background.class_id >= 0 else []
        return bg + sorted(set(int(c) for c in labels) - set(bg))

    def _pixels(self, prepared: list[Prepared], model: str, uploads: list[torch.Tensor] | None) -> torch.Tensor:
        """(B, 3, h, w) input of `model` ("clip" or "sd") in [0, 1]: resized arrays stacked, or each
        image's uint8 pixels uploaded once and resized here on the device."""
        if uploads is None:
            batch = torch.from_numpy(np.stack([getattr(p, model) for p in prepared])).permute(0, 3, 1, 2)
            if self.device.type == "cuda":
                batch = batch.pin_memory().to(self.device, non_blocking=True)
            return batch.to(self.dtype) / 255.0
        sizes = [p.clip_size if model == "clip" else (self.cfg.sd.image_size,) * 2 for p in prepared]
        return torch.stack([resize_on_device(u, hw) for u, hw in zip(uploads, sizes)]).to(self.dtype) / 255.0

    def _upload(self, prepared: list[Prepared]) -> list[torch.Tensor] | None:
        """Each image's uint8 pixels on the device, once for both models (None: resized on the CPU)."""
        if prepared[0].pixels is None:
            return None
        hosts = [host_tensor(p.pixels) for p in prepared]
        if self.device.type == "cuda":
            hosts = [h.pin_memory() for h in hosts]
        return [h.to(self.device, non_blocking=True) for h in hosts]

    def _clip_logits(self, prepared: list[Prepared], vocab: Vocabulary, uploads) -> list[torch.Tensor]:
        """Per image (Q, h, w) query logits: whole batch at once, or sliding windows (short_side)."""
        if self.cfg.clip.resize == "square":
            return list(self.head.query_logits(self._pixels(prepared, "clip", uploads), vocab))
        return [self._sliding_logits(self._pixels([p], "clip", None if uploads is None else [uploads[i]]), vocab)
                for i, p in enumerate(prepared)]

    def _sliding_logits(self, pixels: torch.Tensor, vocab: Vocabulary) -> torch.Tensor:
        """NACLIP's slide inference: window logits resized to the window, averaged where they overlap."""
        _, _, h, w = pixels.shape
        win, stride = self.cfg.clip.window, self.cfg.clip.stride
        tops = _window_starts(h, win, stride)
        lefts = _window_starts(w, win, stride)
        crops = [(t, l) for t in tops for l in lefts]
        windows = torch.cat([pixels[:, :, t : t + win, l : l + win] for t, l in crops])
        logits = self.head.query_logits(windows, vocab).float()
        logits = torch.nn.functional.interpolate(logits, size=(min(win, h), min(win, w)), mode="bilinear", align_corners=False)
        total = torch.zeros(logits.shape[1], h, w, device=logits.device)
        count = torch.zeros(1, h, w, device=logits.device)
        for (t, l), window in zip(crops, logits):
            total[:, t : t + win, l : l + win] += window
            count[:, t : t + win, l : l + win] += 1
        return total / count

    def _finish(self, scores: torch.Tensor, p: Prepared, classes: list[int], confidence: bool) -> Segmentation:
        """Upsample to the original size in row chunks, apply the background rule, to uint8.

        Scores are clamped >= 0. Refiners whose scores are not on CLIP's probability scale (iSeg,
        DSLO) are renormalised over the classes at each pixel first; the others reach the rule as
        they are (docs/method.md, "Background rules"). The WSSS min-max rules read each class's
        range over the whole upsampled image, so its chunks are kept for a second pass (few classes).
        """
        labels = np.empty(p.size, dtype=np.uint8)
        conf = np.empty(p.size, dtype=np.uint8) if confidence else None
        background = self.cfg.background
        chunks = upsample_chunks(scores, p, self.cfg.upsample)
        ranges = None
        if needs_ranges(background):
            chunks = [(rows, chunk.clamp_min(0)) for rows, chunk in chunks]
            ranges = class_ranges([chunk for _, chunk in chunks]) if scores.shape[0] else None
        for rows, chunk in chunks:
            chunk = chunk.clamp_min(0)
            if not self.refiner.probabilities:
                chunk = chunk / chunk.sum(0, keepdim=True).clamp_min(1e-12)
            ids, score = decide(chunk, classes, background, ranges)
            labels[rows] = ids.to(torch.uint8).cpu().numpy()
            if conf is not None:
                conf[rows] = (score.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        return Segmentation(labels, conf)

    def fingerprint(self) -> dict:
        """What determines the output: the engine config without its throughput fields, and the
        code version (the same definition the label job's fingerprint uses)."""
        parts = {"engine": engine_identity(self.cfg), "code": code_version()}
        return {**parts, "digest": digest(parts)}


def kept_probs(query_logits: torch.Tensor, owner, competing: list[int], kept: list[int]) -> torch.Tensor:
    """(len(kept), h, w) float32 class probabilities of one image: softmax over the prompts of the
    `competing` classes, max over each class's synonyms, the `kept` classes' maps (background.softmax_classes)."""
    probs = class_probs(query_logits[None], owner, competing)[0].float()
    position = {c: i for i, c in enumerate(competing)}
    return probs[[position[c] for c in kept]]


def _window_starts(length: int, window: int, stride: int) -> list[int]:
    """Window offsets covering [0, length): regular steps, the last one flush with the end."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window, stride))
    return starts + [length - window]


def build_engine(cfg):
    """Build the engine a config describes (EngineConfig, DictConfig or dict): the builder registered
    for its name (nerve_core.registry), else nerve's Engine."""
    cfg = as_engine_config(cfg)
    return (registered_builder(cfg.name) or Engine)(cfg)
