"""The validation metric of each task type, and which of two values is better.

Kept free of torch so the GBDT path and the front-end can use it without
loading the GNN stack.
"""
from __future__ import annotations

import math

import numpy as np


def metric(task_type: str, y: np.ndarray, score: np.ndarray) -> float:
    """AUROC for binary tasks (NaN if one class only), MAE for regression, accuracy for multiclass."""
    if len(y) == 0:
        return float("nan")
    if task_type == "multiclass":
        return float(np.mean(np.argmax(score, 1) == y.astype(np.int64)))
    if task_type == "binary":
        if len(np.unique(y)) < 2:
            return float("nan")
        from sklearn.metrics import roc_auc_score
        return float(roc_auc_score(y, score))
    return float(np.mean(np.abs(y - score)))


def better(task_type: str, a: float, b: float) -> bool:
    """Is metric ``a`` better than ``b`` (NaN is never better)?"""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a < b if task_type == "regression" else a > b
