"""YAML presets and class-name files, shipped as package data."""
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent


def classes_path(name: str) -> Path:
    """A class-name file: `name` as a path, or configs/classes/<name>.txt."""
    candidate = Path(name)
    if candidate.is_file():
        return candidate
    path = CONFIG_DIR / "classes" / f"{name}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in (CONFIG_DIR / "classes").glob("*.txt"))
        from nerve_core.errors import NotFound

        raise NotFound(f"unknown class list {name!r}; available: {', '.join(available)}")
    return path
