"""Confusion matrices and dataset-level mIoU against a set-based formulation of IoU."""
import numpy as np
import pytest

from pipeline.config import DatasetConfig
from pipeline.output.run_record import RunRecord
from pipeline.output.run_totals import merge_stats
from pipeline.output.shard_stats import ShardStats
from pipeline.score.scoring import confusion_matrix, per_class_iou, reduce_zero_label_ids, scored_gt, summarize_confusion
from tests.shards import set_iou


def _random_pair(rng, shape, num_classes, unlabeled=True):
    gt = rng.integers(0, num_classes, shape).astype(np.uint8)
    gt[rng.random(shape) < 0.1] = 255
    pred = np.where(rng.random(shape) < 0.6, gt, rng.integers(0, num_classes, shape)).astype(np.uint8)
    pred[gt == 255] = rng.integers(0, num_classes, int((gt == 255).sum()))
    if unlabeled:
        pred[rng.random(shape) < 0.05] = 255
    return pred, gt


def test_dataset_level_iou_matches_set_formulation():
    rng = np.random.default_rng(0)
    k = 5
    pairs = [_random_pair(rng, (int(rng.integers(5, 40)), int(rng.integers(5, 40))), k) for _ in range(6)]
    # Class 4 never appears anywhere: its union is empty and it leaves the mean.
    pairs = [(np.where(p == 4, 3, p).astype(np.uint8), np.where(g == 4, 3, g).astype(np.uint8)) for p, g in pairs]
    cm = sum(confusion_matrix(p, g, k) for p, g in pairs)
    expected = set_iou([p for p, _ in pairs], [g for _, g in pairs], k)
    np.testing.assert_allclose(per_class_iou(cm), expected, rtol=0, atol=1e-12, equal_nan=True)
    summary = summarize_confusion(cm, list("abcde"))
    assert summary["per_class_iou"]["e"] is None
    assert summary["miou"] == pytest.approx(100 * np.nanmean(expected), abs=1e-3)
    valid = np.concatenate([(g != 255).ravel() for _, g in pairs])
    correct = np.concatenate([(p == g).ravel() for p, g in pairs])[valid]
    assert summary["aacc"] == pytest.approx(100 * correct.mean(), abs=1e-3)
    assert summary["scored_pixels"] == valid.sum()
    assert summary["unlabeled_pixels"] == sum(int(((p == 255) & (g != 255)).sum()) for p, g in pairs)


def test_dataset_level_is_not_the_mean_of_image_level():
    # One tiny image scored perfectly and one large image scored badly: dataset-level IoU is
    # dominated by the large one, as docs/method.md section 13 requires.
    small_gt = np.array([[1]], dtype=np.uint8)
    big_gt = np.ones((10, 10), dtype=np.uint8)
    big_pred = np.zeros((10, 10), dtype=np.uint8)
    big_pred[:1] = 1
    cm = confusion_matrix(small_gt, small_gt, 2) + confusion_matrix(big_pred, big_gt, 2)
    assert per_class_iou(cm)[1] == pytest.approx(11 / 101)


def test_merge_sums_confusions_before_ratios():
    rng = np.random.default_rng(1)
    pairs = [_random_pair(rng, (12, 9), 3) for _ in range(3)]
    stats = [ShardStats(f"s{i}", samples=1, ok=1, gt_images=1, confusion=confusion_matrix(p, g, 3))
             for i, (p, g) in enumerate(pairs)]
    stats.append(ShardStats("s3", samples=2, errors=2, errors_by_reason={"decode_image": 2}))
    merged = merge_stats(stats, ["bg", "x", "y"], {"digest": "abc"})
    expected = set_iou([p for p, _ in pairs], [g for _, g in pairs], 3)
    assert merged["miou"] == pytest.approx(100 * np.nanmean(expected), abs=1e-3)
    assert (merged["num_images"], merged["num_ok"], merged["num_errors"]) == (5, 3, 2)
    assert merged["errors_by_reason"] == {"decode_image": 2} and merged["fingerprint"] == "abc"
    unscored = merge_stats(stats[3:], ["bg", "x", "y"], {"digest": "abc"})
    assert unscored["miou"] is None and unscored["per_class_iou"] == {"bg": None, "x": None, "y": None}


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 2)
    with pytest.raises(ValueError, match="prediction holds class 7"):
        confusion_matrix(np.full((2, 2), 7), np.zeros((2, 2)), 2)
    with pytest.raises(ValueError, match="ground truth holds class 4"):
        confusion_matrix(np.zeros((2, 2)), np.full((2, 2), 4), 2)
    with pytest.raises(ValueError, match="prediction holds class 300"):
        confusion_matrix(np.full((2, 2), 300), np.zeros((2, 2)), 2)
    with pytest.raises(ValueError, match="ground truth holds class -1"):
        confusion_matrix(np.zeros((2, 2)), np.full((2, 2), -1), 2)
    with pytest.raises(ValueError, match="do not fit"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 2)), 256)


def test_the_largest_bad_class_is_named_whichever_block_holds_it_and_ignored_gt_checks_nothing():
    pred, gt = np.array([[7, 0, 0, 9]], dtype=np.uint8), np.zeros((1, 4), dtype=np.uint8)
    for block in (1, 2, 4):
        with pytest.raises(ValueError, match="prediction holds class 9 "):
            confusion_matrix(pred, gt, 2, block=block)
        with pytest.raises(ValueError, match="ground truth holds class 9 "):
            confusion_matrix(gt, pred, 2, block=block)
    gt[0, 3] = 255  # the 9 falls on ignored GT: never scored, so never checked
    with pytest.raises(ValueError, match="prediction holds class 7 "):
        confusion_matrix(pred, gt, 2, block=2)
    np.testing.assert_array_equal(confusion_matrix(np.where(pred == 7, 255, pred), gt, 2), [[2, 0, 1], [0, 0, 0]])


def test_confusion_counts_blocks_and_any_integer_type_alike():
    """The one-bincount matrix against a plain count of every (GT, prediction) pair."""
    rng = np.random.default_rng(2)
    pred, gt = _random_pair(rng, (33, 47), 6)
    expected = np.zeros((6, 7), dtype=np.int64)
    for p, g in zip(pred.ravel(), gt.ravel()):
        if g != 255:
            expected[g, 6 if p == 255 else p] += 1
    np.testing.assert_array_equal(confusion_matrix(pred, gt, 6), expected)
    np.testing.assert_array_equal(confusion_matrix(pred, gt, 6, block=100), expected)
    np.testing.assert_array_equal(confusion_matrix(pred.astype(np.int64), gt.astype(np.int32), 6), expected)
    ignored_zero = expected.copy()
    ignored_zero[0] = 0  # GT 0 as the ignore value: its row is never scored, 255 then is an error
    np.testing.assert_array_equal(confusion_matrix(pred, np.where(gt == 255, 0, gt), 6, ignore_index=0), ignored_zero)


def test_reduce_zero_label_maps_zero_to_ignore_and_shifts_the_rest():
    from pipeline.score.scoring import reduce_zero_label

    gt = np.array([[0, 1, 2], [255, 150, 3]], dtype=np.uint8)
    assert reduce_zero_label(gt).tolist() == [[255, 0, 1], [255, 149, 2]]


def test_reduce_zero_label_ids_drops_zero_and_shifts_image_labels_like_the_mask():
    assert reduce_zero_label_ids([0, 1, 5, 150]) == [0, 4, 149]
    assert reduce_zero_label_ids([]) == [] and reduce_zero_label_ids([0]) == []
    # what is not an id is left for the labeler's own check (False is not the id 0)
    assert reduce_zero_label_ids(["cat", True, False, 3]) == ["cat", True, False, 2]


def test_scored_gt_follows_the_runs_dataset_settings():
    gt = np.array([[0, 1, 255, 150]], dtype=np.uint8)
    assert scored_gt(gt, DatasetConfig(reduce_zero_label=True)).tolist() == [[255, 0, 255, 149]]
    # outputs written before the key: their record reads it as the schema's default, stored as is
    record = RunRecord.from_data({"config": {"dataset": {"ignore_index": 255}}, "fingerprint": {"digest": "d"}}, "x")
    assert scored_gt(gt, record.config.dataset) is gt


def test_every_dataset_preset_loads_into_the_label_job_schema():
    from configs import CONFIG_DIR
    from jobs.config import load_config
    from pipeline.config import LabelJobConfig

    for preset in sorted(p.stem for p in (CONFIG_DIR / "datasets").glob("*.yaml")):
        cfg = load_config(LabelJobConfig, [f"dataset={preset}"])
        assert cfg.dataset.classes, preset


def test_image_scores_match_a_hand_computation():
    from pipeline.score.scoring import image_scores

    # 3 classes, ignore 255. GT holds classes 0 and 1 (and two ignore pixels); the prediction holds
    # 0, 2 (only in the prediction) and one unlabeled pixel; class 1 is only in GT.
    gt = np.array([[0, 0, 0, 1],
                   [0, 1, 1, 255],
                   [255, 1, 0, 0]], dtype=np.uint8)
    pred = np.array([[0, 0, 2, 1],
                     [0, 2, 255, 0],
                     [1, 1, 0, 2]], dtype=np.uint8)
    scores = image_scores(confusion_matrix(pred, gt, 3, 255), None)
    # Scored pixels: 10 (12 less 2 ignore). Right: (0,0) (0,1) (0,3) (1,0) (2,1) (2,2) = 6.
    assert scores["pixel_accuracy"] == 60.0
    # Class 0: GT 6 pixels, predicted on scored pixels 4 (all right) -> 4 / 6.
    # Class 1: GT 4 pixels, predicted 2 (both right) -> 2 / 4. The pixel predicted 1 on ignore is not counted.
    # Class 2: not in GT, predicted on 3 scored pixels -> 0 / 3. Unlabeled: a miss of GT class 1.
    assert scores["miou"] == round((4 / 6 + 2 / 4 + 0) / 3 * 100, 4)
    assert scores["mean_confidence"] is None
    # A class predicted only on ignore pixels is in neither GT nor the scored prediction: left out.
    only_on_ignore = np.where(gt == 255, 2, gt).astype(np.uint8)
    assert image_scores(confusion_matrix(only_on_ignore, gt, 3, 255), None)["miou"] == 100.0


def test_image_scores_without_ground_truth_or_with_confidence():
    from pipeline.score.scoring import image_scores

    confidence = np.array([[255, 0], [51, 102]], dtype=np.uint8)
    assert image_scores(None, confidence) == {"pixel_accuracy": None, "miou": None, "mean_confidence": 0.4}
    assert image_scores(None, None) == {"pixel_accuracy": None, "miou": None, "mean_confidence": None}
    all_ignored = confusion_matrix(np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8), 3, 255)
    assert image_scores(all_ignored, None) == {"pixel_accuracy": None, "miou": None, "mean_confidence": None}


def test_confusion_of_region_maps_counted_by_runs_equals_a_count_of_every_pixel():
    """Maps of long runs (the real case, counted run by run), with run boundaries of the two maps
    apart and blocks cutting through runs."""
    rng = np.random.default_rng(5)
    pred = np.kron(rng.integers(0, 5, (7, 9)), np.ones((13, 17), dtype=np.int64)).astype(np.uint8)
    gt = np.kron(rng.integers(0, 5, (13, 9)), np.ones((7, 17), dtype=np.int64)).astype(np.uint8)
    gt[rng.random(gt.shape) < 0.02] = 255
    pred[:, 5] = 255
    expected = np.zeros((5, 6), dtype=np.int64)
    for p, g in zip(pred.ravel(), gt.ravel()):
        if g != 255:
            expected[g, 5 if p == 255 else p] += 1
    for block in (1 << 20, 1000, 1):
        np.testing.assert_array_equal(confusion_matrix(pred, gt, 5, block=block), expected)
