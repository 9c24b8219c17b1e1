"""The README stays true: its config reference is generated, its commands (and docs/benchmarks.md's)
parse, its files exist.

`python tests/test_readme.py` rewrites the configuration reference section from the dataclasses.
"""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"
REASONS_START, REASONS_END = "<!-- error-reasons:start -->", "<!-- error-reasons:end -->"
DOCS_WITH_COMMANDS = [ROOT / "docs" / "benchmarks.md"]  # their `nerve ...` code lines must parse too


def reference_sections():
    from jobs.demo import DemoConfig
    from jobs.export import CocoExport, PngExport
    from jobs.regress import RegressJobConfig
    from jobs.report import ReportJobConfig
    from jobs.shards import (
        AdeShards,
        CityscapesShards,
        CocoShards,
        CocoStuffShards,
        ContextShards,
        DemoShards,
        FolderShards,
        VocShards,
    )
    from pipeline.config import LabelJobConfig, ScoreJobConfig, VerifyJobConfig
    from pipeline.evaluate.config import EvaluateJobConfig
    from pipeline.tune.config import TuneJobConfig

    return [
        ("nerve label (engine.* is shared by every command that labels)", LabelJobConfig, None),
        ("nerve regress (every nerve label key, plus)", RegressJobConfig,
         ["output", "baseline", "record_missing_baseline", "report", "tolerance", "samples", "demo_shards"]),
        ("nerve tune (every nerve label key, plus)", TuneJobConfig, ["tune"]),
        ("nerve evaluate (every nerve label key but input.shards, plus)", EvaluateJobConfig, ["evaluate"]),
        ("nerve demo", DemoConfig, None),
        ("nerve score", ScoreJobConfig, None),
        ("nerve verify", VerifyJobConfig, None),
        ("nerve shards voc", VocShards, None),
        ("nerve shards coco", CocoShards, None),
        ("nerve shards ade", AdeShards, None),
        ("nerve shards cityscapes", CityscapesShards, None),
        ("nerve shards coco_stuff", CocoStuffShards, None),
        ("nerve shards context", ContextShards, None),
        ("nerve shards folder", FolderShards, None),
        ("nerve shards demo", DemoShards, None),
        ("nerve export png", PngExport, None),
        ("nerve export coco", CocoExport, None),
        ("nerve report", ReportJobConfig, None),
    ]


def generated_reference() -> str:
    from pipeline.report.config_reference import render_reference

    return render_reference(reference_sections())


def _between(text: str, start: str, end: str) -> str:
    return text[text.index(start) + len(start): text.index(end)].strip("\n")


def _readme_reference(text: str) -> str:
    return _between(text, START, END)


def _replaced(text: str, start: str, end: str, body: str) -> str:
    return f"{text[: text.index(start) + len(start)]}\n{body.strip()}\n{text[text.index(end):]}"


def test_config_reference_is_current():
    assert _readme_reference(README.read_text()) == generated_reference().strip("\n"), \
        "README configuration reference is stale: run `python tests/test_readme.py`"


def test_error_reasons_table_is_current():
    from pipeline.reasons import reasons_table

    assert _between(README.read_text(), REASONS_START, REASONS_END) == reasons_table(), \
        "README error-reason table is stale: run `python tests/test_readme.py`"


def test_reference_lists_every_engine_field():
    from omegaconf import OmegaConf

    from nerve_core.config import EngineConfig

    def leaves(node, prefix):
        for key, value in node.items():
            yield from leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]

    engine = OmegaConf.to_container(OmegaConf.structured(EngineConfig))
    section = _readme_reference(README.read_text())
    assert all(f"| `{key}` |" in section for key in leaves(engine, "engine."))


def test_install_and_test_commands_are_exact():
    text = README.read_text()
    assert "    pip install torch==2.14.1 torchvision==0.29.1" in text
    assert '    pip install -e ".[test]"' in text
    assert "    pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu" in text
    assert "    python -m pytest\n" in text


def _command_lines(text: str):
    """Every `nerve <command> ...` in the README's indented code blocks and the RayJob entrypoint."""
    joined = re.sub(r"\\\n\s*", " ", text)
    for line in joined.splitlines():
        for match in re.finditer(r"(?:^|\s)nerve (\w+)\b([^|]*)", line):
            if line.startswith("    ") or line.startswith("nerve"):
                yield match.group(1), shlex.split(match.group(2), comments=True)


def _schema(command: str, args: list[str]):
    from jobs.demo import DemoConfig
    from jobs.export import CocoExport, PngExport
    from jobs.regress import RegressJobConfig
    from jobs.report import ReportJobConfig
    from jobs.shards import MAKERS
    from pipeline.config import LabelJobConfig, ScoreJobConfig, VerifyJobConfig
    from pipeline.evaluate.config import EvaluateJobConfig
    from pipeline.tune.config import TuneJobConfig

    if command == "bench":
        from jobs.bench import config_class

        return config_class(args[0]), args[1:]
    if command in ("shards", "export"):
        kinds = MAKERS if command == "shards" else {"png": (PngExport,), "coco": (CocoExport,)}
        return kinds[args[0]][0], args[1:]
    return {"label": LabelJobConfig, "regress": RegressJobConfig, "demo": DemoConfig, "score": ScoreJobConfig,
            "verify": VerifyJobConfig, "tune": TuneJobConfig, "evaluate": EvaluateJobConfig,
            "report": ReportJobConfig}[command], args


def _all_commands():
    rayjob = yaml.safe_load((ROOT / "configs/ray/kuberay-rayjob.yaml").read_text())["spec"]["entrypoint"]
    docs = [_command_lines(path.read_text()) for path in DOCS_WITH_COMMANDS]
    return list(_command_lines(README.read_text())) + list(_command_lines(rayjob)) + [c for doc in docs for c in doc]


@pytest.mark.parametrize("command,args", _all_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_readme_commands_parse(command, args, monkeypatch):
    from jobs.cli import COMMANDS
    from jobs.config import load_config, parse_argv

    assert command in COMMANDS
    monkeypatch.chdir(ROOT)
    schema, rest = _schema(command, args)
    parsed = parse_argv(rest, flags=("--update-baseline",))
    assert not parsed.positionals
    load_config(schema, parsed.overrides, parsed.config_file)  # unknown keys / presets raise


def test_files_named_in_readme_exist():
    named = set(re.findall(r"`?(configs/[\w./-]+\.yaml)", README.read_text()))
    assert named and all((ROOT / path).is_file() for path in named)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    from pipeline.reasons import reasons_table

    text = _replaced(README.read_text(), START, END, generated_reference())
    README.write_text(_replaced(text, REASONS_START, REASONS_END, reasons_table()))
    print(f"rewrote the configuration reference and the error-reason table in {README}")
