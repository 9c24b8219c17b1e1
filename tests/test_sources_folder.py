"""`nerve shards folder` and `nerve shards demo`, and the key / image-id rules they share."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sources_support import check_contract, load_json, read_shards, save_jpeg

from jobs import shards
from pipeline.bench.trees import save_gray_png, save_palette_png
from pipeline.sources.naming import safe_key, stable_image_id


@pytest.fixture()
def folder(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    save_jpeg(images / "street" / "x.jpg", 8, 12, seed=1)
    Image.fromarray(np.full((6, 6, 4), 200, np.uint8), "RGBA").save(images / "000123.png")
    Image.fromarray(np.full((5, 7, 3), 90, np.uint8)).save(images / "scan.bmp")
    save_jpeg(images / "nomask.jpg", 4, 4, seed=2)
    images.joinpath("broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    save_jpeg(images / "badids.jpg", 4, 4, seed=3)
    images.joinpath("notes.txt").write_text("not an image")
    gt = {"street/x": np.array([[0, 1, 2, 255] * 3] * 8, np.uint8),
          "000123": np.full((6, 6), 2, np.uint8),
          "scan": np.zeros((5, 7), np.uint8)}
    save_palette_png(masks / "street" / "x.png", gt["street/x"])
    save_gray_png(masks / "000123.png", gt["000123"])
    save_gray_png(masks / "scan.png", gt["scan"])
    save_gray_png(masks / "broken.png", np.zeros((4, 4)))
    save_gray_png(masks / "badids.png", np.full((4, 4), 7))
    classes = tmp_path / "classes.txt"
    classes.write_text("background\nroad, street\ncar\n")
    return images, masks, classes, gt


def test_folder_images_masks_keys_and_skips(folder, tmp_path):
    images, masks, classes, gt = folder
    out = tmp_path / "out"
    rc = shards.main(["folder", f"images={images}", f"masks={masks}", f"classes={classes}",
                      f"output={out}", "progress=false"])
    assert rc == 0
    samples = read_shards(out)
    assert sorted(samples) == ["000123", "scan", "street_x"]
    for name, want in gt.items():
        sample = samples[safe_key(name)]
        seg, meta = check_contract(sample)
        np.testing.assert_array_equal(seg, want)
        assert meta["image_id"] == stable_image_id(name)
        assert meta["labels"] == sorted(set(np.unique(want).tolist()) - {0, 255})
    assert "png" in samples["scan"]  # BMP re-encoded losslessly as PNG
    with Image.open(io.BytesIO(samples["scan"]["png"])) as img:
        assert np.array(img.convert("RGB")).tolist() == np.full((5, 7, 3), 90).tolist()
    assert samples["street_x"]["jpg"] == (images / "street" / "x.jpg").read_bytes()
    reasons = {e["item"]: e["reason"] for e in load_json(out / "skipped.json")["skipped"]}
    assert reasons == {"nomask.jpg": "missing mask", "broken.jpg": "unreadable image",
                       "badids.jpg": "mask ids out of range"}


def test_folder_without_required_masks_keeps_unlabelled_images(folder, tmp_path):
    images, masks, _, _ = folder
    out = tmp_path / "out"
    assert shards.main(["folder", f"images={images}", f"masks={masks}", "require_masks=false",
                        "background_id=-1", f"output={out}", "progress=false"]) == 0
    samples = read_shards(out)
    seg, meta = check_contract(samples["nomask"])
    assert seg is None and "labels" not in meta
    _, meta = check_contract(samples["badids"])  # no class file given: ids are not checked
    assert meta["labels"] == [7]
    _, meta = check_contract(samples["scan"])
    assert meta["labels"] == [0]  # background_id=-1: class 0 is an ordinary class


def test_folder_masks_inside_images_is_refused(folder, tmp_path, capsys):
    images = folder[0]
    assert shards.main(["folder", f"images={images}", f"masks={images}",
                        f"output={tmp_path / 'o'}"]) == 2
    assert "own folder" in capsys.readouterr().err


def test_demo_shards_follow_the_contract(tmp_path):
    out = tmp_path / "demo"
    assert shards.main(["demo", f"output={out}", "num_samples=3", "per_shard=2",
                        "progress=false"]) == 0
    samples = read_shards(out)
    assert len(samples) == 3
    for sample in samples.values():
        seg, meta = check_contract(sample)
        assert seg is not None and meta["source"] == "demo"
    assert load_json(out / "skipped.json")["num_skipped"] == 0


def test_safe_key_cannot_name_a_path():
    assert safe_key("../../x") == "______x"
    assert safe_key("a/b.c d") == "a_b_c_d"
    assert safe_key("2007_000032") == "2007_000032"
    with pytest.raises(ValueError):
        safe_key("")


def test_stable_image_id_keeps_digits_and_hashes_the_rest():
    assert stable_image_id("2007_000032") == 2007000032
    assert stable_image_id("000000397133") == 397133
    hashed = stable_image_id("street/x")
    assert hashed == stable_image_id("street/x") != stable_image_id("street/y")
    assert 0 <= hashed < 2**53
