"""COCO RLE of every class of a label map from one pass over it.

It runs once per labeled image on the actor's CPU, which a GPU engine leaves as the limit (the
mask PNG beside it: pipeline/output/pngcodec.py). COCO's counts are run lengths of each class's
binary mask in column-major order. Instead of one pass per class (compare, Fortran copy, encode),
the map's runs are found once and each class's counts are read off them; pycocotools still turns
the counts into its compressed string. The counts go to it as a uint32 array, the type it stores
them in: a Python list of ints would be built only for pycocotools to convert it back, which cost
as much as everything else here together.
"""
from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

UNLABELED = 255


class ColumnRuns:
    """Runs of equal values of a label map read in column-major order (COCO's RLE order)."""

    def __init__(self, labels: np.ndarray):
        self.size = tuple(int(v) for v in labels.shape)
        flat = np.ascontiguousarray(labels.T).reshape(-1)
        starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        self.bounds = np.concatenate(([0], starts, [flat.size]))  # run i covers bounds[i]:bounds[i + 1]
        self.values = flat[self.bounds[:-1]]
        present = np.flatnonzero(np.bincount(self.values, minlength=UNLABELED + 1))
        self._classes = [int(c) for c in present if c != UNLABELED]  # the row's and the RLEs': counted once

    def classes(self) -> list[int]:
        """Class ids present, ascending, without UNLABELED."""
        return self._classes

    def counts(self, class_id: int) -> np.ndarray:
        """Uncompressed COCO RLE counts (uint32, as pycocotools keeps them) of `labels == class_id`:
        alternating runs of 0s and 1s, starting with 0s (possibly none), the last run kept only if
        it is not empty."""
        runs = np.flatnonzero(self.values == class_id)
        start, end = self.bounds[runs], self.bounds[runs + 1]
        counts = np.empty(2 * runs.size + 1, dtype=np.uint32)
        counts[0] = start[0]
        counts[2:-1:2] = start[1:] - end[:-1]
        counts[1::2] = end - start
        counts[-1] = self.bounds[-1] - end[-1]
        return counts[:-1] if counts[-1] == 0 else counts


def coco_rles(labels: np.ndarray, runs: ColumnRuns | None = None) -> dict[int, dict]:
    """{class id: COCO compressed RLE with str counts} for every class present."""
    runs = runs or ColumnRuns(labels)
    height, width = runs.size
    out = {}
    for class_id in runs.classes():
        rle = mask_utils.frPyObjects({"size": [height, width], "counts": runs.counts(class_id)}, height, width)
        out[class_id] = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
    return out
