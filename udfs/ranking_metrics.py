"""MAP@k, precision@k and recall@k of ranked item lists (numpy; no torch, so baselines never load it).

Definitions (RelBench's link-prediction metrics): for a row whose truth is
the item set ``T`` and whose ranked list holds items ``r_1 .. r_m`` (``m <= k``),

- AP@k = sum over ranks i with ``r_i`` in T of (hits among r_1..r_i) / i, divided by min(k, |T|);
- precision@k = hits / k (a list shorter than k counts its missing places as misses);
- recall@k = hits / |T|;

each averaged over the rows (every row has a non-empty truth; a row with no
list scores 0).
"""
from __future__ import annotations

import numpy as np


def hits(pred_row: np.ndarray, pred_item: np.ndarray, truth_row: np.ndarray, truth_item: np.ndarray) -> np.ndarray:
    """``[n]`` bool: whether each predicted (row, item) pair is in the truth pairs."""
    pred_row, pred_item = np.asarray(pred_row, np.int64), np.asarray(pred_item, np.int64)
    truth_row, truth_item = np.asarray(truth_row, np.int64), np.asarray(truth_item, np.int64)
    if not len(pred_row):
        return np.zeros(0, bool)
    m = int(max(pred_item.max(initial=0), truth_item.max(initial=0))) + 1
    return np.isin(pred_row * m + pred_item, truth_row * m + truth_item)


def ranking_metrics(row: np.ndarray, rank: np.ndarray, hit: np.ndarray, n_truth: np.ndarray,
                    k: int) -> dict[str, float]:
    """``{MAP@k, precision@k, recall@k}`` over ``len(n_truth)`` rows.

    ``row`` / ``rank`` / ``hit``: one entry per predicted item (row index,
    rank 1..k, whether it is in the row's truth); ``n_truth [rows]`` the size
    of each row's truth (> 0).
    """
    row = np.asarray(row, np.int64)
    rank = np.asarray(rank, np.int64)
    hit = np.asarray(hit, bool)
    n_truth = np.asarray(n_truth, np.float64)
    n = len(n_truth)
    if n == 0:
        return {f"MAP@{k}": float("nan"), f"precision@{k}": float("nan"), f"recall@{k}": float("nan")}
    keep = rank <= k
    row, rank, hit = row[keep], rank[keep], hit[keep]
    order = np.lexsort((rank, row))
    row, rank, hit = row[order], rank[order], hit[order].astype(np.float64)
    cum = np.cumsum(hit)
    starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]]) if len(row) else np.zeros(0, np.int64)
    before = np.zeros(len(row))
    if len(row):
        seg = np.repeat(starts, np.diff(np.r_[starts, len(row)]))
        before = cum[seg] - hit[seg]
    within = cum - before  # hits among this row's items up to this rank
    ap = np.bincount(row, weights=hit * within / rank, minlength=n) / np.minimum(k, n_truth)
    found = np.bincount(row, weights=hit, minlength=n)
    return {f"MAP@{k}": float(ap.mean()), f"precision@{k}": float((found / k).mean()),
            f"recall@{k}": float((found / n_truth).mean())}
