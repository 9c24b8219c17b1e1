"""Fault-test helpers: bad sample bytes, damaged tars, a shard served through a FIFO that stalls,
and process checks. Every builder returns plain bytes so that tests write raw tars with exactly
the members they mean (the shard writer would refuse most of them)."""
from __future__ import annotations

import io
import json
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.sources.synthetic import demo_image, encode_image


def picture(width: int = 48, height: int = 40, seed: int = 0) -> Image.Image:
    """A small demo picture (shapes on a background), cropped or tiled to (width, height)."""
    image, _ = demo_image(seed, 0, min_size=64, max_size=64)
    if width > 64 or height > 64:
        return image.resize((width, height), Image.NEAREST)
    return image.crop((0, 0, width, height))


def parquet_rows(out: Path, shard: str) -> list[dict]:
    """Every row of one shard's Parquet file in an output directory, in order."""
    import pyarrow.parquet as pq

    return pq.read_table(out / "shards" / f"{shard}.parquet").to_pylist()


def png(image: Image.Image) -> bytes:
    return _save(image, "PNG")


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def corrupt_jpeg() -> bytes:
    """A real JPEG header followed by garbage where the scan data should be."""
    data = encode_image(picture(), "jpg")
    rng = np.random.default_rng(1)
    return data[:400] + rng.integers(0, 256, len(data) - 400, dtype=np.uint8).tobytes()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header announces width x height 8-bit greyscale pixels but holds one tiny IDAT:
    a decompression bomb's shape, harmless unless someone decodes it."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def cmyk_jpeg() -> bytes:
    return _save(picture().convert("CMYK"), "JPEG", quality=95)


def la_png() -> bytes:
    return _save(picture().convert("LA"), "PNG")


def palette_png_with_transparency() -> bytes:
    image = picture().convert("P", palette=Image.ADAPTIVE, colors=16)
    return _save(image, "PNG", transparency=0)


def grey16_png() -> bytes:
    arr = (np.asarray(picture().convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    return _save(Image.fromarray(arr), "PNG")


def exif_rotated_jpeg(width: int = 48, height: int = 40, orientation: int = 6) -> bytes:
    """Stored width x height; orientation 6 or 8 displays it as height x width."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(picture(width, height), "JPEG", exif=exif.tobytes(), quality=95)


def seg16_png(seg: np.ndarray) -> bytes:
    """A 16-bit greyscale PNG of class ids."""
    return _save(Image.fromarray(seg.astype(np.uint16)), "PNG")


def seg(height: int, width: int, values=(0, 1, 2)) -> np.ndarray:
    """A GT map of horizontal bands of `values` with an ignore (255) border row."""
    out = np.zeros((height, width), dtype=np.uint16 if max(values) > 255 else np.uint8)
    for i, v in enumerate(values):
        out[i * height // len(values):(i + 1) * height // len(values)] = v
    out[0] = 255
    return out


def meta(**fields) -> bytes:
    return json.dumps(fields).encode("utf-8")


def cut_in_member(tar_bytes: bytes, member_index: int) -> bytes:
    """The tar cut in the middle of the data of its `member_index`-th member."""
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        member = tar.getmembers()[member_index]
    return tar_bytes[: member.offset_data + member.size // 2]


def cut_before_member(tar_bytes: bytes, member_index: int) -> bytes:
    """The tar cut just before the header of its `member_index`-th member: an intact, shorter tar."""
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return tar_bytes[: tar.getmembers()[member_index].offset]


class StallingFifo:
    """Serve a shard through a named pipe: the first reader gets `fraction` of it and then waits
    until `release()` (so whoever reads it is certainly mid-shard); later readers get all of it."""

    def __init__(self, path, data: bytes, fraction: float = 0.6):
        self.path, self.data, self.fraction = path, data, fraction
        self.released = threading.Event()
        os.mkfifo(path)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with open(self.path, "wb", buffering=0) as f:
            f.write(self.data[: int(len(self.data) * self.fraction)])
            self.released.wait(timeout=300)
        with open(self.path, "wb", buffering=0) as f:
            f.write(self.data)

    def release(self) -> None:
        self.released.set()


def wait_until_gone(pid: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still alive after {timeout} s")


def in_process_labeler(tiny_models: dict, out_dir, *overrides: str):
    """A Labeler in this process (no actor), built from a demo job config exactly as the driver
    builds its actors': for tests that reach into the engine it runs."""
    from jobs.config import load_config
    from nerve_core.models.tiny import dotlist
    from pipeline.config import LabelJobConfig
    from pipeline.job import label_job
    from pipeline.run.actors import actor_job
    from pipeline.run.driver import job_description
    from pipeline.run.labeler import Labeler

    cfg = label_job(load_config(LabelJobConfig, ["dataset=demo", *dotlist(tiny_models), "engine.device=cpu",
                                                 f"output.dir={out_dir}", "ray.decode_threads=1", *overrides]))
    _, vocab, fingerprint = job_description(cfg)
    return Labeler(actor_job(cfg, vocab, fingerprint, "cpu"))


def two_node_job(shards: str, out: str, images_per_second: float) -> dict:
    """Label `shards` with the stand-in engine at `images_per_second` on a fresh two-node local Ray
    cluster (one CPU each, one labeler on each node) and remove the second node while its labeler
    is mid-shard. Meant for a subprocess: the test session already has its own Ray."""
    import ray
    from ray.cluster_utils import Cluster

    from jobs.config import load_config
    from pipeline.bench.standin import standin_name
    from pipeline.config import LabelJobConfig
    from pipeline.output.outputdir import OutputDir
    from pipeline.run.driver import run_label_job

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        worker = cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        cfg = load_config(LabelJobConfig, [
            "dataset=demo", f"engine.name={standin_name(images_per_second)}", "engine.device=cpu", "engine.batch_size=1",
            f"input.shards={shards}", f"output.dir={out}", "progress=false", "ray.num_actors=2", "ray.cpus_per_actor=1", "ray.poll_s=0.1"])
        removed, again = {}, {"retry": [], "requeue": []}

        def remove_worker_node(event, **data):
            if event in again:
                again[event].append(data["shard"])
            if event == "progress" and not removed:
                info = ray.get(data["actor"].info.remote())
                if info["node_id"] == worker.node_id:
                    removed.update(shard=data["shard"], images=data["images"])
                    cluster.remove_node(worker)

        result = run_label_job(cfg, on_event=remove_worker_node)
        stats = OutputDir(out).read_stats(sorted(result.done))
        return {"removed": removed, "ok": result.ok, **again, "failed": result.failed,
                "done_on": {s: st.actor["node_id"] for s, st in stats.items()},
                "head": ray.get_runtime_context().get_node_id()}
    finally:
        ray.shutdown()
        cluster.shutdown()


def labeling_peak_growth(engine_overrides: dict, sizes: list[tuple[int, int]]) -> list[int]:
    """Peak RSS growth (bytes) of the per-image labeling path, for images of `sizes` (W, H) in
    increasing order, in this process: decode, engine prepare + run, Parquet/COCO encoding and
    confusion against a GT of the same size. Meant for a fresh subprocess (ru_maxrss only rises)."""
    import resource

    from omegaconf import OmegaConf

    from configs import classes_path
    from nerve_core.config import EngineConfig
    from nerve_core.engine import build_engine
    from nerve_core.vocab import Vocabulary
    from pipeline.output.writers import ShardResult
    from pipeline.read.reader import allow_pixels, decode_sample
    from pipeline.score.scoring import confusion_matrix

    cfg = OmegaConf.merge(OmegaConf.structured(EngineConfig), engine_overrides, {"device": "cpu"})
    engine, vocab = build_engine(cfg), Vocabulary.from_file(classes_path("demo"))
    engine.run([engine.prepare(picture())], vocab)  # first-call allocations are not the image's
    allow_pixels(10**9)
    def peak() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

    base, growth = peak(), []
    for width, height in sizes:
        data = png(picture(width, height))
        sample = decode_sample({"__key__": "big", "png": data}, max_pixels=10**9)
        prepared = engine.prepare(sample.image)
        sample.image = None  # as the labeler does once the engine input exists
        seg = engine.run([prepared], vocab)[0]
        ShardResult("s", "f").add_ok("big", 1, seg.labels, None)
        confusion_matrix(seg.labels, np.zeros((height, width), np.uint8), len(vocab))
        del data, sample, prepared, seg
        growth.append(peak() - base)
    return growth


def at_once(read, parties: int, timeout_s: float = 10.0):
    """`read`, made to wait at a barrier until `parties` calls are under way: readers that read one
    shard after another break it (threading.BrokenBarrierError)."""
    barrier = threading.Barrier(parties, timeout=timeout_s)

    def wrapped(*args, **kwargs):
        barrier.wait()
        return read(*args, **kwargs)
    return wrapped
