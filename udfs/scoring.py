"""The scoring UDFs: score entity rows inside a DuckDB query, chunk by chunk.

A compiled PREDICT is one DuckDB query whose projection calls
``rdl_score_<task>(model_key, node, anchor_us)``; DuckDB hands the UDF
2,048-row Arrow chunks, so scoring is batched and streams like any other
function. Each UDF returns the prediction already shaped
(``udfs.predictions``), so the SQL around it only spreads the struct.
Trained models (with the graph they read) are held in this process under a
key for as long as the session keeps them.
"""
from __future__ import annotations

import itertools
import threading

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from rdl_sql.planner.query import TaskType

from .graph import TemporalGraph
from .predictions import shape, struct_type
from .train import Examples, TrainedModel

_held: dict[str, tuple[TrainedModel, TemporalGraph]] = {}
_lock = threading.Lock()
_suffixes = itertools.count(2)


def hold(key: str, trained: TrainedModel, graph: TemporalGraph) -> None:
    with _lock:
        _held[key] = (trained, graph)


def release(key: str) -> None:
    with _lock:
        _held.pop(key, None)


def score_chunk(task_type: TaskType, key: pa.Array, node: pa.Array, anchor_us: pa.Array) -> pa.StructArray:
    """Shaped predictions for one chunk of ``(model key, node, anchor)`` rows."""
    node = node.combine_chunks() if isinstance(node, pa.ChunkedArray) else node
    anchor_us = anchor_us.combine_chunks() if isinstance(anchor_us, pa.ChunkedArray) else anchor_us
    n = len(node)
    keys = pc.unique(key).to_pylist()
    if len(keys) > 1:  # one query scores with one model; several keys are scored apart and stitched
        parts = [score_chunk(task_type, pc.filter(key, pc.equal(key, k)), pc.filter(node, pc.equal(key, k)),
                             pc.filter(anchor_us, pc.equal(key, k))) for k in keys]
        order = np.concatenate([np.flatnonzero(pc.equal(key, k).to_numpy(zero_copy_only=False)) for k in keys])
        merged = pa.concat_arrays(parts)
        return merged.take(pa.array(np.argsort(order, kind="stable")))
    trained, graph = _lookup(keys[0] if keys else None, task_type)
    ex = Examples(torch.from_numpy(node.to_numpy(zero_copy_only=False).astype(np.int64)),
                  torch.from_numpy(anchor_us.to_numpy(zero_copy_only=False).astype(np.int64)))
    raw = trained.predict(graph, ex, batch_size=max(n, 1)) if n else np.zeros((0,))
    return shape(task_type, raw, trained.classes, trained.threshold)


def _lookup(key, task_type: TaskType) -> tuple[TrainedModel, TemporalGraph]:
    with _lock:
        held = _held.get(key)
    if held is None:
        raise KeyError(f"model {key!r} is not loaded in this session")
    if held[0].task_type != task_type:
        raise ValueError(f"model {key!r} is a {held[0].task_type} model, not {task_type}")
    return held


def register(con, suffix: str = "") -> str:
    """Install ``rdl_score_binary`` / ``_regression`` / ``_multiclass`` on a DuckDB connection.

    Returns the suffix of the names installed: ``""``, or ``_2``, ``_3`` ... when another
    connection of this process to the same database already holds the plain names (DuckDB
    keeps Python functions in a catalog those connections share, and refuses a second one
    of the same name). Call ``unregister`` with the suffix before closing the connection.
    """
    if not suffix:
        try:
            _create(con, "")
            return ""
        except duckdb.CatalogException as e:
            if "already exists" not in str(e):
                raise
            unregister(con, "")  # whatever part of the plain set this connection did install
        with _lock:
            suffix = f"_{next(_suffixes)}"
    _create(con, suffix)
    return suffix


#: task types scored row by row through a UDF (a ranking is a top-k over all items, computed in torch)
ROW_SCORED = tuple(t for t in TaskType if t is not TaskType.RANKING)


def unregister(con, suffix: str = "") -> None:
    """Remove the scoring UDFs that ``register`` installed on ``con`` (no error for those it did not)."""
    for task_type in ROW_SCORED:
        try:
            con.remove_function(task_type.score_function + suffix)
        except Exception:  # not registered on this connection
            pass


def _create(con, suffix: str) -> None:
    unregister(con, suffix)  # registering again on the same connection replaces the functions
    for task_type in ROW_SCORED:
        con.create_function(task_type.score_function + suffix, _udf(task_type), ["VARCHAR", "BIGINT", "BIGINT"],
                            struct_type(task_type), type="arrow")


def _udf(task_type: TaskType):
    def score(key, node, anchor_us):  # DuckDB reads the arity from the signature: exactly three
        return score_chunk(task_type, key, node, anchor_us)
    return score
