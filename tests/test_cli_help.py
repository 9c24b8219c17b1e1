"""`nerve --help` lists every command; `nerve CMD [SUB] --help|-h` lists every key of that command's
typed config with its default, and exits 0 (the same dataclasses as the README's reference)."""
from __future__ import annotations

import importlib

import pytest

from jobs.cli import COMMANDS, SUMMARIES
from jobs.cli import main as nerve
from pipeline.report.config_reference import reference_rows


def _help_targets():
    """(argv before --help, config schema) for every command and subcommand."""
    targets = []
    for command, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        subcommands = getattr(module, "SUBCOMMANDS", None)
        if subcommands is None:
            targets.append(([command], module.CONFIG_SCHEMA))
        for sub, (schema, _) in (subcommands or {}).items():
            targets.append(([command, sub], schema))
    return targets


def test_general_help_lists_every_command_with_one_line(capsys):
    assert nerve(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert f"  {command:<{max(map(len, COMMANDS))}s}  {SUMMARIES[command]}" in out
    assert nerve(["-h"]) == 0


def test_bare_nerve_shows_the_commands_and_exits_2(capsys):
    assert nerve([]) == 2
    err = capsys.readouterr().err
    assert all(command in err for command in COMMANDS)


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("argv,schema", _help_targets(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_every_command_lists_its_keys_with_defaults(argv, schema, flag, capsys):
    schema = schema if isinstance(schema, type) else schema()
    assert nerve([*argv, flag]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: nerve {' '.join(argv)}")
    rows = reference_rows(schema())
    assert rows and all(f"  {key} = {default}" in out for key, default, _ in rows)
    # Meanings are printed too (wrapped): every word of a sample of them appears.
    for _, _, meaning in rows[:5]:
        assert all(word in out for word in meaning.split())


@pytest.mark.parametrize("command", ["shards", "export", "bench"])
def test_commands_with_subcommands_list_them(command, capsys):
    assert nerve([command, "--help"]) == 0
    out = capsys.readouterr().out
    module = importlib.import_module(COMMANDS[command])
    assert all(f"  {sub}" in out for sub in module.SUBCOMMANDS)


def test_help_wins_over_other_arguments(capsys):
    assert nerve(["label", "engine=naclip", "input.shards=/nowhere", "--help"]) == 0
    assert "engine.device = auto" in capsys.readouterr().out
