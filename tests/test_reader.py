"""Shard reading and decoding: EXIF orientation, raw label indices, error rows, shard lists."""
import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from pipeline.output.pngcodec import encode_index_png as encode_label_png
from pipeline.read.reader import MemberCut, check_gt_values, decode_sample, raw_samples
from pipeline.read.shardlist import expand_shards, manifest_counts, shard_id
from pipeline.sources.synthetic import encode_image
from tests.shards import make_demo_shards, write_raw_tar


def _exif_rotated_jpeg(width, height, orientation):
    img = Image.new("RGB", (width, height), (200, 10, 10))
    img.paste((10, 10, 200), (0, 0, width // 2, height))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    return buf.getvalue()


def _palette_png(indices):
    img = Image.fromarray(indices, mode="P")
    img.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_exif_orientation_and_palette_indices(tmp_path):
    # Orientation 6: stored 40x24, displayed rotated 90° clockwise -> 24x40, blue half on top.
    gt = np.zeros((40, 24), dtype=np.uint8)
    gt[:20] = 7
    gt[0, 0] = 255
    write_raw_tar(tmp_path / "s-000000.tar", [
        ("a.jpg", _exif_rotated_jpeg(40, 24, 6)),
        ("a.seg.png", _palette_png(gt)),
        ("a.json", b'{"image_id": 12, "labels": [7]}'),
    ])
    [raw] = list(raw_samples(str(tmp_path / "s-000000.tar")))
    sample = decode_sample(raw)
    assert sample.ok, sample.error
    assert sample.image.mode == "RGB" and sample.image.size == (24, 40)
    pixels = np.asarray(sample.image).astype(int)
    assert pixels[5, 12, 2] > 150 and pixels[35, 12, 0] > 150  # top blue, bottom red
    np.testing.assert_array_equal(sample.gt, gt)  # indices, not palette colours or luminance
    assert sample.image_id == 12 and sample.meta["labels"] == [7]


def test_undecodable_samples_become_error_records(tmp_path):
    good = encode_image(Image.new("RGB", (8, 6)), "png")
    rgb_seg = encode_image(Image.new("RGB", (8, 6)), "png")
    write_raw_tar(tmp_path / "bad.tar", [
        ("corrupt.jpg", b"not a jpeg"),
        ("noimage.json", b'{"image_id": 1}'),
        ("badjson.png", good), ("badjson.json", b"{oops"),
        ("rgbseg.png", good), ("rgbseg.seg.png", rgb_seg),
        ("small.png", good), ("small.seg.png", encode_label_png(np.zeros((3, 3), np.uint8))),
        ("fine.png", good),
    ])
    samples = [decode_sample(r) for r in raw_samples(str(tmp_path / "bad.tar"))]
    reasons = {s.key: (s.error or "").split(":")[0] for s in samples}
    assert reasons == {"corrupt": "decode_image", "noimage": "missing_image", "badjson": "bad_json",
                       "rgbseg": "decode_seg", "small": "seg_size", "fine": ""}
    fine = samples[-1]
    assert fine.gt is None and fine.image_id == decode_sample({"__key__": "fine", "png": good}).image_id >= 0


def test_truncated_shard_yields_readable_samples_then_raises(tmp_path):
    make_demo_shards(tmp_path / "src", 3, per_shard=3)
    data = (tmp_path / "src" / "shard-000000.tar").read_bytes()
    cut = tmp_path / "cut-000000.tar"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    seen = []
    with pytest.raises((MemberCut, tarfile.TarError, OSError, EOFError)):
        for raw in raw_samples(str(cut)):
            seen.append((raw["__key__"], "__truncated__" in raw))
    # Whole samples first; the one the cut falls in comes last, flagged.
    assert seen[0] == ("demo000000", False) and len(seen) <= 3 and seen[-1][1]


def test_shard_lists_from_patterns_directories_and_lists(tmp_path):
    make_demo_shards(tmp_path / "a", 5, per_shard=2)
    d = tmp_path / "a"
    by_dir = expand_shards(str(d))
    assert [shard_id(u) for u in by_dir] == ["shard-000000", "shard-000001", "shard-000002"]
    assert expand_shards(f"{d}/shard-{{000000..000002}}.tar") == [f"{d}/shard-00000{i}.tar" for i in range(3)]
    assert expand_shards([f"{d}/shard-000002.tar", f"{d}/shard-000000.tar"])[0].endswith("000002.tar")
    assert manifest_counts(by_dir) == {"shard-000000": 2, "shard-000001": 2, "shard-000002": 1}
    make_demo_shards(tmp_path / "b", 2, per_shard=2)
    with pytest.raises(ValueError, match="share the id"):
        expand_shards([str(d), str(tmp_path / "b")])
    with pytest.raises(ValueError, match="empty"):
        expand_shards([])


def _members_of(path) -> list[tuple[str, int, list[str]]]:
    return [(raw["__key__"], raw["__occurrence__"], sorted(k for k in raw if not k.startswith("__")))
            for raw in raw_samples(str(path))]


def test_adjacent_samples_with_one_key_split_where_a_second_image_arrives(tmp_path):
    png, jpg = encode_image(Image.new("RGB", (8, 6)), "png"), encode_image(Image.new("RGB", (8, 6)), "jpg")
    seg = encode_label_png(np.zeros((6, 8), np.uint8))
    write_raw_tar(tmp_path / "same-000000.tar", [
        ("k.png", png), ("k.seg.png", seg), ("k.jpg", jpg), ("k.seg.png", seg), ("k.json", b"{}"),
        ("m.png", png), ("m.webp", png), ("m.jpeg", jpg),
    ])
    assert _members_of(tmp_path / "same-000000.tar") == [
        ("k", 0, ["png", "seg.png"]), ("k", 1, ["jpg", "json", "seg.png"]),
        ("m", 0, ["png"]), ("m", 1, ["webp"]), ("m", 2, ["jpeg"])]
    samples = [decode_sample(r) for r in raw_samples(str(tmp_path / "same-000000.tar"))]
    assert [s.error for s in samples[:2]] == [None, None] and samples[1].gt.shape == (6, 8)


def test_a_cut_inside_a_second_image_truncates_only_the_second_sample(tmp_path):
    from tests import faults as F

    png = encode_image(Image.new("RGB", (40, 30)), "png")
    seg = encode_label_png(np.zeros((30, 40), np.uint8))
    write_raw_tar(tmp_path / "cut-000000.tar", [("k.png", png), ("k.seg.png", seg), ("k.jpg", png + b"\0" * 4096)])
    path = tmp_path / "cut-000000.tar"
    path.write_bytes(F.cut_in_member(path.read_bytes(), 2))
    seen = []
    with pytest.raises(MemberCut):
        for raw in raw_samples(str(path)):
            seen.append((raw["__occurrence__"], "__truncated__" in raw, sorted(k for k in raw if not k.startswith("__"))))
    assert seen == [(0, False, ["png", "seg.png"]), (1, True, [])]


def test_gt_value_check_names_exactly_the_ids_that_are_neither_classes_nor_ignore():
    rng = np.random.default_rng(3)
    for num_classes, ignore in [(21, 255), (21, 0), (5, 300), (150, 255)]:
        for _ in range(20):
            gt = rng.choice(rng.integers(0, 256, size=rng.integers(1, 6)), size=(17, 23)).astype(np.uint8)
            expected = sorted(int(v) for v in np.unique(gt) if v >= num_classes and v != ignore)
            error = check_gt_values(gt, num_classes, ignore)
            if expected:
                assert error is not None and error.startswith("seg_values") and str(expected) in error
            else:
                assert error is None
