"""The gallery's thumbnails: the image with its mask overlaid, beside its ground truth overlaid.

One small JPEG per card (longest side of each panel SIDE pixels), drawn on a thread pool (PIL's
decoders, resizes and encoders release the GIL) while the shard's tar is read in order, with a
progress bar. A thumbnail's file name is a digest of the run's fingerprint, the row (shard, key,
occurrence), its mask's bytes and the shard it was drawn from: a rerun finds the ones it already
made, and a relabeled run, whose masks or fingerprint differ, never shows stale ones. An image or
GT that does not decode leaves its panel out and its reason on the card (a note file beside the
thumbnail keeps the reason for reruns that reuse it).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from nerve_core.imageprep import to_rgb
from pipeline.output.outputdir import OutputDir
from pipeline.output.pngcodec import decode_index_png
from pipeline.output.run_record import RunRecord
from pipeline.read.prefetch import read_ahead
from pipeline.read.reader import IMAGE_EXTS, open_checked, raw_samples
from pipeline.report.cards import Card
from pipeline.report.palette import colorize
from pipeline.score.ground_truth import UnreadableGroundTruth, run_ground_truth

SIDE = 160  # longest side of each panel, in pixels
DRAWING = "1"  # part of every name: change it when the drawing changes, so old files are not reused
FOLDER = "thumbs"
_OVERLAY = 0.55  # weight of the mask's colours over the image
NOTE_SUFFIX = ".txt"  # beside a thumbnail whose image or GT panel is missing: why


@dataclass
class ThumbJob:
    """What the thumbnails of one run are drawn from."""

    out: OutputDir
    record: RunRecord  # its pixel limit and dataset settings: image and GT are drawn as the run read and scored them
    palette: list[int]
    sources: dict[str, str]  # shard -> its tar's URL (shards absent here get mask-only thumbnails)


def fit(size: tuple[int, int], side: int = SIDE) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is at most `side` (never enlarged)."""
    scale = min(1.0, side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _colours(labels: np.ndarray, size: tuple[int, int], palette: list[int]) -> Image.Image:
    """Class ids resized (nearest) to `size`, then coloured: resizing ids first is far cheaper."""
    small = np.asarray(Image.fromarray(labels, mode="L").resize(size, Image.NEAREST))
    return colorize(small, palette)


def _picture(data: bytes, size: tuple[int, int], max_pixels: int) -> Image.Image:
    """The image, EXIF-oriented RGB like the labeler saw it, at `size`. JPEGs are decoded at a
    reduced scale (draft), which is most of the speed of a gallery of photos."""
    with open_checked(data, max_pixels) as img:
        img.draft("RGB", size)
        img.load()
        return to_rgb(img).resize(size, Image.BILINEAR)


def draw(mask_png: bytes, image: bytes | None, seg: bytes | None, job: ThumbJob) -> tuple[bytes, str]:
    """(JPEG bytes, note): prediction over the image, and ground truth over the image when `seg` is
    given; the note says why the image or GT is missing from a thumbnail that should show it ("" if none).
    The labeler decoded both for an ok row, so a failure here means the shards changed since."""
    labels = decode_index_png(mask_png)
    size = fit((labels.shape[1], labels.shape[0]))
    panels, notes, picture = [_colours(labels, size, job.palette)], [], None
    if image is not None:
        try:
            picture = _picture(image, size, job.record.config.input.max_image_pixels)
        except Exception as exc:  # PIL raises many types for corrupt files
            notes.append(f"image: {type(exc).__name__}: {exc}")
    if seg is not None:
        try:
            gt = run_ground_truth(seg, job.record)
            if gt.shape == labels.shape:
                panels.append(_colours(gt, size, job.palette))
            else:
                notes.append(f"ground truth: {gt.shape[1]}x{gt.shape[0]}, mask {labels.shape[1]}x{labels.shape[0]}")
        except UnreadableGroundTruth as exc:
            notes.append(f"ground truth: {exc}")
    if picture is not None:
        panels = [Image.blend(picture, p, _OVERLAY) for p in panels]
    sheet = Image.new("RGB", (size[0] * len(panels) + 4 * (len(panels) - 1), size[1]), "white")
    for i, panel in enumerate(panels):
        sheet.paste(panel, (i * (size[0] + 4), 0))
    buf = io.BytesIO()
    sheet.save(buf, format="JPEG", quality=82)
    return buf.getvalue(), "; ".join(notes)


def thumb_name(job: ThumbJob, card: Card, mask_png: bytes) -> str:
    ident = json.dumps([DRAWING, job.record.digest, card.shard, card.key, card.occurrence, job.sources.get(card.shard, "")])
    digest = hashlib.sha256(ident.encode("utf-8") + hashlib.sha256(mask_png).digest()).hexdigest()[:20]
    return f"{digest[:2]}/{digest}.jpg"


def _image_and_seg(raw: dict) -> tuple[bytes | None, bytes | None]:
    image = next((raw[e] for e in IMAGE_EXTS if e in raw), None)
    return image, raw.get("seg.png")


def make_thumbnails(job: ThumbJob, cards: list[Card], folder: Path, workers: int | None = None,
                    progress: bool = True) -> dict[str, int]:
    """Set `card.thumb` for every card, drawing what is not there yet; remove thumbnails no card uses.
    Returns {"made": n, "reused": n}."""
    root = Path(folder) / FOLDER
    by_shard: dict[str, dict[tuple[str, int], Card]] = {}
    for card in cards:
        by_shard.setdefault(card.shard, {})[card.key, card.occurrence] = card
    workers = workers or os.cpu_count() or 1
    made = 0
    with tqdm(total=len(cards), desc="thumbnails", unit="img", disable=not progress) as bar, \
            ThreadPoolExecutor(workers, thread_name_prefix="thumb") as pool:
        pending: set = set()

        def submit(card: Card, mask_png: bytes, raw: dict | None) -> None:
            image, seg = _image_and_seg(raw) if raw is not None else (None, None)
            if len(pending) >= 4 * workers:  # bounded: decoded tars do not pile up in memory
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                pending.difference_update(done)
                for f in done:
                    f.result()
            pending.add(pool.submit(_write, card, root / card.thumb, mask_png, image, seg, job, bar))

        missing = read_ahead(lambda item: (item[0], _missing(job, *item, root, bar)), by_shard.items())
        for shard, todo in missing:  # the next shards' rows are read while this one's tar is
            made += len(todo)
            for raw in _samples(job.sources.get(shard)) if todo else ():
                item = todo.pop((raw["__key__"], raw.get("__occurrence__", 0)), None)
                if item is not None:
                    submit(*item, raw)
                if not todo:
                    break
            for card, mask_png in todo.values():  # not found in the tar (or no tar): the mask alone
                submit(card, mask_png, None)
        for f in pending:
            f.result()
    _remove_unused(root, {c.thumb for c in cards})
    return {"made": made, "reused": len(cards) - made}


def _missing(job: ThumbJob, shard: str, wanted: dict, root: Path, bar) -> dict[tuple[str, int], tuple[Card, bytes]]:
    """Name every wanted card's thumbnail from its mask; (key, occurrence) -> (card, mask) of those not drawn yet."""
    todo = {}
    for row in job.out.rows(shard, columns=["key", "occurrence", "mask_png"]):
        ident = (row["key"], row.get("occurrence") or 0)
        card = wanted.get(ident)
        if card is None or row["mask_png"] is None:
            continue
        card.thumb = thumb_name(job, card, row["mask_png"])
        if (root / card.thumb).is_file():
            note = (root / card.thumb).with_suffix(NOTE_SUFFIX)
            card.note = note.read_text(encoding="utf-8") if note.is_file() else ""
            bar.update(1)
        else:
            todo[ident] = (card, row["mask_png"])
    return todo


def _samples(url: str | None):
    """The tar's raw samples; an unreadable or vanished tar ends the listing (its cards get masks alone)."""
    if url is None:
        return
    try:
        yield from raw_samples(url)
    except Exception:
        return


def _write(card: Card, path: Path, mask_png: bytes, image, seg, job: ThumbJob, bar) -> None:
    data, card.note = draw(mask_png, image, seg, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    if card.note:  # before the JPEG: a thumbnail found on a rerun has its note with it
        _replace(path.with_suffix(NOTE_SUFFIX), card.note.encode("utf-8"))
    _replace(path, data)
    bar.update(1)


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)  # a rerun after an interruption never finds half a file under the final name


def _remove_unused(root: Path, used: set[str]) -> None:
    if not root.is_dir():
        return
    for path in root.glob("*/*"):
        if path.relative_to(root).with_suffix(".jpg").as_posix() not in used:  # a note goes with its JPEG
            path.unlink()
