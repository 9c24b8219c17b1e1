"""The engine end to end on tiny random-weight models: any mode, size and aspect, both modes."""
import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from nerve_core.engine import build_engine
from nerve_core.vocab import Vocabulary

VOCAB = Vocabulary.from_lines(["sky, wall, grass", "cat, kitten", "dog", "car, automobile"])


def image(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(rgb).convert(mode)


IMAGES = [
    image("RGB", (37, 23), 0),
    image("L", (50, 81), 1),
    image("RGBA", (64, 64), 2),
    image("CMYK", (17, 90), 3),
    image("P", (101, 33), 4),
]


@pytest.fixture(scope="module")
def open_engine(tiny_engine_config):
    return build_engine(tiny_engine_config)


def test_open_vocabulary_maps_have_original_size_and_valid_ids(open_engine):
    maps = open_engine.segment(IMAGES, VOCAB)
    assert len(maps) == len(IMAGES)
    for im, labels in zip(IMAGES, maps):
        assert labels.dtype == np.uint8
        assert labels.shape == (im.height, im.width)
        assert set(np.unique(labels)) <= set(range(len(VOCAB)))


def assert_same_maps(maps, expected):
    assert len(maps) == len(expected)
    for a, b in zip(maps, expected):
        assert (a == b).mean() > 0.99  # float reduction order may flip a rare tie


def test_batching_does_not_change_results(open_engine):
    together = open_engine.segment(IMAGES[:3], VOCAB)
    assert_same_maps(together, [open_engine.segment([im], VOCAB)[0] for im in IMAGES[:3]])


def test_wsss_mode_restricts_to_image_labels(tiny_engine_config):
    cfg = OmegaConf.merge(tiny_engine_config, {"mode": "wsss", "background": {"rule": "voc_squared"}})
    engine = build_engine(cfg)
    labels = [[1], [2, 3], [], [3], [1, 2]]
    maps = engine.segment(IMAGES, VOCAB, image_labels=labels)
    for im, allowed, out in zip(IMAGES, labels, maps):
        assert out.shape == (im.height, im.width)
        assert set(np.unique(out)) <= {0, *allowed}
    assert set(np.unique(maps[2])) == {0}  # no labels: all background


def test_walking_the_batch_at_once_gives_the_per_image_maps(open_engine, tiny_engine_config):
    assert not open_engine.refine_in_batches  # auto on CPU: one walk per image (cache-friendly)
    engine = build_engine(OmegaConf.merge(tiny_engine_config, {"refine": {"batching": "batch"}}))
    assert engine.refine_in_batches
    assert_same_maps(engine.segment(IMAGES, VOCAB), open_engine.segment(IMAGES, VOCAB))


def test_unknown_refine_batching_is_refused_before_loading(tiny_engine_config):
    with pytest.raises(ValueError, match="refine.batching 'sometimes'.*auto"):
        build_engine(OmegaConf.merge(tiny_engine_config, {"refine": {"batching": "sometimes"}, "clip": {"model": "/nonexistent"}}))


def test_wsss_batch_groups_images_by_class_count_and_equals_one_at_a_time(tiny_engine_config):
    """The walk takes the images with the same number of classes together; each must come out as alone."""
    engine = build_engine(OmegaConf.merge(tiny_engine_config, {"mode": "wsss", "batch_size": 5, "refine": {"batching": "batch"}}))
    labels = [[1], [2, 3], [], [3], [1, 2]]  # 2, 3, 1, 2, 3 classes with the background
    together = engine.segment(IMAGES, VOCAB, image_labels=labels)
    assert_same_maps(together, [engine.segment([im], VOCAB, image_labels=[lab])[0] for im, lab in zip(IMAGES, labels)])


def test_wsss_rejects_unknown_label(tiny_engine_config):
    cfg = OmegaConf.merge(tiny_engine_config, {"mode": "wsss"})
    engine = build_engine(cfg)
    with pytest.raises(ValueError, match="image label 9"):
        engine.segment(IMAGES[:1], VOCAB, image_labels=[[9]])


def test_confidence_is_returned_on_request(open_engine):
    prepared = [open_engine.prepare(im) for im in IMAGES[:2]]
    out = open_engine.run(prepared, VOCAB, confidence=True)
    for p, seg in zip(prepared, out):
        assert seg.confidence.shape == p.size and seg.confidence.dtype == np.uint8


def test_clip_only_engine_needs_no_stable_diffusion(tiny_engine_config):
    cfg = OmegaConf.merge(tiny_engine_config, {"refine": {"name": "none"}, "sd": {"model": "/nonexistent"}})
    engine = build_engine(cfg)
    assert engine.sd is None
    out = engine.segment(IMAGES[:2], VOCAB)
    assert out[0].shape == (23, 37)
    assert engine.run([engine.prepare(IMAGES[0])], VOCAB)[0].walk is None


def test_fingerprint_changes_with_config(open_engine, tiny_engine_config):
    cfg = OmegaConf.merge(tiny_engine_config, {"refine": {"alpha": 0.5}})
    assert build_engine(cfg).fingerprint()["digest"] != open_engine.fingerprint()["digest"]


def test_each_segmentation_carries_its_walk_diagnostics(open_engine, tiny_engine_config):
    prepared = [open_engine.prepare(im) for im in IMAGES[:2]]
    for seg in open_engine.run(prepared, VOCAB):
        heads = len(seg.walk["head_weights"])
        assert heads > 0 and sum(seg.walk["head_weights"]) == pytest.approx(1.0, abs=1e-5)
        assert all(len(seg.walk[key]) == heads for key in ("negative_fraction", "global_rows_kept", "local_rows_kept"))
        assert 0 <= seg.walk["mass_moved"] <= 2
    quiet = build_engine(OmegaConf.merge(tiny_engine_config, {"refine": {"diagnostics": False}}))
    assert all(seg.walk is None for seg in quiet.run([quiet.prepare(IMAGES[0])], VOCAB))


def test_wsss_protocol_rule_keeps_background_words_out_and_batches_match(tiny_engine_config):
    cfg = {"mode": "wsss", "batch_size": 5, "background": {"rule": "coco_cutoff"}, "refine": {"batching": "batch"}}
    engine = build_engine(OmegaConf.merge(tiny_engine_config, cfg))
    labels = [[1], [2, 3], [], [3], [1, 2]]
    together = engine.segment(IMAGES, VOCAB, image_labels=labels)
    assert_same_maps(together, [engine.segment([im], VOCAB, image_labels=[lab])[0] for im, lab in zip(IMAGES, labels)])
    for allowed, out in zip(labels, together):
        assert set(np.unique(out)) <= {0, *allowed}
