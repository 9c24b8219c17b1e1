"""The tune job's pure parts: search space, points, split, leaderboard and best.yaml, config errors."""
import copy
import csv
import io
import sys
from dataclasses import asdict

import pytest
import yaml

from nerve_core.config import EngineConfig
from pipeline.tune.config import TuneConfig
from pipeline.tune.job import check_tune_config
from pipeline.tune.outputs import best_config, leaderboard_csv, ranked
from pipeline.tune.space import SearchSpace, engine_with
from pipeline.tune.split import split_images

ENGINE = asdict(EngineConfig())
SPACE = {"engine.refine.alpha": [0.8, 0.95], "engine": {"refine": {"global_affinity": ["cosine", "relu_cosine", "exp_cosine"]}}}


def test_space_flattens_command_line_keys_and_enumerates_every_combination():
    space = SearchSpace.from_config(SPACE, ENGINE)
    assert space.keys == ("engine.refine.alpha", "engine.refine.global_affinity")
    grid = space.grid()
    assert len(grid) == space.size == 6 and len({tuple(p.values()) for p in grid}) == 6
    assert grid[0] == {"engine.refine.alpha": 0.8, "engine.refine.global_affinity": "cosine"}
    assert grid[-1] == {"engine.refine.alpha": 0.95, "engine.refine.global_affinity": "exp_cosine"}
    drawn = space.sample(4, seed=3)
    assert drawn == space.sample(4, seed=3) and len({tuple(p.values()) for p in drawn}) == 4
    assert all(space.contains(p) for p in drawn) and len(space.sample(99, seed=0)) == 6
    before = copy.deepcopy(ENGINE)
    assert engine_with(ENGINE, grid[1])["refine"] == dict(ENGINE["refine"], alpha=0.8, global_affinity="relu_cosine")
    assert ENGINE == before  # the base is not touched


@pytest.mark.parametrize("space, message", [
    ({"engine.clip.image_size": [224]}, "cannot be searched"),
    ({"engine.background.class_id": [0, -1]}, "decides the cached class sets"),
    ({"engine.refine.alfa": [0.9]}, "unknown engine key engine.refine.alfa"),
    ({"engine.refine.alpha": 0.9}, "must be a non-empty list"),
    ({"engine.refine.steps": ["many"]}, "invalid value 'many'"),
    ({}, "tune.space is empty"),
])
def test_space_errors_name_the_key(space, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace.from_config(space, ENGINE)


def test_split_is_fixed_by_name_and_seed_not_by_order():
    names = [f"shard-{i // 10:06d}/img{i}" for i in range(40)]
    split = split_images(names, 0.25, seed=0)
    assert len(split["check"]) == 10 and len(split["tune"]) == 30
    assert set(split["tune"]) | set(split["check"]) == set(names)
    shuffled = split_images(names[::-1], 0.25, seed=0)
    assert set(shuffled["check"]) == set(split["check"])
    assert set(split_images(names, 0.25, seed=1)["check"]) != set(split["check"])
    assert split_images(names, 0.0, seed=0)["check"] == []
    with pytest.raises(ValueError, match="check_fraction"):
        split_images(names, 1.0, seed=0)


def test_leaderboard_ranks_by_tune_miou_and_best_yaml_is_a_label_config():
    space = SearchSpace.from_config(SPACE, ENGINE)
    records = [{"trial": f"t{i}", "settings": p, "miou": m, "miou_check": None if i else 50.0, "seconds": 1.5,
                "images": {"tune": 3, "check": 1}} for i, (p, m) in enumerate(zip(space.grid(), [40, 70, 70, 10, 20, 30]))]
    rows = ranked(records, space)
    assert [r["trial"] for r in rows] == ["t1", "t2", "t0", "t5", "t4", "t3"]  # ties in grid order
    table = list(csv.reader(io.StringIO(leaderboard_csv(rows, space.keys))))
    assert table[0] == ["trial", *space.keys, "miou", "miou_check", "seconds"]
    assert table[1] == ["t1", "0.8", "relu_cosine", "70", "", "1.5"] and len(table) == 7
    text = best_config(rows[0], ENGINE, {"name": "demo", "classes": "demo"}, len(rows))
    assert text.startswith("# nerve tune: best of 6 trials")
    assert yaml.safe_load(text)["engine"]["refine"]["global_affinity"] == "relu_cosine"


def test_best_yaml_loads_as_label_config(tmp_path):
    from jobs.config import load_config
    from pipeline.config import LabelJobConfig

    record = {"trial": "t", "settings": {"engine.refine.alpha": 0.8}, "miou": 1.0, "miou_check": 2.0, "images": {"tune": 1}}
    path = tmp_path / "best.yaml"
    path.write_text(best_config(record, ENGINE, {"name": "demo", "classes": "demo"}, 1))
    cfg = load_config(LabelJobConfig, [], str(path))
    assert cfg.engine.refine.alpha == 0.8 and cfg.dataset.classes == "demo"


@pytest.mark.parametrize("key, value, message", [
    ("search", "bayes", "unknown tune.search"), ("cache_dtype", "int8", "unknown tune.cache_dtype"),
    ("trials", -1, "tune.trials"),
])
def test_bad_tune_settings_are_refused(key, value, message):
    with pytest.raises(ValueError, match=message):
        check_tune_config(TuneConfig(**{key: value}))


def test_optuna_missing_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(ValueError, match=r"pip install 'nerve\[optuna\]'"):
        check_tune_config(TuneConfig(search="optuna"))
