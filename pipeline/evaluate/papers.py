"""The papers' reported mIoU, one YAML file per table row in configs/paper_tables/, and which tables each
engine preset is compared with (configs/paper_tables/engines.yaml, kept apart from the engine presets so
that naming a table never changes an engine's fingerprint)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from configs import CONFIG_DIR
from nerve_core.errors import ConfigError, first_line

PAPERS_DIR = CONFIG_DIR / "paper_tables"
ENGINE_TABLES_FILE = PAPERS_DIR / "engines.yaml"


@dataclass(frozen=True)
class PaperTable:
    paper: str = ""  # the paper's title (and where it was published)
    table: str = ""  # which table and row the figures come from
    average: Optional[float] = None  # the table's own average column, null where it has none
    miou: dict[str, Optional[float]] = field(default_factory=dict)  # dataset preset name -> mIoU (%), null: not given
    name: str = ""  # the file's name in configs/paper_tables/ (or its path), set on loading


def table_names() -> list[str]:
    return sorted(p.stem for p in PAPERS_DIR.glob("*.yaml") if p != ENGINE_TABLES_FILE)


def _read(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read paper table {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"paper table {path} must hold a mapping at the top level")
    return data


def load_table(name: str) -> PaperTable:
    """A table by name (configs/paper_tables/NAME.yaml) or by the path of a YAML file of the same form."""
    path = Path(name)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = PAPERS_DIR / f"{name}.yaml"
        if name not in table_names():
            raise ConfigError(f"unknown paper table {name!r}; available: {', '.join(table_names())}")
    try:
        table = OmegaConf.merge(OmegaConf.structured(PaperTable), _read(path), {"name": name})
        return OmegaConf.to_object(table)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"paper table {path}: {first_line(exc)}") from exc


def engine_tables() -> dict[str, list[str]]:
    """engine preset name -> the names of its tables, in the order they are consulted."""
    data = _read(ENGINE_TABLES_FILE)
    return {engine: [names] if isinstance(names, str) else list(names) for engine, names in data.items()}


def tables_for(engine: str, paper: str = "") -> list[PaperTable]:
    """The tables to compare with: `paper` when given, else the engine's own (none for an engine
    that no table belongs to)."""
    names = [paper] if paper else engine_tables().get(engine, [])
    return [load_table(n) for n in names]


def paper_figure(tables: list[PaperTable], dataset: str) -> tuple[Optional[float], Optional[str]]:
    """(mIoU, table name) from the first table that reports `dataset`; (None, None) where none does."""
    for table in tables:
        if table.miou.get(dataset) is not None:
            return table.miou[dataset], table.name
    return None, None
