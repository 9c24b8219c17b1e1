"""Soak (slow): a few thousand generated samples with random faults injected — bad samples, repeated
keys, truncated and unreadable shards, actors SIGKILLed mid-run, an output store (S3) that refuses
and drops requests — then a resumed rerun; the books must balance exactly, sample by sample, with
`nerve verify` as the judge.

Its size is a parameter: NERVE_SOAK_SHARDS shards of 100 samples (default 24; 1000 gives the
100,000-sample soak of docs/benchmarks.md: `NERVE_SOAK_SHARDS=1000 python -m pytest -m slow -s
tests/test_faults_soak.py`, which prints its time and the driver's peak memory). What is soaked is
the pipeline's bookkeeping, so the engine is the bench's stand-in (pipeline/bench/standin.py: a
label map per image at a set rate, every other stage real): the tiny models' 30 ms of CPU per
image would make the 100,000 samples hours of this machine."""
import os
import signal
import time
from collections import Counter

import numpy as np
import pytest

from jobs.config import load_config
from pipeline.bench.driver_case import peak_rss_mb
from pipeline.bench.standin import standin_name
from pipeline.config import LabelJobConfig
from pipeline.output.outputdir import OutputDir
from pipeline.output.pngcodec import encode_index_png as encode_label_png
from pipeline.run.driver import run_label_job
from pipeline.score.verify import verify_output
from pipeline.sources.synthetic import demo_image, encode_image
from tests import faults as F
from tests.shards import write_raw_tar

NUM_SHARDS, PER_SHARD = int(os.environ.get("NERVE_SOAK_SHARDS", "24")), 100
KILLS = max(3, NUM_SHARDS // 100)  # labelers SIGKILLed in the first run, at most
REFUSE_RATE, DROP_RATE = 0.02, 0.01  # of the output store's requests: answered 503 SlowDown; done, never answered

# reason -> members of a sample that has it
FAULTS = {
    "decode_image": lambda rng: [("jpg", F.corrupt_jpeg())],
    "empty_image": lambda rng: [("png", b"")],
    "missing_image": lambda rng: [("json", F.meta(image_id=int(rng.integers(1 << 40))))],
    "bad_json": lambda rng: [("png", F.png(F.picture(20, 16))), ("json", b"[1, 2")],
    "seg_size": lambda rng: [("png", F.png(F.picture(20, 16))), ("seg.png", encode_label_png(F.seg(8, 8)))],
    "seg_values": lambda rng: [("png", F.png(F.picture(20, 16))), ("seg.png", encode_label_png(F.seg(16, 20, (0, 9))))],
    "too_large": lambda rng: [("png", F.png_header_only(50_000, 50_000))],
}


def _good(rng, index):
    image, seg = demo_image(int(rng.integers(1 << 30)), index, min_size=24, max_size=40)
    return [("jpg" if index % 2 else "png", encode_image(image, "jpg" if index % 2 else "png")),
            ("seg.png", encode_label_png(seg))]


def _write_inputs(folder, rng):
    """Shards with ~8% bad samples and some repeated keys; returns the expected error counts and
    the shards that will break (one cut inside a sample, one not a tar at all)."""
    expected, broken = Counter(), {}
    for s in range(NUM_SHARDS):
        members, reasons, starts = [], [], []
        for i in range(PER_SHARD):
            key = f"k{s:02d}_{i:03d}" if rng.random() > 0.02 else f"k{s:02d}_000"  # some repeated keys
            if rng.random() < 0.08:
                reason = list(FAULTS)[int(rng.integers(len(FAULTS)))]
                files = FAULTS[reason](rng)
            else:
                reason, files = None, _good(rng, i)
            starts.append(len(members))
            members += [(f"{key}.{ext}", data) for ext, data in files]
            reasons.append(reason)
        path = folder / f"soak-{s:06d}.tar"
        write_raw_tar(path, members)
        if s == 5:  # cut inside sample 40's first member: 0..39 are whole, 40 is a truncated row
            path.write_bytes(F.cut_in_member(path.read_bytes(), starts[40]))
            reasons, broken[path.stem] = reasons[:40] + ["truncated"], "partial"
        elif s == 9:
            path.write_bytes(rng.bytes(4096))
            reasons, broken[path.stem] = [], "unreadable"
        expected.update(r for r in reasons if r)
    return expected, broken


@pytest.fixture
def faulty_store(s3_store):
    """s3://nerve-soak, whose requests are refused and dropped at the soak's rates while the test runs."""
    import fsspec

    fsspec.filesystem("s3").mkdir("nerve-soak")
    s3_store.requests.clear(), s3_store.faults.clear()  # this test's, not the session's
    s3_store.refuse_rate, s3_store.drop_rate = REFUSE_RATE, DROP_RATE
    yield s3_store
    s3_store.refuse_rate = s3_store.drop_rate = 0.0


@pytest.mark.slow
@pytest.mark.timeout(max(600, 5 * NUM_SHARDS))  # seconds
def test_soak_random_faults_balance_the_books(ray_session, tmp_path, faulty_store):
    rng = np.random.default_rng(1234)
    inputs, out = tmp_path / "in", "s3://nerve-soak/out"
    inputs.mkdir()
    expected, broken = _write_inputs(inputs, rng)
    kills = []

    def chaos(event, **data):  # SIGKILL a labeler mid-shard now and then
        if event == "progress" and len(kills) < KILLS and rng.random() < 0.05:
            pid = ray_session.get(data["actor"].info.remote())["pid"]
            os.kill(pid, signal.SIGKILL)
            kills.append((data["shard"], pid))

    cfg = load_config(LabelJobConfig, [
        "dataset=demo", f"engine.name={standin_name(2000)}", "engine.device=cpu", "engine.batch_size=16",
        f"input.shards={inputs}", f"output.dir={out}", "progress=false", "ray.num_actors=2", "ray.poll_s=0.2",
        "ray.max_retries=4"])
    start = time.perf_counter()
    first = run_label_job(cfg, on_event=chaos)
    second = run_label_job(cfg)  # the same job again: resumes, redoes only what is not done
    seconds = time.perf_counter() - start
    assert not first.ok and not second.ok
    assert sorted(second.not_done) == sorted(broken) and second.skipped == NUM_SHARDS - len(broken)

    report = verify_output(out)
    print(f"\nsoak: {report.inputs} inputs, {report.ok_rows} ok, {dict(report.error_rows)}, kills {len(kills)}, "
          f"retries {first.retries}+{second.retries}, store faults {dict(faulty_store.faults)} of "
          f"{sum(faulty_store.requests.values())} requests; both runs {seconds:.0f} s, peak RSS of the test "
          f"process (the driver, with the moto server and the proxy) {peak_rss_mb():.0f} MB")
    assert len(kills) > 0 and faulty_store.faults["refused"] > 0 and faulty_store.faults["dropped"] > 0
    assert report.error_rows == expected
    assert report.ok_rows + sum(report.error_rows.values()) == report.inputs
    assert not (report.missing_keys or report.duplicated_keys or report.unexpected_keys
                or report.mask_problems or report.coco_problems)
    assert sorted(report.shards_not_done) == sorted(broken)
    assert [p.split(":")[0] for p in report.partial_shards] == [s for s, k in broken.items() if k == "partial"]
    summary = OutputDir(out).summary()
    assert summary["num_images"] == report.inputs and summary["num_errors"] == sum(expected.values())
