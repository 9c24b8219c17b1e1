"""`nerve evaluate`: the papers' tables, the per-dataset label jobs, the up-front checks, and one run
over two datasets (rows equal to each dataset's summary.json, a rerun that relabels nothing)."""
from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
import yaml

from configs import CONFIG_DIR, classes_path
from jobs.config import parse_argv, preset_names
from jobs.evaluate import dataset_jobs
from jobs.evaluate import main as evaluate
from jobs.models import load_labeling_config
from nerve_core.models.tiny import dotlist
from nerve_core.vocab import Vocabulary
from pipeline.evaluate.config import EvaluateJobConfig
from pipeline.evaluate.papers import engine_tables, load_table, paper_figure, table_names, tables_for
from pipeline.output.fingerprint import job_fingerprint
from pipeline.run import driver
from tests.shards import make_demo_shards

JOB_CONFIGS = ["evaluate-nerve", "evaluate-naclip", "evaluate-dslo", "evaluate-wsss"]


def test_paper_tables_load_and_name_only_dataset_presets():
    datasets = set(preset_names("dataset"))
    for name in table_names():
        table = load_table(name)
        assert table.paper and table.table and table.miou, name
        assert set(table.miou) <= datasets, name
        values = list(table.miou.values())
        if table.average is not None and None not in values:
            # The table's own average column, within the rounding of the figures it averages.
            assert abs(sum(values) / len(values) - table.average) <= 0.1 + 1e-9, name


def test_every_engine_preset_names_existing_tables_that_do_not_overlap():
    tables = engine_tables()
    assert set(tables) == set(preset_names("engine"))
    for engine, names in tables.items():
        assert names and set(names) <= set(table_names()), engine
        keys = [key for table in tables_for(engine) for key in table.miou]
        assert len(keys) == len(set(keys)), f"{engine}: two of its tables report the same dataset"


def test_paper_figures_match_the_papers_headline_numbers():
    nerve, naclip = load_table("nerve").miou, load_table("naclip").miou
    assert (nerve["voc21"], nerve["pc60"], nerve["ade"], nerve["pc59"], nerve["coco_stuff"]) == (69.7, 37.7, 24.0, 43.4, 28.8)
    assert (naclip["voc20"], naclip["cityscapes"]) == (79.7, 35.5)
    assert paper_figure(tables_for("nerve"), "coco_wsss") == (45.7, "nerve-wsss")
    assert paper_figure(tables_for("nerve", paper="naclip"), "voc21") == (58.9, "naclip")
    assert paper_figure(tables_for("not-an-engine-preset"), "voc21") == (None, None)


@pytest.mark.parametrize("config", JOB_CONFIGS)
def test_ready_made_configs_give_each_dataset_its_preset_and_a_paper_figure(config, tmp_path):
    args = parse_argv(["--config", config, f"output.dir={tmp_path}", "engine.background.threshold=0.2"])
    cfg = load_labeling_config(EvaluateJobConfig, args)
    jobs = dataset_jobs(cfg, args)
    assert list(jobs) == list(cfg.evaluate.datasets)
    tables = tables_for(cfg.engine.name, cfg.evaluate.paper)
    for name, job in jobs.items():
        preset = yaml.safe_load((CONFIG_DIR / "datasets" / f"{name}.yaml").read_text())
        assert job.dataset == type(job.dataset)(**preset["dataset"])
        assert job.engine.mode == preset["engine"].get("mode", "open")
        assert job.engine.background.threshold == 0.2  # key=value still wins over the dataset preset
        assert job.engine.name == cfg.engine.name and job.output.dir == f"{tmp_path}/{name}"
        assert job.input.shards == cfg.evaluate.datasets[name]
        assert paper_figure(tables, name)[0] is not None, name


def _fingerprints(config: str, tmp_path) -> tuple[dict[str, str], dict]:
    args = parse_argv(["--config", config, f"output.dir={tmp_path}"])
    jobs = dataset_jobs(load_labeling_config(EvaluateJobConfig, args), args)
    return {name: job_fingerprint(job, Vocabulary.from_file(classes_path(job.dataset.classes)).synonyms)["digest"]
            for name, job in jobs.items()}, jobs


def test_naclips_cityscapes_protocol_changes_that_datasets_fingerprint_only(tmp_path):
    """evaluate-naclip.yaml labels Cityscapes at a short side of 560 (NACLIP's protocol), the rest at 336."""
    ours, jobs = _fingerprints("evaluate-naclip", tmp_path)
    assert {name: job.engine.clip.image_size for name, job in jobs.items()} == {
        name: 560 if name == "cityscapes" else 336 for name in jobs}
    without = yaml.safe_load((CONFIG_DIR / "jobs" / "evaluate-naclip.yaml").read_text())
    del without["evaluate"]["engine"]
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(without))
    plain, _ = _fingerprints(str(tmp_path / "plain.yaml"), tmp_path)
    assert [name for name in ours if ours[name] != plain[name]] == ["cityscapes"]


def test_per_dataset_engine_keys_must_name_a_dataset_and_real_keys(tmp_path, capsys):
    datasets = f"evaluate.datasets={{voc21: {tmp_path}}}"
    assert evaluate([datasets, "evaluate.engine={ade: {clip: {image_size: 560}}}", f"output.dir={tmp_path}"]) == 2
    assert "evaluate.engine names 'ade', not in evaluate.datasets" in capsys.readouterr().err
    assert evaluate([datasets, "evaluate.engine={voc21: {clip: {image_sise: 560}}}", f"output.dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nerve: evaluate.engine.voc21: ") and "image_sise" in err


def test_unknown_dataset_preset_and_stray_input_shards_are_one_line_errors(tmp_path, capsys):
    assert evaluate(["evaluate.datasets={voc21: x, vocc21: y}", f"output.dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown dataset preset 'vocc21'" in err
    assert evaluate(["evaluate.datasets={voc21: x}", "input.shards=x", f"output.dir={tmp_path}"]) == 2
    assert "leave input.shards unset" in capsys.readouterr().err
    assert evaluate([f"output.dir={tmp_path}"]) == 2
    assert "evaluate.datasets is empty" in capsys.readouterr().err


def test_missing_shards_of_one_dataset_stop_the_job_before_any_labeling(tmp_path, capsys):
    make_demo_shards(tmp_path / "demo", num_samples=2, per_shard=2)
    out = tmp_path / "out"
    rc = evaluate([f"evaluate.datasets={{demo: {tmp_path / 'demo'}, voc21: {tmp_path / 'no-voc'}}}", f"output.dir={out}",
                   "engine.device=cpu", "progress=false"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("nerve: dataset voc21: 1 of 1 input shards do not exist") and "dataset demo" not in err
    assert not out.exists()  # nothing labeled, not even the dataset whose shards are there


def test_shared_session_starts_ray_once_for_every_job_and_stops_it_at_the_end(monkeypatch):
    events = []

    @contextmanager
    def counting_session(address, local_num_cpus, verbose=False, metrics_export_port=0):  # as ray_session: a Ray already up is reused
        if "start" in events and "stop" not in events:
            yield "ray"
            return
        events.append("start")
        try:
            yield "ray"
        finally:
            events.append("stop")

    monkeypatch.setattr(driver, "ray_session", counting_session)
    with driver.SharedRaySession() as session:
        for _ in range(3):
            with session("", None) as ray:
                assert ray == "ray"
        assert events == ["start"]
    assert events == ["start", "stop"]
    with driver.SharedRaySession():
        pass  # no job had work: no Ray
    assert events == ["start", "stop"]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_models, ray_session):
    """Two datasets over the same demo shards (their ids fit both vocabularies), compared with a
    table that reports one of them; labeled once."""
    root = tmp_path_factory.mktemp("evaluate")
    make_demo_shards(root / "shards", num_samples=4, per_shard=2)
    (root / "table.yaml").write_text(yaml.safe_dump({"paper": "a test paper", "table": "Table 9",
                                                     "miou": {"demo": 50.0, "voc20": 70.0}}))
    args = [f"evaluate.datasets={{demo: {root / 'shards'}, voc21: '{root / 'shards'}/shard-{{000000..000001}}.tar'}}",
            f"evaluate.paper={root / 'table.yaml'}", f"output.dir={root / 'out'}", "engine.device=cpu", "progress=false",
            *dotlist(tiny_models)]
    assert evaluate(args) == 0
    return root / "out", args


def _stats_marks(out):
    """Each done shard's stats file: (mtime, the labeling's started_at)."""
    return {p: (p.stat().st_mtime_ns, json.loads(p.read_text())["started_at"]) for p in sorted(out.glob("*/shards/*.stats.json"))}


def test_rows_equal_each_datasets_summary_beside_the_papers(evaluated):
    out, _ = evaluated
    record = json.loads((out / "evaluation.json").read_text())
    assert record["engine"] == "nerve" and [r["dataset"] for r in record["rows"]] == ["demo", "voc21"]
    for row in record["rows"]:
        summary = json.loads((out / row["dataset"] / "summary.json").read_text())
        assert row["miou"] == summary["miou"] and row["images"] == summary["num_images"] == 4 and row["done"]
        assert yaml.safe_load((out / row["dataset"] / "config.yaml").read_text())["config"]["dataset"]["name"] == row["dataset"]
    demo, voc21 = record["rows"]
    assert demo["paper_miou"] == 50.0 and demo["delta"] == pytest.approx(demo["miou"] - 50.0, abs=0.005)
    assert voc21["paper_miou"] is None and voc21["delta"] is None  # the table does not report voc21
    assert record["average"]["datasets"] == ["demo"]
    assert record["average"]["miou"] == demo["miou"] and record["average"]["paper_miou"] == 50.0
    md = (out / "evaluation.md").read_text()
    assert "| demo | 4 | 0 |" in md and "| 50.0 |" in md
    # models=real with the tiny models' paths: the files say their weights are random, and so does the table
    assert len(record["random_weights"]) == 2 and "> RANDOM weights (clip: " in md
    assert (out / "evaluation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_resumes_every_dataset_without_relabeling(evaluated, capsys):
    out, args = evaluated
    before, record = _stats_marks(out), (out / "evaluation.json").read_text()
    assert len(before) == 4
    assert evaluate(args) == 0
    assert "2 of 2 shards done before" in capsys.readouterr().out
    assert _stats_marks(out) == before
    assert (out / "evaluation.json").read_text() == record
