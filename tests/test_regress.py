"""`nerve regress`: baseline checks, exit codes, report files, JUnit XML; palette against export's."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from configs import classes_path
from jobs.regress import main as regress
from nerve_core.models.tiny import dotlist
from nerve_core.vocab import Vocabulary
from pipeline.report.baseline import baseline_from_summary, compare, read_baseline
from pipeline.report.palette import (
    NAMED_COLOURS,
    class_palette,
    legend,
    named_colour,
    voc_palette,
)
from pipeline.sources.synthetic import SHAPES
from tests.browser import broken_images, open_page
from tests.shards import make_demo_shards


def _summary(miou, per_class, images=4, errors=0):
    return {"num_images": images, "num_errors": errors, "miou": miou, "per_class_iou": per_class,
            "aacc": 50.0, "fingerprint": "f"}


def _check(checks, name):
    return next(c for c in checks if c.name == name)


def test_compare_tolerances_and_pinned_set():
    base = baseline_from_summary(_summary(40.0, {"bg": 60.0, "cat": 20.0, "dog": None}), ["s-1", "s-0"], "nerve")
    assert base["shards"] == ["s-0", "s-1"]
    run = _summary(39.6, {"bg": 61.0, "cat": 17.5, "dog": 3.0})
    checks = compare(run, base, ["s-0", "s-1"], miou_tolerance=0.5, class_tolerance=2.0, error_tolerance=0)
    assert _check(checks, "miou").passed  # 0.4 below, tolerance 0.5
    assert _check(checks, "iou/bg").passed  # improvements never fail
    assert not _check(checks, "iou/cat").passed  # 2.5 below, tolerance 2.0
    assert "iou/dog" not in [c.name for c in checks]  # no baseline figure: nothing to compare
    assert _check(checks, "pinned_set").passed and _check(checks, "errors").passed
    tight = compare(run, base, ["s-0", "s-1"], miou_tolerance=0.3, class_tolerance=3.0, error_tolerance=0)
    assert not _check(tight, "miou").passed and _check(tight, "iou/cat").passed
    other = compare(_summary(40.0, {"bg": 60.0, "cat": 20.0}, images=5, errors=1), base, ["s-0", "s-1"],
                    miou_tolerance=0.5, class_tolerance=2.0, error_tolerance=0)
    assert not _check(other, "pinned_set").passed and not _check(other, "errors").passed
    missing = compare(_summary(40.0, {"bg": 60.0, "cat": None}), base, ["s-0"],
                      miou_tolerance=0.5, class_tolerance=2.0, error_tolerance=0)
    assert not _check(missing, "iou/cat").passed and not _check(missing, "pinned_set").passed


def test_voc_palette_matches_known_colours():
    colours = [tuple(voc_palette()[3 * i: 3 * i + 3]) for i in range(256)]
    # PASCAL VOC devkit colours: background, aeroplane, bicycle, bird, boat, person, ignore.
    assert colours[0] == (0, 0, 0) and colours[1] == (128, 0, 0) and colours[2] == (0, 128, 0)
    assert colours[3] == (128, 128, 0) and colours[4] == (0, 0, 128) and colours[15] == (192, 128, 128)
    assert colours[255] == (224, 224, 192)


def test_report_colours_follow_colour_words_in_class_names():
    names = Vocabulary.from_file(classes_path("demo")).names
    entries = dict(legend(names))
    assert entries["red circle"] == NAMED_COLOURS["red"] and entries["blue triangle"] == NAMED_COLOURS["blue"]
    assert entries["green square"] == NAMED_COLOURS["green"] and entries["yellow bar"] == NAMED_COLOURS["yellow"]
    assert entries[names[0]] == (0, 0, 0) and entries["unlabeled / ignore"] == (224, 224, 192)  # VOC's
    # The demo images draw each shape in the colour its name says.
    assert all(named_colour(names[class_id]) == rgb for class_id, (_, rgb) in SHAPES.items())
    voc = Vocabulary.from_file(classes_path("voc21")).names
    assert class_palette(voc) == voc_palette() and named_colour("Traffic light") is None


@pytest.fixture(scope="module")
def regress_run(tmp_path_factory, tiny_models, ray_session):
    """Demo shards, then one `--update-baseline` run that labels them and records the baseline."""
    root = tmp_path_factory.mktemp("regress")
    make_demo_shards(root / "shards", num_samples=4, per_shard=2)
    base = ["dataset=demo", f"input.shards={root / 'shards'}", f"output.dir={root / 'out'}", "engine.device=cpu",
            "progress=false", "samples=3", *dotlist(tiny_models)]
    assert regress(["--update-baseline", f"baseline={root / 'baseline.json'}", *base]) == 0
    # Later runs resume the same (already labeled) directory: they re-check, they do not relabel.
    return root, base + ["output.mode=resume"]


def _junit(root):
    suite = ET.parse(root / "out" / "report" / "junit.xml").getroot().find("testsuite")
    return suite, {case.get("name"): case.find("failure") for case in suite.iter("testcase")}


def test_passes_against_its_own_baseline(regress_run):
    root, args = regress_run
    baseline = read_baseline(root / "baseline.json")
    assert baseline["num_images"] == 4 and baseline["shards"] == ["shard-000000", "shard-000001"]
    assert regress([f"baseline={root / 'baseline.json'}", *args]) == 0
    suite, cases = _junit(root)
    assert suite.get("failures") == "0" and int(suite.get("tests")) == len(cases)
    assert {"shards_done", "pinned_set", "errors", "miou"} <= set(cases)
    assert all(failure is None for failure in cases.values())
    scored = [n for n, v in baseline["per_class_iou"].items() if v is not None]
    assert {f"iou/{n}" for n in scored} <= set(cases)


def test_fails_against_a_raised_baseline(regress_run, capsys):
    root, args = regress_run
    raised = read_baseline(root / "baseline.json")
    raised["miou"] += 5.0
    (root / "raised.json").write_text(json.dumps(raised))
    assert regress([f"baseline={root / 'raised.json'}", *args]) == 1
    assert "FAIL miou" in capsys.readouterr().err
    suite, cases = _junit(root)
    assert suite.get("failures") == "1" and cases["miou"] is not None
    assert "fell more than 0.5 points" in cases["miou"].get("message")
    assert "**Result: FAIL**" in (root / "out" / "report" / "report.md").read_text()
    # A wider tolerance accepts the same run.
    assert regress([f"baseline={root / 'raised.json'}", "tolerance.miou=6", *args]) == 0


def test_report_files_reference_existing_images(regress_run):
    root, args = regress_run
    assert regress([f"baseline={root / 'baseline.json'}", *args]) == 0
    report = root / "out" / "report"
    html = (report / "report.html").read_text()
    assert "data.js" in html and "gallery.js" in html  # the gallery of every image (browser check below)
    md = (report / "report.md").read_text()
    sources = re.findall(r'!\[(?:image|GT|prediction)\]\(([^)]+)\)', md)
    assert len(sources) == 3 * 3  # samples=3: image, GT, prediction each
    assert all((report / src).is_file() for src in sources)
    assert "<svg" in html and "red circle" in html  # inline per-class IoU chart
    # The colour legend: every class, in the colours the sheet uses (blue triangle drawn blue).
    assert re.search(r'background:#2846dc"></span></td><td>blue triangle<', html)
    assert "unlabeled / ignore" in html
    assert "| blue triangle | `#2846dc` |" in md and (report / "images" / "legend.png").is_file()
    record = json.loads((report / "report.json").read_text())
    assert record["verdict"] == "PASS" and len(record["samples"]) == 3


def test_report_page_opens_in_a_browser_with_every_image(regress_run, browser):
    root, _ = regress_run
    opened = open_page(browser, root / "out" / "report" / "report.html")
    assert opened.page.locator(".card").count() == 4
    assert broken_images(opened.page) == [] and opened.problems == []


def test_missing_baseline_is_a_config_error(tmp_path, capsys):
    assert regress([f"baseline={tmp_path / 'none.json'}", "input.shards=x", f"output.dir={tmp_path}"]) == 2
    assert "--update-baseline" in capsys.readouterr().err
    assert regress(["input.shards=x", f"output.dir={tmp_path}"]) == 2
