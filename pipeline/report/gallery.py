"""The gallery and error rows of a report page: the HTML sections, and the files they load.

The page itself holds only the controls; the cards' data go in data.js (a script, not JSON:
browsers refuse to fetch JSON from a page opened from disk) and gallery.js draws one page of
PAGE_SIZE cards at a time, so a run of 100,000 images stays usable and its first page light.
"""
from __future__ import annotations

import json
import shutil
from html import escape
from pathlib import Path

from pipeline.report.cards import RunRows
from pipeline.report.palette import hex_colour, legend

PAGE_SIZE = 100
DATA_FILE, SCRIPT_FILE = "data.js", "gallery.js"
MAX_ERROR_ROWS = 1000  # listed on the page; every one is in data.js
SCORE_LABELS = {"miou": "per-image mIoU (%)", "mean_confidence": "mean confidence (%)"}
# A card's fields in data.js, in order. data.js carries this list and gallery.js looks every field up
# in it, so the order is decided here alone.
CARD_COLUMNS = ("shard", "key", "occurrence", "score", "accuracy", "miou", "confidence", "classes", "thumb", "note")


def _card_row(card, shard_index: int, field: str | None) -> list:
    s = card.scores
    score = card.score(field)
    if field == "mean_confidence" and score is not None:
        score = round(100 * score, 4)  # the filter's range is 0..100 whatever the score
    values = {"shard": shard_index, "key": card.key, "occurrence": card.occurrence, "score": score,
              "accuracy": s.get("pixel_accuracy"), "miou": s.get("miou"), "confidence": s.get("mean_confidence"),
              "classes": card.classes, "thumb": card.thumb, "note": card.note}
    return [values[name] for name in CARD_COLUMNS]


def gallery_data(rows: RunRows, class_names: list[str], num_images: int) -> dict:
    shards = sorted({c.shard for c in rows.cards} | {e.shard for e in rows.errors})
    index = {s: i for i, s in enumerate(shards)}
    return {
        "page_size": PAGE_SIZE,
        "score": rows.score_field,
        "num_images": num_images,
        "shards": shards,
        "classes": [[name, hex_colour(rgb)] for name, rgb in legend(class_names)[:-1]],
        "card_columns": list(CARD_COLUMNS),
        "cards": [_card_row(c, index[c.shard], rows.score_field) for c in rows.cards],
        "errors": [[index[e.shard], e.key, e.occurrence, e.reason, e.detail] for e in rows.errors],
    }


def write_gallery_files(folder: Path, rows: RunRows, class_names: list[str], num_images: int) -> None:
    """data.js and gallery.js next to the page (thumbnails are written by thumbnails.py)."""
    data = json.dumps(gallery_data(rows, class_names, num_images), separators=(",", ":"), ensure_ascii=False)
    (Path(folder) / DATA_FILE).write_text(f"window.NERVE_REPORT = {data};\n", encoding="utf-8")
    shutil.copyfile(Path(__file__).with_name(SCRIPT_FILE), Path(folder) / SCRIPT_FILE)


def gallery_section(rows: RunRows, shown_of: int) -> str:
    """The controls and the card container; `shown_of`: the ok rows of the run (more than the cards
    when the report was limited to the worst ones)."""
    field = rows.score_field
    order = f"worst first by {SCORE_LABELS[field]}" if field else "by key (no ground truth or confidence to score by)"
    scope = f"all {len(rows.cards)}" if len(rows.cards) == shown_of else f"the {len(rows.cards)} worst of {shown_of}"
    score_inputs = ("" if field is None else
                    f'<label>{escape(SCORE_LABELS[field])} from <input id="score-min" type="number" min="0" max="100" '
                    'step="any" size="5"></label> <label>to <input id="score-max" type="number" min="0" max="100" '
                    'step="any" size="5"></label>')
    return (f'<h2 id="gallery">Images ({scope} labeled images, {order})</h2>'
            '<p>Each card: the image with its mask overlaid, beside the ground truth overlaid '
            'when the shards hold one (a card says why when its image or ground truth does not decode).</p>'
            '<div class="controls"><label>class <select id="class-filter"><option value="-1">any class</option>'
            f"</select></label> {score_inputs} "
            '<button id="prev" type="button">previous</button> <span id="page-info"></span> '
            '<button id="next" type="button">next</button></div><div id="cards" class="cards"></div>'
            f'<script src="{DATA_FILE}"></script><script src="{SCRIPT_FILE}"></script>')


def errors_section(rows: RunRows) -> str:
    if not rows.errors:
        return ""
    listed = rows.errors[:MAX_ERROR_ROWS]
    body = "".join(f"<tr><td>{escape(e.shard)}</td><td>{escape(e.key)}</td><td>{escape(e.reason)}</td>"
                   f"<td>{escape(e.detail)}</td></tr>" for e in listed)
    more = (f"<p>{len(rows.errors) - len(listed)} more error rows are in {DATA_FILE} and the Parquet files.</p>"
            if len(rows.errors) > len(listed) else "")
    return (f'<h2 id="errors">Error rows ({len(rows.errors)})</h2><table class="errors"><tr><th>shard</th><th>key</th>'
            f"<th>reason</th><th>detail</th></tr>{body}</table>{more}")
