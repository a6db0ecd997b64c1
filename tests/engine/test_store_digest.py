"""A stored model's data digest is the data it read: taken before training, so rows written while it trains
(by another connection, a server's other client) make an identical PREDICT train again, not reuse it."""
from __future__ import annotations

import rdl_sql
from rdl_sql.datasets.shop import build_shop
from rdl_sql.engine import auto

STATEMENT = ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
             "WITH (model = 'gbdt')")


def test_rows_written_while_create_model_trains_make_the_next_predict_train_again(tmp_path, monkeypatch):
    con = rdl_sql.connect(str(tmp_path / "shop.duckdb"), progress=False)
    build_shop(con.duckdb_connection, customers=120, products=20, days=150, seed=1)
    real = auto.train

    def train_while_another_writes(engine, work, prep, *args, **kwargs):
        trained = real(engine, work, prep, *args, **kwargs)
        other = work.cursor()  # a connection of its own, as another client's
        other.execute("INSERT INTO orders SELECT max(order_id) + 1, 1, 1, TIMESTAMP '2023-03-01', 5.0 FROM orders")
        other.close()
        return trained

    monkeypatch.setattr(auto, "train", train_while_another_writes)
    con.execute(f"CREATE MODEL m AS {STATEMENT}")
    monkeypatch.setattr(auto, "train", real)
    cur = con.execute(STATEMENT)
    assert cur.fetchall() and not any(n.startswith("reused") for n in cur.notices), cur.notices
    again = con.execute(STATEMENT)  # nothing written since: the model just trained is reused
    assert any(n.startswith("reused") for n in again.notices)
    con.close()
