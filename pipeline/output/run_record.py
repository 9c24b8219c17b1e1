"""RunRecord: OUT/config.yaml as a type, the one way every reader learns how a run was made.

config.yaml holds the resolved label job (`config`) and its fingerprint (docs/design.md,
"Fingerprints"). Readers (score, verify, report, export, regress, evaluate) take the typed job from
here instead of digging keys out of the YAML, so that a renamed or new key has one place to change
and an old run's missing key falls back to the schema's default, as the labeler's did.
"""
from __future__ import annotations

from dataclasses import dataclass

from nerve_core.errors import ConfigError
from pipeline.config import LabelJobConfig


@dataclass(frozen=True)
class RunRecord:
    """The typed job that labeled a directory, its class names and its fingerprint."""

    config: LabelJobConfig
    fingerprint: dict  # {"digest", "engine", "classes", ...}: pipeline/output/fingerprint.py

    @property
    def digest(self) -> str:
        return str(self.fingerprint["digest"])

    @property
    def class_names(self) -> list[str]:
        """Each class's first synonym, in class-id order: the vocabulary as the run read it (from the
        fingerprint, which holds the synonyms themselves, so a moved class file does not matter)."""
        return [synonyms[0] for synonyms in self.fingerprint["classes"]]

    @classmethod
    def from_data(cls, data: dict, where: str) -> RunRecord:
        """The record from config.yaml's parsed content; `where` names the file in errors."""
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        from pipeline.job import label_job

        if not isinstance(data, dict) or not isinstance(data.get("config"), dict) or "digest" not in (data.get("fingerprint") or {}):
            raise ConfigError(f"{where} is not a run record: it needs a config mapping and a fingerprint with a digest")
        try:
            config = label_job(OmegaConf.create(data["config"]))
        except OmegaConfBaseException as exc:
            raise ConfigError(f"{where} does not fit this release's job schema: {str(exc).splitlines()[0]}") from exc
        return cls(config, dict(data["fingerprint"]))
