"""Sample preparation before the engine: decode, shift ids where the dataset reduces zero, and
check GT values and WSSS image labels, so that a bad sample becomes an error row with its reason
(pipeline/reasons.py) before the engine sees it."""
from __future__ import annotations

import numpy as np

from pipeline.config import DatasetConfig
from pipeline.read.reader import Sample, check_gt_values, decode_sample
from pipeline.reasons import BAD_IMAGE_LABELS, NO_IMAGE_LABELS
from pipeline.score.scoring import reduce_zero_label, reduce_zero_label_ids


class SamplePreparer:
    """Raw tar members -> a checked Sample (its `error` set where it cannot be labeled)."""

    def __init__(self, dataset: DatasetConfig, num_classes: int, max_pixels: int, wsss: bool):
        self.dataset, self.num_classes, self.max_pixels, self.wsss = dataset, num_classes, max_pixels, wsss

    def __call__(self, raw: dict) -> Sample:
        dataset = self.dataset
        sample = decode_sample(raw, self.max_pixels)
        if dataset.reduce_zero_label:  # GT and json labels hold the stored mask's ids: both shift
            if sample.gt is not None:
                sample.gt = reduce_zero_label(sample.gt, dataset.ignore_index)
            if isinstance(sample.meta.get("labels"), list):
                sample.meta["labels"] = reduce_zero_label_ids(sample.meta["labels"])
        if sample.ok and sample.gt is not None:
            sample.error = check_gt_values(sample.gt, self.num_classes, dataset.ignore_index)
        if sample.ok and self.wsss:
            sample.error = self._check_image_labels(sample)
        return sample

    def _check_image_labels(self, sample: Sample) -> str | None:
        labels = sample.meta.get("labels")
        dataset = self.dataset
        if labels is None and dataset.labels_from_gt and sample.gt is not None:
            ignore = dataset.ignore_index
            labels = [int(c) for c in np.unique(sample.gt) if c != ignore]
            sample.meta["labels"] = labels
        if labels is None:
            return NO_IMAGE_LABELS.error("engine.mode=wsss needs json labels (or dataset.labels_from_gt=true)")
        if not isinstance(labels, list):
            return BAD_IMAGE_LABELS.error(f"json labels must be a list of class ids, got {labels!r}")
        bad = [c for c in labels if not (isinstance(c, int) and not isinstance(c, bool) and 0 <= c < self.num_classes)]
        return BAD_IMAGE_LABELS.error(f"{bad} are not class ids") if bad else None
