"""Labelled examples for training: the max_train_rows cap, empty splits, FOR ... IN notices, EXPLAIN's anchors.

Statements are written as SQL and bound by the front-end, as a user's are.
Dates refer to the ``tiny`` database of ``tests/conftest.py``.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import rdl_sql
from rdl_sql.bind import to_query
from rdl_sql.dialect import parse_statement
from rdl_sql.engine.explain import explain
from rdl_sql.engine.prepare import cap_training_rows, prepare
from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.sql import arrow

D = dt.datetime
TINY_COUNT = "PREDICT COUNT(orders.*, 0, 10, DAYS) FOR EACH customers.customer_id"
SHOP_CHURN = ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
              "WHERE COUNT(orders.*, -90, 0, DAYS) > 0")


def query(text: str, with_: str = ""):
    text = text + (f" WITH ({with_})" if with_ else "")
    return to_query(parse_statement(text), text)


def examples(n_per_anchor: dict[D, int], val: int = 2) -> pa.Table:
    """Training rows numbered 0.. at each anchor (in anchor order), then ``val`` validation rows."""
    anchors, splits, nodes = [], [], []
    for t, n in sorted(n_per_anchor.items()):
        anchors += [t] * n
        splits += ["train"] * n
        nodes += list(range(n))
    anchors += [D(2030, 1, 1)] * val
    splits += ["val"] * val
    nodes += list(range(val))
    return pa.table({"__node": nodes, "anchor_time": pa.array(anchors, pa.timestamp("us")), "split": splits,
                     "label": [0.0] * len(nodes)})


# ---- max_train_rows ------------------------------------------------------------------------
def test_cap_keeps_the_most_recent_anchors_whole_then_a_seeded_sample_of_the_next():
    t1, t2, t3 = D(2024, 1, 1), D(2024, 2, 1), D(2024, 3, 1)
    ex = examples({t1: 50, t2: 4, t3: 3})
    out = cap_training_rows(ex, 17, seed=0)
    train = out.filter(pc.equal(out.column("split"), "train"))
    assert train.num_rows == 17
    by_anchor = {t: n for t, n in zip(*np.unique(train.column("anchor_time").to_numpy(), return_counts=True))}
    assert {t.astype("datetime64[us]").item(): int(n) for t, n in by_anchor.items()} == {t1: 10, t2: 4, t3: 3}
    assert out.filter(pc.equal(out.column("split"), "val")).num_rows == 2  # validation stays whole
    assert out.column("anchor_time").to_pylist() == sorted(out.column("anchor_time").to_pylist())  # order kept
    # the sample is seeded: the same seed gives the same rows, another seed other rows
    sample = lambda seed: cap_training_rows(ex, 17, seed).column("__node").to_pylist()[:10]  # noqa: E731
    assert sample(0) == sample(0) and sample(0) != sample(1)
    assert len(set(sample(0))) == 10


def test_cap_of_zero_or_above_the_rows_keeps_everything():
    ex = examples({D(2024, 1, 1): 5, D(2024, 2, 1): 5})
    assert cap_training_rows(ex, 0).equals(ex)
    assert cap_training_rows(ex, 10).equals(ex)
    five = cap_training_rows(ex, 5)
    assert five.filter(pc.equal(five.column("split"), "train")).column("anchor_time").to_pylist() == [
        D(2024, 2, 1)] * 5


@pytest.mark.parametrize("cap", [400, 777])
def test_max_train_rows_holds_exactly_on_a_real_statement(shop_small, cap):
    assert prepare(shop_small, query(SHOP_CHURN, "max_train_rows = 0")).split("train").num_rows > 1_000
    prep = prepare(shop_small, query(SHOP_CHURN, f"max_train_rows = {cap}"))
    train = prep.split("train")
    assert train.num_rows == cap
    plan = prep.plan
    counted = dict(zip(plan.train_anchors, plan.anchor_rows))
    kept = dict(zip(*np.unique(train.column("anchor_time").to_numpy(), return_counts=True)))
    kept = {t.astype("datetime64[us]").item(): int(n) for t, n in kept.items()}
    oldest = min(kept)
    assert all(kept[t] == counted[t] for t in kept if t != oldest)  # newer anchors whole
    assert 0 < kept[oldest] <= counted[oldest]
    assert set(kept) == set(plan.train_anchors)  # the planner walked back no further than needed
    # validation and test are never capped
    assert prep.split("val").num_rows == sum(plan.anchor_rows[len(plan.train_anchors):][:len(plan.val_anchors)])


def test_capped_training_rows_ignore_planted_rows_after_the_validation_start(shop_small):
    q = query(SHOP_CHURN, "max_train_rows = 1500, val_start = '2023-08-01', test_start = '2023-09-15'")
    before = prepare(shop_small, q)
    shop_small.execute("""INSERT INTO orders SELECT (SELECT max(order_id) FROM orders) + row_number() OVER (),
                          customer_id, 1, TIMESTAMP '2023-08-01 00:00:00.000001', 1.0 FROM customers
                          WHERE customer_id % 2 = 0""")  # not every customer: validation keeps both classes
    after = prepare(shop_small, q)
    assert after.split("train").equals(before.split("train"))
    assert not after.split("val").equals(before.split("val"))  # within reach of validation: it changed


# ---- empty splits ------------------------------------------------------------------------------
def test_empty_test_split_is_a_notice_not_an_error(tiny):
    prep = prepare(tiny, query(TINY_COUNT, "test_start = '2024-02-01'"))
    assert prep.split("test").num_rows == 0
    assert prep.split("train").num_rows > 0 and prep.split("val").num_rows > 0
    assert prep.notices[:1] == ["no test examples: test_start 2024-02-01 00:00:00 leaves no room for a 10 days label "
                            "window before 2024-01-25 00:00:00, the last time of the table the label counts; "
                            "test metrics skipped"]


def test_empty_validation_or_training_is_an_error_that_says_why(tiny):
    with pytest.raises(PlanError, match="no validation examples: no anchor from val_start 2024-01-10"):
        prepare(tiny, query(TINY_COUNT, "val_start = '2024-01-10', test_start = '2024-01-15'"))
    with pytest.raises(PlanError, match="no training examples: not enough history"):
        prepare(tiny, query("PREDICT COUNT(orders.*, 0, 60, DAYS) FOR EACH customers.customer_id"))


def test_a_filter_no_entity_passes_is_an_error_before_any_label_query(tiny):
    text = TINY_COUNT + " WHERE COUNT(orders.*, -5, 0, DAYS) > 3"
    with pytest.raises(PlanError, match="no training examples: no anchor from 2023-10-01 00:00:00 to 2024-01-25 "
                                        "00:00:00 has an entity that exists in `customers` and passes the WHERE"):
        prepare(tiny, query(text))


def test_predict_with_an_empty_test_split_trains_and_tells(tiny, tmp_path):
    path = tmp_path / "tiny.duckdb"
    tiny.execute(f"ATTACH '{path}' AS f")
    tiny.execute("COPY FROM DATABASE memory TO f")
    tiny.execute("DETACH f")
    con = rdl_sql.connect(str(path), progress=False)
    try:
        cur = con.execute(TINY_COUNT + " WITH (test_start = '2024-02-01', epochs = 1, channels = 8)")
        rows = cur.fetchall()
        assert len(rows) == 4
        assert any(n.startswith("no test examples: test_start 2024-02-01") for n in cur.notices)
        assert "test_MAE" not in (cur.metrics or {})
    finally:
        con.close()


def test_thin_validation_is_a_notice(tiny, shop_small):
    prep = prepare(tiny, query(TINY_COUNT))
    assert [n for n in prep.notices if n.startswith("validation")] == [
        "validation holds only 3 examples (1 anchor from 2024-01-05 00:00:00): the metric that early stopping and "
        "model choice use is noisy; more history, an earlier val_start or a looser WHERE gives more"]
    shop = prepare(shop_small, query(SHOP_CHURN, "val_start = '2023-06-01'"))
    assert shop.split("val").num_rows >= 250
    assert not [n for n in shop.notices if n.startswith("validation")]


# ---- FOR ... IN ---------------------------------------------------------------------------------
def test_for_in_notice_counts_pairs_dropped_and_outside_the_population(tiny):
    text = ("PREDICT COUNT(orders.*, 0, 10, DAYS) FOR customers.customer_id IN "
            "(SELECT * FROM (VALUES (1, TIMESTAMP '2024-01-10'), (4, TIMESTAMP '2024-01-10'), "
            "(3, TIMESTAMP '2024-01-10'), (42, TIMESTAMP '2024-01-10')) t(k, at)) "
            "WHERE COUNT(orders.*, -30, 0, DAYS) > 0")
    prep = prepare(tiny, query(text))
    # 3 signs up on 01-15 and 42 does not exist: dropped; 4 never ordered: outside WHERE, scored anyway
    assert [n for n in prep.notices if n.startswith("FOR")] == [
        "FOR ... IN listed 4 pairs, 2 scored: 2 dropped because their key is NULL or no `customers` row has it at "
        "the pair's anchor time (not yet, or never); 1 fall outside the WHERE population the model learnt from "
        "(scored all the same)"]
    assert arrow(tiny, prep.plan.predict_sql()).column("customer_id").to_pylist() == [1, 4]


def test_for_in_pairs_without_a_time_or_with_a_key_of_another_type_are_dropped_and_counted(tiny):
    """A NULL (or unreadable) time has no anchor to score at; 'abc' is no INTEGER key: neither fails the
    statement with DuckDB's cast error on rdl-sql's own SQL, and the notice names each reason."""
    text = ("PREDICT COUNT(orders.*, 0, 10, DAYS) FOR customers.customer_id IN "
            "(SELECT * FROM (VALUES ('1', '2024-01-10'), ('2', NULL), ('abc', '2024-01-10'), ('4', 'soon'), "
            "(NULL, '2024-01-10')) t(k, at))")
    prep = prepare(tiny, query(text))
    assert [n for n in prep.notices if n.startswith("FOR")] == [
        "FOR ... IN listed 5 pairs, 1 scored: 2 dropped because their anchor time is NULL or not a time (list the "
        f"key alone to score it as of {prep.plan.predict_anchor}); 2 dropped because their key is NULL or no "
        "`customers` row has it at the pair's anchor time (not yet, or never)"]
    rows = arrow(tiny, prep.plan.predict_sql()).to_pylist()
    assert [(r["customer_id"], str(r["anchor_time"])) for r in rows] == [(1, "2024-01-10 00:00:00")]


def test_a_for_in_time_that_is_a_number_is_refused_before_any_sql_runs(tiny):
    with pytest.raises(PlanError, match=r"the FOR ... IN query's anchor time \(column 2\) is INTEGER; it must be a "
                                        r"TIMESTAMP, TIMESTAMPTZ or DATE"):
        prepare(tiny, query("PREDICT COUNT(orders.*, 0, 10, DAYS) FOR customers.customer_id IN (SELECT 1, 12345)"))


def test_a_timestamptz_pair_time_is_its_utc_wall_clock_in_any_session_zone(tiny):
    text = ("PREDICT COUNT(orders.*, 0, 10, DAYS) FOR customers.customer_id IN "
            "(SELECT 1, TIMESTAMPTZ '2024-01-10 23:30:00+00')")
    for zone in ("UTC", "America/New_York", "Asia/Tokyo"):
        tiny.execute(f"SET TimeZone = '{zone}'")
        prep = prepare(tiny, query(text))
        anchors = arrow(tiny, prep.plan.predict_sql()).column("anchor_time").to_pylist()
        assert anchors == [dt.datetime(2024, 1, 10, 23, 30)], zone
    tiny.execute("SET TimeZone = 'UTC'")


# ---- EXPLAIN ------------------------------------------------------------------------------------
def test_explain_shows_each_splits_anchors_and_example_counts(tiny):
    rows = explain(tiny, query(TINY_COUNT)).table.to_pylist()
    anchors = {r["item"]: r["detail"] for r in rows if r["section"] == "anchors"}
    assert anchors["train"].startswith("9 anchors, first 2023-10-07 00:00:00, last 2023-12-26 00:00:00, every 10 days")
    assert anchors["train"].endswith("17 examples, 1 to 3 per anchor")
    assert anchors["validation"].startswith("1 anchor, first 2024-01-05 00:00:00, last 2024-01-05 00:00:00")
    assert anchors["validation"].endswith("3 examples, 3 to 3 per anchor")
    assert anchors["test"].endswith("4 examples, 4 to 4 per anchor")
    assert anchors["prediction"] == "2024-01-25 00:00:00"
    empty = explain(tiny, query(TINY_COUNT, "test_start = '2024-02-01'")).table.to_pylist()
    test = next(r["detail"] for r in empty if r["section"] == "anchors" and r["item"] == "test")
    assert test.startswith("none: test_start 2024-02-01 00:00:00 leaves no room")
    capped = explain(tiny, query(TINY_COUNT, "max_train_rows = 5")).table.to_pylist()
    train = next(r["detail"] for r in capped if r["section"] == "anchors" and r["item"] == "train")
    assert train.startswith("2 anchors") and "max_train_rows keeps the most recent 5" in train  # 3 + 3 >= 5


@pytest.mark.parametrize("bad", ["'NaN'::DOUBLE", "'inf'::DOUBLE"])
def test_a_nan_or_infinite_label_is_left_out_with_a_notice(tiny, bad):
    """One NaN amount makes an AVG label NaN: GBDT stopped with an internal error, the GNN with 'use a smaller
    learning rate'. The example is left out and the notice names the column."""
    text = "PREDICT AVG(orders.amount, 0, 10, DAYS) FOR EACH customers.customer_id"
    before = prepare(tiny, query(text)).examples.num_rows
    order = tiny.execute("SELECT order_id FROM orders ORDER BY ordered_at DESC LIMIT 1").fetchone()[0]
    tiny.execute(f"UPDATE orders SET amount = {bad} WHERE order_id = {order}")
    prep = prepare(tiny, query(text))
    assert prep.examples.num_rows < before
    assert pc.all(pc.is_finite(prep.examples.column("label"))).as_py()
    (note,) = [n for n in prep.notices if "NaN or infinite" in n]
    n = before - prep.examples.num_rows
    assert note.startswith(f"{n:,} example{'s' if n != 1 else ''} left out: the label is NaN or infinite")
    assert "`orders.amount`" in note


# ---- a binary split of one class ----------------------------------------------------------------
#: dated items whose price climbs with time: every item of the newest fifth costs more than 150
RISING = """CREATE TABLE items(item_id INTEGER PRIMARY KEY, made DATE, price DOUBLE);
INSERT INTO items SELECT i, DATE '2020-01-01' + i::INTEGER, CASE WHEN i % 10 = 0 THEN NULL ELSE i END
FROM range(200) t(i)"""


@pytest.fixture
def rising():
    con = rdl_sql.connect(progress=False)
    con.execute(RISING)
    yield con
    con.close()


@pytest.mark.parametrize("model", ["gnn", "gbdt", "auto"])
def test_a_validation_split_of_one_class_is_refused_before_training_by_every_model(rising, model):
    """AUROC of one class is NaN: the GNN called that divergence ('use a smaller learning rate'), GBDT and auto
    went ahead with val_AUROC nan and predicted every row True."""
    with pytest.raises(rdl_sql.ProgrammingError) as err:
        rising.execute(f"PREDICT items.price > 150 FOR EACH items.item_id WITH (epochs = 1, model = '{model}')")
    msg = str(err.value)
    assert ("every one of the 18 validation examples (rows of `items` dated after 2020-06-08 00:00:00 up to "
            "2020-06-28 00:00:00) is True: AUROC needs both classes, so validation cannot choose an epoch or a "
            "model; use an earlier val_start") in msg
    assert "diverged" not in msg and "learning rate" not in msg


def test_one_class_validation_of_a_static_column_offers_more_labelled_rows():
    con = rdl_sql.connect(progress=False)
    try:  # hash(id, seed) % 10 = 8 is validation's bucket (planner/labels.py): all True there, both classes elsewhere
        con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x DOUBLE, y BOOLEAN); INSERT INTO t "
                    "SELECT i, i, CASE WHEN hash(i, 0) % 10 = 8 THEN true ELSE i % 2 = 0 END FROM range(400) t(i)")
        with pytest.raises(PlanError) as err:
            prepare(con.duckdb_connection, query("PREDICT t.y FOR EACH t.id WHERE t.x >= 0"))
        assert str(err.value).endswith(
            "is True: AUROC needs both classes, so validation cannot choose an epoch or a model; fill in more "
            "values of `t.y` (`t` has no time column, so its rows are split by a hash of their key: only more "
            "labelled rows give validation both classes) or relax the WHERE filter")
        assert "the rows of `t` whose key hashes to validation" in str(err.value)
    finally:
        con.close()


def test_one_class_validation_of_a_windowed_target_offers_more_history(shop_small):
    shop_small.execute("""INSERT INTO orders SELECT (SELECT max(order_id) FROM orders) + row_number() OVER (),
                          customer_id, 1, TIMESTAMP '2023-08-01 00:00:00.000001', 1.0 FROM customers""")
    with pytest.raises(PlanError) as err:
        prepare(shop_small, query(SHOP_CHURN, "val_start = '2023-08-01', test_start = '2023-09-15'"))
    assert str(err.value).endswith("is False: AUROC needs both classes, so validation cannot choose an epoch or a "
                                   "model; use an earlier val_start or relax the WHERE filter")
    assert "validation examples (at the anchor 2023-08-01 00:00:00)" in str(err.value)
    # without val_start, validation takes the latest anchors up to a tenth of the history's: more history helps
    from rdl_sql.engine.prepare import _one_class_fixes
    plan = prepare(shop_small, query(SHOP_CHURN.replace(" WHERE COUNT(orders.*, -90, 0, DAYS) > 0", ""))).plan
    assert _one_class_fixes(plan) == "use an earlier val_start or load more history"


def test_a_test_split_of_one_class_skips_the_test_metric_with_a_notice(rising):
    rising.execute("UPDATE items SET price = 1000 WHERE item_id >= 180 AND price IS NOT NULL")
    rising.execute("UPDATE items SET price = (item_id * 37) % 100 WHERE item_id < 180 AND price IS NOT NULL")
    prep = prepare(rising.duckdb_connection, query("PREDICT items.price > 50 FOR EACH items.item_id"))
    assert ("test metrics skipped: every test example is True; AUROC needs both classes (18 examples, rows of "
            "`items` dated after 2020-06-28 00:00:00)") in prep.notices
    for model in ("gbdt", "gnn"):
        cur = rising.execute(f"PREDICT items.price > 50 FOR EACH items.item_id WITH (model = '{model}', epochs = 1)")
        assert len(cur.fetchall()) == 20
        assert "test_AUROC" not in cur.metrics and cur.metrics["test_rows"] == 18, model
        assert any(n.startswith("test metrics skipped: every test example is True") for n in cur.notices)


# ---- a column target of a static table: split by a hash of its key --------------------------------
@pytest.fixture
def static():
    con = rdl_sql.connect(progress=False)
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, x DOUBLE, y VARCHAR); "
                "INSERT INTO t SELECT i, i, NULL FROM range(100) t(i)")
    yield con
    con.close()


def test_a_static_column_with_no_value_says_so_and_offers_filling_it_in(static):
    """Was: 'no row of `t` with a value of `y` dated in its hash bucket; move val_start / test_start'."""
    with pytest.raises(rdl_sql.ProgrammingError) as err:
        static.execute("PREDICT t.y FOR EACH t.id WITH (model = 'gbdt')")
    assert str(err.value).endswith("no training examples: `t.y` has no non-NULL value, and a column target learns "
                                   "from the rows where it has one; fill in values of `t.y`")


def test_a_static_column_with_too_few_values_says_how_rows_are_split(static):
    static.execute("UPDATE t SET y = 'a' WHERE id < 3")
    with pytest.raises(rdl_sql.ProgrammingError) as err:
        static.execute("PREDICT t.y FOR EACH t.id WITH (model = 'gbdt')")
    msg = str(err.value)
    assert ("no validation examples: `t.y` has only 3 non-NULL values, too few for training and validation "
            "splits: `t` has no time column, so its rows are split by a hash of their key (about 80 % training, "
            "10 % validation, 10 % test), and none fell in validation; fill in more values of `t.y`") in msg
    assert "val_start" not in msg and "dated" not in msg


@pytest.mark.parametrize("dates", ["val_start = '2020-01-01'", "val_start = '2020-01-01', test_start = '2021-01-01'",
                                   "test_start = '2021-01-01'"])
def test_val_or_test_start_for_a_static_column_is_refused_not_ignored(static, dates):
    static.execute("UPDATE t SET y = CASE WHEN id % 2 = 0 THEN 'a' ELSE 'b' END WHERE id < 90")
    given = " and ".join(k for k in ("val_start", "test_start") if k in dates)
    with pytest.raises(rdl_sql.ProgrammingError) as err:
        static.execute(f"PREDICT t.y FOR EACH t.id WITH (model = 'gbdt', {dates})")
    assert (f"{given} cannot apply: `t` has no time column, so the rows of `t.y` are split by a hash of their key "
            f"(about 80 % training, 10 % validation, 10 % test), not by date; drop {given}") in str(err.value)
    assert err.value.line == 1


def test_one_training_class_of_a_static_column_names_the_class_and_no_time_range(static):
    """It said 'check the target's comparison or the time range' of a table without time."""
    static.execute("UPDATE t SET x = NULL WHERE id >= 8")
    with pytest.raises(rdl_sql.ProgrammingError) as err:
        static.execute("PREDICT t.x > 100 FOR EACH t.id WITH (model = 'gbdt')")
    msg = str(err.value)
    assert "training labels is False, so there is nothing to learn; check the target's comparison, or fill in " \
           "more values of `t.x` (`t` has no time column, so its rows are split by a hash of their key)" in msg
    assert "time range" not in msg
