"""The repository explains itself: its documents exist, and nothing in it points outside it."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("docs/method.md", "docs/design.md", "docs/benchmarks.md")
# Names of reference material that lives outside the repository, and talk of the tracker.
OUTSIDE = re.compile(r"(?<!docs/)\b(?:METHOD|DESIGN)\.md\b|\.\./shared|\bpapers/|\b[Ii]ssues?\b")


def tracked_files() -> list[Path]:
    try:
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / n for n in names if (ROOT / n).suffix in (".py", ".md", ".yaml", ".toml", ".txt", "") and (ROOT / n).is_file()]


@pytest.mark.parametrize("doc", DOCS)
def test_the_documents_exist_and_cite_sections_that_exist(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert text.startswith("# ")
    for cited in re.findall(r"`?(docs/[a-z_]+\.md)`?", text):
        assert (ROOT / cited).is_file(), f"{doc} cites {cited}, which does not exist"


def test_no_tracked_file_cites_documents_outside_the_repository():
    offenders = []
    for path in tracked_files():
        if path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not offenders, "cite docs/ instead:\n" + "\n".join(offenders)


def test_every_cited_repository_document_exists():
    missing = set()
    for path in tracked_files():
        for cited in re.findall(r"\bdocs/[a-z_]+\.md\b", path.read_text(encoding="utf-8", errors="replace")):
            if not (ROOT / cited).is_file():
                missing.add(f"{path.relative_to(ROOT)} -> {cited}")
    assert not missing, sorted(missing)
