"""``WITH (model = 'gbdt' | 'auto')`` end to end through ``rdl_sql.connect``, on the generated shop."""
from __future__ import annotations

import re

import pytest

import rdl_sql
from rdl_sql.datasets.shop import build_shop

CHURN = ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
         "WHERE COUNT(orders.*, -90, 0, DAYS) > 0")
SMALL_GNN = "epochs = 1, channels = 16, fanouts = '4,4', max_train_rows = 3000"


@pytest.fixture
def shop():
    """A connection on the default-size shop (2,000 customers, two years)."""
    con = rdl_sql.connect(progress=False)
    try:
        build_shop(con.duckdb_connection)
        yield con
    finally:
        con.close()


@pytest.fixture
def small_shop():
    con = rdl_sql.connect(progress=False)
    try:
        build_shop(con.duckdb_connection, customers=400, products=60, days=400, seed=1)
        yield con
    finally:
        con.close()


def active_customers(con, at: str | None = None) -> list[int]:
    """Customers with an order in the 90 days up to ``at`` (default: the latest order)."""
    at_sql = f"TIMESTAMP '{at}'" if at else "(SELECT max(ordered_at) FROM orders)"
    return [r[0] for r in con.execute(
        f"SELECT DISTINCT customer_id FROM orders WHERE ordered_at > {at_sql} - INTERVAL 90 DAYS "
        f"AND ordered_at <= {at_sql} ORDER BY 1").fetchall()]


def test_gbdt_scores_every_active_customer_and_beats_chance(shop):
    cur = shop.cursor()
    rows = cur.execute(f"{CHURN} WITH (model = 'gbdt')").fetchall()
    assert [d[0] for d in cur.description] == ["customer_id", "anchor_time", "prediction", "score"]
    assert cur.metrics["model"] == "gbdt"
    assert cur.metrics["test_AUROC"] > 0.6
    assert cur.notices[0].startswith("trained gbdt: val_AUROC")
    assert [r[0] for r in rows] == active_customers(shop)
    threshold = cur.metrics["threshold"]  # chosen on validation
    assert all(isinstance(r[2], bool) and 0.0 <= r[3] <= 1.0 and r[2] == (r[3] >= threshold) for r in rows)
    assert len({r[1] for r in rows}) == 1


def test_auto_keeps_the_better_model_and_names_both_metrics(shop, one_thread_torch):
    cur = shop.cursor().execute(f"{CHURN} WITH (model = 'auto', {SMALL_GNN})")
    rows = cur.fetchall()
    m = cur.metrics
    gbdt, gnn = m["gbdt_val_AUROC"], m["gnn_val_AUROC"]
    winner = "gnn" if gnn > gbdt else "gbdt"
    assert m["model"] == winner and m["val_AUROC"] == max(gbdt, gnn)
    note = cur.notices[-1]
    match = re.fullmatch(r"auto: (gnn|gbdt) won on validation AUROC ([0-9.]+) vs (gnn|gbdt) ([0-9.]+) \(\+([0-9.]+)\)",
                         note)
    assert match, note
    assert match[1] == winner and match[3] == ({"gnn", "gbdt"} - {winner}).pop()
    assert float(match[2]) == pytest.approx(max(gbdt, gnn), abs=1e-4)
    assert float(match[4]) == pytest.approx(min(gbdt, gnn), abs=1e-4)
    assert [r[0] for r in rows] == active_customers(shop)


def test_auto_scores_with_the_gnn_when_it_wins(small_shop, one_thread_torch, monkeypatch):
    from rdl_sql.engine import gbdt
    real_fit = gbdt.fit

    def losing_fit(con, prep, **kwargs):  # a GBDT that cannot win on validation
        model = real_fit(con, prep, **kwargs)
        model.metrics["val_AUROC"] = 0.0
        return model

    monkeypatch.setattr(gbdt, "fit", losing_fit)
    cur = small_shop.cursor().execute(f"{CHURN} WITH (model = 'auto', {SMALL_GNN})")
    rows = cur.fetchall()
    assert cur.metrics["model"] == "gnn" and "epochs" in cur.metrics
    assert cur.notices[-1].startswith("auto: gnn won on validation AUROC")
    assert not any("failed" in n for n in cur.notices)  # GBDT trained and lost, not left out
    assert [d[0] for d in cur.description] == ["customer_id", "anchor_time", "prediction", "score"]
    assert [r[0] for r in rows] == active_customers(small_shop)


def test_gbdt_as_of_ignores_orders_after_the_cutoff(small_shop):
    cutoff = "2023-12-01 00:00:00"
    stmt = f"{CHURN} AS OF TIMESTAMP '{cutoff}' WITH (model = 'gbdt')"
    before = small_shop.execute(stmt).fetchall()
    assert [r[0] for r in before] == active_customers(small_shop, cutoff)
    # every customer orders right after the cut-off and again a month later: labels, features and the
    # set of active customers would all change if anything after the cut-off were read
    small_shop.execute(f"""
        INSERT INTO orders
        SELECT 1000000 + customer_id, customer_id, 1, TIMESTAMP '{cutoff}' + INTERVAL 1 SECOND, 9999.0
        FROM customers;
        INSERT INTO orders
        SELECT 2000000 + customer_id, customer_id, 2, TIMESTAMP '{cutoff}' + INTERVAL 30 DAYS, 1.0
        FROM customers;
    """)
    assert small_shop.execute(stmt).fetchall() == before


def test_unknown_model_is_refused_with_the_choices(small_shop):
    with pytest.raises(rdl_sql.Error, match="'gnn', 'gbdt', 'auto'"):
        small_shop.execute(f"{CHURN} WITH (model = 'xgboost')")


def test_gbdt_fills_a_categorical_column_with_class_probabilities(small_shop):
    small_shop.execute("UPDATE customers SET country = NULL WHERE customer_id % 10 = 0")
    cur = small_shop.cursor()
    rows = cur.execute("PREDICT customers.country FOR EACH customers.customer_id WITH (model = 'gbdt')").fetchall()
    assert [d[0] for d in cur.description] == ["customer_id", "prediction", "score", "probabilities"]
    assert "val_accuracy" in cur.metrics and "test_accuracy" in cur.metrics
    assert [r[0] for r in rows] == list(range(10, 401, 10))
    for _, prediction, score, probabilities in rows:
        assert sum(probabilities.values()) == pytest.approx(1.0)
        assert score == max(probabilities.values()) == probabilities[prediction]


def test_gbdt_scores_each_row_at_its_own_anchor(small_shop):
    cur = small_shop.cursor()
    rows = cur.execute(
        "PREDICT COUNT(orders.*, 0, 30, DAYS) FOR customers.customer_id IN "
        "(SELECT customer_id, TIMESTAMP '2023-11-01' FROM customers WHERE customer_id <= 3 "
        " UNION ALL SELECT 3, TIMESTAMP '2024-01-01') WITH (model = 'gbdt')").fetchall()
    assert [d[0] for d in cur.description] == ["customer_id", "anchor_time", "prediction"]
    assert [(r[0], str(r[1])) for r in rows] == [(1, "2023-11-01 00:00:00"), (2, "2023-11-01 00:00:00"),
                                                 (3, "2023-11-01 00:00:00"), (3, "2024-01-01 00:00:00")]
