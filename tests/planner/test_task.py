"""The task compiler: labels against hand-computed values, splits, entity filters, time rules.

Dates refer to the ``tiny`` database of ``tests/conftest.py`` (anchor
``A = 2024-01-10``, ``B = 2024-01-15``).
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import sqlglot
from sqlglot import exp

from rdl_sql.planner.anchors import shift
from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.options import Options
from rdl_sql.planner.query import AggRef, Aggregate, PredictQuery, Target
from rdl_sql.planner.schema import read_schema
from rdl_sql.planner.sql import arrow, run
from rdl_sql.planner.task import compile_task

A = dt.datetime(2024, 1, 10)
B = dt.datetime(2024, 1, 15)
DAY = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)


def agg(func, column=None, start=0, end=10, *, table="orders", where=None, via=None, unit="DAYS"):
    if isinstance(where, str):
        where = sqlglot.parse_one(where, read="duckdb")
    return Aggregate(func, table, column, start, end, unit, where=where, via=via)


def ref(i: int, op: str, value) -> exp.Expression:
    """``aggregates[i] <op> value`` as a predicate."""
    cls = {"=": exp.EQ, ">": exp.GT, ">=": exp.GTE, "<": exp.LT}[op]
    return cls(this=AggRef(this=i), expression=exp.Literal.number(value))


def query(target: Aggregate, op=None, value=None, *, where=None, assuming=None, extra=(), as_of=None,
          options=(), entity=("customers", "customer_id")) -> PredictQuery:
    return PredictQuery(Target(target, op, value), entity[0], entity[1], where=where, assuming=assuming,
                        aggregates=(target, *extra), as_of=as_of,
                        options=Options.parse([(k, v, None) for k, v in options]))


def plan(con, *args, **kwargs):
    return compile_task(con, read_schema(con), query(*args, **kwargs))


def labels_at(con, p, anchor, key="customer_id") -> dict:
    rows = arrow(con, p.examples_sql([(anchor, "train")])).to_pylist()
    return {r[key]: r["label"] for r in rows}


def scored(con, p, anchor=None, key="customer_id") -> list:
    return [r[key] for r in arrow(con, p.predict_sql(anchor)).to_pylist()]


# ---- labels ----------------------------------------------------------------------
# At A the window (0, 10] DAYS holds orders 4, 5, 6 of customer 1 (amounts 5, 7, 3, products 1, 2, 1)
# and orders 9, 10 of customer 2 (8, 8, product 3); customer 4 has none; customer 3 does not exist yet.
@pytest.mark.parametrize("func, column, expected", [
    ("COUNT", None, {1: 3, 2: 2, 4: 0}),
    ("SUM", "amount", {1: 15, 2: 16, 4: 0}),           # SUM over no rows is 0, not NULL
    ("AVG", "amount", {1: 5, 2: 8}),                    # AVG over no rows is NULL: row dropped
    ("MIN", "amount", {1: 3, 2: 8}),
    ("MAX", "amount", {1: 7, 2: 8}),
    ("COUNT_DISTINCT", "product_id", {1: 2, 2: 1, 4: 0}),
    ("EXISTS", None, {1: 1, 2: 1, 4: 0}),
    ("FIRST", "amount", {1: 5, 2: 8}),
    ("LAST", "amount", {1: 3, 2: 8}),
])
def test_aggregate_labels_match_hand_computed_values(tiny, func, column, expected):
    p = plan(tiny, agg(func, column))
    assert labels_at(tiny, p, A) == expected


def test_task_type_follows_the_target(tiny):
    assert plan(tiny, agg("SUM", "amount")).task_type == "regression"
    assert plan(tiny, agg("COUNT"), "=", 0).task_type == "binary"
    assert plan(tiny, agg("EXISTS")).task_type == "binary"


@pytest.mark.parametrize("op, value, expected", [
    ("=", 0, {1: 0, 2: 0, 4: 1}),
    (">", 1, {1: 1, 2: 1, 4: 0}),
    (">", 2, {1: 1, 2: 0, 4: 0}),
])
def test_comparison_target_is_a_zero_one_label(tiny, op, value, expected):
    assert labels_at(tiny, plan(tiny, agg("COUNT"), op, value), A) == expected


def test_comparison_on_an_undefined_aggregate_drops_the_row(tiny):
    assert labels_at(tiny, plan(tiny, agg("AVG", "amount"), ">", 6), A) == {1: 0, 2: 1}


@pytest.mark.parametrize("where, func, column, expected", [
    ("orders.amount > 5", "COUNT", None, {1: 1, 2: 2, 4: 0}),
    ("amount > 5", "COUNT", None, {1: 1, 2: 2, 4: 0}),                  # unqualified column
    ("orders.product_id = 1", "SUM", "amount", {1: 8, 2: 0, 4: 0}),
    ("orders.amount > 5 AND orders.product_id = 2", "COUNT", None, {1: 1, 2: 0, 4: 0}),
    ("orders.amount < 6 OR orders.amount > 7", "COUNT", None, {1: 2, 2: 2, 4: 0}),  # parenthesised
])
def test_filtered_aggregate_counts_only_matching_rows(tiny, where, func, column, expected):
    assert labels_at(tiny, plan(tiny, agg(func, column, where=where)), A) == expected


def test_target_window_is_half_open_after_the_anchor(tiny):
    # (A, A+10]: order 3 (exactly at A, 20) is out, order 6 (exactly at A+10, 3) is in: 5 + 7 + 3
    # ([A, A+10) would give 32, [A, A+10] 35, (A, A+10) 12)
    p = plan(tiny, agg("SUM", "amount"))
    assert labels_at(tiny, p, A)[1] == 15
    # (B, B+10]: order 5 (exactly at B) is out, order 7 (exactly at B+10, 100) is in
    assert labels_at(tiny, p, B) == {1: 103, 2: 0, 3: 30, 4: 0}


def test_window_with_a_negative_start_reads_both_sides_of_the_anchor(tiny):
    # (A-10, A+10]: orders 2, 3, 4, 5, 6 of customer 1; order 8 of customer 2 is out
    assert labels_at(tiny, plan(tiny, agg("SUM", "amount", -10, 10)), A) == {1: 45, 2: 16, 4: 0}


def test_past_window_of_a_filter_is_half_open_and_includes_the_anchor(tiny):
    # (A-5, A]: order 2 (exactly A-5, 10) is out, order 3 (exactly at A, 20) is in
    p = plan(tiny, agg("COUNT"), where=ref(1, "=", 20), extra=[agg("SUM", "amount", -5, 0)])
    assert scored(tiny, p, A) == [1]
    assert list(labels_at(tiny, p, A)) == [1]


def test_hours_and_weeks_windows(tiny):
    # (A, A+24h]: only order 9, exactly at 2024-01-11 00:00; order 10 is at 36h, order 4 at 48h
    assert labels_at(tiny, plan(tiny, agg("COUNT", end=24, unit="HOURS")), A) == {1: 0, 2: 1, 4: 0}
    # (A, A+2 weeks] = (01-10, 01-24]: orders 4, 5, 6 of customer 1; order 7 (01-25) is out
    assert labels_at(tiny, plan(tiny, agg("COUNT", end=2, unit="WEEKS")), A) == {1: 3, 2: 2, 4: 0}


def test_entities_dated_after_the_anchor_are_excluded(tiny):
    p = plan(tiny, agg("COUNT"))
    assert sorted(labels_at(tiny, p, A)) == [1, 2, 4]
    assert sorted(labels_at(tiny, p, B)) == [1, 2, 3, 4]  # customer 3 signs up exactly at B
    assert scored(tiny, p, A) == [1, 2, 4]
    assert scored(tiny, p, B - SECOND) == [1, 2, 4]
    assert scored(tiny, p, B) == [1, 2, 3, 4]


def test_undated_entities_are_always_present(tiny):
    tiny.execute("INSERT INTO customers VALUES (5, NULL, 'US', 20)")
    p = plan(tiny, agg("COUNT"))
    assert labels_at(tiny, p, dt.datetime(2000, 1, 1)) == {5: 0}
    assert 5 in labels_at(tiny, p, A)


def test_examples_carry_node_ids_anchor_and_split_for_several_anchors(tiny):
    p = plan(tiny, agg("COUNT"))
    tbl = arrow(tiny, p.examples_sql([(A, "train"), (B, "val")]))
    assert tbl.column_names == ["__node", "customer_id", "anchor_time", "split", "label"]
    rows = tbl.to_pylist()
    assert [(r["anchor_time"], r["split"], r["customer_id"]) for r in rows] == [
        (A, "train", 1), (A, "train", 2), (A, "train", 4),
        (B, "val", 1), (B, "val", 2), (B, "val", 3), (B, "val", 4)]
    # node ids are the rowid order of the customers
    assert {r["customer_id"]: r["__node"] for r in rows} == {1: 0, 2: 1, 3: 2, 4: 3}


def test_as_of_clips_what_a_label_can_read(tiny):
    # nothing after AS OF is read, even inside a window: order 6 (2024-01-20) is dropped
    p = plan(tiny, agg("SUM", "amount"), as_of=dt.datetime(2024, 1, 16))
    assert labels_at(tiny, p, A)[1] == 12  # orders 4 and 5 only


# ---- entity filter and ASSUMING ---------------------------------------------------------
def test_where_filter_selects_entities_with_past_activity(tiny):
    p = plan(tiny, agg("COUNT"), where=ref(1, ">", 0), extra=[agg("COUNT", None, -30, 0)])
    assert scored(tiny, p, A) == [1, 2]
    assert sorted(labels_at(tiny, p, A)) == [1, 2]


def test_where_filter_on_an_entity_column(tiny):
    where = exp.and_(ref(1, ">", 0), sqlglot.parse_one("customers.country = 'US'"))
    p = plan(tiny, agg("COUNT"), where=where, extra=[agg("COUNT", None, -365, 0)])
    # customer 3 (US) has no past orders at B, so only customer 1 passes
    assert scored(tiny, p, B) == [1]


def test_assuming_shapes_training_rows_but_not_the_scored_set(tiny):
    p = plan(tiny, agg("SUM", "amount"), assuming=ref(1, ">", 0), extra=[agg("COUNT", None, 0, 10)])
    assert sorted(labels_at(tiny, p, A)) == [1, 2]
    assert scored(tiny, p, A) == [1, 2, 4]


# ---- splits -------------------------------------------------------------------------
def assert_split_rules(p, end, unit="DAYS", as_of=None):
    train, val, test = list(p.train_anchors), list(p.val_anchors), list(p.test_anchors)
    for anchors in (train, val, test):
        assert anchors == sorted(anchors) and anchors
    assert p.val_start == val[0] and p.test_start == test[0]
    for t in train:
        assert shift(t, end, unit) <= p.val_start
    for t in val:
        assert shift(t, end, unit) <= p.test_start
    for t in test:
        assert shift(t, end, unit) <= p.predict_anchor
    if as_of is not None:
        assert p.as_of == as_of and p.predict_anchor == as_of
    anchors = p.split_anchors()
    assert [s for _, s in anchors] == ["train"] * len(train) + ["val"] * len(val) + ["test"] * len(test)
    assert len(p.anchor_rows) == len(anchors) and min(p.anchor_rows) > 0


def test_default_splits_step_back_from_the_latest_time(tiny):
    p = plan(tiny, agg("COUNT"))
    # the latest order is 2024-01-25: test anchor 01-15, validation 01-05, training every 10 days back
    # from 2023-12-26 while the earliest order (2023-10-01) is not passed
    # (11 anchors of history: each evaluation split gets at most a tenth of them, so one each)
    assert p.predict_anchor == dt.datetime(2024, 1, 25)
    assert p.test_anchors == (dt.datetime(2024, 1, 15),)
    assert p.val_anchors == (dt.datetime(2024, 1, 5),)
    assert p.train_anchors == tuple(dt.datetime(2023, 12, 26) - i * 10 * DAY for i in range(8, -1, -1))
    # customers existing at each anchor: 1 alone until 2023-11-01, then 4, then 2 (12-15), then 3 (01-15)
    assert p.anchor_rows == (1, 1, 1, 2, 2, 2, 2, 3, 3) + (3,) + (4,)
    assert_split_rules(p, 10)


def test_explicit_val_and_test_start(tiny):
    p = plan(tiny, agg("COUNT", end=5), options=[("val_start", "2024-01-10"), ("test_start", "2024-01-20")])
    # validation steps through [01-10, 01-20 - 5 days], test through [01-20, 01-25 - 5 days]
    assert p.val_anchors == (A, dt.datetime(2024, 1, 15))
    assert p.test_anchors == (dt.datetime(2024, 1, 20),)
    assert p.train_anchors[-1] == dt.datetime(2024, 1, 5)
    assert_split_rules(p, 5)


def test_anchor_step_gives_overlapping_training_windows_that_still_end_before_validation(tiny):
    p = plan(tiny, agg("COUNT"), options=[("anchor_step", 3)])
    steps = {b - a for a, b in zip(p.train_anchors, p.train_anchors[1:])}
    assert steps == {3 * DAY}
    assert_split_rules(p, 10)


def test_as_of_every_label_window_ends_by_the_cut_off(tiny):
    as_of = dt.datetime(2024, 1, 18)
    p = plan(tiny, agg("COUNT", end=3), as_of=as_of)
    # labels end by the last order visible at AS OF (01-17); 35 anchors of history 3 days apart: the test
    # split takes a tenth of them
    last = dt.datetime(2024, 1, 17)
    assert p.test_anchors == tuple(last - (3 + 3 * i) * DAY for i in (2, 1, 0))
    assert_split_rules(p, 3, as_of=as_of)


def test_split_rules_on_a_generated_shop(shop_small):
    p = plan(shop_small, agg("COUNT", end=30), "=", 0)
    assert_split_rules(p, 30)
    assert p.test_anchors[-1] == p.predict_anchor - 30 * DAY
    as_of = dt.datetime(2023, 6, 1)
    q = plan(shop_small, agg("COUNT", end=1, unit="MONTHS"), "=", 0, as_of=as_of)
    assert_split_rules(q, 1, "MONTHS", as_of=as_of)
    last = shop_small.execute("SELECT max(ordered_at) FROM orders WHERE ordered_at <= ?", [as_of]).fetchall()[0][0]
    assert q.test_anchors[-1] == shift(last, -1, "MONTHS") and last > as_of - DAY  # labels end by the last order
    ex = arrow(shop_small, q.examples_sql(q.split_anchors()))
    assert set(ex.column("split").to_pylist()) == {"train", "val", "test"}


def test_test_start_without_room_for_the_window_leaves_test_empty_and_says_why(tiny):
    p = plan(tiny, agg("COUNT"), options=[("test_start", "2024-01-20")])
    assert p.test_anchors == ()
    assert ("leaves no room for a 10 days label window before 2024-01-25 00:00:00, the last time of the table"
            in p.why_empty("test").why)
    assert p.why_empty("test").cause == "dates" and p.why_empty("val") is None
    # validation still ends by the last order, not by the (later) test_start
    assert p.val_anchors and all(t + 10 * DAY <= p.predict_anchor for t in p.val_anchors)
    assert p.train_anchors
    q = plan(tiny, agg("COUNT"), options=[("val_start", "2024-01-10"), ("test_start", "2024-01-15")])
    assert q.val_anchors == () and "from val_start 2024-01-10" in q.why_empty("val").why
    with pytest.raises(PlanError, match="not a timestamp"):
        plan(tiny, agg("COUNT"), options=[("test_start", "soon")])


def test_not_enough_history_leaves_training_empty(tiny):
    p = plan(tiny, agg("COUNT", end=60))
    assert p.train_anchors == ()
    assert "not enough history" in p.why_empty("train").why


@pytest.mark.parametrize("func, column", [("COUNT", None), ("AVG", "amount"), ("MAX", "amount"), ("SUM", "amount")])
def test_count_sql_counts_exactly_the_example_rows(tiny, func, column):
    # ASSUMING drops training rows, an AVG / MAX over no rows drops the row: the counts must agree
    p = plan(tiny, agg(func, column), assuming=ref(1, ">", 0), extra=[agg("COUNT", None, 0, 20)])
    anchors = [(A - 10 * DAY, "train"), (A, "train"), (B, "val"), (B + DAY, "test")]
    rows = arrow(tiny, p.examples_sql(anchors)).column("anchor_time").to_pylist()
    want = {t: rows.count(t) for t in set(rows)}
    assert dict(run(tiny, p.count_sql(anchors))) == want
    assert len(want) >= 3


def test_scoring_only_plans_choose_no_anchor(tiny):
    p = compile_task(tiny, read_schema(tiny), query(agg("COUNT")), training=False, test=False)
    assert p.split_anchors() == [] and p.predict_anchor == dt.datetime(2024, 1, 25)
    e = compile_task(tiny, read_schema(tiny), query(agg("COUNT")), training=False)
    assert e.test_anchors == (dt.datetime(2024, 1, 15),) and e.train_anchors == e.val_anchors == ()


# ---- planted future rows: labels and filters never read them ----------------------------
def plant_orders(con, when: dt.datetime, amount=1000.0, product=1):
    """One order per existing customer at ``when`` (ids above every existing order)."""
    con.execute("INSERT INTO orders SELECT (SELECT max(order_id) FROM orders) + row_number() OVER (), "
                "customer_id, ?, ?, ? FROM customers", [product, when, amount])


def test_planted_rows_after_the_validation_anchor_leave_training_labels_unchanged(tiny):
    options = [("val_start", "2024-01-05"), ("test_start", "2024-01-15")]
    p = plan(tiny, agg("SUM", "amount"), options=options)
    before = arrow(tiny, p.examples_sql(p.split_anchors()))
    # just past the end of the last training window, and later
    plant_orders(tiny, p.val_start + SECOND)
    plant_orders(tiny, p.test_start + DAY)
    tiny.execute("INSERT INTO customers VALUES (9, '2024-01-06', 'US', 33)")
    plant_orders(tiny, dt.datetime(2024, 1, 7))
    q = plan(tiny, agg("SUM", "amount"), options=options)
    assert q.split_anchors() == p.split_anchors()
    after = arrow(tiny, q.examples_sql(q.split_anchors()))
    train = lambda t: [r for r in t.to_pylist() if r["split"] == "train"]
    assert train(after) == train(before)
    # the planted rows were within reach: the validation labels did change
    val = lambda t: {r["customer_id"]: r["label"] for r in t.to_pylist() if r["split"] == "val"}
    assert val(after) != val(before)


def test_planted_rows_after_as_of_change_nothing(tiny):
    as_of = dt.datetime(2024, 1, 18)
    p = plan(tiny, agg("SUM", "amount", end=3), where=ref(1, ">", 0), extra=[agg("COUNT", None, -30, 0)],
             as_of=as_of)
    before = (arrow(tiny, p.examples_sql(p.split_anchors())), arrow(tiny, p.predict_sql()))
    plant_orders(tiny, as_of + dt.timedelta(microseconds=1))
    plant_orders(tiny, as_of + 5 * DAY)
    tiny.execute("INSERT INTO customers VALUES (9, '2024-01-19', 'US', 33)")
    plant_orders(tiny, as_of + 2 * DAY)
    q = plan(tiny, agg("SUM", "amount", end=3), where=ref(1, ">", 0), extra=[agg("COUNT", None, -30, 0)],
             as_of=as_of)
    assert q.split_anchors() == p.split_anchors()
    assert q.predict_anchor == p.predict_anchor == as_of
    after = (arrow(tiny, q.examples_sql(q.split_anchors())), arrow(tiny, q.predict_sql()))
    assert after[0].equals(before[0])
    assert after[1].equals(before[1])
    # without AS OF the same plan would have read them
    free = plan(tiny, agg("SUM", "amount", end=3))
    assert labels_at(tiny, free, as_of) != labels_at(tiny, p, as_of)


def test_planted_future_orders_do_not_change_the_filtered_set(tiny):
    # customer 4 has no orders before A; future orders would make it pass a filter that read them
    p = plan(tiny, agg("COUNT"), where=ref(1, ">", 0), extra=[agg("COUNT", None, -30, 0)])
    before = (scored(tiny, p, A), sorted(labels_at(tiny, p, A)))
    assert before == ([1, 2], [1, 2])
    for when in (A + dt.timedelta(microseconds=1), A + SECOND, A + DAY, A + 30 * DAY):
        plant_orders(tiny, when)
    tiny.execute("INSERT INTO customers VALUES (9, '2024-01-11', 'US', 33)")
    assert (scored(tiny, p, A), sorted(labels_at(tiny, p, A))) == before
    # at a later anchor the planted orders are past, and the filter does see them
    assert 4 in scored(tiny, p, A + 2 * DAY)


def test_planted_future_orders_do_not_change_filtered_sums(tiny):
    p = plan(tiny, agg("COUNT"), where=ref(1, "=", 20), extra=[agg("SUM", "amount", -5, 0)])
    assert scored(tiny, p, A) == [1]
    tiny.execute("INSERT INTO orders VALUES (100, 1, 1, '2024-01-10 00:00:00.000001', 5.0)")
    assert scored(tiny, p, A) == [1]


# ---- mistakes -------------------------------------------------------------------------
def test_unknown_table_suggests_a_name(tiny):
    with pytest.raises(PlanError, match="table `order` not found; did you mean `orders`?"):
        plan(tiny, agg("COUNT", table="order"))
    with pytest.raises(PlanError, match="did you mean `customers`"):
        plan(tiny, agg("COUNT"), entity=("customer", "customer_id"))


def test_unknown_column_suggests_a_name(tiny):
    with pytest.raises(PlanError, match="column `amout` not found in table `orders`; did you mean `amount`"):
        plan(tiny, agg("SUM", "amout"))
    with pytest.raises(PlanError, match="column `customerid` not found"):
        plan(tiny, agg("COUNT"), entity=("customers", "customerid"))
    with pytest.raises(PlanError, match="column `amout` not found"):
        plan(tiny, agg("COUNT", where="orders.amout > 1"))
    with pytest.raises(PlanError, match="column `contry` not found in table `customers`"):
        plan(tiny, agg("COUNT"), where=sqlglot.parse_one("customers.contry = 'US'"))


def test_other_tables_in_a_filtered_aggregate_are_refused(tiny):
    with pytest.raises(PlanError, match="cannot be used here"):
        plan(tiny, agg("COUNT", where="products.price > 1"))


def test_target_window_in_the_past_is_an_error(tiny):
    with pytest.raises(PlanError, match="lies in the past"):
        plan(tiny, agg("COUNT", None, -30, 0))


def test_where_window_reaching_the_future_is_an_error(tiny):
    with pytest.raises(PlanError, match="reaches into the future"):
        plan(tiny, agg("COUNT"), where=ref(1, ">", 0), extra=[agg("COUNT", None, -30, 5)])
    # the same window is fine in ASSUMING
    plan(tiny, agg("COUNT"), assuming=ref(1, ">", 0), extra=[agg("COUNT", None, -30, 5)])


def test_empty_window_is_an_error(tiny):
    with pytest.raises(PlanError, match="empty window"):
        plan(tiny, agg("COUNT", None, 10, 10))


def test_aggregates_that_need_a_column_say_so(tiny):
    for func in ("SUM", "AVG", "MIN", "MAX", "FIRST", "LAST", "COUNT_DISTINCT"):
        with pytest.raises(PlanError, match=f"{func} needs a column"):
            plan(tiny, agg(func, None))


def test_numeric_aggregate_over_text_is_an_error(tiny):
    tiny.execute("ALTER TABLE orders ADD COLUMN note VARCHAR")
    with pytest.raises(PlanError, match="needs a numeric column"):
        plan(tiny, agg("SUM", "note"))


def test_for_each_needs_the_primary_key(tiny):
    with pytest.raises(PlanError, match="FOR EACH needs the primary key"):
        plan(tiny, agg("COUNT"), entity=("customers", "country"))


def test_window_over_a_static_table_is_an_error(tiny):
    tiny.execute("CREATE TABLE wishes (wish_id INTEGER PRIMARY KEY, "
                 "customer_id INTEGER REFERENCES customers (customer_id))")
    with pytest.raises(PlanError, match="has no time column"):
        plan(tiny, agg("COUNT", table="wishes"))


def test_table_not_linked_to_the_entity_is_an_error(tiny):
    tiny.execute("CREATE TABLE events (event_id INTEGER PRIMARY KEY, happened_at TIMESTAMP)")
    tiny.execute("INSERT INTO events VALUES (1, '2024-01-01')")
    with pytest.raises(PlanError, match="not linked to `customers`.*ALTER GRAPH ADD LINK"):
        plan(tiny, agg("COUNT", table="events"))


def test_two_links_need_via(tiny):
    tiny.execute("""
        CREATE TABLE transfers (transfer_id INTEGER PRIMARY KEY,
                                sender INTEGER REFERENCES customers (customer_id),
                                receiver INTEGER REFERENCES customers (customer_id),
                                sent_at TIMESTAMP, amount DOUBLE);
        INSERT INTO transfers VALUES (1, 1, 2, '2023-12-01', 5.0), (2, 1, 4, '2024-01-11', 7.0),
                                     (3, 2, 1, '2024-01-12', 9.0), (4, 1, 2, '2024-01-13', 1.0);
    """)
    with pytest.raises(PlanError, match="links to `customers` in 2 ways .*VIA"):
        plan(tiny, agg("COUNT", table="transfers"))
    sent = plan(tiny, agg("SUM", "amount", table="transfers", via="sender"))
    got = plan(tiny, agg("SUM", "amount", table="transfers", via="receiver"))
    assert labels_at(tiny, sent, A) == {1: 8, 2: 9, 4: 0}
    assert labels_at(tiny, got, A) == {1: 9, 2: 1, 4: 7}
    # a link column named as the aggregated column picks its link
    assert labels_at(tiny, plan(tiny, agg("COUNT_DISTINCT", "receiver", table="transfers")), A) == {1: 1, 2: 1, 4: 1}


def test_no_dated_rows_is_an_error(tiny):
    with pytest.raises(PlanError, match="no dated rows"):
        plan(tiny, agg("COUNT"), as_of=dt.datetime(2000, 1, 1))


# ---- quoted identifiers -------------------------------------------------------------------
def test_labels_with_identifiers_that_need_quoting(weird):
    target = agg("SUM", "select", table="Order Items", where='"Order Items"."select" > 1')
    p = compile_task(weird, read_schema(weird),
                     query(target, entity=("group", "user id")))
    # (2024-01-04, 2024-01-14]: items 10 (2.0) and 11 (0.5, filtered out) of user 1, 13 (3.0) of user 2;
    # item 14 has no user
    assert labels_at(weird, p, dt.datetime(2024, 1, 4), key="user id") == {1: 2.0, 2: 3.0}
    # (2024-01-10, 2024-01-20] with user 3 not yet present
    assert labels_at(weird, p, A, key="user id") == {1: 4.0, 2: 3.0}
    cnt = compile_task(weird, read_schema(weird), query(
        agg("COUNT_DISTINCT", 'a"b', table="Order Items", start=-30, end=5), entity=("group", "user id")))
    # (2023-12-11, 2024-01-15]: user 1 has 'x', 'y'; user 2 only a NULL
    assert labels_at(weird, cnt, A, key="user id") == {1: 2, 2: 0}
    assert [r["user id"] for r in arrow(weird, p.predict_sql(A)).to_pylist()] == [1, 2]


def test_query_options_do_not_leak_into_sql_text(tiny):
    # a value is a literal, never SQL: a hostile-looking option string only fails as a timestamp
    with pytest.raises(PlanError, match="not a timestamp"):
        plan(tiny, agg("COUNT"), options=[("test_start", "2024-01-01'); DROP TABLE orders; --")])
    assert tiny.execute("SELECT count(*) FROM orders").fetchone()[0] == 11


def test_plan_is_frozen(tiny):
    p = plan(tiny, agg("COUNT"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.as_of = A


# ---- ASSUMING reads the future: training rows only, and never past the validation anchor ------
def test_assuming_filters_training_rows_but_not_validation_or_test(tiny):
    p = plan(tiny, agg("SUM", "amount"), assuming=ref(1, ">", 0), extra=[agg("COUNT", None, 0, 10)])
    for split in ("val", "test"):
        rows = arrow(tiny, p.examples_sql([(A, split)])).to_pylist()
        assert sorted(r["customer_id"] for r in rows) == [1, 2, 4]  # customer 4 has no future order: kept


def test_assuming_window_longer_than_the_target_moves_training_anchors_back(tiny):
    long_assuming = agg("COUNT", None, 0, 30)
    p = plan(tiny, agg("SUM", "amount", 0, 5), assuming=ref(1, ">", 0), extra=[long_assuming])
    assert p.train_anchors
    for t in p.train_anchors:
        assert shift(t, 30, "DAYS") <= p.val_start  # the ASSUMING window, not only the label's


@pytest.mark.parametrize("func", ["FIRST", "LAST"])
def test_first_or_last_of_a_time_column_is_refused_with_a_target_that_works(tiny, func):
    """It planned as regression and failed in DuckDB casting the DATE / TIMESTAMP label to DOUBLE."""
    with pytest.raises(PlanError, match=f"{func} of `orders.ordered_at` \\(a time\\) cannot be predicted as a "
                                        f"time; predict whether there is a row \\(EXISTS\\(orders"):
        plan(tiny, agg(func, "ordered_at"))
