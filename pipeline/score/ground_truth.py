"""The ground truth of a sample as its run scored it, for everything that reads GT after the run:
rescoring, the report's thumbnails and the contact sheet.

The labeler decoded `seg.png` with the run's `input.max_image_pixels` and shifted it by the run's
`dataset.reduce_zero_label`; readers take both from the run's record (OUT/config.yaml), never from
defaults, so a picture or a score of the GT always agrees with what was scored. A GT that does not
decode is an `UnreadableGroundTruth` carrying the reason in the error rows' words (pipeline/reasons.py),
for the caller to report.
"""
from __future__ import annotations

import numpy as np

from pipeline.output.run_record import RunRecord
from pipeline.read.reader import ImageTooLarge, Sample, decode_label_png, decode_sample
from pipeline.reasons import DECODE_SEG, TOO_LARGE
from pipeline.score.scoring import scored_gt


class UnreadableGroundTruth(ValueError):
    """A sample's seg.png that does not decode under the run's settings; str() is "<reason>: <detail>"."""


def run_ground_truth(seg_png: bytes, record: RunRecord) -> np.ndarray:
    """Class ids of one sample's seg.png as the run scored them."""
    try:
        gt = decode_label_png(seg_png, record.config.input.max_image_pixels)
    except ImageTooLarge as exc:
        raise UnreadableGroundTruth(TOO_LARGE.error(str(exc))) from exc
    except Exception as exc:  # PIL raises many types for corrupt files
        raise UnreadableGroundTruth(DECODE_SEG.error(f"{type(exc).__name__}: {exc}")) from exc
    return scored_gt(gt, record.config.dataset)


def run_sample(raw: dict, record: RunRecord) -> Sample:
    """A raw tar sample decoded as the labeler decoded it, its GT as the run scored it."""
    sample = decode_sample(raw, record.config.input.max_image_pixels)
    if sample.gt is not None:
        sample.gt = scored_gt(sample.gt, record.config.dataset)
    return sample
