"""Training and prediction: example tensors, metrics, determinism, and the end-to-end leakage check."""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
import threading

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
from sqlglot import exp

from rdl_sql.datasets.shop import build_shop
from rdl_sql.planner import options
from rdl_sql.planner.extract import extract, reachable
from rdl_sql.planner.options import Options
from rdl_sql.planner.query import AggRef, Aggregate, PredictQuery, Target
from rdl_sql.planner.schema import read_schema
from rdl_sql.planner.sql import arrow
from rdl_sql.planner.task import compile_task
from rdl_sql.udfs.graph import build_graph
from rdl_sql.udfs.metrics import defined
from rdl_sql.udfs.train import Cancelled, Examples, better, fit, metric, torch_threads

TARGET = Aggregate("COUNT", "orders", None, 0, 30, "DAYS")
ACTIVE = Aggregate("COUNT", "orders", None, -90, 0, "DAYS")
CHURN = PredictQuery(Target(TARGET, "=", 0), "customers", "customer_id",
                     where=exp.GT(this=AggRef(this=1), expression=exp.Literal.number(0)), aggregates=(TARGET, ACTIVE))
SMALL = {"epochs": 1, "channels": 16, "fanouts": (4, 4)}


def small(plan) -> Options:
    """The plan's options with a small, one-epoch model."""
    base = plan.options
    return base.replace(**SMALL)


def split(ex: pa.Table, name: str) -> Examples:
    return Examples.from_arrow(ex.filter(pc.equal(ex.column("split"), name)))


@pytest.fixture(scope="module")
def shop():
    """A trained churn model on a small generated shop; the database is fresh per module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2-thread OpenMP scatter is ~8x slower on a loaded 2-core box
    con = duckdb.connect()
    try:
        build_shop(con, customers=300, products=40, days=300, seed=0)
        s = read_schema(con)
        p = compile_task(con, s, CHURN)
        ex = arrow(con, p.examples_sql(p.split_anchors()))
        tables = reachable(s, "customers", 2)
        g = build_graph(extract(con, s, tables, None))
        opts = small(p)
        tm = fit(g, g.type_of("customers"), split(ex, "train"), split(ex, "val"), split(ex, "test"), p.task_type,
                 opts, progress=False)
        yield {"con": con, "schema": s, "plan": p, "examples": ex, "tables": tables, "graph": g, "model": tm,
               "options": opts}
    finally:
        con.close()
        torch.set_num_threads(threads)


# ---- examples and metrics --------------------------------------------------------------
def test_examples_from_arrow_convert_nodes_anchors_and_labels():
    tbl = pa.table({"__node": pa.array([3, 1], pa.int64()),
                    "anchor_time": pa.array([dt.datetime(2024, 1, 10), dt.datetime(1970, 1, 2)], pa.timestamp("us")),
                    "split": ["train", "train"], "label": pa.array([1.0, 0.0])})
    ex = Examples.from_arrow(tbl)
    assert ex.node.tolist() == [3, 1] and ex.node.dtype == torch.long
    assert ex.anchor.tolist() == [1_704_844_800_000_000, 86_400_000_000]
    assert ex.label.tolist() == [1.0, 0.0] and ex.label.dtype == torch.float32
    assert len(ex) == 2
    assert ex.take(torch.tensor([1])).node.tolist() == [1]
    assert Examples.from_arrow(tbl.drop(["label"])).label is None
    # nanosecond and second timestamps are converted too
    ns = tbl.set_column(1, "anchor_time", pc.cast(tbl.column("anchor_time"), pa.timestamp("ns")))
    assert Examples.from_arrow(ns).anchor.tolist() == ex.anchor.tolist()


def test_metric_and_better():
    y = np.array([0.0, 0.0, 1.0, 1.0])
    assert metric("binary", y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert metric("binary", y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert math.isnan(metric("binary", np.ones(3), np.array([0.1, 0.5, 0.9])))  # one class only
    assert math.isnan(metric("regression", np.zeros(0), np.zeros(0)))
    assert metric("regression", np.array([1.0, 3.0]), np.array([2.0, 5.0])) == 1.5
    assert better("binary", 0.8, 0.7) and not better("binary", 0.7, 0.8)
    assert better("regression", 1.0, 2.0) and not better("regression", 2.0, 1.0)
    assert not better("binary", float("nan"), 0.5) and better("binary", 0.5, float("nan"))


def test_a_diverged_binary_models_nan_scores_give_a_nan_auroc_not_an_exception():
    # scikit-learn raised ValueError('Input contains NaN'), so a diverged binary GNN stopped with a Python error
    assert math.isnan(metric("binary", np.array([0.0, 1.0]), np.array([np.nan, np.nan])))
    assert defined("binary", np.array([0.0, 1.0])) and not defined("binary", np.ones(3))
    assert defined("multiclass", np.zeros(3)) and defined("regression", np.ones(3))  # accuracy, MAE: one value is fine
    assert not defined("regression", np.zeros(0))


# ---- training --------------------------------------------------------------------------
def test_fit_records_metrics_and_history(shop):
    tm = shop["model"]
    assert tm.task_type == "binary" and tm.fanouts == [4, 4]
    assert set(tm.metrics) >= {"val_AUROC", "test_AUROC", "epochs", "train_rows", "val_rows", "test_rows"}
    assert 0.0 <= tm.metrics["val_AUROC"] <= 1.0
    assert tm.metrics["epochs"] == len(tm.history) == 1
    ex = shop["examples"]
    assert tm.metrics["train_rows"] == int(pc.sum(pc.equal(ex.column("split"), "train")).as_py())


def test_same_seed_gives_the_same_model_and_predictions(shop, one_thread_torch):
    g, ex = shop["graph"], shop["examples"]
    val = split(ex, "val")
    again = fit(g, g.type_of("customers"), split(ex, "train"), val, None, "binary", shop["options"], progress=False)
    first, second = shop["model"].model.state_dict(), again.model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    p1, p2 = shop["model"].predict(g, val), again.predict(g, val)
    assert np.array_equal(p1, p2)
    assert p1.shape == (len(val),) and bool(((p1 > 0) & (p1 < 1)).all())



def test_a_seed_score_does_not_depend_on_the_other_seeds_of_its_batch(shop, one_thread_torch):
    # with the deterministic 'recent' sampler, batching changes nothing: no information crosses seeds
    g, val = shop["graph"], split(shop["examples"], "val")
    recent = dataclasses.replace(shop["model"], strategy="recent")
    whole = recent.predict(g, val)
    assert np.allclose(recent.predict(g, val, batch_size=37), whole, atol=1e-5)
    reversed_order = recent.predict(g, val.take(torch.arange(len(val) - 1, -1, -1)), batch_size=50)
    assert np.allclose(reversed_order[::-1], whole, atol=1e-5)


def test_regression_fit_predicts_on_the_label_scale(shop, one_thread_torch):
    con, s, g = shop["con"], shop["schema"], shop["graph"]
    target = Aggregate("SUM", "orders", "amount", 0, 30, "DAYS")
    p = compile_task(con, s, PredictQuery(Target(target), "customers", "customer_id", aggregates=(target,)))
    assert p.task_type == "regression"
    ex = arrow(con, p.examples_sql(p.split_anchors()))
    tm = fit(g, g.type_of("customers"), split(ex, "train"), split(ex, "val"), None, "regression",
             small(p), progress=False)
    train = split(ex, "train")
    assert math.isclose(tm.target_mean, float(train.label.mean()), rel_tol=1e-5)
    pred = tm.predict(g, split(ex, "val"))
    assert np.isfinite(pred).all() and np.isfinite(tm.metrics["val_MAE"])


# ---- cancelling ------------------------------------------------------------------------
class _SetAfter(threading.Event):
    """An event that is set once it has been checked ``n`` times (a server cancelling mid-epoch)."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.checks = n, 0

    def is_set(self) -> bool:
        self.checks += 1
        if self.checks > self.n:
            self.set()
        return super().is_set()


def test_fit_stops_with_cancelled_between_batches(small_shop, one_thread_torch):
    g, train, val = small_shop["graph"], small_shop["train"], small_shop["val"]
    opts = small_shop["options"].replace(batch_size=16)
    assert len(train) > 3 * 16
    ev = _SetAfter(3)
    with pytest.raises(Cancelled) as info:
        fit(g, g.type_of("customers"), train, val, None, "binary", opts, progress=False, cancel=ev)
    assert isinstance(info.value, KeyboardInterrupt)
    assert ev.checks == 4  # three batches ran, the fourth was never started
    already = threading.Event()
    already.set()
    with pytest.raises(Cancelled):
        fit(g, g.type_of("customers"), train, val, None, "binary", opts, progress=False, cancel=already)


# ---- end to end: planted future rows change no prediction -----------------------------
def _plant_future(con, anchor: dt.datetime) -> None:
    """Orders a microsecond and days after ``anchor`` for every customer, and a new customer."""
    for i, delta in enumerate((dt.timedelta(microseconds=1), dt.timedelta(days=3), dt.timedelta(days=40))):
        con.execute("INSERT INTO orders SELECT (SELECT max(order_id) FROM orders) + row_number() OVER (), "
                    "customer_id, ?, ?, 999.0 FROM customers", [i + 1, anchor + delta])
    new_id = con.execute("SELECT max(customer_id) + 1 FROM customers").fetchone()[0]
    con.execute("INSERT INTO customers VALUES (?, ?, 'US', 30)", [new_id, anchor + dt.timedelta(days=1)])
    con.execute("INSERT INTO orders VALUES ((SELECT max(order_id) + 1 FROM orders), ?, 1, ?, 5.0)",
                [new_id, anchor + dt.timedelta(days=2)])


def test_planted_future_orders_change_no_prediction(shop, one_thread_torch):
    """Train, score at an anchor, plant future orders for everyone, score again: identical.

    Checked on both paths: a graph cut AS OF the anchor, and the full graph (where the
    sampler alone must keep the future out). This test mutates the module's database: keep it last.
    """
    con, s, p, g, tm, tables = (shop[k] for k in ("con", "schema", "plan", "graph", "model", "tables"))
    q = p.query
    anchor = p.test_start

    def scored(plan, at=None):
        rows = arrow(con, plan.predict_sql(at))
        return rows, Examples.from_arrow(rows, label=None)

    cut_plan = compile_task(con, s, dataclasses.replace(q, as_of=anchor))
    cut_rows, cut_ex = scored(cut_plan)
    assert cut_rows.num_rows > 50
    cut_before = tm.predict(build_graph(extract(con, s, tables, anchor), g.specs), cut_ex)
    full_rows, full_ex = scored(p, anchor)
    full_before = tm.predict(g, full_ex)
    # the two paths agree customer by customer
    by_id = dict(zip(full_rows.column("customer_id").to_pylist(), full_before))
    assert np.allclose([by_id[c] for c in cut_rows.column("customer_id").to_pylist()], cut_before, atol=1e-6)
    later = anchor + dt.timedelta(days=5)
    _, later_ex = scored(p, later)
    later_before = tm.predict(g, later_ex)

    _plant_future(con, anchor)

    s2 = read_schema(con)
    cut_plan2 = compile_task(con, s2, dataclasses.replace(q, as_of=anchor))
    cut_rows2, cut_ex2 = scored(cut_plan2)
    assert cut_rows2.equals(cut_rows)
    cut_after = tm.predict(build_graph(extract(con, s2, tables, anchor), g.specs), cut_ex2)
    assert torch.allclose(torch.from_numpy(cut_after), torch.from_numpy(cut_before))

    g2 = build_graph(extract(con, s2, tables, None), g.specs)
    full_rows2, full_ex2 = scored(compile_task(con, s2, q), anchor)
    assert full_rows2.equals(full_rows)
    full_after = tm.predict(g2, full_ex2)
    assert torch.allclose(torch.from_numpy(full_after), torch.from_numpy(full_before))

    # the planted orders were influential once visible: five days later the scores move
    later_after = tm.predict(g2, later_ex)
    assert not np.allclose(later_after, later_before, atol=1e-4)


def test_more_threads_than_cores_run_on_the_cores(monkeypatch, one_thread_torch):
    monkeypatch.setattr(options, "cores", lambda: 2)
    with torch_threads(1000):
        assert torch.get_num_threads() == 2
    with torch_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 1
