"""One progress bar for the whole job: images done / total, images/s, ETA, errors, shards.

Until the first image is done the bar says "loading models": the actors are building their
engines, which can take minutes with real weights, and a bar at 0 img/s would look stuck.
"""
from __future__ import annotations

from tqdm import tqdm

LOADING, LABELING = "loading models", "labeling"


class JobProgress:
    def __init__(self, total_images: int | None, total_shards: int, enabled: bool = True):
        self.total_shards = total_shards
        self.loading = True
        self.bar = tqdm(total=total_images, unit="img", desc=LOADING, disable=not enabled, dynamic_ncols=True)

    def update(self, images: int, errors: int, shards_done: int, retries: int) -> None:
        """Set absolute counts (in-flight attempts included; a failed attempt's images drop out)."""
        if images and self.loading:
            self.loading = False
            self.bar.set_description_str(LABELING, refresh=False)
            self.bar.reset(total=self.bar.total)  # the rate and ETA count from the first image, not from model load
        self.bar.update(images - self.bar.n)
        self.bar.set_postfix(errors=errors, shards=f"{shards_done}/{self.total_shards}", retries=retries, refresh=False)

    def close(self) -> None:
        self.bar.close()
