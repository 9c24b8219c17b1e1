"""Class vocabularies: K classes, each with one or more synonym prompts.

The class-name file format shared by NACLIP, NERVE and DSLO: one line per class, synonyms
separated by ", ". Line i is class id i.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nerve_core.errors import ConfigError


@dataclass(frozen=True)
class Vocabulary:
    synonyms: tuple[tuple[str, ...], ...]

    def __post_init__(self):
        if not self.synonyms:
            raise ConfigError("a vocabulary needs at least one class")
        for i, names in enumerate(self.synonyms):
            if not names or any(not n.strip() for n in names):
                raise ConfigError(f"class {i} has an empty name: {names!r}")

    @classmethod
    def from_lines(cls, lines) -> Vocabulary:
        """Each line is one class; synonyms separated by commas."""
        classes = [tuple(s.strip() for s in line.split(",") if s.strip()) for line in lines]
        return cls(tuple(classes))

    @classmethod
    def from_file(cls, path: str | Path) -> Vocabulary:
        lines = [ln for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
        return cls.from_lines(lines)

    @classmethod
    def coerce(cls, vocab) -> Vocabulary:
        """Accept a Vocabulary, or a list of class strings ("name, synonym, ...")."""
        if isinstance(vocab, Vocabulary):
            return vocab
        if isinstance(vocab, (str, Path)):
            return cls.from_file(vocab)
        return cls.from_lines(list(vocab))

    @property
    def names(self) -> list[str]:
        """The display name of each class: its first synonym."""
        return [s[0] for s in self.synonyms]

    def __len__(self) -> int:
        return len(self.synonyms)

    def queries(self) -> tuple[list[str], list[int]]:
        """Flatten to (query strings, class index of each query)."""
        texts, owner = [], []
        for k, names in enumerate(self.synonyms):
            texts.extend(names)
            owner.extend([k] * len(names))
        return texts, owner


def validate_labels(labels, num_classes: int) -> None:
    """Image-level labels must be known class ids; say which one is not."""
    if labels is None:
        raise ValueError("engine.mode=wsss needs image-level labels for every image")
    for c in labels:
        if not (0 <= int(c) < num_classes):
            raise ValueError(f"image label {c} is not a class id of this vocabulary (0..{num_classes - 1})")
