"""Why a sample became an error row: the one list of reasons, each with its meaning.

An error row's `error` column reads "<reason>: <detail>" (the output contract), so the reason is
recoverable from any output directory, old or new. Everything that makes or counts error rows
uses these names: the reader, the labeler, `nerve verify`, and the README's table (generated
from this list; tests/test_readme.py keeps them equal).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    name: str
    meaning: str

    def error(self, detail: str) -> str:
        """The `error` column's text for a sample that failed for this reason."""
        return f"{self.name}: {detail}"


TRUNCATED = Reason("truncated", "the shard's tar breaks inside this sample (the samples before it are kept)")
BAD_JSON = Reason("bad_json", "the sample's `json` is not a JSON object, or its `image_id` is not a non-negative int64")
MISSING_IMAGE = Reason("missing_image", "the sample has no image member (jpg, jpeg, png, webp)")
EMPTY_IMAGE = Reason("empty_image", "the image member is 0 bytes")
TOO_LARGE = Reason("too_large", "the image or `seg.png` header announces more than `input.max_image_pixels` pixels; "
                                "refused before decoding")
DECODE_IMAGE = Reason("decode_image", "the image does not decode")
DECODE_SEG = Reason("decode_seg", "`seg.png` does not decode, or is not a single-channel map of class ids")
SEG_SIZE = Reason("seg_size", "`seg.png` and the image differ in size")
SEG_VALUES = Reason("seg_values", "`seg.png` holds values that are neither class ids nor `dataset.ignore_index`")
NO_IMAGE_LABELS = Reason("no_image_labels", "`engine.mode=wsss` and the `json` has no `labels` "
                                            "(and `dataset.labels_from_gt` is off or there is no `seg.png`)")
BAD_IMAGE_LABELS = Reason("bad_image_labels", "the `json` `labels` are not a list of class ids of the vocabulary")
PREPARE = Reason("prepare", "the engine's preprocessing refused the decoded image")
ENGINE = Reason("engine", "the engine failed on this image alone (its batch was split until the failure was isolated)")

REASONS: tuple[Reason, ...] = (TRUNCATED, BAD_JSON, MISSING_IMAGE, EMPTY_IMAGE, TOO_LARGE, DECODE_IMAGE, DECODE_SEG,
                               SEG_SIZE, SEG_VALUES, NO_IMAGE_LABELS, BAD_IMAGE_LABELS, PREPARE, ENGINE)


def reason_of(error: str) -> str:
    """The reason name an `error` text starts with."""
    return error.split(":", 1)[0]


def reasons_table() -> str:
    """The README's table of reasons (Markdown)."""
    rows = [f"| `{r.name}` | {r.meaning} |" for r in REASONS]
    return "\n".join(["| reason | meaning |", "|---|---|", *rows])
