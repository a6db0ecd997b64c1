"""The LightGBM baseline: learns a planted signal, keeps its categories, is deterministic, reports metrics."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from rdl_sql.planner.options import Options
from rdl_sql.udfs.gbdt import feature_columns, fit_gbdt

BRANDS = ["acme", "bolt", "cobalt", "dyn"]


def table(n: int, seed: int, regression: bool = False) -> pa.Table:
    """Rows whose label depends on a category (``cobalt`` is bad) and a number; ``noise`` is noise."""
    rng = np.random.default_rng(seed)
    brand = rng.choice(BRANDS, n)
    x = rng.normal(size=n)
    noise = rng.normal(size=n)
    logit = 2.5 * (brand == "cobalt") + 1.5 * x - 1.0
    if regression:
        label = 3.0 * (brand == "cobalt") + 2.0 * x + rng.normal(scale=0.1, size=n)
    else:
        label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    x_arr = pa.array(np.where(rng.random(n) < 0.05, np.nan, x), from_pandas=True)  # some NULLs
    return pa.table({"__node": np.arange(n), "customer_id": np.arange(n) + 1000,
                     "anchor_time": pa.array(np.full(n, 0), pa.timestamp("us")),
                     "split": ["x"] * n, "label": label,
                     "brand": pa.array(brand.tolist(), pa.string()), "x": x_arr, "noise": noise})


FEATURES = ["brand", "x", "noise"]


def test_learns_a_categorical_and_a_numeric_signal():
    m = fit_gbdt(table(3000, 0), table(1000, 1), table(1000, 2), "binary", Options(seed=0), FEATURES)
    assert m.metrics["val_AUROC"] > 0.8 and m.metrics["test_AUROC"] > 0.8
    assert {"train_rows", "val_rows", "test_rows", "rounds", "train_seconds"} <= set(m.metrics)
    assert m.metrics["train_rows"] == 3000 and m.metrics["test_rows"] == 1000


def test_regression_reports_mae():
    m = fit_gbdt(table(2000, 0, True), table(500, 1, True), table(500, 2, True), "regression", Options(seed=0),
                 FEATURES)
    assert m.metrics["val_MAE"] < 0.6 and m.metrics["test_MAE"] < 0.6   # the label's spread is about 2.5


def test_categories_mean_the_same_in_every_table_scored():
    m = fit_gbdt(table(2000, 0), table(500, 1), None, "binary", Options(seed=0), FEATURES)
    assert m.categories["brand"].to_pylist() == sorted(BRANDS)
    one = pa.table({"brand": ["cobalt"], "x": [0.0], "noise": [0.0]})
    # the same row scored alone, after other categories, and beside an unseen one (a missing value)
    mixed = pa.table({"brand": ["zzz-new", "acme", None, "cobalt"], "x": [0.0] * 4, "noise": [0.0] * 4})
    s_one, s_mixed = m.predict(one), m.predict(mixed)
    assert s_mixed[3] == s_one[0]
    assert s_one[0] > s_mixed[1] + 0.2                   # cobalt is the bad brand
    assert np.all((s_mixed >= 0) & (s_mixed <= 1))


def test_same_seed_same_model():
    train, val = table(2000, 0), table(500, 1)
    a = fit_gbdt(train, val, None, "binary", Options(seed=3), FEATURES)
    b = fit_gbdt(train, val, None, "binary", Options(seed=3), FEATURES)
    np.testing.assert_array_equal(a.predict(val), b.predict(val))


def test_feature_columns_leave_out_bookkeeping_and_the_key():
    assert feature_columns(table(10, 0), exclude=("customer_id",)) == FEATURES


def test_label_nulls_are_refused():
    bad = table(100, 0).set_column(4, "label", pa.array([None] * 100, pa.float64()))
    with pytest.raises(ValueError, match="NULL"):
        fit_gbdt(bad, table(100, 1), None, "binary", Options(seed=0), FEATURES)


def test_multiclass_reports_accuracy_and_scores_every_class():
    def classes(t: pa.Table) -> pa.Table:  # the label is the brand's index; -1: a class never trained on
        idx = np.array([BRANDS.index(b) for b in t.column("brand").to_pylist()], np.float64)
        idx[:5] = -1
        return t.set_column(4, "label", pa.array(idx))
    m = fit_gbdt(classes(table(1000, 0)).slice(5), classes(table(300, 1)), classes(table(300, 2)), "multiclass",
                 Options(seed=0), FEATURES, num_classes=len(BRANDS))
    assert m.metrics["val_accuracy"] > 0.9 and m.metrics["test_accuracy"] > 0.9
    p = m.predict(table(7, 3))
    assert p.shape == (7, len(BRANDS))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
