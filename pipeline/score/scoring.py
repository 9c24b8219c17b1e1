"""Confusion matrices and dataset-level mIoU (docs/method.md, section 13).

The matrix is K x (K + 1): rows are GT classes, columns predicted classes plus one last column for
pixels the labeler left unlabeled (255). An unlabeled pixel on a scored GT pixel is a miss of that
GT class, so it lowers the class's IoU instead of vanishing from the figures. GT pixels equal to
`ignore_index` are never counted. Shard matrices add up to the dataset's.
"""
from __future__ import annotations

import numpy as np

UNLABELED = 255


def reduce_zero_label(gt: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """mmseg's convention for datasets whose GT id 0 means "unlabeled": 0 -> ignore, k -> k - 1."""
    out = gt.astype(np.int64) - 1
    out[(gt == 0) | (gt == ignore_index)] = ignore_index
    return out.astype(gt.dtype)


def scored_gt(gt: np.ndarray, dataset) -> np.ndarray:
    """Decoded GT as a run scored it, by the run's typed dataset settings (pipeline.config.DatasetConfig);
    pipeline/score/ground_truth.py applies it to a sample's seg.png with the run's record."""
    return reduce_zero_label(gt, dataset.ignore_index) if dataset.reduce_zero_label else gt


def reduce_zero_label_ids(labels: list) -> list:
    """Image-level labels (a shard json's `labels`, in the stored seg.png's ids) under the same
    convention: 0 is dropped, k -> k - 1. Entries that are not ids are kept for the caller's check."""
    ids = [c for c in labels if not (type(c) is int and c == 0)]
    return [c - 1 if type(c) is int else c for c in ids]


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int = 255,
                     block: int = 1 << 20) -> np.ndarray:
    """(K, K+1) int64 counts of (GT class, predicted class or unlabeled) over scored pixels.

    Label maps and GT are long runs of one value along a row: the matrix is counted over the runs
    where neither map changes, each weighted by its length, which costs a fraction of one entry per
    pixel. Runs on ignored GT are dropped first, and the rest index the (K, K+1) matrix directly, so
    that nothing of size 256 x 256 is made, summed or checked per image. Counted `block` pixels at a
    time, so the temporaries stay a few MB on images of any size; class ids beyond the vocabulary
    are reported (the largest, once every block is seen) rather than counted.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    if not 0 < num_classes <= UNLABELED:
        raise ValueError(f"{num_classes} classes do not fit uint8 class ids (1..{UNLABELED} classes)")
    p = _class_ids(pred, "prediction", num_classes).reshape(-1)
    g = _class_ids(gt, "ground truth", num_classes).reshape(-1)
    counts = np.zeros(num_classes * (num_classes + 1), dtype=np.int64)
    worst_gt = worst_pred = 0  # the largest GT value, and the largest prediction that is no class (0: none)
    for start in range(0, g.size, block):
        g_run, p_run, lengths = _runs(g[start : start + block], p[start : start + block])
        if 0 <= ignore_index <= UNLABELED:
            scored = g_run != ignore_index  # never scored
            g_run, p_run, lengths = g_run[scored], p_run[scored], lengths[scored]
        unlabeled = p_run == UNLABELED
        worst_gt = max(worst_gt, int(g_run.max(initial=0)))
        worst_pred = max(worst_pred, int(p_run[(p_run >= num_classes) & ~unlabeled].max(initial=0)))
        if worst_gt < num_classes and not worst_pred:  # else nothing is counted: the error below says why
            index = g_run.astype(np.intp) * (num_classes + 1) + np.where(unlabeled, num_classes, p_run)
            counts += np.bincount(index, weights=lengths, minlength=counts.size).astype(np.int64)
    if worst_gt >= num_classes:
        raise ValueError(f"ground truth holds class {worst_gt} but there are {num_classes} classes")
    if worst_pred:
        raise ValueError(f"prediction holds class {worst_pred} but there are {num_classes} classes")
    return counts.reshape(num_classes, num_classes + 1)


def _runs(g: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(GT value, predicted value, length) of each run where neither of two flat, non-empty uint8
    arrays changes."""
    starts = np.empty(g.size, dtype=bool)
    starts[0] = True
    np.not_equal(g[1:], g[:-1], out=starts[1:])
    starts[1:] |= p[1:] != p[:-1]
    first = np.flatnonzero(starts)
    return g[first], p[first], np.diff(first, append=g.size)


def _class_ids(values: np.ndarray, what: str, num_classes: int) -> np.ndarray:
    """`values` as uint8; values that no uint8 holds cannot be class ids (nor 255)."""
    if values.dtype == np.uint8:
        return values
    if values.size and (values.min() < 0 or values.max() > UNLABELED):
        raise ValueError(f"{what} holds class {values.max() if values.max() > UNLABELED else values.min()} "
                         f"but there are {num_classes} classes")
    return values.astype(np.uint8)


def per_class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU per class as a fraction; NaN where the class has no union (never in GT nor predicted)."""
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    tp = np.diag(cm[:, :k]).astype(np.float64)
    union = cm.sum(axis=1) + cm[:, :k].sum(axis=0) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def _percent(x):
    return None if x is None or np.isnan(x) else round(float(x) * 100.0, 4)


def image_scores(cm: np.ndarray | None, confidence: np.ndarray | None) -> dict:
    """One image's scores, the Parquet rows' `image_scores`: null where a score does not apply.

    `cm`: the image's own confusion matrix (None without GT): `pixel_accuracy` is the share of its
    scored pixels (GT ignore left out) predicted right, `miou` the mean IoU over the classes with a
    non-zero union, i.e. present in its GT or predicted on its scored pixels; both in percent, like
    summary.json's. `confidence`: the quantised top-class probability map (None unless stored):
    `mean_confidence` is its mean as a probability (0..1).
    """
    miou, accuracy = (None, None) if cm is None else _miou_and_accuracy(cm)
    mean_confidence = None if confidence is None else round(float(np.mean(confidence)) / 255.0, 6)
    return {"pixel_accuracy": accuracy, "miou": miou, "mean_confidence": mean_confidence}


def _miou_and_accuracy(cm: np.ndarray) -> tuple[float | None, float | None]:
    """(mIoU over classes with a non-zero union, share of scored pixels right), in percent; None
    where nothing is scored. An image's and a whole dataset's are the same formula."""
    iou = per_class_iou(cm)
    valid, total = ~np.isnan(iou), cm.sum()
    return (_percent(iou[valid].mean()) if valid.any() else None,
            _percent(np.trace(cm[:, : cm.shape[0]]) / total) if total else None)


def summarize_confusion(cm: np.ndarray, class_names: list[str]) -> dict:
    """mIoU (mean over classes with non-zero union), per-class IoU, pixel accuracy, all in percent."""
    cm = np.asarray(cm, dtype=np.int64)
    if cm.shape != (len(class_names), len(class_names) + 1):
        raise ValueError(f"confusion matrix {cm.shape} does not fit {len(class_names)} classes")
    k = cm.shape[0]
    gt_pixels = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(gt_pixels > 0, np.diag(cm[:, :k]) / np.maximum(gt_pixels, 1), np.nan)
    miou, aacc = _miou_and_accuracy(cm)
    return {
        "miou": miou,
        "per_class_iou": {name: _percent(v) for name, v in zip(class_names, per_class_iou(cm))},
        "aacc": aacc,
        "macc": _percent(np.nanmean(acc)) if (gt_pixels > 0).any() else None,
        "scored_pixels": int(cm.sum()),
        "unlabeled_pixels": int(cm[:, k].sum()),
    }
