"""Headless Chromium for the report tests: Playwright's Python package (PyPI) driving the system's
Chromium (Debian's `chromium`), so no browser is downloaded. `conftest.py` starts one per test module."""
from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageStat

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    """$NERVE_CHROMIUM, else the first Chromium on PATH."""
    return os.environ.get("NERVE_CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


@dataclass
class OpenedPage:
    page: object  # playwright Page
    problems: list[str] = field(default_factory=list)  # console errors, script errors, failed loads


def open_page(browser, path) -> OpenedPage:
    """Open a local file as a user would (file://), recording every console error, uncaught script
    error and failed request."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    opened = OpenedPage(page)
    page.on("console", lambda m: opened.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.problems.append(f"script error: {e}"))
    page.on("requestfailed", lambda r: opened.problems.append(f"failed to load {r.url}: {r.failure}"))
    page.goto(Path(path).resolve().as_uri())
    page.wait_for_load_state("load")
    return opened


def broken_images(page) -> list[str]:
    """Sources of the page's images that did not load, after making the lazy ones load too."""
    page.evaluate("document.querySelectorAll('img').forEach((i) => { i.loading = 'eager'; })")
    page.wait_for_function("Array.from(document.images).every((i) => i.complete)", timeout=20_000)
    return page.evaluate("Array.from(document.images).filter((i) => i.naturalWidth === 0).map((i) => i.src)")


def is_blank(png: bytes) -> bool:
    """A screenshot of one flat colour (or nearly): nothing was drawn."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    return max(ImageStat.Stat(img).stddev) < 5 or len(img.getcolors(1 << 24)) < 16
