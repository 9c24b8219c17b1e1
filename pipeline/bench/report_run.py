"""What `nerve report` costs on a large run (docs/benchmarks.md, "Report").

    python -m pipeline.bench.report_run make DIR [IMAGES]   # DIR/shards and the run DIR/label
    nerve report output.dir=DIR/label                       # timed
    python -m pipeline.bench.report_run weigh DIR/label/report/index.html

`make` writes real-photo shards (500x375 JPEG photographs with GT, 1000 per shard) and labels them
with `nerve label`'s own job and the benchmark's stand-in engine: no models, but real reading,
decoding, writers, per-image scores and Ray, so the output directory is a real one. `weigh` opens
the report in headless Chromium (Playwright's package and the system's Chromium, as the tests do)
and sums the bytes of every file the first page loads once all its images have loaded.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

from omegaconf import OmegaConf

RATE = 2000.0  # stand-in images per second: far above the host ceiling, so the host path sets the pace


def make(root: Path, images: int) -> dict:
    from pipeline.bench.pipeline import PipelineBenchConfig, _engine_config, time_label_job, write_bench_shards
    from pipeline.bench.standin import standin_ray

    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PipelineBenchConfig), {
        "models": "standin", "images": images, "per_shard": 1000, "standin": {"images_per_second": RATE}}))
    shards = write_bench_shards(cfg, root / "shards", num_classes=21)
    with standin_ray(cfg.ray):
        return time_label_job(cfg, _engine_config(cfg, RATE), shards, root / "label")


def weigh(page_path: Path) -> dict:
    """{"files", "thumbnails", "bytes", "index", "scripts", "thumbnail_bytes", "cards"} of the first page."""
    from playwright.sync_api import sync_playwright

    from tests.browser import broken_images, chromium_path

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        loaded: list[str] = []
        page.on("requestfinished", lambda r: loaded.append(r.url))
        page.goto(page_path.resolve().as_uri())
        if broken_images(page):
            raise RuntimeError("some images of the page did not load")
        cards = page.locator(".card").count()
        browser.close()
    sizes = {f: os.path.getsize(f) for f in {unquote(urlparse(u).path) for u in loaded if u.startswith("file:")}}
    thumbs = [f for f in sizes if "/thumbs/" in f]
    return {"files": len(sizes), "thumbnails": len(thumbs), "bytes": sum(sizes.values()),
            "index": sizes.get(str(page_path.resolve()), 0), "scripts": sum(v for f, v in sizes.items() if f.endswith(".js")),
            "thumbnail_bytes": sum(sizes[f] for f in thumbs), "cards": cards}


if __name__ == "__main__":
    what, path = sys.argv[1], Path(sys.argv[2])
    print(make(path, int(sys.argv[3]) if len(sys.argv) > 3 else 10_000) if what == "make" else weigh(path))
