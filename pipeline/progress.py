"""One progress bar for the whole job: images done / total, images/s, ETA, errors, shards."""
from __future__ import annotations

from tqdm import tqdm


class JobProgress:
    def __init__(self, total_images: int | None, total_shards: int, enabled: bool = True):
        self.total_shards = total_shards
        self.bar = tqdm(total=total_images, unit="img", desc="labeling", disable=not enabled, dynamic_ncols=True)

    def update(self, images: int, errors: int, shards_done: int, retries: int) -> None:
        """Set absolute counts (in-flight attempts included; a failed attempt's images drop out)."""
        self.bar.update(images - self.bar.n)
        self.bar.set_postfix(errors=errors, shards=f"{shards_done}/{self.total_shards}", retries=retries, refresh=False)

    def close(self) -> None:
        self.bar.close()
