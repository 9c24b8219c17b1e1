"""One clear error for a model that cannot be found or loaded."""
from __future__ import annotations


class ModelNotFoundError(RuntimeError):
    """Raised with what was looked for and the ways to provide it."""

    def __init__(self, kind: str, looked_for: str, cause: BaseException | None = None):
        hint = (
            f"{kind} model not found: looked for {looked_for!r}.\n"
            "Provide it in one of these ways:\n"
            "  - a local path (a diffusers directory for Stable Diffusion; an open_clip checkpoint\n"
            "    file plus engine.clip.model / engine.clip.config_file for CLIP);\n"
            "  - download it once on a machine with network access (it lands in the Hugging Face\n"
            "    cache, ~/.cache/huggingface or $HF_HOME) and copy the cache here;\n"
            "  - on an offline machine set HF_HUB_OFFLINE=1 so that only the cache is consulted."
        )
        if cause is not None:
            hint += f"\nUnderlying error: {type(cause).__name__}: {cause}"
        super().__init__(hint)
        self.kind = kind
        self.looked_for = looked_for
