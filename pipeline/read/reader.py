"""Read one WebDataset shard into decoded samples; undecodable samples become error records.

The tar is read in one pass, in order, no resampling, with webdataset's naming rules; iterating
and grouping are ours so that a key seen twice (contiguous or not) makes two samples told apart by
their occurrence index instead of an exception that would end the shard, and so that the sample a
truncation falls in is still seen (as a `truncated` error) rather than silently dropped. Decoding is ours because
the contract is strict: images get their EXIF orientation applied and become RGB, `seg.png` is
read as raw class indices (never through a palette or RGB conversion), `json` is metadata. Image
sizes are checked against the pixel limit from the header, before any pixel is decoded. A bad
sample never stops the shard; a broken tar stops it after the samples that could be read, and the
caller records that. Nothing read from a tar ever names a file: keys are data only.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from fsspec.implementations.local import LocalFileSystem
from PIL import Image
from webdataset.tariterators import base_plus_ext

from nerve_core.imageprep import RGBImage, image_hw, to_rgb
from pipeline.output.pngcodec import index_array
from pipeline.read.jpeg import plain_jpeg_rgb
from pipeline.reasons import (
    BAD_JSON,
    DECODE_IMAGE,
    DECODE_SEG,
    EMPTY_IMAGE,
    MISSING_IMAGE,
    SEG_SIZE,
    SEG_VALUES,
    TOO_LARGE,
    TRUNCATED,
)
from pipeline.storage import filesystem

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
# PIL's own decompression-bomb threshold (it warns above it and refuses above twice it).
DEFAULT_MAX_PIXELS = 89_478_485


class ImageTooLarge(ValueError):
    """The header announces more pixels than the job allows; nothing was decoded."""


@dataclass
class Sample:
    key: str
    image_id: int
    occurrence: int = 0  # how many earlier samples of the shard had this key
    image: RGBImage | None = None  # RGB, EXIF orientation applied: an (H, W, 3) array for plain JPEGs, else PIL
    gt: np.ndarray | None = None  # (H, W) uint8 class ids, 255 = ignore
    meta: dict = field(default_factory=dict)
    error: str | None = None  # "reason: detail" when the sample could not be decoded

    @property
    def ok(self) -> bool:
        return self.error is None


def fallback_image_id(key: str, occurrence: int = 0) -> int:
    """A stable non-negative int64 id for samples whose json carries none (a repeated key's later
    occurrences get ids of their own, so their COCO results stay apart)."""
    name = key if occurrence == 0 else f"{key}\x00{occurrence}"
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big") >> 1


class MemberCut(Exception):
    """The tar broke inside the data of member `name` (its header had been read)."""

    def __init__(self, name: str, cause: BaseException):
        super().__init__(f"{type(cause).__name__}: {cause} (inside member {name!r})")
        self.name = name


def tar_members(stream) -> Iterator[dict]:
    """Regular files of a tar stream as {"fname", "data"}, in order (webdataset's reading rules:
    other entries and `__*__` metadata are skipped). A member whose data is cut raises MemberCut,
    so that the caller knows which sample the damage is in."""
    meta = re.compile(r"__[^/]*__($|/)")
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for info in tar:
            if not info.isreg() or meta.match(info.name):
                continue
            try:
                data = tar.extractfile(info).read()
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise MemberCut(info.name, exc) from exc
            yield {"fname": info.name, "data": data}


def _new_sample(key: str, seen: Counter) -> dict:
    sample = {"__key__": key, "__occurrence__": seen[key]}
    seen[key] += 1
    return sample


def starts_sample(current: dict | None, key: str, ext: str) -> bool:
    """Whether member `key.ext` begins a new sample after `current` (the sample being grouped).

    It does where the key changes, where an extension repeats, and where a second image arrives:
    two consecutive samples with one key (`k.png k.seg.png` then `k.jpg k.seg.png`) stay two
    samples, each with its own image. A member that repeats nothing (`k.json` after `k.png`) joins
    the current sample.
    """
    if current is None or key != current["__key__"] or ext in current:
        return True
    return ext in IMAGE_EXTS and any(e in current for e in IMAGE_EXTS)


def group_members(files: Iterator[dict]) -> Iterator[dict]:
    """Tar members {"fname", "data"} -> samples {"__key__", "__occurrence__", ext: bytes, ...}.

    Samples are split by `starts_sample`; each sample's occurrence counts the earlier samples of
    the shard with its key. Where the tar breaks, the sample the damage is in is still yielded,
    flagged `__truncated__` (it exists in the input, so it must be accounted for), then the error
    is raised again.
    """
    seen: Counter = Counter()
    current = None
    try:
        for member in files:
            key, ext = base_plus_ext(member["fname"])
            if key is None:
                continue
            ext = ext.lower()
            if starts_sample(current, key, ext):
                if current is not None:
                    yield current
                current = _new_sample(key, seen)
            current[ext] = member["data"]
    except MemberCut as cut:
        key, ext = base_plus_ext(cut.name)
        if key is not None and current is not None and starts_sample(current, key, ext.lower()):
            yield current  # complete: the broken member starts another sample
            current = _new_sample(key, seen)
        elif key is not None and current is None:
            current = _new_sample(key, seen)
        if current is not None:
            yield dict(current, __truncated__=str(cut))
        raise
    except Exception as exc:  # broken between members: whether `current` is whole is unknown
        if current is not None:
            yield dict(current, __truncated__=f"{type(exc).__name__}: {exc}")
        raise
    if current is not None:
        yield current


def raw_samples(url: str) -> Iterator[dict]:
    """The shard's samples as {"__key__": str, "__occurrence__": int, ext: bytes, ...}, in tar order.

    Raises whatever the tar layer raises when the shard itself is unreadable or truncated, after
    yielding every sample before the damage.
    """
    fs, path = filesystem(url)
    # Local files open directly: fsspec's local opener seeks, which pipes and FIFOs cannot do.
    opener = open if isinstance(fs, LocalFileSystem) else fs.open
    with opener(path, "rb") as stream:
        yield from group_members(tar_members(stream))


def allow_pixels(limit: int) -> None:
    """Raise PIL's process-wide bomb guard to `limit` where it is lower (never lowers it; 0 = no
    limit), so that the per-sample check below is the one that decides."""
    if limit <= 0:
        Image.MAX_IMAGE_PIXELS = None
    elif Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit


def open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Image.open (header only) that refuses empty data and images over `max_pixels`."""
    if not data:
        raise ValueError("empty file (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our check decides
        try:
            img = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(str(exc)) from exc
    width, height = img.size
    if max_pixels > 0 and width * height > max_pixels:
        img.close()
        raise ImageTooLarge(f"{width}x{height} = {width * height} pixels > limit {max_pixels}")
    return img


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> RGBImage:
    """EXIF-oriented RGB, with the engine's own rules for unusual modes: an (H, W, 3) uint8 array for
    plain JPEGs (pipeline/read/jpeg.py), a PIL image for everything else."""
    with open_checked(data, max_pixels) as img:
        pixels = plain_jpeg_rgb(data, img)
        if pixels is not None:
            return pixels
        img.load()
        return to_rgb(img)


def decode_label_png(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Raw class indices of a single-channel PNG (palette indices stay indices), size-checked first."""
    with open_checked(data, max_pixels) as img:
        return index_array(img)


def _image_member(raw: dict) -> tuple[str, bytes] | None:
    for ext in IMAGE_EXTS:
        if ext in raw:
            return ext, raw[ext]
    return None


def check_gt_values(gt: np.ndarray, num_classes: int, ignore_index: int) -> str | None:
    """A `seg_values` error when GT holds ids that are neither classes nor the ignore value."""
    outside = gt >= num_classes
    outside &= gt != ignore_index  # two compares over uint8: a tenth of what counting every value costs
    if not outside.any():
        return None
    bad = [int(v) for v in np.flatnonzero(np.bincount(gt[outside], minlength=256))]
    return SEG_VALUES.error(f"seg.png holds {bad}, not class ids 0..{num_classes - 1} nor ignore {ignore_index}") if bad else None


def decode_sample(raw: dict, max_pixels: int = DEFAULT_MAX_PIXELS) -> Sample:
    """One raw sample -> Sample; any failure gives an error Sample (reason before the colon)."""
    key, occurrence = raw["__key__"], raw.get("__occurrence__", 0)
    meta, image_id = {}, fallback_image_id(key, occurrence)
    if "__truncated__" in raw:
        return Sample(key, image_id, occurrence, error=TRUNCATED.error(f"the shard breaks inside this sample ({raw['__truncated__']})"))
    if "json" in raw:
        try:
            meta = json.loads(raw["json"])
            if not isinstance(meta, dict):
                raise ValueError("json metadata must be an object")
            if meta.get("image_id") is not None:
                image_id = int(meta["image_id"])
                if not 0 <= image_id < 2**63:
                    raise ValueError(f"image_id {image_id} is not a non-negative int64")
        except (ValueError, TypeError) as exc:
            return Sample(key, image_id, occurrence, error=BAD_JSON.error(str(exc)))
    member = _image_member(raw)
    if member is None:
        return Sample(key, image_id, occurrence, meta=meta,
                      error=MISSING_IMAGE.error(f"members {sorted(k for k in raw if not k.startswith('__'))}"))
    if not member[1]:
        return Sample(key, image_id, occurrence, meta=meta, error=EMPTY_IMAGE.error(f"{key}.{member[0]} is 0 bytes"))
    try:
        image = decode_image(member[1], max_pixels)
    except ImageTooLarge as exc:
        return Sample(key, image_id, occurrence, meta=meta, error=TOO_LARGE.error(str(exc)))
    except Exception as exc:  # PIL raises many types for corrupt files
        return Sample(key, image_id, occurrence, meta=meta, error=DECODE_IMAGE.error(f"{type(exc).__name__}: {exc}"))
    gt = None
    if "seg.png" in raw:
        try:
            gt = decode_label_png(raw["seg.png"], max_pixels)
        except Exception as exc:
            return Sample(key, image_id, occurrence, meta=meta, error=DECODE_SEG.error(f"{type(exc).__name__}: {exc}"))
        height, width = image_hw(image)
        if gt.shape != (height, width):
            return Sample(key, image_id, occurrence, meta=meta,
                          error=SEG_SIZE.error(f"seg.png is {gt.shape[1]}x{gt.shape[0]}, image {width}x{height}"))
    return Sample(key, image_id, occurrence, image=image, gt=gt, meta=meta)
