"""EVALUATE's metrics table: bootstrap intervals over the test rows, beside the trivial predictor."""
from __future__ import annotations

import numpy as np
import pytest

from rdl_sql.engine.evaluate import bootstrap, metrics_table, paired_draws, weighted
from rdl_sql.planner.query import TaskType
from rdl_sql.udfs.metrics import report


def binary(n: int, seed: int = 0, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores that carry some signal (AUROC about 0.75)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.float64)
    s = 1 / (1 + np.exp(-(1.3 * y + rng.normal(size=n))))
    return y, (np.round(s, 1) if ties else s)


def regression(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.gamma(2.0, 10.0, size=n)
    return y, y + rng.normal(scale=5.0, size=n)


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_metrics_with_unit_weights_are_the_reported_ones(ties):
    y, s = binary(500, ties=ties)
    got = weighted(TaskType.BINARY, y, s, np.ones((1, len(y))))
    want = report("binary", y, s, 0.3)
    for k in ("AUROC", "average_precision", "accuracy"):
        assert got[k][0] == pytest.approx(want[k][0], abs=1e-12), k


def test_weighted_regression_and_multiclass_match_the_report():
    y, s = regression(400)
    got = weighted(TaskType.REGRESSION, y, s, np.ones((1, len(y))))
    want = report("regression", y, s, float(y.mean()))
    for k in ("MAE", "RMSE", "R2"):
        assert got[k][0] == pytest.approx(want[k][0], rel=1e-12), k
    rng = np.random.default_rng(1)
    yc = rng.integers(0, 3, 300).astype(np.float64)
    p = rng.dirichlet([1, 1, 1], 300)
    assert weighted(TaskType.MULTICLASS, yc, p, np.ones((1, 300)))["accuracy"][0] == pytest.approx(
        report("multiclass", yc, p, 0.0)["accuracy"][0])


def test_weights_are_row_counts():
    """A resample that holds row i twice weighs it twice: the metric of the duplicated rows themselves."""
    y, s = binary(60, seed=3)
    counts = np.random.default_rng(4).integers(0, 3, size=60)
    rows = np.repeat(np.arange(60), counts)
    got = weighted(TaskType.BINARY, y, s, counts[None, :].astype(np.float64))
    want = report("binary", y[rows], s[rows], 0.3)
    for k in ("AUROC", "average_precision", "accuracy"):
        assert got[k][0] == pytest.approx(want[k][0], abs=1e-12), k


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_intervals_contain_the_value_and_shrink_with_more_rows(kind):
    make = binary if kind == "binary" else regression
    widths = []
    for n in (200, 5000):
        y, s = make(n)
        t = metrics_table(TaskType(kind), y, s, float(y.mean()), resamples=400, seed=0).to_pylist()
        for row in t:
            assert row["ci_low"] <= row["value"] <= row["ci_high"], row
        main = t[0]
        assert main["metric"] == ("AUROC" if kind == "binary" else "MAE")
        widths.append(main["ci_high"] - main["ci_low"])
    assert widths[1] < widths[0] / 3  # about sqrt(25) = 5 times narrower


def test_table_columns_and_the_trivial_baseline():
    y, s = binary(300)
    t = metrics_table(TaskType.BINARY, y, s, 0.3, resamples=200)
    assert t.column_names == ["metric", "value", "ci_low", "ci_high", "baseline"]
    rows = {r["metric"]: r for r in t.to_pylist()}
    assert set(rows) == {"AUROC", "average_precision", "accuracy", "rows"}
    assert rows["AUROC"]["baseline"] == 0.5
    assert rows["rows"]["value"] == rows["rows"]["ci_low"] == rows["rows"]["ci_high"] == 300


def test_bootstrap_is_seeded():
    y, s = binary(400)
    assert bootstrap(TaskType.BINARY, y, s, 300, seed=7) == bootstrap(TaskType.BINARY, y, s, 300, seed=7)
    assert bootstrap(TaskType.BINARY, y, s, 300, seed=7) != bootstrap(TaskType.BINARY, y, s, 300, seed=8)


def test_a_resample_with_one_class_is_left_out_of_the_auroc_interval():
    y = np.array([1.0] + [0.0] * 9)  # many resamples miss the one positive
    s = np.linspace(1, 0, 10)
    low, high = bootstrap(TaskType.BINARY, y, s, 500, seed=0)["AUROC"]
    assert low == high == 1.0  # every resample that holds the positive ranks it first


def test_no_rows_gives_no_intervals():
    assert bootstrap(TaskType.BINARY, np.zeros(0), np.zeros(0)) == {}


def test_resampling_entities_counts_an_entity_seen_at_many_anchors_once():
    """Each entity's row repeated at 5 anchors: drawn by entity, the interval is the one of the entities
    themselves; drawn by row, it would be about sqrt(5) too narrow."""
    y, s = binary(400, seed=2)
    rep_y, rep_s, nodes = np.tile(y, 5), np.tile(s, 5), np.tile(np.arange(400), 5)
    by_entity = bootstrap(TaskType.BINARY, rep_y, rep_s, 300, seed=1, groups=nodes)["AUROC"]
    alone = bootstrap(TaskType.BINARY, y, s, 300, seed=1)["AUROC"]
    assert by_entity == pytest.approx(alone, abs=1e-12)
    by_row = bootstrap(TaskType.BINARY, rep_y, rep_s, 300, seed=1)["AUROC"]
    assert (by_row[1] - by_row[0]) < 0.6 * (by_entity[1] - by_entity[0])


def test_accuracy_is_that_of_the_prediction_column_at_the_models_threshold():
    y, s = binary(500, seed=5)
    t = {r["metric"]: r for r in metrics_table(TaskType.BINARY, y, s, 0.3, resamples=200, threshold=0.7).to_pylist()}
    assert t["accuracy"]["value"] == pytest.approx(float(np.mean((s >= 0.7) == (y >= 0.5))))
    assert t["accuracy"]["ci_low"] <= t["accuracy"]["value"] <= t["accuracy"]["ci_high"]
    got = weighted(TaskType.BINARY, y, s, np.ones((1, len(y))), threshold=0.7)["accuracy"][0]
    assert got == pytest.approx(report("binary", y, s, 0.3, threshold=0.7)["accuracy"][0])


def test_paired_draws_of_a_model_against_itself_are_zero():
    y, s = binary(300)
    assert np.all(paired_draws(TaskType.BINARY, y, s, s, "AUROC", 200) == 0)


def test_paired_draws_centre_on_the_difference_and_are_narrower_than_separate_intervals():
    rng = np.random.default_rng(3)
    y, a = binary(2000, seed=3)
    b = a + rng.normal(scale=0.04, size=len(a))  # the same model with extra noise: a little worse on every row
    diff = report("binary", y, a, 0.3)["AUROC"][0] - report("binary", y, b, 0.3)["AUROC"][0]
    draws = paired_draws(TaskType.BINARY, y, a, b, "AUROC", 400, seed=0)
    low, high = np.quantile(draws, [0.025, 0.975])
    assert 0 < low < diff < high  # a real difference: the paired interval excludes zero
    la, ha = bootstrap(TaskType.BINARY, y, a, 400, seed=0)["AUROC"]
    lb, hb = bootstrap(TaskType.BINARY, y, b, 400, seed=0)["AUROC"]
    assert la < hb  # ... where the two models' own intervals overlap
    assert high - low < 0.5 * ((ha - la) + (hb - lb))


def test_paired_draws_are_seeded_and_match_the_weighted_metric():
    y, t = regression(500)
    u = t + 3.0
    d1 = paired_draws(TaskType.REGRESSION, y, t, u, "MAE", 50, seed=4)
    assert np.array_equal(d1, paired_draws(TaskType.REGRESSION, y, t, u, "MAE", 50, seed=4))
    assert not np.array_equal(d1, paired_draws(TaskType.REGRESSION, y, t, u, "MAE", 50, seed=5))
    groups = np.arange(500) // 5  # five rows per entity: drawn together
    dg = paired_draws(TaskType.REGRESSION, y, t, u, "MAE", 300, seed=4, groups=groups)
    assert dg.shape == (300,) and np.all(np.isfinite(dg))
    full = np.mean(np.abs(y - t)) - np.mean(np.abs(y - u))
    assert abs(np.mean(dg) - full) < 0.2
