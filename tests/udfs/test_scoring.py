"""The ``rdl_score_<task>`` UDFs on a real DuckDB connection: ``TrainedModel.predict``, shaped, chunk by chunk."""
from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
import torch

from rdl_sql.planner.query import TaskType
from rdl_sql.udfs import scoring
from rdl_sql.udfs.train import Examples, new_model


@pytest.fixture
def con():
    c = duckdb.connect()
    scoring.register(c)
    try:
        yield c
    finally:
        c.close()


def _rows(ex: Examples, repeat: int) -> pa.Table:
    """The examples repeated, so DuckDB hands the UDF several 2,048-row chunks."""
    return pa.table({"i": pa.array(np.arange(len(ex) * repeat), pa.int64()),
                     "node": pa.array(ex.node.repeat(repeat).numpy()),
                     "anchor_us": pa.array(ex.anchor.repeat(repeat).numpy())})


def _scored(con, key: str, rows: pa.Table, task: str = "binary") -> list:
    con.register("rows_to_score", rows)
    return con.execute(f"SELECT i, {TaskType(task).score_function}(?, node, anchor_us) AS s FROM rows_to_score "
                       "ORDER BY i", [key]).fetchall()


def test_binary_scores_are_the_models_predictions_in_chunks(small_shop, con, one_thread_torch):
    g, val, tm = small_shop["graph"], small_shop["val"], small_shop["model"]
    repeat = -(-5000 // len(val))  # over 2 chunks of 2,048
    rows = _rows(val, repeat)
    scoring.hold("udfs-test-binary", tm, g)
    try:
        out = _scored(con, "udfs-test-binary", rows)
    finally:
        scoring.release("udfs-test-binary")
    expected = tm.predict(g, Examples(torch.from_numpy(rows.column("node").to_numpy().copy()),
                                      torch.from_numpy(rows.column("anchor_us").to_numpy().copy())))
    assert len(out) == rows.num_rows > 4096
    score = np.array([r[1]["score"] for r in out])
    assert np.allclose(score, expected, atol=1e-6)
    assert [r[1]["prediction"] for r in out] == [bool(s >= 0.5) for s in score]
    assert all(set(r[1]) == {"prediction", "score"} for r in out)


def test_multiclass_and_regression_fields(small_shop, con, one_thread_torch):
    g, val = small_shop["graph"], small_shop["val"]
    multi = new_model(g, g.type_of("customers"), "multiclass", small_shop["options"], ["a", "b", "c"])
    reg = new_model(g, g.type_of("customers"), "regression", small_shop["options"])
    reg.target_mean, reg.target_std = 10.0, 3.0
    rows = _rows(val, 1)
    scoring.hold("udfs-test-multi", multi, g)
    scoring.hold("udfs-test-reg", reg, g)
    try:
        m_out = _scored(con, "udfs-test-multi", rows, "multiclass")
        r_out = _scored(con, "udfs-test-reg", rows, "regression")
    finally:
        scoring.release("udfs-test-multi")
        scoring.release("udfs-test-reg")
    probs = multi.predict(g, val)
    got = np.array([[r[1]["probabilities"][c] for c in "abc"] for r in m_out])
    assert np.allclose(got, probs, atol=1e-6)
    assert [r[1]["prediction"] for r in m_out] == ["abc"[i] for i in probs.argmax(1)]
    assert np.allclose([r[1]["score"] for r in m_out], probs.max(1), atol=1e-6)
    assert np.allclose([r[1]["prediction"] for r in r_out], reg.predict(g, val), atol=1e-5)
    assert all(set(r[1]) == {"prediction"} for r in r_out)


def test_a_model_scored_by_another_task_types_udf_is_an_error(small_shop, con):
    scoring.hold("udfs-test-wrong", small_shop["model"], small_shop["graph"])
    try:
        rows = pa.table({"i": [0], "node": pa.array([0], pa.int64()), "anchor_us": pa.array([0], pa.int64())})
        with pytest.raises(duckdb.Error, match="is a binary model, not regression"):
            _scored(con, "udfs-test-wrong", rows, "regression")
    finally:
        scoring.release("udfs-test-wrong")


def test_an_unknown_model_key_is_an_error(con):
    rows = pa.table({"i": [0], "node": pa.array([0], pa.int64()), "anchor_us": pa.array([0], pa.int64())})
    with pytest.raises(duckdb.Error, match="not loaded"):
        _scored(con, "udfs-test-nobody", rows)


def test_a_released_model_is_gone(small_shop, con):
    scoring.hold("udfs-test-gone", small_shop["model"], small_shop["graph"])
    scoring.release("udfs-test-gone")
    scoring.release("udfs-test-gone")  # releasing twice is harmless
    rows = pa.table({"i": [0], "node": pa.array([0], pa.int64()), "anchor_us": pa.array([0], pa.int64())})
    with pytest.raises(duckdb.Error, match="not loaded"):
        _scored(con, "udfs-test-gone", rows)
