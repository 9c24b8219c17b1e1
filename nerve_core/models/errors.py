"""One clear line for a model that cannot be found or loaded: what, where, and how to provide it."""
from __future__ import annotations

import os

from nerve_core.errors import NerveError, first_line

_CAUSE_CHARS = 300  # hub and loader errors run to many lines; their first line is the useful part


def hub_cache() -> str:
    """The Hugging Face cache that open_clip and diffusers read (HF_HUB_CACHE, HF_HOME or the default)."""
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _cause(exc: BaseException) -> str:
    """`Type: first line`, cut to _CAUSE_CHARS."""
    text = f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__
    return text if len(text) <= _CAUSE_CHARS else text[: _CAUSE_CHARS - 3] + "..."


class ModelNotFoundError(NerveError):
    """Raised with what was looked for, the cache looked in, and the three ways to provide it."""

    def __init__(self, kind: str, looked_for: str, cause: BaseException | None = None):
        offline = " with HF_HUB_OFFLINE=1" if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") else ""
        local = "engine.sd.model=DIR (a diffusers directory)" if kind == "Stable Diffusion" else \
            "engine.clip.pretrained=FILE (an open_clip checkpoint; engine.clip.config_file= for a custom architecture)"
        message = (
            f"{kind} model not found: {looked_for}; looked in the Hugging Face cache {hub_cache()}{offline}. "
            f"Provide it by (1) running once with network access, which downloads it into that cache, "
            f"(2) copying a filled cache here and setting HF_HUB_OFFLINE=1 (and HF_HOME to the copy), or "
            f"(3) a local path: {local}"
        )
        if cause is not None:
            message += f". Cause: {_cause(cause)}"
        super().__init__(message)
        self.kind = kind
        self.looked_for = looked_for
