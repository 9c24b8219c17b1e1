"""Config loading for every command: typed schema, YAML presets, `key=value` overrides.

Order of precedence (later wins): schema defaults < named presets (`engine=nerve`,
`dataset=voc21`, read from configs/) < `--config FILE` < dotlist overrides. Unknown keys are
errors that name the key. Values may use `${nerve_cache:SUB}`: SUB under $NERVE_CACHE (default
~/.cache/nerve), so that a shipped config file writes nowhere near the current directory.
"""
from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from configs import CONFIG_DIR
from nerve_core.errors import ConfigError, NerveError, first_line

# Top-level keys whose string value names a preset file under configs/<dir>/<value>.yaml.
PRESET_DIRS = {"engine": "engines", "dataset": "datasets"}


@dataclass
class ParsedArgs:
    config_file: str | None
    overrides: list[str]
    flags: set[str]
    positionals: list[str]


def parse_argv(argv: list[str], flags: tuple[str, ...] = ()) -> ParsedArgs:
    """Split argv into --config FILE, known --flags, key=value overrides and positionals."""
    config_file, overrides, seen, positionals = None, [], set(), []
    it = iter(argv)
    for arg in it:
        if arg == "--config":
            config_file = next(it, None)
            if config_file is None:
                raise ConfigError("--config needs a file path")
        elif arg.startswith("--config="):
            config_file = arg.split("=", 1)[1]
        elif arg.startswith("--"):
            if arg not in flags:
                raise ConfigError(f"unknown flag {arg!r} (known: {', '.join(flags) or 'none'})")
            seen.add(arg)
        elif "=" in arg:
            overrides.append(arg)
        else:
            positionals.append(arg)
    return ParsedArgs(config_file, overrides, seen, positionals)


def cache_dir() -> Path:
    """Where nerve keeps what it makes for itself (tiny models, the demo regression's files)."""
    return Path(os.environ.get("NERVE_CACHE") or Path.home() / ".cache" / "nerve").expanduser()


def _in_cache(sub: str = "") -> str:
    return str(cache_dir() / sub)


OmegaConf.register_resolver("nerve_cache", _in_cache, replace=True)


def config_file_path(name: str) -> Path:
    """--config FILE: a path, else the same path inside the project (`configs/jobs/x.yaml` from any
    directory), else a name in configs/jobs/."""
    for candidate in (Path(name), CONFIG_DIR.parent / name, CONFIG_DIR / "jobs" / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"config file {name} not found (looked in the current directory, {CONFIG_DIR.parent} "
                      f"and {CONFIG_DIR / 'jobs'})")


def preset_path(kind: str, name: str) -> Path:
    """configs/<kind dir>/<name>.yaml, or `name` itself if it is a path to a YAML file."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    path = CONFIG_DIR / PRESET_DIRS[kind] / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown {kind} preset {name!r}; available: {', '.join(preset_names(kind))}")
    return path


def preset_names(kind: str) -> list[str]:
    """The presets of `kind` (engine, dataset) shipped in configs/, by name."""
    return sorted(p.stem for p in (CONFIG_DIR / PRESET_DIRS[kind]).glob("*.yaml"))


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must hold a mapping at the top level")
    return data


def load_config(schema, overrides: list[str], config_file: str | None = None):
    """Build the typed config `schema` (a dataclass type) from presets, file and overrides.

    Engine presets hold the `engine` subtree; dataset presets hold job-level keys (they tie a
    vocabulary to its background rule, so they also set `engine.background`).
    """
    file_layer = _read_yaml(config_file_path(config_file)) if config_file else {}
    presets = {k: v for k, v in file_layer.items() if k in PRESET_DIRS and isinstance(v, str)}
    dotlist = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key in PRESET_DIRS:
            presets[key] = value
        else:
            dotlist.append(item)
    layers = []
    if "engine" in presets:
        layers.append({"engine": _read_yaml(preset_path("engine", presets["engine"]))})
    if "dataset" in presets:
        layers.append(_read_yaml(preset_path("dataset", presets["dataset"])))
    layers.append(_without_preset_names(file_layer))
    try:
        merged = OmegaConf.structured(schema)
        for layer in layers:
            merged = OmegaConf.merge(merged, layer)
        merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(dotlist))
    except OmegaConfBaseException as exc:
        raise ConfigError(_explain(exc)) from exc
    return merged


def _without_preset_names(layer: dict) -> dict:
    return {k: v for k, v in layer.items() if not (k in PRESET_DIRS and isinstance(v, str))}


def _explain(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None)
    msg = first_line(exc)
    if "not in struct" in str(exc) or "Key '" in msg:
        return f"unknown config key {key!r}: {msg}"
    return f"invalid value for {key!r}: {msg}" if key else msg


def load_object(schema, overrides: list[str], config_file: str | None = None):
    """load_config as a plain dataclass instance; a required key left unset is a ConfigError naming it."""
    cfg = load_config(schema, overrides, config_file)
    try:
        return OmegaConf.to_object(cfg)
    except MissingMandatoryValue as exc:
        raise ConfigError(f"missing required key {exc.full_key!r}") from exc
    except OmegaConfBaseException as exc:
        raise ConfigError(_explain(exc)) from exc


def fail(message: str) -> int:
    print(f"nerve: {message}", file=sys.stderr)
    return 2


def command(main):
    """Decorate a command's `main(argv) -> int`: an expected failure (NerveError) prints one line,
    `nerve: message`, and returns 2; any other exception is a bug and propagates with its traceback."""

    @functools.wraps(main)
    def run(argv: list[str]) -> int:
        try:
            return main(argv)
        except NerveError as exc:
            return fail(str(exc))

    return run


def no_positionals(args: ParsedArgs) -> None:
    if args.positionals:
        raise ConfigError(f"unexpected arguments {args.positionals}; use key=value")
