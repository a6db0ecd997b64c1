"""A user's own table named ``rdl_models`` or ``rdl_graph`` is refused by name, never written to.

Before, CREATE MODEL added a column ``canonical`` to a user's ``rdl_models`` and then failed on a missing
column; DROP MODEL deleted the user's row of that name; a user's ``rdl_graph`` broke every PREDICT with a
binder error quoting rdl-sql's own query.
"""
from __future__ import annotations

import pytest

import rdl_sql
from rdl_sql.datasets.shop import build_shop

CHURN = "PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id WITH (model = 'gbdt')"


@pytest.fixture
def shop():
    c = rdl_sql.connect(progress=False)
    build_shop(c.duckdb_connection, customers=120, products=20, days=150, seed=1)
    yield c
    c.close()


def refused(con, sql: str) -> str:
    with pytest.raises(rdl_sql.ProgrammingError) as err:
        con.execute(sql)
    return str(err.value)


def test_a_users_rdl_models_is_named_and_left_as_it_was(shop):
    shop.execute("CREATE TABLE rdl_models(id INTEGER PRIMARY KEY, name VARCHAR, note VARCHAR); "
                 "INSERT INTO rdl_models VALUES (1, 'mine', 'keep me')")
    before = shop.execute("DESCRIBE rdl_models").fetchall()
    for sql in (f"CREATE MODEL m AS {CHURN}", "DROP MODEL mine", "SHOW MODELS", "DESCRIBE MODEL mine"):
        msg = refused(shop, sql)
        assert "the table `rdl_models` here lacks the columns statement, task" in msg, msg
        assert "ALTER TABLE rdl_models RENAME TO rdl_models_old" in msg
    assert shop.execute("DESCRIBE rdl_models").fetchall() == before
    assert shop.execute("SELECT * FROM rdl_models").fetchall() == [(1, "mine", "keep me")]
    shop.execute("ALTER TABLE rdl_models RENAME TO rdl_models_old")
    shop.execute(f"CREATE MODEL m AS {CHURN}")
    assert [r[0] for r in shop.execute("SHOW MODELS").fetchall()] == ["m"]


def test_a_users_rdl_graph_is_named_and_left_as_it_was(shop):
    shop.execute("CREATE TABLE rdl_graph(a INTEGER, b VARCHAR); INSERT INTO rdl_graph VALUES (1, 'x')")
    for sql in (CHURN, "ALTER GRAPH IGNORE COLUMN customers(age)"):
        msg = refused(shop, sql)
        assert "the table `rdl_graph` here lacks the columns kind, table_name" in msg and "Binder" not in msg, msg
    assert shop.execute("SELECT * FROM rdl_graph").fetchall() == [(1, "x")]
    shop.execute("ALTER TABLE rdl_graph RENAME TO rdl_graph_old")
    assert shop.execute(CHURN).fetchall()
