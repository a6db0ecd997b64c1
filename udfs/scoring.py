"""The ``rdl_score`` UDF: scores entity rows inside a DuckDB query, chunk by chunk.

A compiled PREDICT is one DuckDB query whose projection calls
``rdl_score(model_key, node, anchor_us)``; DuckDB hands the UDF 2,048-row
Arrow chunks, so scoring is batched and streams like any other function.
Trained models (with the graph they read) are held in this process under a
key for as long as the session keeps them.
"""
from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from rdl_sql.planner.query import TaskType

from .graph import TemporalGraph
from .train import Examples, TrainedModel

SCORE_FUNCTION = "rdl_score"
SCORE_TYPE = "STRUCT(prediction DOUBLE, score DOUBLE, probabilities DOUBLE[])"

_held: dict[str, tuple[TrainedModel, TemporalGraph]] = {}
_lock = threading.Lock()


def hold(key: str, trained: TrainedModel, graph: TemporalGraph) -> None:
    with _lock:
        _held[key] = (trained, graph)


def release(key: str) -> None:
    with _lock:
        _held.pop(key, None)


def _score(key, node, anchor_us) -> pa.StructArray:
    node = node.combine_chunks() if isinstance(node, pa.ChunkedArray) else node
    anchor_us = anchor_us.combine_chunks() if isinstance(anchor_us, pa.ChunkedArray) else anchor_us
    keys = pc.unique(key).to_pylist()
    n = len(node)
    pred = np.full(n, np.nan)
    score = np.full(n, np.nan)
    probs: np.ndarray | None = None
    for k in keys:
        if k not in _held:
            raise KeyError(f"model {k!r} is not loaded in this session")
        trained, graph = _held[k]
        mask = pc.equal(key, k).to_numpy(zero_copy_only=False)
        ex = Examples(torch.from_numpy(node.to_numpy(zero_copy_only=False)[mask].astype(np.int64)),
                      torch.from_numpy(anchor_us.to_numpy(zero_copy_only=False)[mask].astype(np.int64)))
        s = trained.predict(graph, ex, batch_size=max(n, 1))
        if trained.task_type == TaskType.BINARY:
            score[mask], pred[mask] = s, (s >= 0.5).astype(np.float64)
        elif trained.task_type == TaskType.MULTICLASS:
            if probs is None:
                probs = np.full((n, s.shape[1]), np.nan)
            probs[mask] = s
            pred[mask], score[mask] = s.argmax(1), s.max(1)
        else:
            pred[mask] = s
    if probs is None:
        plist = pa.nulls(n, pa.list_(pa.float64()))
    else:
        flat = pa.array(probs.reshape(-1), pa.float64())
        plist = pa.FixedSizeListArray.from_arrays(flat, probs.shape[1]).cast(pa.list_(pa.float64()))
    return pa.StructArray.from_arrays([pa.array(pred, from_pandas=True), pa.array(score, from_pandas=True), plist],
                                      names=["prediction", "score", "probabilities"])


def register(con) -> None:
    """Install ``rdl_score`` on a DuckDB connection (its cursors see it too)."""
    try:
        con.remove_function(SCORE_FUNCTION)
    except Exception:  # not registered yet
        pass
    con.create_function(SCORE_FUNCTION, _score, ["VARCHAR", "BIGINT", "BIGINT"], SCORE_TYPE, type="arrow")
