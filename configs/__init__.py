"""YAML presets and class-name files, shipped as package data."""
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
