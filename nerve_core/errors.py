"""The failures a user can fix, as one family of exceptions.

Every expected failure (a wrong setting, a missing file or model, an output directory that belongs
to another job) derives from `NerveError`; the command line prints its message as one line and
exits 2. Anything else is a bug and keeps its traceback. The extra bases (ValueError,
FileNotFoundError) keep older `except` clauses and tests working.
"""
from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (its type's name when it has none), for
    the one-line errors the command line prints."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class NerveError(Exception):
    """An expected failure; the message says what is wrong and how to fix it, in one line."""


class ConfigError(NerveError, ValueError):
    """A setting (a key, a value, a config or class file) the user must change."""


class NotFound(NerveError, FileNotFoundError):
    """Something the job reads (input shards, a dataset folder, an output directory) is not there."""
