"""The feature query of the GBDT baseline: hand-computed values, time rules, quoting.

Dates refer to the ``tiny`` database of ``tests/conftest.py`` (anchor
``A = 2024-01-10``, ``B = 2024-01-15``). With a 10-day target the past
windows are 2, 10, 30 and 120 days.
"""
from __future__ import annotations

import datetime as dt

import pytest

from rdl_sql.planner.features import default_windows, feature_names, feature_sql
from rdl_sql.planner.query import Aggregate, PredictQuery, Target
from rdl_sql.planner.schema import read_schema
from rdl_sql.planner.sql import arrow
from rdl_sql.planner.task import compile_task

A = dt.datetime(2024, 1, 10)
B = dt.datetime(2024, 1, 15)


def plan(con, table="orders", entity=("customers", "customer_id"), end=10, unit="DAYS", as_of=None):
    target = Aggregate("COUNT", table, None, 0, end, unit)
    q = PredictQuery(Target(target, "=", 0), entity[0], entity[1], aggregates=(target,), as_of=as_of)
    return compile_task(con, read_schema(con), q)


def features(con, p, anchors, key="customer_id") -> dict:
    """{(key, anchor): feature row} for the entities scored at each anchor."""
    out = {}
    for t in anchors:
        for r in arrow(con, feature_sql(p, p.predict_sql(t))).to_pylist():
            out[(r[key], r["anchor_time"])] = r
    return out


def insert_orders(con, rows) -> None:
    con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", rows)


# ---- values -------------------------------------------------------------------------
# At A customer 1 has orders 1 (2023-10-01, 1.0, books), 2 (01-05, 10.0, toys), 3 (exactly A, 20.0, books);
# customer 2 has order 8 (2023-12-20, 50.0, product 3: home, no price); customer 4 has none.
def test_window_aggregates_match_hand_computed_values(tiny):
    f = features(tiny, plan(tiny), [A])
    c1 = f[(1, A)]
    assert c1["orders__count__2days"] == 1            # (A - 2d, A]: order 3, at A itself
    assert c1["orders__amount__mean__2days"] == 20.0
    assert c1["orders__count__10days"] == 2           # orders 2 and 3
    assert c1["orders__amount__mean__10days"] == 15.0
    assert c1["orders__amount__min__10days"] == 10.0
    assert c1["orders__amount__max__10days"] == 20.0
    assert c1["orders__count__120days"] == 3
    assert c1["orders__amount__mean__all"] == pytest.approx(31 / 3)
    assert c1["orders__amount__last"] == 20.0
    assert c1["orders__days_since_last"] == 0.0
    assert c1["customers__age_days"] == 131.0          # signed up 2023-09-01
    assert c1["customers__country"] == "US" and c1["customers__age"] == 30.0

    c2 = f[(2, A)]
    assert c2["orders__count__10days"] == 0 and c2["orders__amount__mean__10days"] is None
    assert c2["orders__count__30days"] == 1 and c2["orders__amount__last"] == 50.0
    assert c2["orders__days_since_last"] == 21.0

    c4 = f[(4, A)]
    assert c4["orders__count__all"] == 0               # no orders: counts are 0, the rest unknown
    assert c4["orders__days_since_last"] is None and c4["orders__amount__last"] is None
    assert (3, A) not in f                             # customer 3 signs up after A


def test_two_hop_features_read_the_products_of_past_orders(tiny):
    c1 = features(tiny, plan(tiny), [A])[(1, A)]
    assert c1["orders__products__category__last"] == "books"   # order 3 at A: product 1
    assert c1["orders__products__category__mode"] == "books"   # books, toys, books
    assert c1["orders__products__price__last"] == 10.0
    assert c1["orders__products__price__mean__10days"] == 15.0  # products 2 (20) and 1 (10)
    assert c1["orders__products__price__mean__all"] == pytest.approx(40 / 3)


def test_last_value_ties_broken_by_value_not_scan_order(tiny):
    insert_orders(tiny, [(20, 4, 1, "2024-01-09 00:00:00", 3.0), (21, 4, 2, "2024-01-09 00:00:00", 9.0)])
    c4 = features(tiny, plan(tiny), [A])[(4, A)]
    assert c4["orders__amount__last"] == 9.0
    assert c4["orders__products__category__last"] == "toys"


# ---- time rules ---------------------------------------------------------------------------
def test_planted_future_rows_change_no_feature(tiny):
    p = plan(tiny)
    before = features(tiny, p, [A, B])
    # after B: invisible at both anchors; huge amounts and a new product would show in any aggregate
    tiny.execute("INSERT INTO products VALUES (9, 'planted', 9999.0)")
    insert_orders(tiny, [(30, 1, 9, "2024-01-15 00:00:01", 9999.0), (31, 2, 9, "2024-03-01 00:00:00", 9999.0),
                         (32, 4, 9, "2030-01-01 00:00:00", 9999.0)])
    assert features(tiny, p, [A, B]) == before
    # one second after A: invisible at A (and visible at B, which is not what this test pins)
    insert_orders(tiny, [(33, 1, 9, "2024-01-10 00:00:01", 9999.0), (34, 4, 9, "2024-01-10 00:00:01", 9999.0)])
    after = features(tiny, p, [A])
    assert after == {k: v for k, v in before.items() if k[1] == A}


def test_planted_future_rows_change_no_feature_of_labelled_examples(tiny):
    p = plan(tiny)
    q = lambda: feature_sql(p, p.examples_sql([(A, "train")]))  # noqa: E731
    names = feature_names(q())
    before = [{n: r[n] for n in names} for r in arrow(tiny, q()).to_pylist()]
    insert_orders(tiny, [(40, 2, 1, "2024-01-10 00:00:01", 9999.0), (41, 4, 2, "2024-01-19 00:00:00", 9999.0)])
    after = arrow(tiny, q()).to_pylist()
    assert [{n: r[n] for n in names} for r in after] == before
    assert [r["label"] for r in after] == [0.0, 0.0, 0.0]  # the planted rows did reach the labels


def test_as_of_hides_rows_after_the_cutoff_even_from_later_anchors(tiny):
    later = dt.datetime(2024, 2, 1)
    p = plan(tiny, as_of=B)
    c1 = features(tiny, p, [later])[(1, later)]
    assert c1["orders__count__all"] == 5               # orders 1-5: order 5 is exactly at B
    assert c1["orders__amount__last"] == 7.0


def test_parent_rows_dated_after_the_anchor_do_not_exist_yet(tiny):
    tiny.execute("""
        CREATE TABLE shops (shop_id INTEGER PRIMARY KEY, opened_at TIMESTAMP, size DOUBLE);
        CREATE TABLE visits (visit_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (customer_id),
                             shop_id INTEGER REFERENCES shops (shop_id), visited_at TIMESTAMP);
        INSERT INTO shops VALUES (1, '2023-01-01', 10.0), (2, '2024-01-12', 500.0);
        -- a visit before A to a shop that opens after A: a data error the features must not leak through
        INSERT INTO visits VALUES (1, 1, 1, '2024-01-01'), (2, 1, 2, '2024-01-02');
    """)
    c1 = features(tiny, plan(tiny), [A])[(1, A)]
    assert c1["visits__count__all"] == 2
    assert c1["visits__shops__size__mean__all"] == 10.0


def test_static_child_table_is_aggregated_whole(tiny):
    tiny.execute("""
        CREATE TABLE notes (note_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (customer_id),
                            stars DOUBLE);
        INSERT INTO notes VALUES (1, 1, 2.0), (2, 1, 4.0), (3, 2, 5.0);
    """)
    c1 = features(tiny, plan(tiny), [A])[(1, A)]
    assert c1["notes__count__all"] == 2 and c1["notes__stars__mean__all"] == 3.0
    assert "notes__count__10days" not in c1 and "notes__stars__last" not in c1


# ---- shape ---------------------------------------------------------------------------------------
def test_rows_come_back_once_each_in_their_order(tiny):
    p = plan(tiny)
    rows = p.examples_sql([(A, "train"), (B, "val")])
    got = arrow(tiny, feature_sql(p, rows))
    want = arrow(tiny, rows)
    assert got.select(want.column_names).to_pylist() == want.to_pylist()


def test_windows_scale_with_the_target_window(tiny):
    assert default_windows(plan(tiny, end=30)) == ((7, "DAYS"), (30, "DAYS"), (90, "DAYS"), (360, "DAYS"))
    assert default_windows(plan(tiny, end=1, unit="MONTHS")) == ((1, "MONTHS"), (3, "MONTHS"), (12, "MONTHS"))


def test_every_identifier_is_quoted(weird):
    p = plan(weird, table="Order Items", entity=("group", "user id"))
    t = dt.datetime(2024, 1, 15)
    f = features(weird, p, [t], key="user id")
    g1 = f[(1, t)]
    assert g1["Order Items__count__all"] == 2          # items 10 and 11; item 12 is after t
    assert g1["Order Items__select__last"] == 0.5
    assert g1['Order Items__a"b__last'] == "y"
    assert g1["group__Name"] == "O'Brien"
