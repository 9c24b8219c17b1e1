"""Sample keys and image ids derived from file names, identical on every run.

Keys must survive WebDataset (which splits a member name at its first dot and treats slashes as
directories) and double as output file names (exports write `{key}.png`), so only letters, digits,
'_' and '-' are kept. Image ids come from the name rather than from enumeration order, so adding
or removing an image never renumbers the others.
"""
from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")
_SEPARATORS = re.compile(r"[_\-]")
# Hash ids stay below 2**53 so that JSON readers that parse numbers as doubles keep them exact.
_HASH_ID_BITS = 53


def safe_key(name: str) -> str:
    """`name` with every character outside [A-Za-z0-9_-] replaced by '_' (so '../x' -> '___x')."""
    key = _UNSAFE.sub("_", str(name))
    if not key:
        raise ValueError("an empty name cannot be a sample key")
    return key


def stable_image_id(name: str) -> int:
    """An int64 image id derived from a file stem.

    Stems made of digits and '_'/'-' keep their digits (VOC 2007_000032 -> 2007000032, COCO-style
    000000397133 -> 397133); any other stem maps to a 53-bit hash of its UTF-8 bytes.
    """
    digits = _SEPARATORS.sub("", name)
    if digits.isdigit() and len(digits) <= 18:
        return int(digits)
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - _HASH_ID_BITS)
