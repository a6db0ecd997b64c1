"""``Connection.cancel()`` from another thread: the running statement stops, the next one runs."""
from __future__ import annotations

import threading
import time

import pytest

import rdl_sql
from rdl_sql.datasets.shop import build_shop

CHURN = ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
         "WITH (epochs = 200, patience = 200, batch_size = 8, channels = 8, fanouts = '4,4')")


@pytest.fixture
def shop():
    con = rdl_sql.connect(progress=False)
    build_shop(con.duckdb_connection, customers=300, products=40, days=300, seed=0)
    yield con
    con.close()


def test_cancel_stops_a_training_with_an_operational_error_and_the_next_statement_runs(shop):
    timer = threading.Timer(1.5, shop.cancel)
    started = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(rdl_sql.OperationalError, match="cancelled"):
            shop.execute(CHURN)
    finally:
        timer.cancel()
    assert time.perf_counter() - started < 60  # 200 epochs of batch 8 would take far longer
    assert shop.execute("SELECT count(*) FROM customers").fetchone() == (300,)
    assert "rdl_models" not in {r[0] for r in shop.execute("SHOW TABLES").fetchall()}


def test_a_cancel_while_idle_does_not_stop_the_next_statement(shop):
    shop.cancel()
    rows = shop.execute(CHURN.replace("epochs = 200, patience = 200, batch_size = 8", "epochs = 1")).fetchall()
    assert len(rows) > 0
