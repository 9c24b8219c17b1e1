"""Class-name files (counts, synonym conventions) and dataset presets (keys, engine fields)."""
from __future__ import annotations

import pytest
import yaml
from omegaconf import OmegaConf

from configs import CONFIG_DIR, classes_path
from nerve_core.config import EngineConfig
from nerve_core.vocab import Vocabulary

COUNTS = {"voc21": 21, "voc20": 20, "coco_object": 81, "pc60": 60, "pc59": 59,
          "coco_stuff": 171, "ade": 150, "cityscapes": 19}
BACKGROUND_26 = ("sky wall tree wood grass road sea river mountain sands desk bed building cloud "
                 "lamp door window wardrobe ceiling shelf curtain stair floor hill rail fence").split()
PERSON = ("person", "person in shirt", "person in jeans", "person in dress", "person in sweater",
          "person in skirt", "person in jacket")
TV = ("television monitor", "tv monitor", "monitor", "television", "screen")
DATASET_KEYS = {"name", "classes", "ignore_index", "labels_from_gt", "reduce_zero_label"}
PRESETS = sorted(p.stem for p in (CONFIG_DIR / "datasets").glob("*.yaml") if p.stem != "demo")


def vocab(name: str) -> Vocabulary:
    return Vocabulary.from_file(classes_path(name))


@pytest.mark.parametrize("name, count", COUNTS.items())
def test_class_counts_and_unique_display_names(name, count):
    v = vocab(name)
    assert len(v) == count
    assert len(set(v.names)) == count
    for line in classes_path(name).read_text(encoding="utf-8").splitlines():
        assert line == line.strip() and ",," not in line and ", " * 2 not in line


def test_voc21_background_line_is_the_26_stuff_words():
    assert list(vocab("voc21").synonyms[0]) == BACKGROUND_26


def test_coco_object_background_line_leaves_out_its_own_class_bed():
    # "bed" is class 60 of COCO-Object: as a background word too it would tie with the class
    # and the argmax would never pick class 60.
    assert list(vocab("coco_object").synonyms[0]) == [w for w in BACKGROUND_26 if w != "bed"]
    assert "bed" in vocab("coco_object").synonyms[60]


def test_no_query_names_two_classes():
    for name in COUNTS:
        texts, _ = vocab(name).queries()
        assert len(texts) == len(set(texts)), name


@pytest.mark.parametrize("name", COUNTS)
def test_person_has_its_variants_wherever_it_is_a_class(name):
    v = vocab(name)
    person_lines = [s for s in v.synonyms if "person" in s]
    assert person_lines == [PERSON]


@pytest.mark.parametrize("name", ["voc21", "voc20", "pc60", "pc59"])
def test_pascal_synonyms(name):
    v = vocab(name)
    assert TV in v.synonyms and ("ship",) in v.synonyms
    assert not {"tvmonitor", "boat", "diningtable"} & {q for s in v.synonyms for q in s}


def test_voc_order_and_subsets():
    voc21, voc20 = vocab("voc21"), vocab("voc20")
    assert voc21.synonyms[1:] == voc20.synonyms
    assert voc21.names[1:5] == ["aeroplane", "bicycle", "bird", "ship"]
    assert voc21.names[11] == "table" and voc21.names[15] == "person"
    assert vocab("pc60").synonyms[1:] == vocab("pc59").synonyms
    assert vocab("coco_object").synonyms[1:] == vocab("coco_stuff").synonyms[:80]
    assert vocab("coco_stuff").names[80] == "banner" and vocab("coco_stuff").names[-1] == "wood"
    assert vocab("ade").names[:3] == ["wall", "building", "sky"]
    assert vocab("cityscapes").names[-1] == "bicycle"


@pytest.mark.parametrize("preset", PRESETS)
def test_dataset_presets_use_known_keys_and_valid_engine_fields(preset):
    data = yaml.safe_load((CONFIG_DIR / "datasets" / f"{preset}.yaml").read_text())
    assert set(data) <= {"dataset", "engine"}
    assert set(data["dataset"]) <= DATASET_KEYS
    engine = OmegaConf.merge(OmegaConf.structured(EngineConfig), data.get("engine", {}))
    v = vocab(data["dataset"]["classes"])
    class_id = engine.background.class_id
    assert class_id == -1 or 0 <= class_id < len(v)
    if data["dataset"].get("reduce_zero_label"):
        assert class_id == -1  # background is ignored, so no class may stand for it


def test_wsss_presets():
    for preset, rule in (("voc_wsss", "voc_squared"), ("coco_wsss", "coco_cutoff")):
        data = yaml.safe_load((CONFIG_DIR / "datasets" / f"{preset}.yaml").read_text())
        assert data["engine"]["mode"] == "wsss" and data["engine"]["background"]["rule"] == rule
        assert data["dataset"]["labels_from_gt"] is False
    coco = yaml.safe_load((CONFIG_DIR / "datasets" / "coco_wsss.yaml").read_text())
    assert coco["engine"]["background"]["cutoff"] == 0.45
    assert coco["dataset"]["classes"] == "coco_object"
