"""How a dataset's GT files encode classes: which raw values exist, and the class id each becomes.

Benchmarks store their masks in their own id spaces (Cityscapes labelIds 0..33, COCO-Stuff's
category id - 1 with gaps); shards hold the class ids of the evaluation class files. A 256-entry
lookup table maps a whole mask in one `np.take`, and the same pass over the mask's histogram both
rejects values the dataset never defines and lists the classes present (the image-level labels).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from pipeline.sources.files import SkipSample

IGNORE = 255


class IdTable:
    def __init__(self, to_class: dict[int, int], known: Iterable[int], exclude: Iterable[int], described: str):
        """`to_class`: raw value -> class id (raw values not in it become IGNORE); `known`: every raw
        value the dataset defines (any other makes the mask unusable); `exclude`: class ids that are
        not image-level labels (ignore, background); `described`: the known values in words."""
        self.lut = np.full(256, IGNORE, dtype=np.uint8)
        self.known = np.zeros(256, dtype=bool)
        self.known[list(known)] = True
        for raw, class_id in to_class.items():
            self.lut[raw] = class_id
        self.exclude = frozenset(exclude)
        self.described = described
        known_values = np.flatnonzero(self.known)
        self.identity = bool(np.array_equal(self.lut[known_values], known_values))

    @classmethod
    def classes(cls, num_classes: int, background: int | None = None) -> IdTable:
        """Masks that already hold class ids 0..num_classes-1 (255 = ignore): stored as they are."""
        ids = [*range(num_classes), IGNORE]
        exclude = {IGNORE} if background is None else {IGNORE, background}
        return cls({i: i for i in ids}, ids, exclude, f"0..{num_classes - 1} or {IGNORE}")

    def convert(self, mask: np.ndarray, path) -> tuple[np.ndarray, list[int]]:
        """(class-id mask, sorted image-level labels); SkipSample if a raw value is not a known one."""
        present = np.flatnonzero(np.bincount(mask.ravel(), minlength=256))
        unknown = present[~self.known[present]]
        if unknown.size:
            raise SkipSample("mask ids out of range", f"{path}: {unknown[:8].tolist()} not in {self.described}")
        labels = [int(c) for c in np.unique(self.lut[present]) if c not in self.exclude]
        return (mask if self.identity else np.take(self.lut, mask)), labels
