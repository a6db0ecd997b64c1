"""Metrics of every model and task type: the validation metric, which value is better, EVALUATE's report.

One module for GNN, GBDT, EVALUATE and the benchmarks, so a number means
the same thing wherever it is printed. Kept free of torch so the GBDT path
can use it without loading the GNN stack.
"""
from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as m


def metric(task_type: str, y: np.ndarray, score: np.ndarray) -> float:
    """AUROC for binary tasks, MAE for regression, accuracy for multiclass.

    NaN where it is undefined (no rows; AUROC of one class) and for a
    binary model whose scores are NaN (diverged), which scikit-learn would
    raise on: the engine refuses a NaN validation metric as divergence.
    """
    if not defined(task_type, y):
        return float("nan")
    if task_type == "multiclass":
        return float(np.mean(np.argmax(score, 1) == y.astype(np.int64)))
    if task_type == "binary":
        if not np.all(np.isfinite(score)):
            return float("nan")
        return float(m.roc_auc_score(y, score))
    return float(np.mean(np.abs(y - score)))


def defined(task_type: str, y: np.ndarray) -> bool:
    """Whether ``metric`` is defined on labels ``y``: some rows, and both classes for binary AUROC."""
    return len(y) > 0 and (task_type != "binary" or len(np.unique(y)) >= 2)


def better(task_type: str, a: float, b: float) -> bool:
    """Is metric ``a`` better than ``b`` (NaN is never better)?"""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a < b if task_type == "regression" else a > b


def report(task_type: str, y: np.ndarray, score: np.ndarray, train_mean: float,
           threshold: float = 0.5) -> dict[str, tuple[float, float]]:
    """Every metric EVALUATE shows, as ``{name: (model value, trivial-predictor value)}``.

    Binary accuracy is that of the ``prediction`` column: a score at or above
    the model's ``threshold`` predicts true.

    The trivial predictor knows only the training labels: the positive rate
    (binary), the mean (regression) or the most frequent class, index 0
    (multiclass). A model is worth keeping only where it beats it.
    """
    out: dict[str, tuple[float, float]] = {}
    n = len(y)
    nan = float("nan")
    if task_type == "binary":
        base = np.full(n, train_mean)
        two = len(np.unique(y)) == 2
        out["AUROC"] = (m.roc_auc_score(y, score) if two else nan, 0.5 if two else nan)
        out["average_precision"] = (m.average_precision_score(y, score) if two else nan,
                                    float(np.mean(y)) if two else nan)
        out["accuracy"] = (float(np.mean((score >= threshold) == (y >= 0.5))),
                           float(np.mean((base >= 0.5) == (y >= 0.5))))
    elif task_type == "regression":
        base = np.full(n, train_mean)
        out["MAE"] = (m.mean_absolute_error(y, score), m.mean_absolute_error(y, base))
        out["RMSE"] = (float(np.sqrt(m.mean_squared_error(y, score))), float(np.sqrt(m.mean_squared_error(y, base))))
        out["R2"] = (m.r2_score(y, score) if n > 1 else nan, m.r2_score(y, base) if n > 1 else nan)
    else:
        yi = y.astype(np.int64)
        out["accuracy"] = (float(np.mean(score.argmax(1) == yi)), float(np.mean(yi == 0)))
    out["rows"] = (float(n), float(n))
    return {k: (float(a), float(b)) for k, (a, b) in out.items()}
