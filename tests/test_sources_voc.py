"""`nerve shards voc` on a small VOC-like tree built here: GT, labels, ids, skips, splits."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sources_support import bordered_mask, check_contract, load_json, read_shards, save_jpeg

from jobs import shards
from pipeline.bench.trees import save_gray_png, save_palette_png

GOOD = {  # name -> (height, width, boxes)
    "2007_000032": (20, 24, [(1, 2, 2, 8, 10), (15, 10, 12, 18, 22)]),
    "2007_000033": (16, 16, [(20, 4, 4, 12, 12)]),
    "2008_000005": (12, 18, []),
}
MISSING_MASK, CORRUPT_IMAGE, MISSING_IMAGE = "2008_000001", "2008_000002", "2009_000003"


@pytest.fixture()
def devkit(tmp_path) -> tuple[Path, dict]:
    """VOCdevkit/VOC2012 with train/val lists, palette GT with 255 borders and faulty entries."""
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    expected = {}
    for i, (name, (h, w, boxes)) in enumerate(GOOD.items()):
        jpeg = save_jpeg(voc / "JPEGImages" / f"{name}.jpg", h, w, seed=i)
        mask = bordered_mask(h, w, boxes)
        save_palette_png(voc / "SegmentationClass" / f"{name}.png", mask)
        expected[name] = (jpeg, mask)
    save_jpeg(voc / "JPEGImages" / f"{MISSING_MASK}.jpg", 10, 10, seed=9)
    good_bytes = save_jpeg(voc / "JPEGImages" / f"{CORRUPT_IMAGE}.jpg", 32, 32, seed=10)
    (voc / "JPEGImages" / f"{CORRUPT_IMAGE}.jpg").write_bytes(good_bytes[: len(good_bytes) // 2])
    save_palette_png(voc / "SegmentationClass" / f"{CORRUPT_IMAGE}.png", np.zeros((32, 32)))
    save_palette_png(voc / "SegmentationClass" / f"{MISSING_IMAGE}.png", np.zeros((8, 8)))
    lists = voc / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    names = list(GOOD) + [MISSING_MASK, CORRUPT_IMAGE, MISSING_IMAGE]
    (lists / "train.txt").write_text("\n".join(names) + "\n")
    (lists / "val.txt").write_text("2007_000033\n")
    return tmp_path / "VOCdevkit", expected


def run(*args: str) -> int:
    return shards.main([*args, "progress=false"])


def test_voc_train_gt_labels_ids_and_contract(devkit, tmp_path):
    root, expected = devkit
    out = tmp_path / "out"
    assert run("voc", f"root={root}", "split=train", f"output={out}", "per_shard=2") == 0
    samples = read_shards(out)
    assert set(samples) == {name for name in GOOD}  # VOC names are already safe keys
    for name, (jpeg, mask) in expected.items():
        seg, meta = check_contract(samples[name])
        assert samples[name]["jpg"] == jpeg  # image bytes kept as stored
        np.testing.assert_array_equal(seg, mask)  # raw palette indices, 255 borders kept
        assert meta["labels"] == sorted(set(np.unique(mask).tolist()) - {0, 255})
        assert meta["image_id"] == int(name.replace("_", ""))
        assert meta["source"] == "voc2012/train"
    manifest = load_json(out / "manifest.json")
    assert [s["samples"] for s in manifest["shards"]] == [2, 1]
    assert sorted(p.name for p in out.glob("*.tar")) == ["shard-000000.tar", "shard-000001.tar"]


def test_voc_missing_and_unreadable_files_are_reported_not_fatal(devkit, tmp_path, capsys):
    root, _ = devkit
    out = tmp_path / "out"
    assert run("voc", f"root={root}", "split=train", f"output={out}") == 0
    skipped = load_json(out / "skipped.json")
    reasons = {Path(e["item"]).stem: e["reason"] for e in skipped["skipped"]}
    assert reasons == {MISSING_MASK: "missing mask", CORRUPT_IMAGE: "unreadable image",
                       MISSING_IMAGE: "missing image"}
    assert skipped["num_skipped"] == 3
    printed = capsys.readouterr().out
    assert "missing mask: 1" in printed and "unreadable image: 1" in printed


def test_voc_image_ids_and_bytes_stable_across_runs(devkit, tmp_path):
    root, _ = devkit
    for name in ("a", "b"):
        assert run("voc", f"root={root}/VOC2012", "split=val", f"output={tmp_path / name}") == 0
    first, second = read_shards(tmp_path / "a"), read_shards(tmp_path / "b")
    assert list(first) == list(second)
    assert list(first) == ["2007_000033"]
    assert (tmp_path / "a" / "shard-000000.tar").read_bytes() == (
        tmp_path / "b" / "shard-000000.tar").read_bytes()


def test_voc_train_aug_reads_grayscale_aug_masks_and_pair_lists(devkit, tmp_path):
    root, expected = devkit
    aug = root / "VOC2012" / "SegmentationClassAug"
    names = ["2007_000032", "2008_000005"]
    for name in names:
        save_gray_png(aug / f"{name}.png", expected[name][1])
    (aug / "train_aug.txt").write_text(
        "".join(f"/JPEGImages/{n}.jpg /SegmentationClassAug/{n}.png\n" for n in names))
    out = tmp_path / "aug"
    assert run("voc", f"root={root}", "split=train_aug", f"output={out}") == 0
    samples = read_shards(out)
    assert list(samples) == names
    for name in names:
        seg, meta = check_contract(samples[name])
        np.testing.assert_array_equal(seg, expected[name][1])
        assert meta["source"] == "voc2012/train_aug"


def test_voc_colour_mask_is_skipped_as_out_of_range(devkit, tmp_path):
    root, expected = devkit
    # A GT saved through "L" conversion: luminance values instead of class ids.
    save_gray_png(root / "VOC2012" / "SegmentationClass" / "2007_000033.png",
                  np.where(expected["2007_000033"][1] == 20, 38, 0))
    out = tmp_path / "out"
    assert run("voc", f"root={root}", "split=val", f"output={out}") == 2  # nothing left to write
    assert load_json(out / "skipped.json")["by_reason"] == {"mask ids out of range": 1}


@pytest.mark.parametrize("args, message", [
    (["voc", "split=train"], "missing required key"),
    (["voc", "root=/nonexistent", "output=x"], "no VOC2012/JPEGImages"),
    (["voc", "root={root}", "output=x", "colour=red"], "unknown config key"),
    (["voc", "root={root}", "output=x", "split=test"], "unknown VOC split"),
    (["nope", "output=x"], "usage"),
])
def test_voc_config_errors_name_the_problem(args, message, capsys, devkit):
    assert run(*(a.format(root=devkit[0]) for a in args)) == 2
    assert message in capsys.readouterr().err
