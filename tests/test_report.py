"""`nerve report`: the demo run and a run with error rows, opened in headless Chromium (tests/browser.py).

The page must load without console errors, every image must load, the first card must be the
image with the lowest per-image mIoU in the Parquet rows, a class filter must leave exactly the
cards whose masks hold the class, and the screenshot must not be blank.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.cli import main as nerve
from jobs.config import load_config
from nerve_core.models.tiny import dotlist
from pipeline.config import DatasetConfig, LabelJobConfig
from pipeline.evaluate.compare import dataset_row
from pipeline.evaluate.compare import evaluation as evaluation_record
from pipeline.evaluate.outputs import write_evaluation
from pipeline.evaluate.papers import PaperTable
from pipeline.output.outputdir import OutputDir
from pipeline.output.pngcodec import encode_index_png
from pipeline.output.run_record import RunRecord
from pipeline.output.shard_stats import ShardStats
from pipeline.output.writers import ShardResult
from pipeline.report.cards import read_rows
from pipeline.report.gallery import CARD_COLUMNS
from pipeline.report.thumbnails import ThumbJob, draw, thumb_name
from pipeline.run.driver import run_label_job
from tests import faults as F
from tests.browser import broken_images, is_blank, open_page
from tests.shards import write_raw_tar


def _rows(out):
    return [r for path in sorted((out / "shards").glob("*.parquet")) for r in pq.read_table(path).to_pylist()]


def _cards(report_dir) -> dict:
    text = (report_dir / "data.js").read_text()
    return json.loads(text[text.index("{"): text.rindex("}") + 1])


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("demo")
    assert nerve(["demo", f"dir={root}", "num_samples=6", "per_shard=3", "samples=2", "progress=false"]) == 0
    out = root / "out-tiny"
    assert nerve(["report", f"output.dir={out}", "progress=false"]) == 0
    return out


@pytest.fixture(scope="module")
def error_out(demo_out, tiny_models, tmp_path_factory):
    """The demo's shards plus one with a corrupt image and an image without GT, labeled with confidence maps."""
    root = tmp_path_factory.mktemp("errors")
    write_raw_tar(root / "bad-000000.tar", [("broken.jpg", F.corrupt_jpeg()), ("no_gt.png", F.png(F.picture()))])
    shards = [*sorted((demo_out.parent / "shards").glob("*.tar")), root / "bad-000000.tar"]
    cfg = load_config(LabelJobConfig, [
        "dataset=demo", *dotlist(tiny_models), "engine.device=cpu", f"input.shards=[{','.join(map(str, shards))}]",
        f"output.dir={root / 'out'}", "output.confidence=true", "progress=false", "ray.num_actors=1", "ray.poll_s=0.1"])
    result = run_label_job(cfg)
    assert result.ok and result.summary["num_errors"] == 1
    return root / "out"


def test_demo_report_opens_clean_worst_first_with_every_image(demo_out, browser):
    rows = [r for r in _rows(demo_out) if r["status"] == "ok"]
    worst = min(rows, key=lambda r: (r["image_scores"]["miou"], r["shard"], r["key"]))
    opened = open_page(browser, demo_out / "report" / "index.html")
    page = opened.page
    assert page.locator(".card").count() == len(rows) == 6
    assert page.locator(".card .key").first.inner_text() == worst["key"]
    assert broken_images(page) == [] and opened.problems == []
    assert page.locator("svg").count() >= 2  # the IoU chart and the walk histograms, inline
    assert not is_blank(page.screenshot(full_page=True))
    # nerve demo's own report.html (the regress page) carries the same gallery.
    demo_page = open_page(browser, demo_out / "report" / "report.html")
    assert demo_page.page.locator(".card").count() == 6
    assert broken_images(demo_page.page) == [] and demo_page.problems == []


def test_class_filter_score_range_and_error_rows(error_out, browser):
    assert nerve(["report", f"output.dir={error_out}", f"to={error_out.parent / 'report'}", "progress=false"]) == 0
    rows = _rows(error_out)
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["image_scores"]["mean_confidence"] is not None for r in ok)
    no_gt = next(r for r in ok if r["key"] == "no_gt")
    assert no_gt["image_scores"]["miou"] is None and no_gt["image_scores"]["pixel_accuracy"] is None
    opened = open_page(browser, error_out.parent / "report" / "index.html")
    page = opened.page
    assert page.locator(".card .key").last.inner_text() == "no_gt"  # no score: after every scored image
    counts = {c: sum(c in r["classes"] for r in ok) for r in ok for c in r["classes"]}
    cls = next(c for c, n in sorted(counts.items()) if 0 < n < len(ok))
    page.select_option("#class-filter", str(cls))
    holders = page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.classes)")
    assert len(holders) == counts[cls] and all(f" {cls} " in h for h in holders)
    page.select_option("#class-filter", "-1")
    page.fill("#score-min", "0")
    page.fill("#score-max", "100")
    assert page.locator(".card").count() == len(ok) - 1  # the image without GT has no score to range over
    errors = page.locator("table.errors tr").all_inner_texts()
    assert len(errors) == 2 and "broken" in errors[1] and "decode_image" in errors[1]
    assert broken_images(page) == [] and opened.problems == []


def test_rerun_reuses_thumbnails_and_limit_keeps_the_worst(demo_out, capsys):
    folder = demo_out / "report"
    before = _cards(folder)["cards"]
    assert nerve(["report", f"output.dir={demo_out}", "limit=2", "progress=false"]) == 0
    assert "0 thumbnails made, 2 reused" in capsys.readouterr().out
    after = _cards(folder)["cards"]
    assert after == before[:2]
    assert sorted(p.relative_to(folder / "thumbs").as_posix() for p in (folder / "thumbs").glob("*/*")) == sorted(
        c[CARD_COLUMNS.index("thumb")] for c in after)  # thumbnails no card shows are removed
    html = (folder / "index.html").read_text()
    assert "the 2 worst of 6" in html
    assert not re.search(r'<script src="(https?:)?//', html)  # nothing from the network


def test_an_evaluation_directory_gets_one_report_per_run_and_an_index(demo_out, error_out, tmp_path, browser):
    evaluation = tmp_path / "eval"
    shutil.copytree(demo_out, evaluation / "demo", ignore=shutil.ignore_patterns("report"))
    shutil.copytree(error_out, evaluation / "bad")
    # evaluation.json and its chart as `nerve evaluate` writes them, the demo set beside a made-up paper figure.
    table = PaperTable(paper="a paper", table="Table 1", miou={"demo": 42.0}, name="made-up")
    rows = [dataset_row(name, json.loads((evaluation / name / "summary.json").read_text()), str(evaluation / name),
                        True, [table]) for name in ("bad", "demo")]
    write_evaluation(str(evaluation), evaluation_record("tiny-engine", "tiny", [], rows, [table]))
    assert nerve(["report", f"output.dir={evaluation}", "progress=false"]) == 0
    index = evaluation / "report" / "index.html"
    assert all((evaluation / "report" / name / "index.html").is_file() for name in ("bad", "demo"))
    opened = open_page(browser, index)
    page = opened.page
    assert page.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))") == [
        "bad/index.html", "demo/index.html"]
    demo_row = page.locator("tr", has_text="demo").inner_text().split("\t")
    assert demo_row[-2:] == ["42.00", f"{rows[1]['delta']:.2f}"]
    assert broken_images(page) == [] and opened.problems == []  # the evaluation chart among them


def test_bad_report_arguments_are_one_line_errors(tmp_path, capsys):
    assert nerve(["report", f"output.dir={tmp_path / 'none'}"]) == 2
    assert nerve(["report", f"output.dir={tmp_path}"]) == 2
    assert nerve(["report", "output.dir=s3://bucket/out"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "not an output directory" in err and "set to=DIR" in err


def test_input_shards_that_name_none_of_the_runs_fail_in_one_line_and_moved_ones_say_so(demo_out, tmp_path, capsys):
    """A misspelt input.shards= used to give a report without pictures and without a word."""
    shards = demo_out.parent / "shards"
    misspelt = str(shards).replace("shards", "shard")
    assert nerve(["report", f"output.dir={demo_out}", f"input.shards={misspelt}", f"to={tmp_path / 'a'}"]) == 2
    tars = sorted(p.name for p in shards.glob("*.tar"))
    assert nerve(["report", f"output.dir={demo_out}", f"input.shards=[{tmp_path}/{tars[0]}]", f"to={tmp_path / 'b'}"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("nerve: input.shards=") and "names none of the run's 2 done shards" in err[0]
    assert err[1].startswith("nerve: input.shards: 1 shards do not exist or cannot be read")
    moved = tmp_path / "moved"
    shutil.copytree(demo_out, moved, ignore=shutil.ignore_patterns("report"))
    shutil.move(shards, tmp_path / "elsewhere")
    try:
        assert nerve(["report", f"output.dir={moved}", "progress=false"]) == 0
    finally:
        shutil.move(tmp_path / "elsewhere", shards)
    html = (moved / "report" / "index.html").read_text()
    assert "No pictures" in html and "give input.shards=..." in html


def _output_with(tmp_path, scores: dict[str, dict | None]):
    """An output directory whose one shard holds an ok row per key, with these image_scores."""
    out = OutputDir(str(tmp_path / "out"))
    out.prepare({"input": {"shards": []}, "dataset": {"ignore_index": 255}}, {"digest": "d", "classes": [["a"], ["b"]]},
                "overwrite")
    result = ShardResult("s-000000", "d")
    for key, s in scores.items():
        result.add_ok(key, 0, np.zeros((2, 3), np.uint8), None, scores=s)
    result.add_error("bad", 0, "decode_image: broken")
    out.write_shard(result)
    out.write_stats(ShardStats("s-000000", samples=len(scores) + 1))
    return out


def test_cards_sort_by_miou_else_confidence_else_key(tmp_path):
    def scores(miou, confidence):
        return {"pixel_accuracy": None if miou is None else 50.0, "miou": miou, "mean_confidence": confidence}

    by_miou = read_rows(_output_with(tmp_path / "1", {"a": scores(40.0, 0.9), "b": scores(None, 0.1),
                                                      "c": scores(10.0, 0.99)}), ["s-000000"])
    assert by_miou.score_field == "miou" and [c.key for c in by_miou.cards] == ["c", "a", "b"]
    assert [(e.key, e.reason, e.detail) for e in by_miou.errors] == [("bad", "decode_image", "broken")]
    by_confidence = read_rows(_output_with(tmp_path / "2", {"a": scores(None, 0.9), "b": scores(None, 0.2)}), ["s-000000"])
    assert by_confidence.score_field == "mean_confidence" and [c.key for c in by_confidence.cards] == ["b", "a"]
    by_key = read_rows(_output_with(tmp_path / "3", {"b": None, "a": None}), ["s-000000"])
    assert by_key.score_field is None and [c.key for c in by_key.cards] == ["a", "b"]


def _record(digest: str, **dataset) -> RunRecord:
    return RunRecord(LabelJobConfig(dataset=DatasetConfig(**dataset)), {"digest": digest, "classes": [["a"], ["b"]]})


def test_thumbnail_names_change_with_the_fingerprint_the_mask_or_the_source(tmp_path):
    out = _output_with(tmp_path, {"a": None})
    card = read_rows(out, ["s-000000"]).cards[0]
    job = ThumbJob(out, _record("fingerprint-1"), [0] * 768, {"s-000000": "/shards/s-000000.tar"})
    name = thumb_name(job, card, b"mask")
    assert thumb_name(job, card, b"mask") == name
    assert thumb_name(replace(job, record=_record("fingerprint-2")), card, b"mask") != name
    assert thumb_name(job, card, b"other mask") != name
    assert thumb_name(replace(job, sources={}), card, b"mask") != name


def test_thumbnails_draw_the_ground_truth_as_the_run_scored_it(tmp_path):
    """Under reduce_zero_label (ADE, PC59, VOC20) the shard's GT ids shift down by one, as the labeler
    scored them: the GT panel must show the shifted ids, not the stored ones."""
    out = _output_with(tmp_path, {"a": None})
    pred = np.tile(np.arange(4, dtype=np.uint8), (4, 1))
    stored = np.array([[0, 1, 2, 3]] * 4, dtype=np.uint8)
    palette = list(range(256)) * 3
    reduced = ThumbJob(out, _record("f", reduce_zero_label=True), palette, {})
    plain = replace(reduced, record=_record("f"))
    shifted = np.array([[255, 0, 1, 2]] * 4, dtype=np.uint8)
    mask = encode_index_png(pred)
    assert draw(mask, None, encode_index_png(stored), reduced) == draw(mask, None, encode_index_png(shifted), plain)
    assert draw(mask, None, encode_index_png(stored), reduced) != draw(mask, None, encode_index_png(stored), plain)
