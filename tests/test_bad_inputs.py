"""Bad samples and bad shards, all in one label run, checked case by case with `nerve verify`.

One shard holds every kind of bad (or merely unusual) sample; other shards are truncated, empty,
missing or not a tar. Each sample must end as exactly one row whose reason names its problem,
the rest labeled; each bad shard must be reported and the job must not claim success.
"""
import json
import os
import re
import shutil

import numpy as np
import pytest

from jobs.cli import main as nerve
from jobs.config import load_config
from nerve_core.models.tiny import dotlist
from pipeline.config import LabelJobConfig
from pipeline.output.pngcodec import decode_index_png as decode_png
from pipeline.output.pngcodec import encode_index_png as encode_label_png
from pipeline.run import driver
from pipeline.run.driver import run_label_job
from pipeline.run.preflight import check_job
from pipeline.score.verify import verify_output
from pipeline.sources.synthetic import encode_image
from tests import faults as F
from tests.shards import make_demo_shards, write_raw_tar

LIMIT = 4_000_000  # input.max_image_pixels of the run
PIC = F.png(F.picture())  # 48 x 40
# key -> (members, expected reason or "ok", expected mask (H, W) for ok rows)
BAD_SAMPLES = {
    "corrupt": ([("jpg", F.corrupt_jpeg())], "decode_image", None),
    "truncated_jpeg": ([("jpg", encode_image(F.picture(), "jpg")[:300])], "decode_image", None),
    "zero_bytes": ([("jpg", b"")], "empty_image", None),
    "no_image": ([("json", F.meta(image_id=5))], "missing_image", None),
    "one_pixel": ([("png", F.png(F.picture(1, 1)))], "ok", (1, 1)),
    "bomb": ([("png", F.png_header_only(100_000, 100_000))], "too_large", None),
    "over_limit": ([("png", F.png(F.picture(2100, 2000)))], "too_large", None),
    "huge_allowed": ([("png", F.png(F.picture(2000, 1500)))], "ok", (1500, 2000)),
    "cmyk": ([("jpg", F.cmyk_jpeg())], "ok", (40, 48)),
    "la": ([("png", F.la_png())], "ok", (40, 48)),
    "palette": ([("png", F.palette_png_with_transparency())], "ok", (40, 48)),
    "grey16": ([("png", F.grey16_png())], "ok", (40, 48)),
    "exif_rotated": ([("jpg", F.exif_rotated_jpeg(48, 40, 6))], "ok", (48, 40)),
    "gt_size": ([("png", PIC), ("seg.png", encode_label_png(F.seg(20, 20)))], "seg_size", None),
    "gt_values": ([("png", PIC), ("seg.png", encode_label_png(F.seg(40, 48, (0, 7, 2))))], "seg_values", None),
    "gt16": ([("png", PIC), ("seg.png", F.seg16_png(F.seg(40, 48, (0, 1, 2))))], "ok", (40, 48)),
    "gt16_big": ([("png", PIC), ("seg.png", F.seg16_png(F.seg(40, 48, (0, 1000))))], "decode_seg", None),
    "bad_json": ([("png", PIC), ("json", b"{oops")], "bad_json", None),
    "unknown_label": ([("png", PIC), ("json", F.meta(image_id=9, labels=[99]))], "ok", (40, 48)),  # open mode
    "unicodé_キー": ([("png", PIC)], "ok", (40, 48)),
    "../../escape": ([("png", PIC)], "ok", (40, 48)),
    "sub/dir/deep": ([("png", PIC)], "ok", (40, 48)),
    "same_id_a": ([("png", PIC), ("json", F.meta(image_id=777))], "ok", (40, 48)),
    "same_id_b": ([("png", F.png(F.picture(30, 20))), ("json", F.meta(image_id=777))], "ok", (20, 30)),
    "shared": ([("png", PIC)], "ok", (40, 48)),  # also in good-000000
}


def _bad_shard_members():
    members = []
    for key, (files, _, _) in BAD_SAMPLES.items():
        members += [(f"{key}.{ext}", data) for ext, data in files]
    # Duplicates: written twice in a row, and twice with another sample between.
    members += [("dup.png", PIC), ("dup.seg.png", encode_label_png(F.seg(40, 48))),
                ("dup.png", F.png(F.picture(30, 20))), ("dup.seg.png", encode_label_png(F.seg(20, 30, (3, 4))))]
    members += [("dup2.png", PIC), ("between.png", PIC), ("dup2.png", PIC)]
    return members


@pytest.fixture(scope="module")
def bad_run(ray_session, tiny_models, tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")
    inputs = base / "in"
    inputs.mkdir()
    write_raw_tar(inputs / "bad-000000.tar", _bad_shard_members())
    write_raw_tar(inputs / "good-000000.tar", [("shared.png", PIC), ("other.png", PIC)])
    make_demo_shards(base / "demo", 4, per_shard=4, max_size=72)
    demo = (base / "demo" / "shard-000000.tar").read_bytes()
    (inputs / "trunc-000000.tar").write_bytes(F.cut_in_member(demo, 7))  # inside sample 2's 2nd member
    write_raw_tar(inputs / "empty-000000.tar", [])
    (inputs / "nottar-000000.tar").write_bytes(np.random.default_rng(0).bytes(5000))
    # A shard that vanishes after the job checked its inputs (a missing one is refused before Ray starts).
    write_raw_tar(inputs / "missing-000000.tar", [("gone.png", PIC)])
    shards = [inputs / f"{n}-000000.tar" for n in ("bad", "good", "trunc", "empty", "missing", "nottar")]
    out = base / "out"
    cfg = load_config(LabelJobConfig, [
        "dataset=demo", *dotlist(tiny_models), "engine.device=cpu", "engine.batch_size=4",
        f"input.shards=[{','.join(map(str, shards))}]", f"input.max_image_pixels={LIMIT}",
        f"output.dir={out}", "progress=false", "ray.num_actors=1", "ray.poll_s=0.1", "ray.max_retries=1"])
    def check_then_remove(*args):
        check_job(*args)
        (inputs / "missing-000000.tar").unlink()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(driver, "check_job", check_then_remove)
        files_before = _files(base)
        result = run_label_job(cfg)
    return {"result": result, "out": out, "shards": shards, "base": base, "files_before": files_before}


def _files(root):
    return {os.path.join(d, f) for d, _, names in os.walk(root) for f in names}


def test_every_bad_sample_is_one_row_with_its_reason(bad_run):
    rows = F.parquet_rows(bad_run["out"], "bad-000000")
    by_key = {}
    for row in rows:
        by_key.setdefault(row["key"], []).append(row)
    for key, (_, reason, shape) in BAD_SAMPLES.items():
        [row] = by_key.pop(key)
        got = row["status"] if row["status"] == "ok" else row["error"].split(":")[0]
        assert got == reason, (key, row["error"])
        if shape is not None:
            mask = decode_png(row["mask_png"])
            assert mask.shape == shape == (row["height"], row["width"]), key
    # Repeated keys: one row per occurrence, told apart by the occurrence index and image id.
    assert sorted((r["key"], r["occurrence"]) for k in ("dup", "dup2") for r in by_key.pop(k)) == [
        ("dup", 0), ("dup", 1), ("dup2", 0), ("dup2", 1)]
    assert decode_png(next(r for r in rows if r["key"] == "dup" and r["occurrence"] == 1)["mask_png"]).shape == (20, 30)
    assert [r["key"] for r in by_key.pop("between")] == ["between"] and not by_key
    assert len({r["image_id"] for r in rows if r["key"] in ("dup", "dup2")}) == 4
    stats = json.loads((bad_run["out"] / "shards" / "bad-000000.stats.json").read_text())
    reasons = [r for _, r, _ in BAD_SAMPLES.values() if r != "ok"]
    assert stats["errors_by_reason"] == {r: reasons.count(r) for r in set(reasons)}
    assert stats["ok"] == len(rows) - len(reasons) and stats["gt_images"] == 3 and not stats["partial"]


def test_rescoring_pairs_each_occurrence_with_its_own_ground_truth(bad_run, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(bad_run["out"], out)
    before = json.loads((out / "shards" / "bad-000000.stats.json").read_text())["confusion"]
    assert nerve(["score", f"output.dir={out}", f"input.shards={bad_run['shards'][0]}"]) == 0
    after = json.loads((out / "shards" / "bad-000000.stats.json").read_text())
    assert after["confusion"] == before and after["gt_images"] == 3


def test_bad_shards_are_reported_and_the_job_does_not_claim_success(bad_run):
    result, out = bad_run["result"], bad_run["out"]
    assert not result.ok
    assert sorted(result.not_done) == ["missing-000000", "nottar-000000", "trunc-000000"]
    failed = {f["shard"]: f for f in json.loads((out / "failed_shards.json").read_text())["failed"]}
    assert set(failed) == set(result.not_done) and all(f["attempts"] == 2 for f in failed.values())
    assert "FileNotFoundError" in failed["missing-000000"]["reason"]
    assert "ReadError" in failed["nottar-000000"]["reason"]
    assert failed["trunc-000000"]["partial"] and failed["trunc-000000"]["samples"] == 3
    trunc = json.loads((out / "shards" / "trunc-000000.stats.json").read_text())
    assert trunc["partial"] and (trunc["samples"], trunc["ok"]) == (3, 2) and "unreadable after 3" in trunc["read_error"]
    # The samples before the cut are labeled; the one the cut falls in is an error row of its own.
    rows = F.parquet_rows(out, "trunc-000000")
    assert [(r["key"], r["status"]) for r in rows] == [("demo000000", "ok"), ("demo000001", "ok"), ("demo000002", "error")]
    assert rows[2]["error"].startswith("truncated: the shard breaks inside this sample")
    empty = json.loads((out / "shards" / "empty-000000.stats.json").read_text())
    assert (empty["samples"], empty["partial"]) == (0, False)
    assert not (out / "shards" / "missing-000000.parquet").exists() and not (out / "shards" / "nottar-000000.parquet").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial_shards"] == ["trunc-000000"] and summary["num_shards"] == 4


def test_verify_accounts_for_every_case(bad_run, capsys):
    out, shards = bad_run["out"], bad_run["shards"]
    report = verify_output(str(out))
    bad_inputs = len(BAD_SAMPLES) + 5  # and dup x2, dup2 x2, between
    assert report.inputs == bad_inputs + 2 + 3 + 0  # bad, good, trunc (up to the cut), empty
    assert report.error_rows["truncated"] == 1
    assert report.ok_rows + sum(report.error_rows.values()) == report.inputs
    assert not (report.missing_keys or report.duplicated_keys or report.unexpected_keys
                or report.mask_problems or report.coco_problems)
    assert sorted(report.shards_not_done) == ["missing-000000", "nottar-000000", "trunc-000000"]
    assert [p.split(":")[0] for p in report.partial_shards] == ["trunc-000000"]
    assert sorted(u.split(":")[0] for u in report.unreadable_inputs) == sorted(report.shards_not_done)
    assert sorted(report.duplicate_input_keys) == [
        "bad-000000/dup (2 times in the shard)", "bad-000000/dup2 (2 times in the shard)",
        "shared (in shards bad-000000, good-000000)"]
    assert nerve(["verify", f"output.dir={out}"]) == 1
    # The shards that were readable are accounted for exactly once: verify passes on them alone.
    readable = ",".join(str(s) for s in shards if s.stem in ("bad-000000", "good-000000", "empty-000000"))
    assert nerve(["verify", f"output.dir={out}", f"input.shards=[{readable}]"]) == 0
    text = capsys.readouterr().out
    assert "OK:" in text and "too_large=2" in text and "duplicate input keys (3)" in text


def test_nothing_from_a_tar_names_a_file(bad_run):
    new = _files(bad_run["base"]) - bad_run["files_before"]
    shards = {s.stem for s in bad_run["shards"]}
    allowed = {f"{s}{ext}" for s in shards for ext in (".parquet", ".coco.json", ".stats.json")}
    for path in new:
        rel = os.path.relpath(path, bad_run["out"])
        assert not rel.startswith(".."), path
        assert rel in {"config.yaml", "summary.json", "failed_shards.json"} or re.fullmatch(r"index/part-\d{6}\.parquet", rel) or (
            rel.startswith("shards/") and rel[len("shards/"):] in allowed), rel
    assert not any("escape" in p or "deep" in p for p in _files(bad_run["base"].parent))


def test_verify_and_score_read_the_shards_at_once(bad_run, tmp_path, monkeypatch):
    # Every shard's read waits at a barrier for all the others': one shard after another, the barrier breaks.
    from pipeline.score import rescore, verify

    out = tmp_path / "copy"
    shutil.copytree(bad_run["out"], out)
    monkeypatch.setattr(verify, "_input_sizes", F.at_once(verify._input_sizes, len(bad_run["shards"])))
    assert verify.verify_output(str(out)).inputs > 0
    monkeypatch.setattr(rescore, "shard_ground_truth", F.at_once(rescore.shard_ground_truth, 3))  # bad, good, empty: done
    assert rescore.rescore(str(out)).summary["num_shards"] == 4
