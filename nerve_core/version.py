"""The code version recorded in every fingerprint: outputs made by different code never mix."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def code_version() -> str:
    """The installed package's version, or "source" when run from a tree that is not installed."""
    try:
        return version("nerve")
    except PackageNotFoundError:
        return "source"
