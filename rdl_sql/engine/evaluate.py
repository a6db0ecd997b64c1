"""EVALUATE: a model's metrics beside the trivial predictor's, on its test split or on fresh labels."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.query import TaskType
from rdl_sql.planner.sql import arrow
from rdl_sql.udfs.metrics import report
from rdl_sql.udfs.train import Examples

from .gnn import GnnResult
from .prepare import Prepared, index_classes


def metrics_table(task_type: TaskType, y: np.ndarray, score: np.ndarray, train_mean: float) -> pa.Table:
    """Rows ``(metric, value, baseline)`` of ``udfs.metrics.report``."""
    rows = report(task_type, y, score, train_mean)
    return pa.table({"metric": list(rows), "value": [v for v, _ in rows.values()],
                     "baseline": [b for _, b in rows.values()]})


def _train_mean(prep: Prepared, result: GnnResult) -> float:
    if prep.plan.task_type is TaskType.REGRESSION:
        return result.trained.target_mean
    return float(result.trained.metrics.get("train_positive_rate", 0.5))


def _score(prep: Prepared, result: GnnResult, examples: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    if examples.num_rows == 0:
        raise PlanError(f"no labelled rows to evaluate at {prep.plan.test_anchor}: no entity passes the filter "
                        f"or the label window holds no data; try another AS OF")
    ex = Examples.from_arrow(examples)
    return ex.label.numpy().astype(np.float64), result.trained.predict(result.graph, ex)


def test_split(prep: Prepared, result: GnnResult) -> pa.Table:
    """Metrics of a freshly trained model on its own test split."""
    y, s = _score(prep, result, prep.split("test"))
    return metrics_table(prep.plan.task_type, y, s, _train_mean(prep, result))


def fresh(con, prep: Prepared, result: GnnResult) -> pa.Table:
    """Metrics of a stored model on labels computed now, at the plan's test anchor."""
    plan = prep.plan
    anchors = plan.split_anchors() if plan.column else [(plan.test_anchor, "test")]
    examples = arrow(con, plan.examples_sql(anchors))
    if plan.column:
        examples = examples.filter(pc.equal(examples.column("split"), "test"))
    if plan.task_type is TaskType.MULTICLASS:
        examples, _ = index_classes(examples, result.trained.classes)
    y, s = _score(prep, result, examples)
    return metrics_table(plan.task_type, y, s, _train_mean(prep, result))
