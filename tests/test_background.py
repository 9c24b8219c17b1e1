"""The background rules on hand-computed examples (docs/method.md, "Background rules")."""
import math

import pytest
import torch

from nerve_core.background import class_ranges, decide, softmax_classes
from nerve_core.config import BackgroundConfig
from nerve_core.engine import kept_probs


def probs(*rows):
    return torch.tensor(rows, dtype=torch.float32)[:, :, None]  # (K, pixels, 1)


def test_threshold_rule_assigns_background_below_threshold():
    p = probs([0.05, 0.5], [0.05, 0.3], [0.9, 0.2])  # classes 0, 3, 7; pixel 0 top=0.9, pixel 1 top=0.5
    labels, conf = decide(p, [0, 3, 7], BackgroundConfig(rule="threshold", threshold=0.6))
    assert labels[:, 0].tolist() == [7, 0]
    assert conf[:, 0].tolist() == pytest.approx([0.9, 0.5])


def test_voc_squared_renormalised_rule_ignores_background_column():
    # the background column says 0.9 and 0.3; the rule uses (1 - max_fg)^2 instead
    p = probs([0.9, 0.3], [0.08, 0.1], [0.02, 0.6])
    p = p * torch.tensor([1.0, 2.0])[:, None]  # the rule renormalises each pixel first: a scale changes nothing
    labels, conf = decide(p, [0, 5, 9], BackgroundConfig(rule="voc_squared_renormalised"))
    # pixel 0: max_fg 0.08 -> bg score 0.8464 wins; pixel 1: max_fg 0.6 -> 0.16 loses
    assert labels[:, 0].tolist() == [0, 9]
    assert conf[:, 0].tolist() == pytest.approx([0.8464, 0.6])


def test_coco_cutoff_renormalised_rule():
    p = probs([0.5, 0.1], [0.4, 0.2], [0.1, 0.7])
    labels, _ = decide(p, [0, 1, 2], BackgroundConfig(rule="coco_cutoff_renormalised", cutoff=0.45))
    assert labels[:, 0].tolist() == [0, 2]


@pytest.mark.parametrize("rule", ["voc_squared", "coco_cutoff", "voc_squared_renormalised", "coco_cutoff_renormalised"])
def test_wsss_rules_with_only_background_class(rule):
    labels, conf = decide(probs([1.0, 1.0]), [0], BackgroundConfig(rule=rule))
    assert labels[:, 0].tolist() == [0, 0]


# ---- protocol rules, hand-computed ----------------------------------------------------------------
# Three classes: 0 background with two words, 1 cat, 2 dog with two synonyms: five prompts.
OWNER = [0, 0, 1, 2, 2]


def logits_of(*pixels):
    """(5, pixels, 1) prompt logits whose softmax over all five prompts is the given rows."""
    return torch.log(torch.tensor(pixels, dtype=torch.float64)).T[:, :, None].float()


def test_open_vocabulary_threshold_reads_unrenormalised_max_over_synonyms():
    # Prompt probabilities (softmax over ALL prompts) at two pixels:
    #   pixel 0: sky .15, wall .15, cat .28, dog .21, puppy .21 -> classes bg .15, cat .28, dog .21 (sum .64)
    #   pixel 1: sky .05, wall .05, cat .10, dog .50, puppy .30 -> classes bg .05, cat .10, dog .50
    logits = logits_of([0.15, 0.15, 0.28, 0.21, 0.21], [0.05, 0.05, 0.10, 0.50, 0.30])
    p = kept_probs(logits, OWNER, [0, 1, 2], [0, 1, 2])
    torch.testing.assert_close(p[:, :, 0], torch.tensor([[0.15, 0.05], [0.28, 0.10], [0.21, 0.50]]))
    cfg = BackgroundConfig(rule="threshold", threshold=0.3)
    labels, conf = decide(p, [0, 1, 2], cfg)
    assert labels[:, 0].tolist() == [0, 2]  # .28 < .3 -> background; .50 -> dog
    assert conf[:, 0].tolist() == pytest.approx([0.28, 0.50])
    # Renormalising over classes first lifts pixel 0's cat to .28 / .64 = .4375 >= .3: the old rule says cat.
    old, old_conf = decide(p, [0, 1, 2], BackgroundConfig(rule="threshold_renormalised", threshold=0.3))
    assert old[:, 0].tolist() == [1, 2] and old_conf[0, 0].item() == pytest.approx(0.4375)


# WSSS: an image labeled cat (1) and dog (2); refined foreground maps over five pixels.
CAT = [0.2, 0.5, 0.8, 0.35, 0.3]  # min .2, max .8 -> 0, .5, 1, .25, 1/6
DOG = [0.1, 0.4, 0.1, 0.25, 0.15]  # min .1, max .4 -> 0, 1, 0, .5, 1/6


def test_voc_squared_minmax_normalises_each_foreground_map():
    p = probs(CAT, DOG)
    labels, conf = decide(p, [1, 2], BackgroundConfig(rule="voc_squared", class_id=0))
    # best normalised score 0, 1, 1, .5, 1/6 -> background (1 - best)^2 = 1, 0, 0, .25, 25/36
    assert labels[:, 0].tolist() == [0, 2, 1, 2, 0]
    assert conf[:, 0].tolist() == pytest.approx([1.0, 1.0, 1.0, 0.5, 25 / 36])
    # Without min-max (the old rule) pixel 1 stays cat (.5 > .4) and pixel 3 cat (.35 > .25, bg .4225 > .35: bg).
    old, _ = decide(p, [1, 2], BackgroundConfig(rule="voc_squared_renormalised", class_id=0))
    assert old[:, 0].tolist() != labels[:, 0].tolist()


def test_coco_cutoff_zeroes_minmax_scores_before_any_renormalisation():
    p = probs(CAT, DOG)
    labels, conf = decide(p, [1, 2], BackgroundConfig(rule="coco_cutoff", cutoff=0.45, class_id=0))
    # normalised cat 0, .5, 1, .25, 1/6; dog 0, 1, 0, .5, 1/6; below .45 -> 0
    assert labels[:, 0].tolist() == [0, 2, 1, 2, 0]
    assert conf[:, 0].tolist() == pytest.approx([1.0, 1.0, 1.0, 0.5, 5 / 6])
    # Renormalising first: pixel 3 becomes cat .35/.6 = .583 >= .45, pixel 4 cat .667.
    old, _ = decide(p, [1, 2], BackgroundConfig(rule="coco_cutoff_renormalised", cutoff=0.45, class_id=0))
    assert old[:, 0].tolist() == [1, 1, 1, 1, 1]


@pytest.mark.parametrize("rule", ["voc_squared", "coco_cutoff"])
def test_minmax_rules_use_the_whole_image_range_when_given_in_chunks(rule):
    p = probs(CAT, DOG)
    cfg = BackgroundConfig(rule=rule, class_id=0)
    whole, _ = decide(p, [1, 2], cfg)
    chunks = [p[:, :2], p[:, 2:]]
    ranges = class_ranges(chunks)
    torch.testing.assert_close(ranges[0], torch.tensor([0.2, 0.1]))
    torch.testing.assert_close(ranges[1], torch.tensor([0.8, 0.4]))
    parts = torch.cat([decide(c, [1, 2], cfg, ranges)[0] for c in chunks])
    assert torch.equal(parts, whole)


def test_wsss_background_words_do_not_compete_in_the_softmax():
    voc = BackgroundConfig(rule="voc_squared", class_id=0)
    assert softmax_classes(voc, "wsss", [0, 2], 3) == ([1, 2], [2])  # every foreground class competes
    old = BackgroundConfig(rule="voc_squared_renormalised", class_id=0)
    assert softmax_classes(old, "wsss", [0, 2], 3) == ([0, 2], [0, 2])
    assert softmax_classes(voc, "open", [0, 1, 2], 3) == ([0, 1, 2], [0, 1, 2])
    # One pixel, an image labeled dog: softmax over cat and dog prompts only (e^0, e^ln2, e^ln2 / 5),
    # dog = max(2/5, 2/5)... here dog's synonyms get logits ln 2 and 0, cat 0: softmax 1/4, 1/2, 1/4.
    logits = torch.tensor([5.0, 5.0, 0.0, math.log(2), 0.0])[:, None, None]  # background words would win
    p = kept_probs(logits, OWNER, [1, 2], [2])
    assert p.flatten().tolist() == pytest.approx([0.5])


def test_unknown_rule_is_an_error():
    with pytest.raises(ValueError, match="unknown background rule"):
        decide(probs([1.0]), [0], BackgroundConfig(rule="nope"))
