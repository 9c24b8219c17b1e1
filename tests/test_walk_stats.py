"""Walk diagnostics in a job's outputs: Parquet column, per-shard aggregates, their merge, the warning."""
import io

import numpy as np
import pyarrow.parquet as pq
import pytest

from nerve_core.config import RefineConfig
from pipeline.output.walk_stats import WalkStats, walk_warning
from pipeline.output.walk_totals import fold_walks
from pipeline.output.writers import ShardResult, parquet_bytes
from pipeline.report.markdown import render_markdown
from pipeline.report.model import RunReport


def walk(kept: float, negative: float, weights=(0.5, 0.3, 0.2), moved: float = 0.4) -> dict:
    return {"head_weights": list(weights), "negative_fraction": [negative] * 3, "global_rows_kept": [kept] * 3,
            "local_rows_kept": [1.0] * 3, "mass_moved": moved}


def test_parquet_rows_carry_the_walk_struct():
    result = ShardResult("shard-000000", "fp")
    labels = np.zeros((2, 3), dtype=np.uint8)
    result.add_ok("a", 1, labels, None, walk=walk(0.25, 0.5))
    result.add_ok("b", 2, labels, None)  # an engine without a walk
    result.add_error("c", 3, "decode_image: bad")
    rows = pq.read_table(io.BytesIO(parquet_bytes(result.rows))).to_pylist()
    assert rows[0]["walk"] == walk(0.25, 0.5)
    assert rows[1]["walk"] is None and rows[2]["walk"] is None


def test_shard_aggregates_merge_into_mean_and_percentiles():
    # 1000 images over two shards, global rows kept 0.000, 0.001, ..., 0.999 (mean over heads).
    shards = [WalkStats(), WalkStats()]
    for i in range(1000):
        shards[i % 2].add(walk(i / 1000, 0.3, moved=2 * i / 1000))
    shards[0].add(None)  # images without a walk are not counted
    merged = fold_walks([s.to_json() for s in shards] + [None]).summary()
    assert merged["images"] == 1000
    kept = merged["global_rows_kept"]
    assert kept["mean"] == pytest.approx(0.4995)
    assert kept["p5"] == pytest.approx(0.05, abs=0.002) and kept["p95"] == pytest.approx(0.95, abs=0.002)
    assert merged["mass_moved"]["mean"] == pytest.approx(0.999)
    assert merged["mass_moved"]["p95"] == pytest.approx(1.9, abs=0.004)
    assert merged["head_weight_max"]["mean"] == pytest.approx(0.5)
    assert merged["per_head"]["head_weights"] == pytest.approx([0.5, 0.3, 0.2])
    assert merged["per_head"]["negative_fraction"] == pytest.approx([0.3] * 3)
    assert fold_walks([None]).summary() is None


def test_one_warning_names_the_form_the_share_and_what_to_try():
    stats = WalkStats()
    for _ in range(4):
        stats.add(walk(0.2, 0.45))
    summary_walk = fold_walks([stats.to_json()]).summary()
    warning = walk_warning(summary_walk, RefineConfig(global_affinity="cosine"))
    assert "cosine (sign_handling=guard)" in warning and "20%" in warning and "45%" in warning
    assert "sign_handling=row_sum" in warning and "nerve bench sweep" in warning
    assert "\n" not in warning
    signed = walk_warning(summary_walk, RefineConfig(global_affinity="cosine", sign_handling="row_sum"))
    assert "global_affinity=exp_cosine" in signed
    healthy = WalkStats()
    healthy.add(walk(0.9, 0.45))
    assert walk_warning(fold_walks([healthy.to_json()]).summary(), RefineConfig()) is None
    assert walk_warning(None, RefineConfig()) is None


def test_report_has_a_random_walk_section():
    stats = WalkStats()
    stats.add(walk(0.2, 0.45))
    summary = {"num_images": 1, "num_errors": 0, "num_shards": 1, "miou": 50.0, "per_class_iou": {"a": 50.0},
               "class_names": ["a"], "walk": fold_walks([stats.to_json()]).summary()}
    text = render_markdown(RunReport("t", "out", summary))
    assert "## Random walk (1 images)" in text
    assert "| global rows kept (share) | 0.200 |" in text
    assert "| 0 | 0.500 | 0.450 | 0.200 |" in text
    assert "Random walk" not in render_markdown(RunReport("t", "out", dict(summary, walk=None)))
