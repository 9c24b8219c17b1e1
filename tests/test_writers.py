"""Per-shard outputs: lossless masks, COCO RLE that pycocotools loads, Parquet schema, atomicity."""
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from pipeline.output.outputdir import OutputDir
from pipeline.output.pngcodec import decode_index_png, encode_index_png
from pipeline.output.shard_stats import ShardStats
from pipeline.output.writers import ROW_SCHEMA, ShardResult, shard_paths, write_shard_outputs
from pipeline.score.verify import coco_loads
from pipeline.storage import atomic_write, filesystem


def test_masks_round_trip_exactly_and_rle_matches():
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 3, 7, 255], size=(37, 53)).astype(np.uint8)
    np.testing.assert_array_equal(decode_index_png(encode_index_png(labels)), labels)
    result = ShardResult("s-000000", "fp")
    result.add_ok("k", 5, labels, None)
    assert [r["category_id"] for r in result.coco] == [0, 3, 7]  # 255 is not a class
    for r in result.coco:
        assert isinstance(r["segmentation"]["counts"], str) and r["segmentation"]["size"] == [37, 53]
        rle = dict(r["segmentation"], counts=r["segmentation"]["counts"].encode())
        np.testing.assert_array_equal(mask_utils.decode(rle), labels == r["category_id"])
    assert result.rows[0]["classes"] == [0, 3, 7] and result.rows[0]["height"] == 37
    assert coco_loads(result.coco, {5: (37, 53)}) is None


def test_shard_outputs_are_written_atomically_stats_last(tmp_path):
    fs, root = filesystem(str(tmp_path))
    result = ShardResult("s-000001", "fp")
    conf = np.full((4, 6), 200, np.uint8)
    scores = {"pixel_accuracy": 75.0, "miou": 50.0, "mean_confidence": 200 / 255}
    result.add_ok("a", 1, np.ones((4, 6), np.uint8), conf, scores=scores)
    result.add_error("b", 2, "decode_image: broken")
    write_shard_outputs(fs, root, result)
    paths = shard_paths(root, "s-000001")
    assert not (tmp_path / "shards" / "s-000001.stats.json").exists()  # no stats: not done
    OutputDir(str(tmp_path)).write_stats(ShardStats("s-000001", samples=2))
    table = pq.read_table(paths["parquet"])
    assert table.schema.equals(ROW_SCHEMA)
    rows = table.to_pylist()
    assert [(r["key"], r["status"], r["error"]) for r in rows] == [("a", "ok", None), ("b", "error", "decode_image: broken")]
    np.testing.assert_array_equal(decode_index_png(rows[0]["confidence_png"]), conf)
    assert rows[1]["mask_png"] is None and rows[1]["height"] is None
    assert rows[0]["image_scores"] == scores and rows[1]["image_scores"] is None
    assert json.loads(open(paths["stats"]).read())["samples"] == 2
    assert len(json.loads(open(paths["coco"]).read())) == 1
    assert not [p for p in (tmp_path / "shards").iterdir() if ".tmp-" in p.name]


def test_atomic_write_leaves_old_content_when_interrupted(tmp_path, monkeypatch):
    fs, root = filesystem(str(tmp_path))
    target = f"{root}/x.json"
    atomic_write(fs, target, b"old")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fs, "mv", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(fs, target, b"new")
    monkeypatch.undo()
    assert (tmp_path / "x.json").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_row_schema_keeps_mask_png_binary_and_declares_the_mask_image_feature():
    assert ROW_SCHEMA.field("mask_png").type == pa.binary() and ROW_SCHEMA.field("confidence_png").type == pa.binary()
    features = json.loads(ROW_SCHEMA.metadata[b"huggingface"])["info"]["features"]
    assert list(features) == ROW_SCHEMA.names  # every column: older `datasets` read all or nothing
    assert features["mask"] == {"_type": "Image"}
    assert features["classes"] == {"feature": {"dtype": "int32", "_type": "Value"}, "_type": "Sequence"}
    assert features["image_id"] == {"dtype": "int64", "_type": "Value"}


def test_parquet_masks_open_as_images_in_hugging_face_datasets(tmp_path):
    datasets = pytest.importorskip("datasets", reason="the Hugging Face datasets package is not installed")
    fs, root = filesystem(str(tmp_path / "out"))
    result = ShardResult("s-000000", "fp")
    labels = np.array([[0, 1, 1], [2, 255, 0]], np.uint8)
    result.add_ok("a", 1, labels, None, scores={"pixel_accuracy": 80.0, "miou": 62.5, "mean_confidence": None})
    result.add_error("b", 2, "decode_image: broken")
    write_shard_outputs(fs, root, result)
    ds = datasets.load_dataset("parquet", data_files=shard_paths(root, "s-000000")["parquet"], split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert isinstance(ds.features["mask"], datasets.Image)
    first, second = ds[0], ds[1]
    assert isinstance(first["mask"], Image.Image) and first["mask"].mode == "L"
    np.testing.assert_array_equal(np.asarray(first["mask"]), labels)
    assert first["mask_png"] == result.rows[0]["mask_png"] and first["classes"] == [0, 1, 2]
    assert second["mask"] is None and second["status"] == "error"
    assert first["image_scores"] == {"pixel_accuracy": 80.0, "miou": 62.5, "mean_confidence": None}


def test_the_png_codec_reads_class_ids_raw_whatever_the_mode():
    ids = np.array([[0, 7], [200, 255]], np.uint8)
    palette = list(np.random.default_rng(0).integers(0, 256, 768))
    for data in (encode_index_png(ids), encode_index_png(ids, palette=palette)):
        np.testing.assert_array_equal(decode_index_png(data), ids)
    with Image.open(io.BytesIO(encode_index_png(ids, palette=palette))) as img:
        assert img.mode == "P" and img.getpalette()[:6] == palette[:6]
    buf = io.BytesIO()
    Image.fromarray(np.array([[0, 300]], np.uint16)).save(buf, format="PNG")
    with pytest.raises(ValueError, match="outside 0..255"):
        decode_index_png(buf.getvalue())
    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, format="PNG")
    with pytest.raises(ValueError, match="mode RGB"):
        decode_index_png(buf.getvalue())


def test_after_priming_a_shards_first_parquet_write_imports_nothing():
    """The labeler primes pyarrow while its engine loads (prime_row_conversion): whatever pyarrow
    imports on its first conversion (pandas, today) must not land in the first shard's write."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "import numpy as np\n"
        "from pipeline.output.writers import ShardResult, parquet_bytes, prime_row_conversion\n"
        "prime_row_conversion()\n"
        "result = ShardResult('s-000000', 'fp')\n"
        "result.add_ok('k', 1, np.zeros((6, 8), np.uint8), None)\n"
        "before = set(sys.modules)\n"
        "parquet_bytes(result.rows)\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
