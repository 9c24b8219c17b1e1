"""COCO round trip: a COCO-style tree -> `nerve shards coco` -> `nerve label` -> `nerve export coco`
-> pycocotools' COCOeval against the tree's own instances file (the hand-off WSSS users make)."""
import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from jobs.cli import main as nerve
from nerve_core.models.tiny import dotlist

H, W = 48, 64
# Sparse category ids listed out of order, as in COCO: class ids become car = 1, dog = 2.
CATEGORIES = [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}]


def _box(x0, y0, x1, y1) -> list[list[float]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


@pytest.fixture()
def coco_tree(tmp_path):
    root = tmp_path / "coco"
    (root / "val2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for image_id in (5, 11, 23):
        name = f"{image_id:012d}.jpg"
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "val2017" / name, quality=90)
        images.append({"id": image_id, "file_name": name, "height": H, "width": W})
        for category, poly in ((18, _box(4, 4, 30, 40)), (3, _box(34, 10, 60, 30))):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "iscrowd": 0, "segmentation": poly, "area": 26.0 * 36.0, "bbox": [0, 0, 1, 1]})
    instances = root / "annotations" / "instances_val2017.json"
    instances.write_text(json.dumps({"images": images, "annotations": annotations, "categories": CATEGORIES}))
    return root, instances


def test_exported_results_are_scored_by_cocoeval_against_the_dataset(ray_session, tiny_models, coco_tree, tmp_path):
    root, instances = coco_tree
    shards, out, results = tmp_path / "shards", tmp_path / "out", tmp_path / "results.json"
    classes = tmp_path / "classes.txt"
    classes.write_text("background\ncar\ndog\n")
    assert nerve(["shards", "coco", f"root={root}", "split=val2017", f"output={shards}", "progress=false"]) == 0
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["coco_categories"] == [{"class_id": 1, "id": 3, "name": "car"}, {"class_id": 2, "id": 18, "name": "dog"}]
    # Refinement off: the export is what is tested, and it needs foreground pixels; with the tiny
    # models' random weights the walk happens to call every pixel of these images background.
    assert nerve(["label", "dataset=demo", f"dataset.classes={classes}", *dotlist(tiny_models), "engine.device=cpu",
                  "engine.refine.name=none", f"input.shards={shards}", f"output.dir={out}", "output.confidence=true", "progress=false",
                  "ray.num_actors=1", "ray.poll_s=0.1"]) == 0
    assert nerve(["export", "coco", f"output.dir={out}", f"to={results}"]) == 0

    dt_list = json.loads(results.read_text())
    assert dt_list and {r["category_id"] for r in dt_list} <= {3, 18} and all(0 <= r["score"] <= 1 for r in dt_list)
    sidecar = json.loads(results.with_suffix(".images.json").read_text())
    assert sidecar["categories"] == [{"id": 3, "name": "car"}, {"id": 18, "name": "dog"}]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO(str(instances))
        evaluation = COCOeval(gt, gt.loadRes(str(results)), "segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert len(evaluation.stats) == 12 and evaluation.stats[0] >= 0  # -1 would mean nothing was matched up
