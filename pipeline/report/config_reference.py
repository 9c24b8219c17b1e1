"""The configuration reference (README): every field of the typed configs, default and meaning.

Generated from the dataclasses themselves, and their source comments, so that the README cannot
drift from the code: tests/test_readme.py compares the README's section with this output.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import tokenize
from io import StringIO


def _comments(cls) -> dict[str, str]:
    """field name -> its trailing comment, or the comment lines just above it."""
    source = textwrap.dedent(inspect.getsource(cls))
    line_comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            line_comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    found = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            text = line_comments.get(node.lineno)
            if text is None:  # a comment block directly above the field
                above, row = [], node.lineno - 1
                while row in line_comments and lines[row - 1].strip().startswith("#"):
                    above.insert(0, line_comments[row])
                    row -= 1
                text = " ".join(above)
            found[node.target.id] = text
    return found


def _shown(value) -> str:
    if value == "":
        return '""'
    if value == "???":  # omegaconf MISSING
        return "(required)"
    return str(value).lower() if isinstance(value, bool) else str(value)


def reference_rows(obj, prefix: str = "", only: list[str] | None = None) -> list[tuple[str, str, str]]:
    """(key, default, meaning) for the fields of dataclass instance `obj`, nested ones flattened to a.b.c."""
    comments = {}
    for base in reversed(type(obj).__mro__):  # inherited fields keep their own comments
        if dataclasses.is_dataclass(base):
            comments.update(_comments(base))
    rows = []
    for f in dataclasses.fields(obj):
        if only is not None and f.name not in only:
            continue
        name, value = f"{prefix}{f.name}", getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            rows += reference_rows(value, f"{name}.")
            continue
        rows.append((name, _shown(value), comments.get(f.name, "")))
    return rows


def _escaped(text: str) -> str:
    return text.replace("|", "\\|")


def render_reference(sections: list[tuple[str, type, list[str] | None]]) -> str:
    """One Markdown table per (heading, dataclass, fields to list or None for all) section."""
    out = []
    for heading, cls, only in sections:
        rows = [f"| `{key}` | `{default}` | {_escaped(meaning)} |" for key, default, meaning in reference_rows(cls(), "", only)]
        out += [f"### {heading}", "", "| key | default | meaning |", "|---|---|---|", *rows, ""]
    return "\n".join(out)
