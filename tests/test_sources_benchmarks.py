"""`nerve shards ade|cityscapes|coco_stuff|context` on small trees in each dataset's real layout,
decoy files included: GT read back from the shards against hand-written id conversions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sources_support import check_contract, load_json, read_shards, save_jpeg

from configs import classes_path
from jobs import shards
from pipeline.bench.trees import save_gray_png, save_palette_png
from pipeline.sources.cityscapes import EVALUATED
from pipeline.sources.naming import stable_image_id


def run(*args: str) -> int:
    return shards.main([*args, "progress=false"])


def made(tmp_path: Path, *args: str) -> tuple[dict, dict]:
    """(samples by key, skipped.json) of one maker run that must succeed."""
    out = tmp_path / "out"
    assert run(*args, f"output={out}", "per_shard=2") == 0
    return read_shards(out), load_json(out / "skipped.json")


def reasons(skipped: dict) -> dict[str, str]:
    return {entry["item"]: entry["reason"] for entry in skipped["skipped"]}


def first_prompts(name: str) -> list[str]:
    return [line.split(",")[0] for line in classes_path(name).read_text().splitlines()]


def tiled(values: list[int], height: int = 4) -> np.ndarray:
    """One column per value, `height` rows: a mask holding exactly `values`."""
    return np.tile(np.asarray(values, dtype=np.uint8), (height, 1))


# ---------------------------------------------------------------- ADE20K

ADE_MASK = tiled([0, 1, 75, 150, 0, 12])


def test_ade_masks_kept_as_stored_labels_skips(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    images, masks = root / "images" / "validation", root / "annotations" / "validation"
    save_jpeg(images / "ADE_val_00000001.jpg", *ADE_MASK.shape, seed=1)
    save_gray_png(masks / "ADE_val_00000001.png", ADE_MASK)
    save_jpeg(images / "ADE_val_00000002.jpg", 5, 5, seed=2)
    save_gray_png(masks / "ADE_val_00000002.png", np.full((5, 5), 151))  # one past the 150 classes
    save_jpeg(images / "ADE_val_00000003.jpg", 5, 5, seed=3)  # no annotation
    save_jpeg(root / "images" / "training" / "ADE_train_00000001.jpg", 5, 5, seed=4)  # other split
    samples, skipped = made(tmp_path, "ade", f"root={root}", "split=validation")
    assert list(samples) == ["ADE_val_00000001"]
    seg, meta = check_contract(samples["ADE_val_00000001"])
    np.testing.assert_array_equal(seg, ADE_MASK)
    # an 8-bit grey PNG of class ids is what a shard stores: the file itself, not encoded again
    assert samples["ADE_val_00000001"]["seg.png"] == (masks / "ADE_val_00000001.png").read_bytes()
    assert meta["labels"] == [1, 12, 75, 150]  # 0 ("other") is not a label
    assert meta["source"] == "ade20k/validation"
    assert meta["image_id"] == stable_image_id("ADE_val_00000001")  # a hash: the stem is not all digits
    assert reasons(skipped) == {"ADE_val_00000002": "mask ids out of range", "ADE_val_00000003": "missing mask"}
    assert "[151] not in 0..150" in skipped["skipped"][0]["detail"]


# ---------------------------------------------------------------- Cityscapes

# label id -> train id for every label id 0..33, written out from the official table.
CITYSCAPES_TRAIN_ID = [255, 255, 255, 255, 255, 255, 255,  # unlabeled .. ground
                       0, 1, 255, 255,  # road, sidewalk, parking, rail track
                       2, 3, 4, 255, 255, 255,  # building, wall, fence, guard rail, bridge, tunnel
                       5, 255, 6, 7,  # pole, polegroup, traffic light, traffic sign
                       8, 9, 10, 11, 12, 13, 14, 15,  # vegetation, terrain, sky, person, rider, car, truck, bus
                       255, 255, 16, 17, 18]  # caravan, trailer, train, motorcycle, bicycle
CITY_GOOD = "frankfurt_000000_000294"


def save_city(root: Path, split: str, city_stem: str, label_ids: np.ndarray | None, decoys: bool = False) -> Path:
    """Image and labelIds of one Cityscapes frame (with the other gtFine files when `decoys`); the image's path."""
    city = city_stem.split("_")[0]
    h, w = label_ids.shape if label_ids is not None else (4, 4)
    image = root / "leftImg8bit" / split / city / f"{city_stem}_leftImg8bit.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(image)
    gt = root / "gtFine" / split / city
    if label_ids is not None:
        save_gray_png(gt / f"{city_stem}_gtFine_labelIds.png", label_ids)
    if decoys:  # what else gtFine holds: none of it is the GT to read
        Image.fromarray(np.full((h, w, 3), 128, dtype=np.uint8)).save(gt / f"{city_stem}_gtFine_color.png")
        Image.fromarray(np.full((h, w), 26001, dtype=np.uint16)).save(gt / f"{city_stem}_gtFine_instanceIds.png")
        save_gray_png(gt / f"{city_stem}_gtFine_labelTrainIds.png", np.full((h, w), 3))
        (gt / f"{city_stem}_gtFine_polygons.json").write_text(json.dumps({"imgHeight": h, "imgWidth": w, "objects": []}))
    return image


def damage(path: Path, truncate: bool) -> None:
    data = bytearray(path.read_bytes())
    if truncate:
        del data[len(data) // 2:]
    else:
        data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_cityscapes_label_ids_become_train_ids_and_decoys_are_not_read(tmp_path):
    assert first_prompts("cityscapes") == [name for _, name in EVALUATED]
    root = tmp_path / "cityscapes"
    label_ids = tiled([*range(34), 255, 26, 7])
    save_city(root, "val", CITY_GOOD, label_ids, decoys=True)
    save_city(root, "val", "lindau_000001_000019", tiled([24, 26, 0]), decoys=True)
    save_city(root, "val", "munster_000002_000019", None)  # image without its labelIds file
    save_city(root, "val", "munster_000003_000019", tiled([7, 34]))  # 34 is no label id
    save_city(root, "train", "aachen_000000_000019", tiled([7]))  # other split
    for frame, truncate in (("ulm_000004_000019", True), ("ulm_000005_000019", False)):  # PNG photos, broken
        damage(save_city(root, "val", frame, np.full((32, 32), 7)), truncate)
    samples, skipped = made(tmp_path, "cityscapes", f"root={root}", "split=val")
    assert list(samples) == [CITY_GOOD, "lindau_000001_000019"]
    seg, meta = check_contract(samples[CITY_GOOD])
    assert "png" in samples[CITY_GOOD]
    np.testing.assert_array_equal(seg, tiled([*CITYSCAPES_TRAIN_ID, 255, 13, 0]))
    assert meta["labels"] == list(range(19)) and meta["source"] == "cityscapes/val"
    seg, meta = check_contract(samples["lindau_000001_000019"])
    np.testing.assert_array_equal(seg, tiled([11, 13, 255]))
    assert meta["labels"] == [11, 13]
    assert reasons(skipped) == {"munster_000002_000019": "missing mask", "munster_000003_000019": "mask ids out of range",
                                "ulm_000004_000019": "unreadable image", "ulm_000005_000019": "unreadable image"}


def test_cityscapes_test_split_keeps_images_with_all_ignore_gt(tmp_path):
    root = tmp_path / "cityscapes"
    save_city(root, "test", "berlin_000000_000019", tiled([0, 1, 2, 3]))  # what the public test GT holds
    samples, _ = made(tmp_path, "cityscapes", f"root={root}", "split=test")
    seg, meta = check_contract(samples["berlin_000000_000019"])
    assert (seg == 255).all() and meta["labels"] == []


# ---------------------------------------------------------------- COCO-Stuff

# (raw stuffthingmap value = COCO category id - 1, class id of coco_stuff.txt, its name there).
COCO_STUFF_USED = [(0, 0, "person"), (10, 10, "fire hydrant"), (12, 11, "stop sign"), (24, 23, "giraffe"),
                   (26, 24, "backpack"), (43, 39, "bottle"), (45, 40, "wine glass"), (89, 79, "toothbrush"),
                   (91, 80, "banner"), (95, 84, "building"), (157, 146, "skyscraper"), (181, 170, "wood")]
COCO_STUFF_UNUSED = [11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90]  # category ids 12, 26, ... 91 minus one


def test_coco_stuff_raw_maps_become_171_classes_converted_maps_kept(tmp_path):
    names = first_prompts("coco_stuff")
    assert all(names[class_id] == name for _, class_id, name in COCO_STUFF_USED)
    root = tmp_path / "coco_stuff164k"
    images, masks = root / "images" / "val2017", root / "annotations" / "val2017"
    raw = tiled([raw for raw, _, _ in COCO_STUFF_USED] + COCO_STUFF_UNUSED + [255])
    save_jpeg(images / "000000000139.jpg", *raw.shape, seed=1)
    save_gray_png(masks / "000000000139.png", raw)
    converted = tiled([0, 170, 255, 3])
    save_jpeg(images / "000000000285.jpg", *converted.shape, seed=2)
    save_gray_png(masks / "000000000285_labelTrainIds.png", converted)
    save_gray_png(masks / "000000000285.png", tiled([181, 181, 181, 181]))  # the raw one beside it
    save_jpeg(images / "000000000632.jpg", 4, 2, seed=3)
    save_gray_png(masks / "000000000632.png", tiled([0, 182]))  # past category 182
    samples, skipped = made(tmp_path, "coco_stuff", f"root={root}", "split=val2017")
    assert list(samples) == ["000000000139", "000000000285"]
    seg, meta = check_contract(samples["000000000139"])
    want = [class_id for _, class_id, _ in COCO_STUFF_USED] + [255] * len(COCO_STUFF_UNUSED) + [255]
    np.testing.assert_array_equal(seg, tiled(want))
    assert meta["labels"] == [class_id for _, class_id, _ in COCO_STUFF_USED]  # 0 is person, a label
    assert meta["image_id"] == 139 and meta["source"] == "coco_stuff/val2017"
    seg, meta = check_contract(samples["000000000285"])
    np.testing.assert_array_equal(seg, converted)
    assert meta["labels"] == [0, 3, 170]
    assert reasons(skipped) == {"000000000632": "mask ids out of range"}


def test_coco_stuff_converted_map_is_checked_against_171_classes(tmp_path):
    root = tmp_path / "coco_stuff164k"
    save_jpeg(root / "images" / "train2017" / "000000000009.jpg", 4, 2, seed=1)
    save_gray_png(root / "annotations" / "train2017" / "000000000009_labelTrainIds.png", tiled([170, 171]))
    out = tmp_path / "out"
    assert run("coco_stuff", f"root={root}", "split=train2017", f"output={out}") == 2  # nothing to write
    assert reasons(load_json(out / "skipped.json")) == {"000000000009": "mask ids out of range"}


# ---------------------------------------------------------------- PASCAL Context

CONTEXT_MASK = tiled([0, 59, 255, 14, 0, 1])


@pytest.fixture()
def context_root(tmp_path) -> Path:
    """VOCdevkit/VOC2010 as mmsegmentation's converter leaves it, with faulty and unlisted images."""
    voc = tmp_path / "VOCdevkit" / "VOC2010"
    images, masks = voc / "JPEGImages", voc / "SegmentationClassContext"
    save_jpeg(images / "2008_000002.jpg", *CONTEXT_MASK.shape, seed=1)
    save_palette_png(masks / "2008_000002.png", CONTEXT_MASK)
    save_jpeg(images / "2008_000003.jpg", 4, 2, seed=2)
    save_palette_png(masks / "2008_000003.png", tiled([0, 60]))  # one past the 59 classes
    save_jpeg(images / "2008_000007.jpg", 4, 2, seed=3)  # not listed: never read
    save_palette_png(masks / "2008_000007.png", tiled([0, 5]))
    save_jpeg(images / "2008_000008.jpg", 4, 2, seed=4)  # listed without a mask
    save_jpeg(images / "2008_000009.jpg", 4, 2, seed=5)
    save_palette_png(masks / "2008_000009.png", np.zeros((3, 2)))  # not the image's size
    lists = voc / "ImageSets" / "SegmentationContext"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("2008_000002\n2008_000003\n2008_000008\n2008_000009\n")
    (lists / "val.txt").write_text("2008_000007\n")
    return tmp_path / "VOCdevkit"


def test_context_masks_kept_as_stored_listed_images_only(context_root, tmp_path):
    samples, skipped = made(tmp_path, "context", f"root={context_root}", "split=train")
    assert list(samples) == ["2008_000002"]
    seg, meta = check_contract(samples["2008_000002"])
    np.testing.assert_array_equal(seg, CONTEXT_MASK)  # palette indices, not colours
    assert meta == {"image_id": 2008000002, "labels": [1, 14, 59], "source": "pascal_context/train"}
    assert reasons(skipped) == {"2008_000003": "mask ids out of range", "2008_000008": "missing mask",
                                "2008_000009": "mask size differs from image"}


def test_context_reads_voc2010_given_directly(context_root, tmp_path):
    samples, _ = made(tmp_path, "context", f"root={context_root / 'VOC2010'}", "split=val")
    assert list(samples) == ["2008_000007"]
    assert check_contract(samples["2008_000007"])[1]["labels"] == [5]


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("maker, message", [
    ("ade", "give ADEChallengeData2016"),
    ("cityscapes", "leftImg8bit/val"),
    ("coco_stuff", "images/val2017"),
    ("context", "no VOC2010/JPEGImages"),
])
def test_missing_root_is_a_one_line_error(maker, message, tmp_path, capsys):
    assert run(maker, f"root={tmp_path / 'nowhere'}", f"output={tmp_path / 'out'}") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nerve: ") and "\n" not in err and message in err


@pytest.mark.parametrize("maker", ["ade", "cityscapes", "coco_stuff", "context"])
def test_unknown_split_names_the_choices(maker, tmp_path, capsys):
    assert run(maker, f"root={tmp_path}", "split=everything", f"output={tmp_path / 'out'}") == 2
    assert "choose one of" in capsys.readouterr().err
