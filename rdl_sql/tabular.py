"""PREDICT with ``model = 'gbdt'`` (LightGBM on SQL features) and ``model = 'auto'`` (the better of both).

Features are computed by DuckDB (``planner.features``) for the very example
rows the GNN would train on, so both models see the same labels, splits and
time rules; ``auto`` trains both and keeps the one with the better
validation metric, and says which won and by how much.
"""
from __future__ import annotations

import itertools
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from rdl_sql import training
from rdl_sql.planner.features import feature_names, feature_sql
from rdl_sql.planner.nodes import NODE
from rdl_sql.planner.query import METRIC_NAME
from rdl_sql.planner.sql import arrow, col, table
from rdl_sql.planner.task import ANCHOR, TaskPlan

_names = itertools.count(1)


def example_features(con, prep: training.Prepared) -> tuple[pa.Table, list[str]]:
    """Feature rows for ``prep``'s labelled examples (all splits), ordered by anchor and node."""
    name = f"__rdl_examples_{next(_names)}"
    con.register(name, prep.examples)
    try:
        rows = exp.select("*").from_(table(name)).order_by(col(ANCHOR), col(NODE))
        q = feature_sql(prep.plan, rows)
        return arrow(con, q), feature_names(q)
    finally:
        con.unregister(name)


def fit(con, prep: training.Prepared):
    """Train the LightGBM baseline on ``prep``'s examples; its metrics name the feature time too."""
    from rdl_sql.udfs.gbdt import fit_gbdt
    t0 = time.perf_counter()
    rows, names = example_features(con, prep)
    feature_seconds = time.perf_counter() - t0
    split = rows.column("split")
    parts = {s: rows.filter(pc.equal(split, s)) for s in training.SPLITS}
    model = fit_gbdt(parts["train"], parts["val"], parts["test"], prep.plan.task_type, prep.plan.options, names,
                     num_classes=len(prep.classes))
    model.metrics.update(label_seconds=round(prep.seconds, 3), feature_seconds=round(feature_seconds, 3))
    return model


def score(con, plan: TaskPlan, model, classes: list | None = None, anchor=None) -> pa.Table:
    """The rows of ``plan.predict_sql`` scored, in ``plan.output_columns``, by key and anchor.

    As the GNN path: binary gives a BOOLEAN prediction and its probability;
    multiclass the class, its probability and a MAP of class to probability.
    """
    key = plan.query.entity_column
    rows = arrow(con, feature_sql(plan, plan.predict_sql(anchor)))
    s = model.predict(rows)
    out = {key: rows.column(key), ANCHOR: rows.column(ANCHOR)}
    if plan.task_type == "binary":
        out["prediction"] = pa.array(s >= 0.5, pa.bool_())
        out["score"] = pa.array(s, pa.float64())
    elif plan.task_type == "multiclass":
        names = pa.array([str(c) for c in classes or []], pa.string())
        best = s.argmax(axis=1) if len(s) else np.zeros(0, np.int64)
        out["prediction"] = names.take(pa.array(best))
        out["score"] = pa.array(s.max(axis=1) if len(s) else np.zeros(0), pa.float64())
        k = len(names)
        offsets = pa.array(np.arange(0, (len(s) + 1) * k, k, dtype=np.int32))
        keys = names.take(pa.array(np.tile(np.arange(k), len(s))))
        out["probabilities"] = pa.MapArray.from_arrays(offsets, keys, pa.array(s.reshape(-1), pa.float64()))
    else:
        out["prediction"] = pa.array(s, pa.float64())
    table = pa.table(out).sort_by([(key, "ascending"), (ANCHOR, "ascending")])
    return table.select(plan.output_columns)


def predict(session, duck, con, prep: training.Prepared):
    """Train (and for 'auto' compare), then leave the predictions on ``duck``; returns the Outcome."""
    from rdl_sql.session import Outcome, _describe_metrics
    plan = prep.plan
    gbdt = fit(con, prep)
    metrics = dict(gbdt.metrics, model="gbdt")
    notices = [f"trained gbdt: {_describe_metrics(gbdt.metrics)}"]
    if plan.options["model"] == "auto":
        from rdl_sql.udfs.metrics import better
        gnn = training.train_gnn(con, prep, session.progress)
        notices.append(f"trained gnn: {_describe_metrics(gnn.metrics)}")
        name = METRIC_NAME[plan.task_type]
        key = f"val_{name}"
        a, b = gnn.metrics[key], gbdt.metrics[key]
        gnn_wins = better(plan.task_type, a, b)
        winner, loser = ("gnn", "gbdt") if gnn_wins else ("gbdt", "gnn")
        w, lo = (a, b) if gnn_wins else (b, a)
        notices.append(f"auto: {winner} won on validation {name} {w:.4f} vs {loser} {lo:.4f} ({w - lo:+.4f})")
        compared = {f"gbdt_{key}": b, f"gnn_{key}": a}
        if gnn_wins:
            session._score_gnn(duck, plan, gnn)
            return Outcome(notices, dict(gnn.metrics, model="gnn", **compared))
        metrics.update(compared)
    session._show(duck, score(con, plan, gbdt, prep.classes))
    return Outcome(notices, metrics)


__all__ = ["predict", "fit", "score", "example_features"]
