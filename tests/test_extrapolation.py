"""Accuracy on a planted level shift: the test window's values lie above nearly every training label.

Sensors whose readings drift upwards a little every day (plus a shared daily
swing and noise): tomorrow's mean reading is about today's, and by the test
window most labels are higher than nearly all the model was trained on. The
best simple forecast is the entity's own mean of the last day (persistence).
The GNN reads that mean among its windowed means, but only through an MLP,
a residual sum and a layer norm, which damp a value outside the training
range; format 6's linear term from the seed's windowed counts and means
(``RelationalGNN.direct``) carries it at its size. The default model must
beat the same model without that term (the control) by a margin and come
near persistence. (GBDT + aggregates, whose trees are flat past the largest
training value, scores 2.50 here: README, Accuracy.)
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import rdl_sql
from rdl_sql.bind import to_query
from rdl_sql.dialect import parse_statement
from rdl_sql.engine import gnn
from rdl_sql.engine import prepare as training
from rdl_sql.udfs import train as udfs_train
from rdl_sql.udfs.model import RelationalGNN

STATEMENT = "PREDICT AVG(readings.value, 0, 1, DAYS) FOR EACH sensors.sensor_id WITH (seed = 0, epochs = 5)"
#: measured (seed 0): 1.62 against 1.82 for the control; seeds 1 and 2: 1.55 / 1.85 and 1.80 / 2.12
MARGIN = 0.1
#: how far above persistence's MAE the default model may stay (measured: 1.62 against 1.59)
NEAR = 1.1


def build_sensors(con, sensors: int = 20, days: int = 200, per_day: int = 6, seed: int = 0) -> None:
    """``sensors`` and their ``readings``: base level + 0.1 a day + a daily swing shared by all + noise."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 10, sensors)
    swing = rng.normal(0, 1, days)
    day = np.repeat(np.arange(days), sensors * per_day)
    sensor = np.tile(np.repeat(np.arange(sensors), per_day), days)
    hour = np.tile(np.arange(per_day) * (24 // per_day), days * sensors)
    value = base[sensor] + 0.1 * day + swing[day] + rng.normal(0, 2, day.size)
    start = np.datetime64("2024-01-01T00:00:00", "us")
    taken = start + (day * 86_400 + hour * 3_600).astype("timedelta64[s]").astype("timedelta64[us]")
    con.execute("CREATE TABLE sensors (sensor_id INTEGER PRIMARY KEY, site VARCHAR)")
    con.executemany("INSERT INTO sensors VALUES (?, ?)", [(s, f"site {s % 4}") for s in range(sensors)])
    con.execute("CREATE TABLE readings (reading_id INTEGER PRIMARY KEY, "
                "sensor_id INTEGER REFERENCES sensors (sensor_id), taken TIMESTAMP, value DOUBLE)")
    rows = pa.table({"reading_id": np.arange(day.size, dtype=np.int32), "sensor_id": sensor.astype(np.int32),
                     "taken": pa.array(taken, pa.timestamp("us")), "value": value})
    con.register("__readings", rows)
    con.execute("INSERT INTO readings SELECT * FROM __readings")
    con.unregister("__readings")


@pytest.fixture(scope="module")
def db():
    con = rdl_sql.connect(":memory:", progress=False)
    build_sensors(con.duckdb_connection)
    yield con.duckdb_connection
    con.close()


def _labels(prep: training.Prepared, split: str) -> np.ndarray:
    return pc.cast(prep.split(split).column("label"), pa.float64()).to_numpy(zero_copy_only=False)


def persistence_mae(duck, prep: training.Prepared) -> float:
    """Test MAE of each sensor's mean reading over the day before the anchor."""
    duck.register("__ex", prep.split("test"))
    try:
        rows = duck.sql("SELECT e.label, (SELECT avg(r.value) FROM readings r WHERE r.sensor_id = e.sensor_id "
                        "AND r.taken <= e.anchor_time AND r.taken > e.anchor_time - INTERVAL 1 DAY) AS last_day "
                        "FROM __ex e").fetchall()
    finally:
        duck.unregister("__ex")
    return float(np.mean([abs(y - x) for y, x in rows]))


@pytest.mark.slow
def test_the_linear_term_carries_a_level_never_seen_in_training(db, monkeypatch, one_thread_torch):
    prep = training.prepare(db, to_query(parse_statement(STATEMENT), STATEMENT))
    # the planted shift: half the test labels lie above 95 % of the training labels
    assert np.median(_labels(prep, "test")) > np.percentile(_labels(prep, "train"), 95)
    model = gnn.train(db, prep, progress=False).metrics["test_MAE"]
    monkeypatch.setattr(udfs_train, "RelationalGNN", lambda *a, **k: RelationalGNN(*a, **{**k, "direct": False}))
    control = gnn.train(db, prep, progress=False).metrics["test_MAE"]
    baseline = persistence_mae(db, prep)
    assert model < control - MARGIN, (model, control)
    assert model < baseline * NEAR, (model, baseline)
