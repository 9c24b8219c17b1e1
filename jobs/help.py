"""`nerve --help` and `nerve CMD [SUB] --help`: the commands, and each command's keys with their
defaults and meanings, read from the same typed configs as the README's configuration reference.

A command module tells help what it takes with `CONFIG_SCHEMA` (its config dataclass) or
`SUBCOMMANDS` ({name: (config dataclass, or a function returning it, one-line summary)}, for
`shards`, `export` and `bench`).
"""
from __future__ import annotations

import shutil
import textwrap

from configs import CONFIG_DIR
from pipeline.report.config_reference import reference_rows

FLAGS = {"regress": "[--update-baseline]", "verify": "[--json]"}


def general_help(commands: dict[str, str], summaries: dict[str, str]) -> str:
    width = max(len(c) for c in commands)
    lines = ["usage: nerve COMMAND [SUB] [--config FILE] [key=value ...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {summaries.get(name, '')}".rstrip() for name in commands]
    lines += ["", "`nerve COMMAND --help` lists a command's keys with their defaults and meanings."]
    return "\n".join(lines)


def _wrap(key: str, default: str, meaning: str, key_width: int, width: int) -> list[str]:
    head = f"  {key} = {default}"
    if not meaning:
        return [head]
    if len(head) <= key_width:
        indent = " " * (key_width + 2)
        return textwrap.wrap(meaning, width, initial_indent=head.ljust(key_width + 2), subsequent_indent=indent,
                             break_on_hyphens=False)
    return [head, *textwrap.wrap(meaning, width, initial_indent=" " * 6, subsequent_indent=" " * 6, break_on_hyphens=False)]


def keys_help(schema: type) -> list[str]:
    """One entry per key: `key = default` then its meaning, wrapped to the terminal."""
    width = max(80, min(shutil.get_terminal_size((100, 24)).columns, 140))
    rows = reference_rows(schema())
    key_width = min(36, max(len(f"  {k} = {d}") for k, d, _ in rows))
    return [line for key, default, meaning in rows for line in _wrap(key, default, meaning, key_width, width)]


def _presets(schema: type) -> list[str]:
    fields = getattr(schema, "__dataclass_fields__", {})
    if "engine" not in fields:
        return []
    engines = ", ".join(sorted(p.stem for p in (CONFIG_DIR / "engines").glob("*.yaml")))
    lines = [f"presets: engine=NAME ({engines})"]
    if "dataset" in fields:
        datasets = ", ".join(sorted(p.stem for p in (CONFIG_DIR / "datasets").glob("*.yaml")))
        lines.append(f"         dataset=NAME ({datasets})")
    return lines + ["later settings win: presets < --config FILE < key=value"]


def command_help(command: str, module, sub: str | None, summary: str) -> str:
    """Help for `nerve command [sub]`; for a command with subcommands and no (known) sub, the list of them."""
    subcommands = getattr(module, "SUBCOMMANDS", None)
    flags = f" {FLAGS[command]}" if command in FLAGS else ""
    if subcommands is not None and sub not in subcommands:
        width = max(len(s) for s in subcommands)
        lines = [f"usage: nerve {command} {{{','.join(subcommands)}}} [--config FILE] [key=value ...]", summary, "",
                 "subcommands:"]
        lines += [f"  {name:<{width}}  {text}" for name, (_, text) in subcommands.items()]
        return "\n".join(lines + ["", f"`nerve {command} SUB --help` lists a subcommand's keys."])
    if subcommands is not None:
        schema, summary = subcommands[sub]
        schema = schema if isinstance(schema, type) else schema()
        command = f"{command} {sub}"
    else:
        schema = module.CONFIG_SCHEMA
    lines = [f"usage: nerve {command}{flags} [--config FILE] [key=value ...]", summary, "", "keys (key = default):"]
    lines += keys_help(schema)
    presets = _presets(schema)
    return "\n".join(lines + ([""] + presets if presets else []))
