"""Fixtures shared by front-end tests that read a stored model from a file."""
from __future__ import annotations

import pytest

import rdl_sql
from rdl_sql.datasets.shop import build_shop

FAST = "WITH (epochs = 1, channels = 16, fanouts = '4,4', max_train_rows = 1500)"
CHURN = ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
         "WHERE COUNT(orders.*, -90, 0, DAYS) > 0 " + FAST)


@pytest.fixture(scope="session")
def stored(tmp_path_factory):
    """A shop file holding the stored model `churn`, and the rows PREDICT USING churn gives through rdl_sql.

    Built once for the session: every test copies the file before it opens it.
    """
    path = tmp_path_factory.mktemp("stored") / "shop.duckdb"
    with rdl_sql.connect(str(path), progress=False) as con:
        build_shop(con.duckdb_connection, customers=300, products=40, days=300, seed=2)
        con.execute("CREATE MODEL churn AS " + CHURN)
        rows = con.execute("SELECT * FROM (PREDICT USING churn) ORDER BY customer_id").fetchall()
    return path, rows
