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


# ---- a binary test split of one class -----------------------------------------------------------
@pytest.fixture
def one_class_test():
    """Dated items whose newest tenth (the test split of `items.price > 50`) all cost 1000; mixed before."""
    con = rdl_sql.connect(progress=False)
    con.execute("""CREATE TABLE items(item_id INTEGER PRIMARY KEY, made DATE, price DOUBLE);
                   INSERT INTO items SELECT i, DATE '2020-01-01' + i::INTEGER, CASE WHEN i % 10 = 0 THEN NULL
                   WHEN i >= 180 THEN 1000 ELSE (i * 37) % 100 END FROM range(200) t(i)""")
    yield con
    con.close()


@pytest.mark.parametrize("model", ["gbdt", "gnn"])
def test_evaluate_on_a_test_split_of_one_class_says_so_and_gives_null_not_nan(one_class_test, model):
    cur = one_class_test.execute(f"EVALUATE PREDICT items.price > 50 FOR EACH items.item_id "
                                 f"WITH (model = '{model}', epochs = 1)")
    rows = {r[0]: r[1:] for r in cur.fetchall()}
    assert rows["AUROC"] == rows["average_precision"] == (None, None, None, None)
    assert rows["rows"] == (18.0, 18.0, 18.0, 18.0) and 0 <= rows["accuracy"][0] <= 1
    assert ("AUROC and average_precision are NULL: every one of the 18 test examples is True, and they need both "
            "classes; accuracy and rows are still measured") in cur.notices
    assert not [n for n in cur.notices if n.startswith("test metrics skipped") or "diverged" in n], cur.notices


def test_evaluate_model_on_fresh_labels_of_one_class_says_so(one_class_test):
    one_class_test.execute("CREATE MODEL m AS PREDICT items.price > 50 FOR EACH items.item_id WITH (model = 'gbdt')")
    cur = one_class_test.execute("EVALUATE MODEL m")
    rows = {r[0]: r[1:] for r in cur.fetchall()}
    assert rows["AUROC"] == (None, None, None, None) and rows["rows"][0] == 18.0
    assert any(n.startswith("AUROC and average_precision are NULL: every one of the 18 test examples is True")
               for n in cur.notices), cur.notices


def test_an_empty_test_split_of_a_static_column_offers_more_values_not_dates():
    """A static table's rows are split by a hash of their key: no val_start / test_start to move."""
    con = rdl_sql.connect(progress=False)
    try:  # values only outside test's bucket (hash(id, seed) % 10 = 9, planner/labels.py)
        con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x DOUBLE, y DOUBLE); INSERT INTO t "
                    "SELECT i, i, CASE WHEN hash(i, 0) % 10 = 9 THEN NULL ELSE i END FROM range(200) t(i)")
        with pytest.raises(rdl_sql.ProgrammingError) as err:
            con.execute("EVALUATE PREDICT t.y FOR EACH t.id WITH (model = 'gbdt')")
        assert str(err.value).endswith("no row of `t` with a value of `y` falls in the test split; fill in more "
                                       "values of `t.y`")
        n = con.execute("SELECT count(y) FROM t").fetchone()[0]
        cur = con.execute("PREDICT t.y FOR EACH t.id WITH (model = 'gbdt')")
        assert [m for m in cur.notices if m.startswith("no test examples")] == [
            f"no test examples: `t.y` has only {n} non-NULL values: `t` has no time column, so its rows are split "
            f"by a hash of their key (about 80 % training, 10 % validation, 10 % test), and none fell in test; "
            f"test metrics skipped"]
    finally:
        con.close()
