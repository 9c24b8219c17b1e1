"""`nerve shards coco` on a small COCO-like tree built here: overlaps, crowd, ids, skips."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from sources_support import check_contract, load_json, read_shards, save_jpeg

from jobs import shards
from pipeline.sources.coco import contiguous_ids, load_instances

H, W = 30, 40
# Category ids are sparse and listed out of order, as in COCO (ids 1..90 with gaps).
CATEGORIES = [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"},
              {"id": 18, "name": "dog"}, {"id": 3, "name": "car"}]
CLASS_OF = {1: 1, 3: 2, 18: 3, 90: 4}


def box(y0, y1, x0, x1) -> np.ndarray:
    region = np.zeros((H, W), dtype=bool)
    region[y0:y1, x0:x1] = True
    return region


def uncompressed_rle(region: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths of the column-major pixel sequence, zeros first."""
    flat = region.T.ravel().astype(np.int8)
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat[0] == 1:
        runs = [0] + runs
    return {"size": [H, W], "counts": runs}


PERSON_POLY = [[2.0, 2.0, 20.0, 2.0, 20.0, 20.0, 2.0, 20.0]]
DOG = box(10, 25, 10, 30)
CAR_CROWD = box(0, 28, 15, 38)
TOOTHBRUSH_HIDDEN = box(12, 14, 12, 14)  # entirely under the dog, which comes later in the file


def polygon_region(poly) -> np.ndarray:
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(poly, H, W))).astype(bool)


@pytest.fixture()
def coco_root(tmp_path) -> Path:
    root = tmp_path / "coco"
    images = [
        {"id": 397133, "file_name": "000000397133.jpg", "height": H, "width": W},
        {"id": 42, "file_name": "000000000042.jpg", "height": H, "width": W},
        {"id": 7, "file_name": "000000000007.jpg", "height": H, "width": W},  # file missing
        {"id": 8, "file_name": "000000000008.jpg", "height": H, "width": W},  # corrupt file
        {"id": 9, "file_name": "000000000009.jpg", "height": H, "width": W},  # wrong size on disk
    ]
    for i, info in enumerate(images):
        if info["id"] != 7:
            size = (20, 20) if info["id"] == 9 else (H, W)
            save_jpeg(root / "val2017" / info["file_name"], *size, seed=i)
    corrupt = root / "val2017" / "000000000008.jpg"
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    annotations = [  # file order: toothbrush, person, crowd car, dog
        {"id": 5, "image_id": 397133, "category_id": 90, "iscrowd": 0,
         "segmentation": {k: (v.decode() if isinstance(v, bytes) else v) for k, v in
                          mask_utils.encode(np.asfortranarray(TOOTHBRUSH_HIDDEN.astype(np.uint8))).items()}},
        {"id": 1, "image_id": 397133, "category_id": 1, "iscrowd": 0, "segmentation": PERSON_POLY},
        {"id": 3, "image_id": 397133, "category_id": 3, "iscrowd": 1,
         "segmentation": uncompressed_rle(CAR_CROWD)},
        {"id": 2, "image_id": 397133, "category_id": 18, "iscrowd": 0,
         "segmentation": uncompressed_rle(DOG)},
    ]
    for ann in annotations:
        ann.update(area=1.0, bbox=[0, 0, 1, 1])
    instances = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(instances))
    return root


def expected_mask() -> np.ndarray:
    """Later non-crowd instance wins; crowd -> 255 where no non-crowd instance covers it."""
    mask = np.zeros((H, W), dtype=np.uint8)
    person = polygon_region(PERSON_POLY)
    mask[TOOTHBRUSH_HIDDEN] = CLASS_OF[90]
    mask[person] = CLASS_OF[1]
    mask[DOG] = CLASS_OF[18]
    mask[CAR_CROWD & ~(person | DOG | TOOTHBRUSH_HIDDEN)] = 255
    return mask


def test_category_ids_become_contiguous_in_id_order(coco_root):
    coco = load_instances(coco_root / "annotations" / "instances_val2017.json")
    assert contiguous_ids(coco) == CLASS_OF


def test_coco_semantic_masks_labels_ids_and_contract(coco_root, tmp_path):
    out = tmp_path / "out"
    rc = shards.main(["coco", f"root={coco_root}", "split=val2017", f"output={out}",
                      "per_shard=1", "progress=false"])
    assert rc == 0
    samples = read_shards(out)
    assert list(samples) == ["000000000042", "000000397133"]  # sorted by image id
    seg, meta = check_contract(samples["000000397133"])
    want = expected_mask()
    assert (want == 255).any() and (want == CLASS_OF[1]).any()  # the fixture exercises both rules
    np.testing.assert_array_equal(seg, want)
    # The crowd-only car and the fully hidden toothbrush are not present in the GT.
    assert meta == {"image_id": 397133, "labels": [CLASS_OF[1], CLASS_OF[18]],
                    "source": "coco/val2017"}
    seg, meta = check_contract(samples["000000000042"])
    assert not seg.any() and meta["labels"] == [] and meta["image_id"] == 42
    assert len(load_json(out / "manifest.json")["shards"]) == 2


def test_coco_missing_unreadable_and_mismatched_images_are_skipped(coco_root, tmp_path):
    out = tmp_path / "out"
    assert shards.main(["coco", f"root={coco_root}", "split=val2017", f"output={out}",
                        "progress=false"]) == 0
    reasons = {e["item"]: e["reason"] for e in load_json(out / "skipped.json")["skipped"]}
    assert reasons == {"000000000007.jpg": "missing image", "000000000008.jpg": "unreadable image",
                       "000000000009.jpg": "mask size differs from image"}


def test_coco_missing_annotation_file_is_a_config_error(tmp_path, capsys):
    rc = shards.main(["coco", f"root={tmp_path}", "split=train2014", f"output={tmp_path / 'o'}"])
    assert rc == 2 and "instances_train2014.json" in capsys.readouterr().err
