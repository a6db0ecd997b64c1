"""``model = 'gbdt'``: LightGBM on SQL features of the very example rows the GNN trains on.

Features are computed by DuckDB (``planner.features``) for the prepared
examples, so both models see the same labels, splits and time rules. A
stored GBDT keeps LightGBM's model text and its feature names; scoring
recomputes the features by SQL for today's rows (or those of ``AS OF``), so
it obeys the same time rules as training.
Imports LightGBM (through ``udfs.gbdt``) only when a statement trains or scores one.
"""
from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.features import feature_names, feature_sql, tables_read
from rdl_sql.planner.labels import ANCHOR, TaskPlan
from rdl_sql.planner.nodes import NODE
from rdl_sql.planner.query import TaskType
from rdl_sql.planner.sql import arrow, col, table
from rdl_sql.udfs.gbdt import GbdtModel, fit_gbdt
from rdl_sql.udfs.predictions import columns

from .prepare import SPLITS, Prepared
from .store import StoredModel

_names = itertools.count(1)


@dataclass
class GbdtResult:
    """A trained (or stored) GBDT; a fresh one keeps its test split's labels and scores for EVALUATE."""

    model: GbdtModel
    metrics: dict
    test_label: np.ndarray | None = None
    test_score: np.ndarray | None = None
    test_nodes: np.ndarray | None = None  # the entity of each test row (EVALUATE resamples entities)

    @property
    def classes(self) -> list:
        return self.model.classes


def example_features(con, prep: Prepared) -> tuple[pa.Table, list[str]]:
    """Feature rows for ``prep``'s labelled examples (all splits), ordered by anchor and node."""
    return rows_features(con, prep.plan, prep.examples)


def rows_features(con, plan: TaskPlan, rows: pa.Table) -> tuple[pa.Table, list[str]]:
    """Feature rows for example ``rows`` (``__node``, keys, ``anchor_time``, ...), ordered by anchor and node."""
    name = f"__rdl_examples_{next(_names)}"
    con.register(name, rows)
    try:
        q = feature_sql(plan, exp.select("*").from_(table(name)).order_by(col(ANCHOR), col(NODE)))
        return arrow(con, q), feature_names(q)
    finally:
        con.unregister(name)


def fit(con, prep: Prepared, cancel: threading.Event | None = None) -> GbdtResult:
    """Train the LightGBM baseline on ``prep``'s examples; its metrics name the feature time too.

    ``cancel`` (the engine's event; None in the benchmarks) stops the boosting
    before its next round; the feature query stops by DuckDB's own interrupt.
    """
    t0 = time.perf_counter()
    rows, names = example_features(con, prep)
    feature_seconds = time.perf_counter() - t0
    split = rows.column("split")
    parts = {s: rows.filter(pc.equal(split, s)) for s in SPLITS}
    model = fit_gbdt(parts["train"], parts["val"], parts["test"], prep.plan.task_type, prep.plan.options, names,
                     num_classes=len(prep.classes), cancel=cancel)
    model.classes = list(prep.classes)
    model.metrics.update(label_seconds=round(prep.seconds, 3), feature_seconds=round(feature_seconds, 3))
    test = parts["test"]
    if not test.num_rows:
        return GbdtResult(model, dict(model.metrics))
    return GbdtResult(model, dict(model.metrics), _labels(test), model.predict(test),
                      test.column(NODE).to_numpy(zero_copy_only=False))


def score(con, plan: TaskPlan, result: GbdtResult, anchor=None) -> pa.Table:
    """The rows of ``plan.predict_sql`` scored, in ``plan.output_columns``, by key and anchor."""
    keys = list(plan.keys)
    rows = arrow(con, feature_sql(plan, plan.predict_sql(anchor)))
    _check_features(result.model, rows)
    out = {**{k: _decoded(rows.column(k)) for k in keys}, ANCHOR: rows.column(ANCHOR),
           **columns(plan.task_type, result.model.predict(rows), result.classes, result.model.threshold)}
    order = [(k, "ascending") for k in keys] + [(ANCHOR, "ascending")]
    return pa.table(out).sort_by(order).select(plan.output_columns)


def predict_rows(con, plan: TaskPlan, result: GbdtResult,
                 rows: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, model outputs and entity nodes for labelled example ``rows``, features computed by SQL."""
    feats, _ = rows_features(con, plan, rows)
    _check_features(result.model, feats)
    return _labels(feats), result.model.predict(feats), feats.column(NODE).to_numpy(zero_copy_only=False)


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """An ENUM key (an Arrow dictionary, which Arrow cannot sort) as its text; ``plan.typed_sql`` casts it back."""
    return pc.cast(column, column.type.value_type) if pa.types.is_dictionary(column.type) else column


def _labels(rows: pa.Table) -> np.ndarray:
    return pc.cast(rows.column("label"), pa.float64()).to_numpy(zero_copy_only=False)


def _check_features(model: GbdtModel, rows: pa.Table) -> None:
    missing = [f for f in model.features if f not in rows.column_names]
    if missing:
        raise PlanError(f"the stored gbdt model reads features the database no longer yields: "
                        f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}; retrain it with "
                        f"CREATE OR REPLACE MODEL")


def to_stored(prep: Prepared, result: GbdtResult, name: str, statement: str, canonical: str, digest: str,
              metrics: dict | None = None) -> StoredModel:
    """The ``rdl_models`` row of a freshly trained GBDT."""
    opts = prep.plan.options
    fingerprint = prep.schema.fingerprint(tables_read(prep.schema, prep.plan.entity.name))
    return StoredModel(name, statement, prep.plan.task_type.value, "gbdt", opts.as_dict(), fingerprint, digest,
                       dict(metrics or result.metrics), result.model.dumps(), dt.datetime.now(), canonical)


def load_stored(prep: Prepared, stored: StoredModel) -> GbdtResult:
    """A stored GBDT; refused, saying what changed, if the schema moved."""
    changes = prep.schema.incompatibilities(stored.fingerprint)
    if changes:
        raise PlanError(f"model `{stored.name}` cannot read the database any more: " + "; ".join(changes)
                        + f"; retrain it with CREATE OR REPLACE MODEL {stored.name} AS {stored.statement}")
    try:
        model = GbdtModel.loads(stored.weights)
    except ValueError as e:
        raise PlanError(f"model `{stored.name}` cannot be loaded: {e}; retrain it with CREATE OR REPLACE MODEL "
                        f"{stored.name} AS {stored.statement}") from None
    if TaskType(model.task_type) is not prep.plan.task_type:
        raise PlanError(f"model `{stored.name}` is a {model.task_type} model, but its statement now plans a "
                        f"{prep.plan.task_type.value} task; retrain it")
    return GbdtResult(model, dict(stored.metrics))
