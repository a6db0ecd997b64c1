"""Metrics tables for EVALUATE: the model's metrics beside the trivial predictor's.

The trivial predictor knows only the training labels: the positive rate
(binary), the mean (regression) or the most frequent class (multiclass).
A model is worth keeping only where it beats that column.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.sql import arrow


def metrics_table(task_type: str, y: np.ndarray, score: np.ndarray, train_mean: float) -> pa.Table:
    """Rows ``(metric, value, baseline)`` for labels ``y`` and model output ``score``."""
    from sklearn import metrics as m
    rows: list[tuple[str, float, float]] = []
    n = len(y)
    if task_type == "binary":
        base = np.full(n, train_mean)
        two = len(np.unique(y)) == 2
        rows.append(("AUROC", m.roc_auc_score(y, score) if two else float("nan"), 0.5 if two else float("nan")))
        rows.append(("average_precision", m.average_precision_score(y, score) if two else float("nan"),
                     float(np.mean(y)) if two else float("nan")))
        rows.append(("accuracy", float(np.mean((score >= 0.5) == (y >= 0.5))),
                     float(np.mean((base >= 0.5) == (y >= 0.5)))))
    elif task_type == "regression":
        base = np.full(n, train_mean)
        rows.append(("MAE", m.mean_absolute_error(y, score), m.mean_absolute_error(y, base)))
        rows.append(("RMSE", float(np.sqrt(m.mean_squared_error(y, score))),
                     float(np.sqrt(m.mean_squared_error(y, base)))))
        rows.append(("R2", m.r2_score(y, score) if n > 1 else float("nan"),
                     m.r2_score(y, base) if n > 1 else float("nan")))
    else:
        yi = y.astype(np.int64)
        rows.append(("accuracy", float(np.mean(score.argmax(1) == yi)), float(np.mean(yi == 0))))
    rows.append(("rows", float(n), float(n)))
    return pa.table({"metric": [r[0] for r in rows], "value": [float(r[1]) for r in rows],
                     "baseline": [float(r[2]) for r in rows]})


def _train_mean(prep, trained) -> float:
    if prep.plan.task_type == "regression":
        return trained.target_mean
    return float(trained.metrics.get("train_positive_rate", 0.5))


def _score(prep, result, examples: pa.Table):
    from rdl_sql.udfs.train import Examples
    if examples.num_rows == 0:
        raise PlanError(f"no labelled rows to evaluate at {prep.plan.test_anchor}: no entity passes the filter "
                        f"or the label window holds no data; try another AS OF")
    ex = Examples.from_arrow(examples)
    return ex.label.numpy().astype(np.float64), result.trained.predict(result.graph, ex)


def test_split(prep, result) -> pa.Table:
    """Metrics of a freshly trained model on its own test split."""
    y, s = _score(prep, result, prep.split("test"))
    return metrics_table(prep.plan.task_type, y, s, _train_mean(prep, result.trained))


def fresh(con, prep, result) -> pa.Table:
    """Metrics of a stored model on labels computed now, at the plan's test anchor."""
    plan = prep.plan
    anchors = plan.split_anchors() if plan.column else [(plan.test_anchor, "test")]
    examples = arrow(con, plan.examples_sql(anchors))
    if plan.column:
        examples = examples.filter(pc.equal(examples.column("split"), "test"))
    classes = result.trained.classes
    if plan.task_type == "multiclass":
        idx = pc.fill_null(pc.index_in(examples.column("label"), value_set=pa.array(classes, pa.string())), -1)
        examples = examples.set_column(examples.schema.get_field_index("label"), "label", pc.cast(idx, pa.float64()))
    y, s = _score(prep, result, examples)
    return metrics_table(plan.task_type, y, s, _train_mean(prep, result.trained))
