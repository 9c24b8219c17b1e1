"""Bad inputs that need a run (or a check) of their own: the pixel limit, WSSS image labels, huge
allowed images, and a tar cut exactly between two samples."""
import json
import os

from jobs.config import load_config
from nerve_core.models.tiny import dotlist
from pipeline.config import LabelJobConfig
from pipeline.read.reader import decode_sample
from pipeline.run.driver import run_label_job
from pipeline.score.verify import verify_output
from tests import faults as F
from tests.faults import in_process_labeler
from tests.shards import make_demo_shards, write_raw_tar

PIC = F.png(F.picture())  # 48 x 40


def test_pixel_limit_is_checked_before_decoding_and_configurable():
    big = F.png(F.picture(300, 200))
    assert decode_sample({"__key__": "k", "png": big}, max_pixels=60_000).ok
    refused = decode_sample({"__key__": "k", "png": big}, max_pixels=59_999)
    assert refused.error == "too_large: 300x200 = 60000 pixels > limit 59999"
    # A header announcing 20000 x 10000 (over PIL's own guard) with almost no data: refused by the
    # header alone (decoding it would fail differently); a limit above PIL's guard lets it through.
    header_only = F.png_header_only(20_000, 10_000)
    assert decode_sample({"__key__": "k", "png": header_only}, max_pixels=2 * 10**8 - 1).error.startswith("too_large")
    from PIL import Image

    from pipeline.read.reader import allow_pixels

    saved = Image.MAX_IMAGE_PIXELS
    try:
        allow_pixels(2 * 10**8)
        allowed = decode_sample({"__key__": "k", "png": header_only}, max_pixels=2 * 10**8)
        assert allowed.error.startswith("decode_image")  # got past the check, then the data is missing
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    gt = decode_sample({"__key__": "k", "png": big, "seg.png": F.png_header_only(3000, 3000)}, max_pixels=60_000)
    assert gt.error.startswith("decode_seg: ImageTooLarge")


def test_wsss_image_labels_naming_unknown_classes(ray_session, tiny_models, tmp_path):
    write_raw_tar(tmp_path / "w-000000.tar", [
        ("fine.png", PIC), ("fine.json", F.meta(labels=[1, 2])),
        ("unknown.png", PIC), ("unknown.json", F.meta(labels=[1, 99])),
        ("named.png", PIC), ("named.json", F.meta(labels=["cat"])),
        ("boolean.png", PIC), ("boolean.json", F.meta(labels=[True])),
        ("scalar.png", PIC), ("scalar.json", F.meta(labels=3)),
        ("none.png", PIC),
    ])
    labeler = in_process_labeler(tiny_models, tmp_path / "out", "engine.mode=wsss")
    stats = labeler.label_shard(str(tmp_path / "w-000000.tar"))
    rows = {r["key"]: r for r in F.parquet_rows(tmp_path / "out", "w-000000")}
    assert rows["fine"]["status"] == "ok" and set(rows["fine"]["classes"]) <= {0, 1, 2}
    for key in ("unknown", "named", "boolean", "scalar"):
        assert rows[key]["error"].startswith("bad_image_labels"), key
    assert rows["unknown"]["error"] == "bad_image_labels: [99] are not class ids"
    assert rows["none"]["error"].startswith("no_image_labels")
    assert stats.errors_by_reason == {"bad_image_labels": 4, "no_image_labels": 1}


def test_wsss_image_labels_follow_reduce_zero_label(ray_session, tiny_models, tmp_path):
    """Shards keep the dataset's stored ids (ADE 1..150, Context 1..59): where the preset shifts the
    GT down by one, the json labels are shifted with it, so that they still name the GT's classes."""
    write_raw_tar(tmp_path / "z-000000.tar", [
        ("top.png", PIC), ("top.json", F.meta(labels=[0, 4, 5])),  # 5 classes: stored 5 is class 4
        ("over.png", PIC), ("over.json", F.meta(labels=[6])),
    ])
    labeler = in_process_labeler(tiny_models, tmp_path / "out", "engine.mode=wsss", "dataset.reduce_zero_label=true")
    stats = labeler.label_shard(str(tmp_path / "z-000000.tar"))
    rows = {r["key"]: r for r in F.parquet_rows(tmp_path / "out", "z-000000")}
    assert rows["top"]["status"] == "ok" and set(rows["top"]["classes"]) <= {0, 3, 4}
    assert rows["over"]["error"] == "bad_image_labels: [5] are not class ids"
    assert stats.errors_by_reason == {"bad_image_labels": 1}


def test_huge_allowed_images_cost_a_few_bytes_per_pixel(tiny_models):
    """Memory grows with the image by its decoded pixels and label map only: no full-size float
    score tensor (5 classes x 4 bytes = 20 bytes a pixel alone) is ever made."""
    import subprocess
    import sys

    sizes = [(3000, 2000), (6000, 4000)]
    code = ("import json; from tests.faults import labeling_peak_growth; "
            f"print('RESULT', json.dumps(labeling_peak_growth({tiny_models!r}, {sizes!r})))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], check=False, cwd=root, capture_output=True, text=True, timeout=300)
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    assert done.returncode == 0 and line, done.stderr[-3000:]
    small, big = json.loads(line[-1][len("RESULT "):])
    per_pixel = (big - small) / (6000 * 4000 - 3000 * 2000)
    print(f"\nlabeling a 24 Mpx image: peak +{big / 2**20:.0f} MiB, {per_pixel:.1f} bytes per extra pixel")
    assert 0 < per_pixel < 12


def test_a_tar_cut_between_two_samples_is_caught_by_its_manifest(ray_session, tiny_models, tmp_path):
    """Cut exactly before a sample's first header, a tar reads as a shorter, intact shard; only the
    count in manifest.json can tell. The shard must not pass as done, and verify must say why."""
    import io
    import tarfile

    make_demo_shards(tmp_path / "in", 4, per_shard=4, min_size=32, max_size=48)  # manifest.json: 4 samples
    tar_path = tmp_path / "in" / "shard-000000.tar"
    data = tar_path.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        keys = [m.name.split(".")[0] for m in tar.getmembers()]
    tar_path.write_bytes(F.cut_before_member(data, keys.index(sorted(set(keys))[3])))
    out = tmp_path / "out"
    cfg = load_config(LabelJobConfig, [
        "dataset=demo", *dotlist(tiny_models), "engine.device=cpu", f"input.shards=[{tar_path}]",
        f"output.dir={out}", "progress=false", "ray.num_actors=1", "ray.poll_s=0.1", "ray.max_retries=0"])
    result = run_label_job(cfg)
    assert not result.ok and result.not_done == ["shard-000000"]
    stats = json.loads((out / "shards" / "shard-000000.stats.json").read_text())
    assert stats["partial"] and (stats["samples"], stats["expected_samples"]) == (3, 4)
    assert "manifest.json lists 4 samples" in stats["read_error"]
    assert [r["status"] for r in F.parquet_rows(out, "shard-000000")] == ["ok"] * 3
    report = verify_output(str(out))
    assert report.short_shards == ["shard-000000: 3 samples in the tar, 4 in manifest.json"] and not report.ok
