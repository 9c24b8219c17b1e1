"""What a conversion left out and why: collected while sources run, summarised at the end.

A missing or corrupt file among 100k is normal in real datasets; it is reported, not fatal.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from pipeline.sources.files import SkipSample
from pipeline.sources.shard_writer import ShardSample

Item = TypeVar("Item")


@dataclass
class SkipLog:
    entries: list[dict] = field(default_factory=list)

    def add(self, item: str, reason: str, detail: str = "") -> None:
        self.entries.append({"item": item, "reason": reason, "detail": detail})

    def __len__(self) -> int:
        return len(self.entries)

    def summary(self) -> dict:
        """{"num_skipped", "by_reason": {reason: count}, "skipped": [entries]} (JSON-ready)."""
        by_reason = Counter(e["reason"] for e in self.entries)
        return {"num_skipped": len(self.entries), "by_reason": dict(sorted(by_reason.items())),
                "skipped": list(self.entries)}

    def to_json(self) -> bytes:
        return json.dumps(self.summary(), indent=1).encode("utf-8")

    def describe(self) -> str:
        """One line per reason, for the console."""
        if not self.entries:
            return "skipped: none"
        lines = [f"skipped: {len(self.entries)}"]
        lines += [f"  {reason}: {n}" for reason, n in self.summary()["by_reason"].items()]
        return "\n".join(lines)


def collect(
    items: Iterable[Item],
    build: Callable[[Item], ShardSample],
    skips: SkipLog,
    name: Callable[[Item], str] = str,
) -> Iterator[ShardSample]:
    """Yield `build(item)` for each item; skipped items, duplicate keys and ids go to `skips`.

    Keys and image ids must each name one sample: outputs are joined back to inputs by key, and
    COCO results by image id.
    """
    keys, ids = set(), set()
    for item in items:
        try:
            sample = build(item)
        except SkipSample as skip:
            skips.add(name(item), skip.reason, skip.detail)
            continue
        image_id = (sample.meta or {}).get("image_id")
        if sample.key in keys:
            skips.add(name(item), "duplicate key", sample.key)
        elif image_id is not None and image_id in ids:
            skips.add(name(item), "duplicate image id", str(image_id))
        else:
            keys.add(sample.key)
            ids.add(image_id)
            yield sample
