"""What EVALUATE and EXPLAIN say about empty splits, and EVALUATE MODEL on the model's own training period.

A generated shop (300 customers, orders 2023-01-04 .. 2023-10-27) and GBDT
models, so every statement takes well under a second.
"""
from __future__ import annotations

import pytest

import rdl_sql
from rdl_sql.datasets.shop import build_shop

CHURN = "PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id"


@pytest.fixture(scope="module")
def shop():
    con = rdl_sql.connect(progress=False)
    build_shop(con.duckdb_connection, customers=300, products=40, days=300, seed=0)
    con.execute(f"CREATE MODEL plain AS {CHURN} WITH (model = 'gbdt')")
    con.execute(f"CREATE MODEL dated AS {CHURN} WITH (model = 'gbdt', val_start = '2023-07-01', "
                f"test_start = '2023-08-15')")
    con.execute(f"CREATE MODEL past AS {CHURN} AS OF TIMESTAMP '2023-07-01' WITH (model = 'gbdt')")
    yield con
    con.close()


def anchors(con, sql: str) -> dict[str, str]:
    return {r[1]: r[2] for r in con.execute(sql).fetchall() if r[0] == "anchors"}


# ---- an empty test split: the plan's reason ------------------------------------------------------
def test_evaluate_predict_with_no_room_after_test_start_gives_the_plans_reason(shop):
    sql = f"{CHURN} WITH (model = 'gbdt', test_start = '2023-10-17')"
    why = anchors(shop, "EXPLAIN " + sql)["test"]
    assert why.startswith("none: test_start 2023-10-17 00:00:00 leaves no room for a 30 days label window")
    with pytest.raises(rdl_sql.ProgrammingError) as e:
        shop.execute("EVALUATE " + sql)
    msg = str(e.value)
    assert why.removeprefix("none: ") in msg
    assert msg.endswith("use an earlier test_start or a shorter window")
    assert "filter" not in msg and "AS OF" not in msg  # the statement has neither


def test_evaluate_model_as_of_before_its_test_start_says_so_and_when_to_evaluate(shop):
    with pytest.raises(rdl_sql.ProgrammingError) as e:
        shop.execute("EVALUATE MODEL dated AS OF TIMESTAMP '2023-06-01'")
    msg = str(e.value)
    assert "test_start 2023-08-15 00:00:00 leaves no room for a 30 days label window before 2023-05-31" in msg
    assert "evaluate AS OF TIMESTAMP '2023-09-14 00:00:00' or later" in msg
    assert "filter" not in msg


def test_an_empty_column_test_split_names_no_filter_as_of_or_window(shop):
    with pytest.raises(rdl_sql.ProgrammingError) as e:
        shop.execute("EVALUATE PREDICT orders.amount > 50 FOR EACH orders.order_id "
                     "WITH (model = 'gbdt', val_start = '2023-06-01', test_start = '2030-01-01')")
    msg = str(e.value)
    assert "no row of `orders` with a value of `amount` falls in the test split" in msg
    assert "filter" not in msg and "AS OF" not in msg and "window" not in msg


# ---- EVALUATE MODEL inside the training period -------------------------------------------------
def test_evaluate_model_on_its_training_anchors_warns_that_the_metric_is_optimistic(shop):
    cur = shop.execute("EVALUATE MODEL plain AS OF TIMESTAMP '2023-06-01'")
    assert dict((r[0], r[1]) for r in cur.fetchall())["rows"] > 0  # a notice, not an error
    early = [n for n in cur.notices if "training period" in n]
    assert len(early) == 1, cur.notices
    assert early[0].startswith("1 of the 1 evaluated anchors (2023-05-01 ")
    assert "lie before model `plain`'s validation start 2023-08-28 " in early[0]
    assert "the metric is optimistic" in early[0]
    assert "evaluate AS OF a later time, so that every evaluated anchor lies on or after 2023-09-27 " in early[0]


def test_evaluate_model_on_fresh_anchors_has_no_such_notice(shop):
    for sql in ("EVALUATE MODEL plain", "EVALUATE MODEL past AS OF TIMESTAMP '2023-09-01'"):
        cur = shop.execute(sql)
        cur.fetchall()
        assert not [n for n in cur.notices if "training period" in n], (sql, cur.notices)
    # trained AS OF 2023-07-01: its validation started 2023-05-01, whatever the data after that
    cur = shop.execute("EVALUATE MODEL past AS OF TIMESTAMP '2023-05-01'")
    cur.fetchall()
    assert [n for n in cur.notices if "before model `past`'s validation start 2023-05-01 " in n], cur.notices


# ---- empty splits blamed on dates, not entities ------------------------------------------------
def test_a_window_longer_than_the_history_is_named_for_every_split(shop):
    got = anchors(shop, "EXPLAIN PREDICT COUNT(orders.*, 0, 1, YEARS) > 0 FOR EACH customers.customer_id")
    for split in ("train", "validation", "test"):
        assert got[split].startswith("none: the 1 years label window is longer than the history: the table the "
                                     "label counts runs from 2023-01-04 "), got[split]
        assert "entity" not in got[split]
    # where the population is the cause, it is still named
    empty = anchors(shop, f"EXPLAIN {CHURN} WHERE customers.age > 500")
    assert "has an entity that exists in `customers` and passes the WHERE filter" in empty["test"]


def test_val_start_equal_to_test_start_is_an_empty_validation_span(shop):
    got = anchors(shop, f"EXPLAIN {CHURN} WITH (val_start = '2023-08-01', test_start = '2023-08-01')")
    assert got["validation"] == ("none: val_start 2023-08-01 00:00:00 equals test_start, so the validation span "
                                 "from val_start to test_start is empty (one 30 days label window needs val_start "
                                 "that much before test_start)")
    with pytest.raises(rdl_sql.ProgrammingError, match="no validation examples: val_start 2023-08-01 00:00:00 "
                                                       "equals test_start"):
        shop.execute(f"EVALUATE {CHURN} WITH (model = 'gbdt', val_start = '2023-08-01', test_start = '2023-08-01')")
    short = anchors(shop, f"EXPLAIN {CHURN} WITH (val_start = '2023-08-01', test_start = '2023-08-20')")
    assert short["validation"].startswith("none: no anchor from val_start 2023-08-01 00:00:00 has room for a 30 "
                                          "days label window before 2023-08-20 00:00:00 (test_start)")
