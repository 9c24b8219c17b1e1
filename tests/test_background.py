import pytest
import torch

from nerve_core.background import decide
from nerve_core.config import BackgroundConfig


def probs(*rows):
    return torch.tensor(rows, dtype=torch.float32)[:, :, None]  # (K, pixels, 1)


def test_threshold_rule_assigns_background_below_threshold():
    p = probs([0.05, 0.5], [0.05, 0.3], [0.9, 0.2])  # classes 0, 3, 7; pixel 0 top=0.9, pixel 1 top=0.5
    labels, conf = decide(p, [0, 3, 7], BackgroundConfig(rule="threshold", threshold=0.6))
    assert labels[:, 0].tolist() == [7, 0]
    assert conf[:, 0].tolist() == pytest.approx([0.9, 0.5])


def test_voc_squared_rule_ignores_background_column():
    # background column says 0.9 everywhere; the rule uses (1 - max_fg)^2 instead
    p = probs([0.9, 0.9], [0.08, 0.3], [0.02, 0.6])
    labels, conf = decide(p, [0, 5, 9], BackgroundConfig(rule="voc_squared"))
    # pixel 0: max_fg 0.08 -> bg score 0.8464 wins; pixel 1: max_fg 0.6 -> 0.16 loses
    assert labels[:, 0].tolist() == [0, 9]
    assert conf[:, 0].tolist() == pytest.approx([0.8464, 0.6])


def test_coco_cutoff_rule():
    p = probs([0.5, 0.1], [0.4, 0.2], [0.1, 0.7])
    labels, _ = decide(p, [0, 1, 2], BackgroundConfig(rule="coco_cutoff", cutoff=0.45))
    assert labels[:, 0].tolist() == [0, 2]


def test_wsss_rules_with_only_background_class():
    labels, conf = decide(probs([1.0, 1.0]), [0], BackgroundConfig(rule="voc_squared"))
    assert labels[:, 0].tolist() == [0, 0]


def test_unknown_rule_is_an_error():
    with pytest.raises(ValueError, match="unknown background rule"):
        decide(probs([1.0]), [0], BackgroundConfig(rule="nope"))
