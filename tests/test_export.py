"""`nerve export png|coco` on run directories written here in the output schema of the README."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from configs import classes_path
from jobs import export
from nerve_core.vocab import Vocabulary
from tests.faults import at_once

ROW_SCHEMA = pa.schema([
    ("key", pa.string()), ("shard", pa.string()), ("image_id", pa.int64()),
    ("status", pa.string()), ("error", pa.string()), ("height", pa.int32()),
    ("width", pa.int32()), ("mask_png", pa.binary()), ("classes", pa.list_(pa.int32())),
    ("confidence_png", pa.binary()),
])


def png_bytes(values: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(values.astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def reference_voc_palette() -> np.ndarray:
    """(256, 3): bit 3j + c of the index becomes bit 7 - j of channel c."""
    index = np.arange(256)[:, None]
    channel = np.arange(3)[None, :]
    colours = np.zeros((256, 3), dtype=np.int64)
    for j in range(8):
        colours |= ((index >> (3 * j + channel)) & 1) << (7 - j)
    return colours


def coco_results(image_id: int, mask: np.ndarray) -> list[dict]:
    out = []
    for cls in sorted(set(np.unique(mask).tolist()) - {255}):
        rle = mask_utils.encode(np.asfortranarray((mask == cls).astype(np.uint8)))
        out.append({"image_id": image_id, "category_id": cls,
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    return out


def write_shard(shard_dir: Path, shard: str, rows: list[dict], done: bool = True, partial: bool = False) -> None:
    table = pa.Table.from_pylist(rows, schema=ROW_SCHEMA)
    pq.write_table(table, shard_dir / f"{shard}.parquet")
    results = [r for row in rows if row["status"] == "ok"
               for r in coco_results(row["image_id"], np.array(Image.open(io.BytesIO(row["mask_png"]))))]
    (shard_dir / f"{shard}.coco.json").write_text(json.dumps(results))
    if done or partial:
        (shard_dir / f"{shard}.stats.json").write_text(json.dumps({"samples": len(rows), "partial": partial}))


def write_record(out: Path, classes: str = "voc21") -> None:
    """OUT/config.yaml as the label job writes it (the parts export reads)."""
    names = Vocabulary.from_file(classes_path(classes)).names
    record = {"config": {"dataset": {"classes": classes}, "engine": {"background": {"class_id": 0}},
                         "output": {"confidence": True}},
              "fingerprint": {"digest": "export-test", "classes": [[n] for n in names]}}
    (out / "config.yaml").write_text(yaml.safe_dump(record))


def make_row(shard, key, image_id, mask=None, confidence=None, error=None) -> dict:
    ok = error is None
    return {"key": key, "shard": shard, "image_id": image_id, "status": "ok" if ok else "error",
            "error": error, "height": None if mask is None else mask.shape[0],
            "width": None if mask is None else mask.shape[1],
            "mask_png": png_bytes(mask) if ok else None,
            "classes": sorted(set(np.unique(mask).tolist()) - {255}) if ok else None,
            "confidence_png": png_bytes(confidence) if confidence is not None else None}


@pytest.fixture()
def run_dir(tmp_path) -> tuple[Path, dict]:
    """Two done shards (one with an error row and a hostile key), one unfinished shard and one
    partial shard (its tar broke part-way: rows and stats exist, but it is not done)."""
    rng = np.random.default_rng(0)
    out = tmp_path / "run"
    shard_dir = out / "shards"
    shard_dir.mkdir(parents=True)
    masks = {}
    rows = {"shard-000000": [], "shard-000001": []}
    for i, (shard, key) in enumerate([("shard-000000", "2007_000032"), ("shard-000000", "../../evil"),
                                      ("shard-000001", "2007_000039")]):
        h, w = 9 + i, 13 - i
        mask = rng.choice([0, 1, 15, 20, 255], size=(h, w)).astype(np.uint8)
        confidence = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
        masks[key] = (mask, confidence)
        rows[shard].append(make_row(shard, key, 100 + i, mask, confidence))
    rows["shard-000001"].append(make_row("shard-000001", "2007_000050", 200, error="decode failed"))
    for shard, shard_rows in rows.items():
        write_shard(shard_dir, shard, shard_rows)
    unfinished = make_row("shard-000002", "late", 300, np.zeros((4, 4), np.uint8))
    write_shard(shard_dir, "shard-000002", [unfinished], done=False)
    partial = make_row("shard-000003", "cut", 400, np.ones((4, 4), np.uint8))
    write_shard(shard_dir, "shard-000003", [partial], partial=True)
    write_record(out)
    return out, masks


def read_label_png(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    with Image.open(path) as img:
        palette = np.array(img.getpalette()[:768]).reshape(256, 3)
        return np.array(img), palette, img.mode


def test_png_export_round_trip_with_voc_palette(run_dir, tmp_path, capsys):
    out, masks = run_dir
    target = tmp_path / "labels"
    assert export.main(["png", f"output.dir={out}", f"to={target}", "progress=false"]) == 0
    names = sorted(p.name for p in target.iterdir())
    assert names == ["2007_000032.png", "2007_000039.png", "______evil.png", "skipped.json"]
    for key, (mask, _) in masks.items():
        values, palette, mode = read_label_png(target / f"{export.safe_key(key)}.png")
        assert mode == "P"
        np.testing.assert_array_equal(values, mask)
        np.testing.assert_array_equal(palette, reference_voc_palette())
    skipped = json.loads((target / "skipped.json").read_text())
    assert [(s["key"], s["reason"], s["detail"]) for s in skipped] == [
        ("2007_000050", "error row", "decode failed")]
    printed = capsys.readouterr().out
    assert "shard-000002" in printed and "shard-000003" in printed and "2007_000050" in printed
    assert not (target / "cut.png").exists()  # the partial shard's rows are not exported
    # Nothing was written outside the target directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels", "run"]


def test_reference_palette_matches_voc_devkit_colours():
    palette = export.voc_palette()
    colours = np.array(palette).reshape(256, 3)
    np.testing.assert_array_equal(colours, reference_voc_palette())
    known = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128),
             15: (192, 128, 128), 20: (0, 64, 128), 255: (224, 224, 192)}
    for index, rgb in known.items():
        assert tuple(colours[index]) == rgb


def test_png_export_confidence_threshold_sets_ignore(run_dir, tmp_path):
    out, masks = run_dir
    target = tmp_path / "labels"
    rc = export.main(["png", f"output.dir={out}", f"to={target}", "confidence_threshold=0.6",
                      "progress=false"])
    assert rc == 0
    for key, (mask, confidence) in masks.items():
        values, _, _ = read_label_png(target / f"{export.safe_key(key)}.png")
        # Independent form: q / 255 < 0.6  <=>  q < 153 for integer q.
        want = mask.copy()
        want[confidence < 153] = 255
        np.testing.assert_array_equal(values, want)
        assert (values == 255).sum() > (mask == 255).sum()


def test_png_export_without_confidence_maps_refuses_a_threshold(tmp_path, capsys):
    shard_dir = tmp_path / "run" / "shards"
    shard_dir.mkdir(parents=True)
    write_record(tmp_path / "run")
    row = make_row("s-0", "a", 1, np.zeros((3, 3), np.uint8))
    table = pa.Table.from_pylist([row], schema=ROW_SCHEMA).drop_columns(["confidence_png"])
    pq.write_table(table, shard_dir / "s-0.parquet")
    (shard_dir / "s-0.stats.json").write_text("{}")
    rc = export.main(["png", f"output.dir={tmp_path / 'run'}", f"to={tmp_path / 'x'}",
                      "confidence_threshold=0.5"])
    assert rc == 2 and "output.confidence=true" in capsys.readouterr().err
    assert export.main(["png", f"output.dir={tmp_path / 'run'}", f"to={tmp_path / 'x'}",
                        "confidence_threshold=1.5"]) == 2


def test_coco_export_scores_leaves_out_background_and_lists_the_vocabulary(run_dir, tmp_path):
    out, masks = run_dir
    results_file = tmp_path / "export" / "results.json"
    assert export.main(["coco", f"output.dir={out}", f"to={results_file}"]) == 0
    results = json.loads(results_file.read_text())
    assert isinstance(results, list)
    sidecar = export.sidecar_path(results_file)
    gt = COCO(str(sidecar))
    assert sorted(gt.getImgIds()) == [100, 101, 102]  # ok rows of done shards only (not the partial 400)
    assert gt.getCatIds() == list(range(1, 21))  # every VOC class but background, present or not
    assert gt.loadCats(1)[0]["name"] == "aeroplane"
    detections = gt.loadRes(str(results_file))
    ids = {key: 100 + i for i, key in enumerate(masks)}
    for key, (mask, confidence) in masks.items():
        anns = detections.loadAnns(detections.getAnnIds(imgIds=[ids[key]]))
        assert sorted(a["category_id"] for a in anns) == sorted(set(np.unique(mask).tolist()) - {0, 255})
        for ann in anns:
            pixels = mask == ann["category_id"]
            np.testing.assert_array_equal(mask_utils.decode(ann["segmentation"]), pixels.astype(np.uint8))
            assert ann["score"] == pytest.approx(confidence[pixels].sum() / pixels.sum() / 255, abs=1e-6)


def test_coco_export_scores_one_without_confidence_maps(tmp_path):
    out = tmp_path / "run"
    (out / "shards").mkdir(parents=True)
    write_record(out)
    row = make_row("s-0", "a", 7, np.array([[0, 3], [3, 255]], np.uint8))
    write_shard(out / "shards", "s-0", [dict(row, confidence_png=None)])
    assert export.main(["coco", f"output.dir={out}", f"to={tmp_path / 'r.json'}"]) == 0
    assert [(r["category_id"], r["score"]) for r in json.loads((tmp_path / "r.json").read_text())] == [(3, 1.0)]


def test_export_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "shards").mkdir()
    assert export.main(["coco", f"output.dir={tmp_path}", f"to={tmp_path / 'r.json'}"]) == 2
    assert "not an output directory" in capsys.readouterr().err
    assert export.main(["coco", f"to={tmp_path / 'r.json'}"]) == 2
    assert "output.dir is required" in capsys.readouterr().err


def test_export_and_the_report_read_the_done_shards_at_once(run_dir, tmp_path, monkeypatch):
    # Each shard's rows wait at a barrier for the other done shard's: read one after another, as
    # they were (one request per shard in turn on an object store), the barrier breaks.
    from pipeline.output.outputdir import OutputDir
    from pipeline.report.cards import read_rows

    out, _ = run_dir
    monkeypatch.setattr(OutputDir, "rows", at_once(OutputDir.rows, 2))
    assert export.main(["png", f"output.dir={out}", f"to={tmp_path / 'labels'}", "progress=false"]) == 0
    assert len(list((tmp_path / "labels").glob("*.png"))) == 3
    assert len(read_rows(OutputDir(str(out)), ["shard-000000", "shard-000001"]).cards) == 3
