"""LIST_DISTINCT ... RANK TOP k through the PostgreSQL protocol: rows, columns and a stored model."""
from __future__ import annotations

import pytest
from server_helpers import ServerProcess


@pytest.fixture(scope="module")
def brands_server(tmp_path_factory):
    import duckdb

    from rdl_sql.datasets.brands import build_brands
    db = tmp_path_factory.mktemp("server_rec") / "brands.duckdb"
    con = duckdb.connect(str(db))
    build_brands(con, customers=200, brands=5, days=60, seed=2)
    con.close()
    s = ServerProcess(db)
    yield s
    s.stop()
    assert "Traceback" not in s.stderr()


def test_ranking_rows_and_a_stored_baseline_over_the_protocol(brands_server):
    psycopg = pytest.importorskip("psycopg")
    target = ("LIST_DISTINCT(orders.product_id, 0, 7, DAYS) RANK TOP 3 FOR EACH customers.customer_id "
              "WHERE COUNT(orders.*, -30, 0, DAYS) > 0")
    with psycopg.connect(brands_server.dsn(dbname="brands"), autocommit=True, connect_timeout=10) as pg:
        cur = pg.execute(f"SELECT * FROM (PREDICT {target} WITH (model = 'popular')) ORDER BY customer_id, rank "
                         f"LIMIT 6")
        rows = cur.fetchall()
        assert [d.name for d in cur.description] == ["customer_id", "anchor_time", "rank", "product_id", "score"]
        assert [r[2] for r in rows] == [1, 2, 3, 1, 2, 3]
        pg.execute(f"CREATE OR REPLACE MODEL rec AS PREDICT {target} WITH (model = 'past')").fetchall()
        n, hi = pg.execute("SELECT count(DISTINCT customer_id), max(rank) FROM (PREDICT USING rec)").fetchone()
        assert n > 0 and hi == 3
        metrics = {r[1] for r in pg.execute("EVALUATE MODEL rec").fetchall()}
        assert metrics == {"MAP@3", "precision@3", "recall@3", "rows"}
