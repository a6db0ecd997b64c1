"""``model = 'gbdt'``: LightGBM on SQL features of the very example rows the GNN trains on.

Features are computed by DuckDB (``planner.features``) for the prepared
examples, so both models see the same labels, splits and time rules.
Imports LightGBM (through ``udfs.gbdt``) only when a statement trains one.
"""
from __future__ import annotations

import itertools
import time

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from rdl_sql.planner.features import feature_names, feature_sql
from rdl_sql.planner.labels import ANCHOR, TaskPlan
from rdl_sql.planner.nodes import NODE
from rdl_sql.planner.sql import arrow, col, table
from rdl_sql.udfs.gbdt import GbdtModel, fit_gbdt
from rdl_sql.udfs.predictions import columns

from .prepare import SPLITS, Prepared

_names = itertools.count(1)


def example_features(con, prep: Prepared) -> tuple[pa.Table, list[str]]:
    """Feature rows for ``prep``'s labelled examples (all splits), ordered by anchor and node."""
    name = f"__rdl_examples_{next(_names)}"
    con.register(name, prep.examples)
    try:
        rows = exp.select("*").from_(table(name)).order_by(col(ANCHOR), col(NODE))
        q = feature_sql(prep.plan, rows)
        return arrow(con, q), feature_names(q)
    finally:
        con.unregister(name)


def fit(con, prep: Prepared) -> GbdtModel:
    """Train the LightGBM baseline on ``prep``'s examples; its metrics name the feature time too."""
    t0 = time.perf_counter()
    rows, names = example_features(con, prep)
    feature_seconds = time.perf_counter() - t0
    split = rows.column("split")
    parts = {s: rows.filter(pc.equal(split, s)) for s in SPLITS}
    model = fit_gbdt(parts["train"], parts["val"], parts["test"], prep.plan.task_type, prep.plan.options, names,
                     num_classes=len(prep.classes))
    model.metrics.update(label_seconds=round(prep.seconds, 3), feature_seconds=round(feature_seconds, 3))
    return model


def score(con, plan: TaskPlan, model: GbdtModel, classes: list | None = None, anchor=None) -> pa.Table:
    """The rows of ``plan.predict_sql`` scored, in ``plan.output_columns``, by key and anchor."""
    key = plan.query.entity_column
    rows = arrow(con, feature_sql(plan, plan.predict_sql(anchor)))
    out = {key: rows.column(key), ANCHOR: rows.column(ANCHOR),
           **columns(plan.task_type, model.predict(rows), classes)}
    return pa.table(out).sort_by([(key, "ascending"), (ANCHOR, "ascending")]).select(plan.output_columns)
