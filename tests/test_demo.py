"""`nerve demo` runs to completion on the session's Ray and leaves every file it names."""
from __future__ import annotations

import json

from jobs.cli import main as nerve


def test_demo_runs_and_reports(tmp_path, ray_session, capsys):
    root = tmp_path / "demo"
    assert nerve(["demo", f"dir={root}", "num_samples=4", "per_shard=2", "samples=2", "progress=false"]) == 0
    printed = capsys.readouterr().out
    assert "meaningless" in printed and "nerve demo dir=" in printed and "models=real" in printed
    out = root / "out-tiny"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_images"] == 4 and summary["num_errors"] == 0 and summary["miou"] is not None
    assert sorted(p.name for p in (root / "shards").glob("*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    assert len(list((out / "shards").glob("*.stats.json"))) == 2
    assert str(out / "report" / "report.html") in printed
    assert all((out / "report" / name).is_file() for name in ("report.html", "report.md", "report.json"))
    assert len(list((out / "report" / "images").glob("*.pred.png"))) == 2
    # Ray was already up (the fixture's): the demo reused it and left it running.
    assert ray_session.is_initialized()


def test_demo_rejects_unknown_models(tmp_path):
    assert nerve(["demo", f"dir={tmp_path}", "models=huge"]) == 2
