"""The fast mask encoders against independent ones: PIL reads the PNGs back exactly, and every
class's RLE equals pycocotools' own encoding of that class's binary mask."""
import io
import zlib

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from pipeline.output.maskcodec import ColumnRuns, coco_rles
from pipeline.output.pngcodec import decode_index_png, encode_ground_truth_png, encode_index_png, png_gray8
from pipeline.output.writers import classes_present, coco_results


def label_maps():
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 4, (6, 8)).astype(np.uint8)
    smooth = np.kron(blocks, np.ones((40, 30), dtype=np.uint8))  # a 240x240 map of regions
    smooth[rng.random(smooth.shape) < 0.01] = 255
    noisy = rng.integers(0, 256, (37, 53)).astype(np.uint8)
    edge_runs = np.zeros((5, 7), dtype=np.uint8)
    edge_runs[0, 0] = edge_runs[-1, -1] = 3  # a class starting the first run and ending the last
    return [smooth, noisy, edge_runs, np.full((9, 4), 7, dtype=np.uint8), np.array([[1]], dtype=np.uint8),
            np.arange(256, dtype=np.uint8)[None, :]]


MAP_IDS = ["regions", "noise", "edges", "one_class", "one_pixel", "row"]


@pytest.mark.parametrize("quick_to_read", [False, True], ids=["mask", "ground_truth"])
@pytest.mark.parametrize("labels", label_maps(), ids=MAP_IDS)
def test_png_is_a_greyscale_png_that_reads_back_exactly(labels, quick_to_read):
    data = png_gray8(labels, quick_to_read)
    with Image.open(io.BytesIO(data)) as img:
        img.verify()  # chunk CRCs and structure
    with Image.open(io.BytesIO(data)) as img:
        assert (img.format, img.mode, img.size) == ("PNG", "L", labels.shape[::-1])
        np.testing.assert_array_equal(np.asarray(img), labels)
    assert (encode_ground_truth_png if quick_to_read else encode_index_png)(labels) == data
    filters = np.frombuffer(zlib.decompress(data[41:-16]), np.uint8).reshape(labels.shape[0], -1)[:, 0]
    assert (filters == (0 if quick_to_read else 2)).all()  # ground truth: no row filter, so no one-byte-back matches


def test_the_shard_makers_write_ground_truth_packed_to_be_read_quickly():
    from pipeline.bench.photos import photo_samples
    from pipeline.sources.synthetic import demo_samples

    for sample in next(iter(demo_samples(1, seed=0))), next(iter(photo_samples(1, 21, seed=0))):
        gt = decode_index_png(sample.seg_png)
        assert sample.seg_png == encode_ground_truth_png(gt)


def test_png_of_a_label_map_is_no_larger_than_pils():
    labels = label_maps()[0]
    buf = io.BytesIO()
    Image.fromarray(labels, "L").save(buf, "PNG")
    assert len(png_gray8(labels)) <= 1.1 * len(buf.getvalue())
    assert len(png_gray8(labels)) < labels.size / 20  # still a compressed file
    zlib.decompress(png_gray8(labels)[41:-16])  # one IDAT between the 41 header bytes and its CRC + IEND


def test_png_refuses_what_it_cannot_store():
    with pytest.raises(ValueError, match="2-D uint8"):
        png_gray8(np.zeros((2, 2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="at least one pixel"):
        png_gray8(np.zeros((0, 4), dtype=np.uint8))


@pytest.mark.parametrize("labels", label_maps(), ids=["regions", "noise", "edges", "one_class", "one_pixel", "row"])
def test_every_class_rle_equals_pycocotools_encoding_of_its_mask(labels):
    runs = ColumnRuns(labels)
    expected_classes = [int(c) for c in np.unique(labels) if c != 255]
    assert runs.classes() == expected_classes == classes_present(labels)
    rles = coco_rles(labels)
    assert sorted(rles) == expected_classes
    for class_id, rle in rles.items():
        theirs = mask_utils.encode(np.asfortranarray(labels == class_id, dtype=np.uint8))
        assert rle == {"size": [int(v) for v in theirs["size"]], "counts": theirs["counts"].decode("ascii")}
        assert int(runs.counts(class_id).sum(dtype=np.int64)) == labels.size
        decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        np.testing.assert_array_equal(decoded, labels == class_id)


def test_coco_results_are_one_json_result_per_class():
    labels = label_maps()[2]
    results = coco_results(42, labels)
    assert [(r["image_id"], r["category_id"]) for r in results] == [(42, 0), (42, 3)]
    assert all(isinstance(r["segmentation"]["counts"], str) for r in results)
    assert coco_results(42, labels, ColumnRuns(labels)) == results
