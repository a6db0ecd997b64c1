"""Model outputs shaped into prediction columns: one contract for every model and task type.

GNN scoring (inside the ``rdl_score_<task>`` UDFs), GBDT scoring and the
planner's SQL all follow ``TaskType.output_fields``; this module is the only
place that turns raw outputs (a probability, class probabilities, a value)
into those columns. Free of torch, so the GBDT path does not load it.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rdl_sql.planner.query import TaskType


def struct_type(task_type: TaskType) -> str:
    """The DuckDB type of a scoring UDF's result for ``task_type``."""
    return "STRUCT(" + ", ".join(f"{n} {t}" for n, t in TaskType(task_type).output_fields) + ")"


def shape(task_type: TaskType, raw: np.ndarray, classes: list | None = None, threshold: float = 0.5) -> pa.StructArray:
    """Prediction columns for raw outputs, as a struct array with ``task_type.output_fields``.

    ``raw``: binary, the positive-class probability ``[n]``; multiclass,
    class probabilities ``[n, len(classes)]``; regression, values ``[n]``.
    NaN rows (a model that diverged) stay NULL rather than becoming a class.
    """
    task_type = TaskType(task_type)
    n = len(raw)
    if task_type is TaskType.BINARY:
        p = np.asarray(raw, np.float64)
        ok = np.isfinite(p)
        cols = [pa.array(p >= threshold, pa.bool_(), mask=~ok), pa.array(p, pa.float64(), mask=~ok)]
    elif task_type is TaskType.MULTICLASS:
        names = pa.array([str(c) for c in classes or []], pa.string())
        k = len(names)
        p = np.asarray(raw, np.float64).reshape(n, k)
        ok = np.isfinite(p).all(axis=1) if k else np.zeros(n, bool)
        best = p.argmax(axis=1) if k and n else np.zeros(n, np.int64)
        offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
        keys = names.take(pa.array(np.tile(np.arange(k), n), pa.int64()))
        probabilities = pa.MapArray.from_arrays(offsets, keys, pa.array(p.reshape(-1), pa.float64()))
        label = names.take(pa.array(best, pa.int64())) if k else pa.nulls(n, pa.string())
        if not ok.all():
            label = pc.if_else(pa.array(ok), label, pa.scalar(None, pa.string()))
        cols = [label, pa.array(p.max(axis=1) if k and n else np.zeros(n), pa.float64(), mask=~ok), probabilities]
    else:
        v = np.asarray(raw, np.float64)
        cols = [pa.array(v, pa.float64(), mask=~np.isfinite(v))]
    return pa.StructArray.from_arrays(cols, names=[name for name, _ in task_type.output_fields])


def choose_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score at or above which a binary prediction says true, chosen on validation rows.

    The share predicted true matches the share of true validation labels, so
    a model that ranks well but is not calibrated (every score under 0.5
    while 39 % of customers churn) still says yes as often as the data does;
    the AUROC beside it says how well it ranks. 0.5 without usable rows.
    """
    y, p = np.asarray(labels, np.float64), np.asarray(scores, np.float64)
    ok = np.isfinite(y) & np.isfinite(p)
    if not ok.any():
        return 0.5
    ranked = np.sort(p[ok])[::-1]
    k = int(round(float(y[ok].mean()) * len(ranked)))
    if k == 0:
        return float(np.nextafter(ranked[0], np.inf))
    return float(ranked[k - 1])


def columns(task_type: TaskType, raw: np.ndarray, classes: list | None = None,
            threshold: float = 0.5) -> dict[str, pa.Array]:
    """``shape`` as a dict of named columns, for building a prediction table."""
    struct = shape(task_type, raw, classes, threshold)
    return {f.name: struct.field(i) for i, f in enumerate(struct.type)}
