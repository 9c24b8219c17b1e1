"""`nerve bench refine`: every method and form at every size, exponents fitted, the low-rank and dense
walks agreeing, and the dense walk and the power-law fit checked against closed forms."""
import json

import numpy as np
import pytest
import torch

from jobs.bench import main as bench_main
from pipeline.bench.dense_walk import dense_walk
from pipeline.bench.refine import FORMS, RefineBenchConfig, fit_exponent, synthetic_inputs
from tests.bench_results import read_results

TINY_REFINE = ["sizes=[16,36,64]", "classes=[3]", "heads=2", "dim=8", "ranks=[8,32]", "walk.steps=6", "device=cpu", "threads=1"]


@pytest.fixture(scope="module")
def refine_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_refine")
    assert bench_main(["refine", f"output={out}", *TINY_REFINE]) == 0
    return read_results(out, "refine")


def test_refine_bench_reports_every_method_and_form_at_every_size(refine_results):
    cases = {(r["case"], r["N"]) for r in refine_results["runs"] if r["status"] == "ok"}
    expected = [f"lowrank/{f}" for f in FORMS] + [f"dense/{f}" for f in FORMS]
    expected += ["lowrank/exp_cosine/rf8", "lowrank/exp_cosine/rf32", "iseg", "dslo_optimal_path", "dslo_max_velocity"]
    for n in (16, 36, 64):
        for name in expected:
            assert (name, n) in cases
    for row in refine_results["runs"]:
        assert row["seconds"] > 0 and row["memory_method"]


def test_refine_bench_fits_exponents_for_every_case(refine_results):
    fits = {e["case"]: e for e in refine_results["exponents"]}
    assert len(fits) == 4 + 4 + 2 + 3  # low-rank forms, dense forms, two ranks, three registry refiners
    for fit in fits.values():
        assert fit["sizes"] == [16, 36, 64]
        assert np.isfinite(fit["time_exponent"])


def test_refine_bench_low_rank_and_dense_walks_agree(refine_results):
    check = refine_results["cross_check"]
    assert check["agree"] is True
    assert len(check["compared"]) == 3 * len(FORMS)
    assert check["max_abs_error"] <= 1e-4


def test_refine_bench_reports_random_feature_error_against_exact(refine_results):
    for row in refine_results["runs"]:
        if row["features"]:
            assert row["reference"] == "dense/exp_cosine"
            assert 0 < row["max_abs_error"] < 1  # an approximation: a real, bounded error


def test_refine_bench_times_a_batch_of_images_per_image_with_the_same_result(tmp_path):
    argv = ["refine", f"output={tmp_path}", *TINY_REFINE, "methods=[lowrank]", "forms=[shifted_cosine]", "images=[1,3]"]
    assert bench_main(argv) == 0
    runs = {(r["case"], r["N"]): r for r in read_results(tmp_path, "refine")["runs"]}
    for n in (16, 36, 64):
        batched = runs[("lowrank/shifted_cosine/x3", n)]
        assert batched["images"] == 3 and batched["seconds"] > 0
        assert batched["reference"] == "lowrank/shifted_cosine" and batched["max_abs_error"] < 1e-6
        alone = runs[("lowrank/shifted_cosine", n)]
        assert alone["ops_per_image"] > 100  # L = 6 steps of a few ops, plus the set-up
        # the batch dispatches about the ops of one image in all (a few more for the batch's copies)
        assert batched["ops_per_image"] * 3 <= alone["ops_per_image"] + 10


def test_refine_bench_skips_dense_methods_over_the_memory_budget(tmp_path):
    budget = 3 * 36 * 36 * 4  # the dense working set at N = 36 fits, at N = 64 it does not
    argv = ["refine", f"output={tmp_path}", *TINY_REFINE, f"max_dense_bytes={budget}", "forms=[exp_cosine]", "ranks=[8]"]
    threads = torch.get_num_threads()
    assert bench_main(argv) == 0
    assert torch.get_num_threads() == threads  # the bench's threads=1 does not leak into the session
    rows = {(r["case"], r["N"]): r for r in json.loads((tmp_path / "refine.json").read_text())["runs"]}
    for name in ("dense/exp_cosine", "iseg"):
        assert rows[(name, 36)]["status"] == "ok"
        assert rows[(name, 64)]["status"].startswith("skipped: needs")
    # without the dense walk, random features are measured against the exact block form
    assert rows[("lowrank/exp_cosine/rf8", 64)]["reference"] == "lowrank/exp_cosine"
    assert "skipped" in (tmp_path / "refine.txt").read_text()


@pytest.mark.parametrize("form", FORMS)
def test_dense_walk_converges_to_the_closed_form(form):
    """Independent check of the bench's dense walk: P_L -> (1 - α)(I - αS)⁻¹ G as L grows."""
    from nerve_core.refine.random_walk import nerve_closed_form

    cfg = RefineBenchConfig(heads=2, dim=8)
    G, q, k, grid = synthetic_inputs(36, 4, cfg, "cpu")
    walk = dict(alpha=0.8, beta=0.5, c=10.0, eps_self=0.1)
    P = dense_walk(G.double(), q.double(), k.double(), grid, steps=200, form=form, temperature=0.2, power=2.0, **walk)
    options = {"exp_cosine": dict(temperature=0.2), "relu_cosine": dict(power=2.0)}.get(form, {})
    exact = nerve_closed_form(G, q, k, grid, affinity=form, **walk, **options)
    assert torch.allclose(P, exact, atol=1e-10)


def test_fit_exponent_recovers_a_power_law():
    ns = [1024, 2304, 4096, 9216]
    assert fit_exponent(ns, [3e-4 * n**1.7 for n in ns]) == pytest.approx(1.7)
    assert fit_exponent([1024], [1.0]) is None
