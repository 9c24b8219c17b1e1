"""Ground truth as the run scored it (pipeline/score/ground_truth.py): decoded with the run's own
pixel limit, and a GT that does not decode is reported with its reason by `nerve score` and on the
report's card, never skipped in silence."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from jobs.cli import main as nerve
from pipeline.config import InputConfig, LabelJobConfig
from pipeline.output.run_record import RunRecord
from pipeline.read.reader import DEFAULT_MAX_PIXELS
from pipeline.report.model import RunReport
from pipeline.report.write import write_report
from pipeline.score.rescore import shard_ground_truth
from tests import faults as F
from tests.browser import open_page
from tests.release_run import copy_release_run, replace_member
from tests.shards import write_raw_tar


def _record(max_image_pixels: int) -> RunRecord:
    return RunRecord(LabelJobConfig(input=InputConfig(max_image_pixels=max_image_pixels)), {"digest": "d", "classes": [["a"]]})


def test_gt_over_the_default_pixel_limit_is_read_with_the_runs_own(tmp_path):
    side = 9500  # 90.25 M pixels: over PIL's default limit, which rescoring used to decode with
    assert side * side > DEFAULT_MAX_PIXELS
    buf = tmp_path / "big.png"
    Image.fromarray(np.zeros((side, side), np.uint8), mode="L").save(buf)
    write_raw_tar(tmp_path / "s-000000.tar", [("big.png", F.png(F.picture())), ("big.seg.png", buf.read_bytes())])
    unlimited = shard_ground_truth(str(tmp_path / "s-000000.tar"), _record(0))
    assert list(unlimited.gts) == [("big", 0)] and unlimited.gts["big", 0].shape == (side, side)
    assert not unlimited.unreadable
    limited = shard_ground_truth(str(tmp_path / "s-000000.tar"), _record(1000))
    assert not limited.gts and limited.unreadable["big", 0].startswith("too_large: ")


def test_an_undecodable_gt_is_reported_by_score_and_on_its_report_card(tmp_path, monkeypatch, capsys, browser):
    copy_release_run(tmp_path / "release", models=False)
    monkeypatch.chdir(tmp_path / "release")
    replace_member(tmp_path / "release" / "shards" / "demo-000001.tar", "demo000004.seg.png", b"not a png")
    assert nerve(["score", "output.dir=run"]) == 0
    out = capsys.readouterr().out
    assert "not scored, ground truth does not decode: 1 images" in out
    assert "demo-000001/demo000004: decode_seg: UnidentifiedImageError" in out
    assert json.loads((tmp_path / "release" / "run" / "summary.json").read_text())["gt_images"] == 7
    assert nerve(["report", "output.dir=run", "progress=false"]) == 0
    data = (tmp_path / "release" / "run" / "report" / "data.js").read_text()
    report = json.loads(data[data.index("{"): data.rindex("}") + 1])
    notes = {card[report["card_columns"].index("key")]: card[report["card_columns"].index("note")] for card in report["cards"]}
    assert notes.pop("demo000004").startswith("ground truth: decode_seg: ")
    assert set(notes.values()) == {""}
    report = RunReport("regress", "run", json.loads((tmp_path / "release" / "run" / "summary.json").read_text()))
    write_report(report, tmp_path / "sheet", samples=8)
    left_out = [n for n in report.notes if n.startswith("Samples:")]
    assert len(left_out) == 1 and left_out[0].startswith(
        "Samples: demo-000001/demo000004 left out, it no longer decodes (decode_seg: UnidentifiedImageError")
    assert sorted(e.key for e in report.sheet) == sorted(set(notes) - {"demo000004"})  # every other ok sample
    opened = open_page(browser, tmp_path / "release" / "run" / "report" / "index.html")
    note = opened.page.locator(".card", has_text="demo000004").locator(".note")
    assert note.inner_text().startswith("ground truth: decode_seg: ") and opened.problems == []
