"""`nerve tune` end to end: cache the features (label actors), split, search (Ray Tune), write
OUT/tune/{leaderboard.csv, best.yaml, report.html, split.json}."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from configs import classes_path
from nerve_core.errors import ConfigError
from nerve_core.vocab import Vocabulary
from pipeline.output.writers import write_json
from pipeline.run.pending import JobResult
from pipeline.storage import atomic_write, filesystem, join
from pipeline.tune.cache import build_cache, image_id
from pipeline.tune.config import CACHE_DTYPES, SEARCHES
from pipeline.tune.diagnostics import walk_diagnostics_of
from pipeline.tune.outputs import write_outputs
from pipeline.tune.report import render_report
from pipeline.tune.search import SearchRun, finished_trials, optuna_searcher, run_search, trial_resources
from pipeline.tune.space import SearchSpace, digest, engine_with
from pipeline.tune.split import split_images
from pipeline.tune.trial import TrialContext

# Engine fields that decide where and how fast a trial runs, never its result.
_PLACEMENT_FIELDS = ("device", "batch_size", "compile")


@dataclass
class TuneResult:
    cache: JobResult
    search: SearchRun = field(default_factory=SearchRun)
    rows: list[dict] = field(default_factory=list)  # finished trials, best first

    @property
    def ok(self) -> bool:
        return not self.cache.not_done and not self.search.errors and bool(self.rows)


def check_tune_config(tcfg) -> None:
    if tcfg.search not in SEARCHES:
        raise ConfigError(f"unknown tune.search {tcfg.search!r}; expected one of {SEARCHES}")
    if tcfg.cache_dtype not in CACHE_DTYPES:
        raise ConfigError(f"unknown tune.cache_dtype {tcfg.cache_dtype!r}; expected one of {CACHE_DTYPES}")
    if tcfg.trials < 0 or tcfg.cpus_per_trial <= 0 or tcfg.gpus_per_trial <= 0:
        raise ConfigError("tune.trials must be >= 0, tune.cpus_per_trial and tune.gpus_per_trial > 0")
    if tcfg.search == "optuna":
        optuna_searcher()  # a missing optional extra is said before any model runs


def run_tune_job(cfg, on_event=None) -> TuneResult:
    """Cache, split, search and report for a TuneJobConfig."""
    from pipeline.run.driver import ray_session
    from pipeline.run.preflight import check_ray_settings

    if not cfg.output.dir:
        raise ConfigError("output.dir is required")
    check_tune_config(cfg.tune)
    check_ray_settings(cfg.ray)
    engine = OmegaConf.to_container(cfg.engine, resolve=True)
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    space = SearchSpace.from_config(cfg.tune.space, engine)
    vocab = Vocabulary.from_file(classes_path(cfg.dataset.classes))
    fs, out = filesystem(cfg.output.dir)
    tune_dir = join(cfg.output.dir, "tune")
    fs.makedirs(join(out, "tune", "trials"), exist_ok=True)
    with ray_session(cfg.ray.address, cfg.ray.local_num_cpus, metrics_export_port=cfg.ray.metrics_export_port) as ray:
        cache = build_cache(ray, cfg, space, join(cfg.output.dir, "cache"), vocab, on_event or (lambda *a, **k: None))
        if cache.not_done:  # trials on part of the images would not score what `nerve label` scores
            return TuneResult(cache)
        resources, device = trial_resources(ray.cluster_resources(), cfg.engine.device, cfg.tune.cpus_per_trial,
                                            cfg.tune.gpus_per_trial)
        context = _context(cfg, engine, space, vocab, cache, tune_dir, device)
        search = run_search(context, cfg.tune, resources, _storage(cfg.output.dir), cfg.ray.max_retries)
    rows = write_outputs(fs, join(out, "tune"), finished_trials(context), space, engine, dataset)
    diagnostics = walk_diagnostics_of(context, rows[0]["settings"]) if rows else None
    facts = {
        "output": cfg.output.dir, "search": f"{cfg.tune.search}, {len(rows)} trials finished "
        f"({search.ran} run by Tune this time, {search.reused} found finished)",
        "images": f"{len(context.parts['tune'])} tune part, {len(context.parts['check'])} check part "
                  f"(check_fraction {cfg.tune.check_fraction}, seed {cfg.tune.seed})",
        "cache": f"{cache.summary['images']} images, {cache.summary['bytes_per_image'] / 1e6:.3f} MB per image, "
                 f"q/k {cache.summary['qk_dtype']}",
    }
    html = render_report(space, rows, facts, diagnostics)
    atomic_write(fs, join(out, "tune", "report.html"), html.encode("utf-8"))
    return TuneResult(cache, search, rows)


def _context(cfg, engine: dict, space: SearchSpace, vocab: Vocabulary, cache: JobResult, tune_dir: str,
             device: str) -> TrialContext:
    """The trials' shared context (their engine on `device`), with the split recorded in OUT/tune/split.json."""
    index = cache.summary["index"]
    split = split_images([image_id(e) for e in index], cfg.tune.check_fraction, cfg.tune.seed)
    fs, root = filesystem(tune_dir)
    write_json(fs, join(root, "split.json"), {"check_fraction": cfg.tune.check_fraction, "seed": cfg.tune.seed, **split})
    part_of = {name: part for part, names in split.items() for name in names}
    parts = {part: tuple(e for e in index if part_of[image_id(e)] == part) for part in ("tune", "check")}
    unsearched = engine_with(engine, {key: None for key in space.keys})
    for name in _PLACEMENT_FIELDS:
        unsearched.pop(name)
    base = digest({"engine": unsearched, "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
                   "cache": cache.summary["fingerprint"], "split": split})
    return TrialContext(cache_dir=join(cfg.output.dir, "cache"), trials_dir=join(tune_dir, "trials"),
                        engine=dict(engine, device=device), base=base, space=space, points=(), parts=parts,
                        layers=tuple(cache.summary["layers"]), class_names=tuple(vocab.names),
                        ignore_index=cfg.dataset.ignore_index,
                        threads=max(1, int(cfg.tune.cpus_per_trial)) if device == "cpu" else 0)


def _storage(output_dir: str) -> str:
    """Ray Tune's own experiment folder: OUT/tune/ray (an absolute path for a local OUT)."""
    url = join(output_dir, "tune", "ray")
    return url if "://" in url else str(Path(url).resolve())
