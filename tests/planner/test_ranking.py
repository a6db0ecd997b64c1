"""LIST_DISTINCT(t.fk, a, b, UNIT) RANK TOP k: parsing, binding errors, labels, baselines, time rules."""
import datetime as dt

import duckdb
import pytest

import rdl_sql
from rdl_sql.bind import to_query
from rdl_sql.dialect import canonical, parse_statement
from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.ranking import compile_ranking
from rdl_sql.planner.schema import read_schema
from rdl_sql.planner.sql import arrow, run
from rdl_sql.udfs.ranking_metrics import hits, ranking_metrics

TARGET = "LIST_DISTINCT(orders.product_id, 0, 7, DAYS) RANK TOP 3"


def _tiny(con):
    """3 customers, 5 products (p5 released only on day 40), weekly orders over 50 days."""
    con.execute("""
        CREATE TABLE customers (customer_id BIGINT PRIMARY KEY, name VARCHAR);
        CREATE TABLE products (product_id BIGINT PRIMARY KEY, brand VARCHAR, released_at TIMESTAMP);
        CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT REFERENCES customers,
                             product_id BIGINT REFERENCES products, ordered_at TIMESTAMP);
        INSERT INTO customers VALUES (1, 'a'), (2, 'b'), (3, 'c');
        INSERT INTO products VALUES (1, 'x', NULL), (2, 'x', NULL), (3, 'y', NULL), (4, 'y', NULL),
                                    (5, 'z', TIMESTAMP '2024-02-10');
    """)
    rows, oid = [], 0
    for day in range(0, 50, 2):
        for c in (1, 2):
            oid += 1
            p = 1 + (day // 2 + c) % 4  # customers cycle through products 1..4
            rows.append(f"({oid}, {c}, {p}, TIMESTAMP '2024-01-01' + INTERVAL {day} DAY)")
    con.execute("INSERT INTO orders VALUES " + ", ".join(rows))
    return con


def _plan(con, sql):
    q = to_query(parse_statement(sql), sql)
    return compile_ranking(con, read_schema(con, as_of=q.as_of), q)


@pytest.fixture
def tiny():
    con = duckdb.connect()
    yield _tiny(con)
    con.close()


# ---- parse and bind -------------------------------------------------------------------------------
@pytest.mark.parametrize("sql", [
    f"PREDICT {TARGET} FOR EACH customers.customer_id WHERE COUNT(orders.*, -30, 0, DAYS) > 0",
    f"PREDICT {TARGET} FOR EACH customers.customer_id AS OF TIMESTAMP '2024-02-01' WITH (model = 'past')",
    f"SELECT * FROM (PREDICT {TARGET} FOR EACH customers.customer_id) AS p",
    f"WITH p AS (PREDICT {TARGET} FOR EACH customers.customer_id) SELECT * FROM p",
    "PREDICT LIST_DISTINCT(flights.dest VIA tailnum, 0, 7, DAYS) RANK TOP 5 FOR EACH planes.tailnum",
])
def test_canonical_form_round_trips(sql):
    c = canonical(parse_statement(sql))
    assert "RANK TOP" in c
    assert canonical(parse_statement(c)) == c


@pytest.mark.parametrize("sql, message", [
    (f"PREDICT {TARGET.replace('TOP 3', 'TOP 0')} FOR EACH customers.customer_id", "from 1 to 1,000, not 0"),
    (f"PREDICT {TARGET.replace('TOP 3', 'TOP 1001')} FOR EACH customers.customer_id", "from 1 to 1,000"),
    ("PREDICT LIST_DISTINCT(orders.product_id, 0, 7, DAYS) FOR EACH customers.customer_id", "RANK TOP 10"),
    ("PREDICT COUNT(orders.*, 0, 7, DAYS) RANK TOP 5 FOR EACH customers.customer_id", "ranks the items of"),
    ("PREDICT LIST_DISTINCT(orders.*, 0, 7, DAYS) RANK TOP 5 FOR EACH customers.customer_id", "foreign-key column"),
    (f"PREDICT {TARGET} FOR EACH customers.customer_id WHERE LIST_DISTINCT(orders.product_id, -7, 0, DAYS) "
     f"RANK TOP 2 > 0", "unexpected"),
    ("PREDICT COUNT(orders.*, 0, 7, DAYS) > 0 FOR EACH customers.customer_id "
     "WHERE LIST_DISTINCT(orders.product_id, -7, 0, DAYS) > 0", "target only"),
])
def test_binding_errors(tiny, sql, message):
    con = rdl_sql.connect(":memory:")
    _tiny(con.duckdb_connection)
    with pytest.raises(rdl_sql.Error, match=message):
        con.execute(sql)


@pytest.mark.parametrize("target, message", [
    ("LIST_DISTINCT(orders.ordered_at, 0, 7, DAYS)", "is none: its foreign keys are customer_id, product_id"),
    ("LIST_DISTINCT(orders.customer_id, 0, 7, DAYS)", "is the link to the entity `customers` itself"),
    ("LIST_DISTINCT(orderz.product_id, 0, 7, DAYS)", "did you mean `orders`"),
    ("LIST_DISTINCT(orders.produkt_id, 0, 7, DAYS)", "did you mean `product_id`"),
])
def test_listed_column_must_be_a_foreign_key_to_the_items(tiny, target, message):
    with pytest.raises(PlanError, match=message):
        _plan(tiny, f"PREDICT {target} RANK TOP 3 FOR EACH customers.customer_id")


def test_item_table_is_the_parent_of_the_listed_column(tiny):
    plan = _plan(tiny, f"PREDICT {TARGET} FOR EACH customers.customer_id")
    assert plan.item.name == "products" and plan.k == 3
    assert plan.output_columns == ["customer_id", "anchor_time", "rank", "product_id", "score"]


# ---- labels and time rules -------------------------------------------------------------------------
def test_labels_are_the_distinct_items_of_the_future_window(tiny):
    plan = _plan(tiny, f"PREDICT {TARGET} FOR EACH customers.customer_id")
    ex = arrow(tiny, plan.examples_sql(plan.split_anchors())).to_pylist()
    assert ex and all(r["customer_id"] in (1, 2) for r in ex)  # customer 3 never orders: no example
    items = dict(run(tiny, parse_statement("SELECT product_id, row_number() OVER (ORDER BY product_id) - 1 "
                                           "FROM products")))
    for r in ex[:6]:
        t = r["anchor_time"]
        want = run(tiny, parse_statement(
            f"SELECT DISTINCT product_id FROM orders WHERE customer_id = {r['customer_id']} AND ordered_at > "
            f"TIMESTAMP '{t}' AND ordered_at <= TIMESTAMP '{t}' + INTERVAL 7 DAY"))
        assert sorted(items[p] for (p,) in want) == r["label"]


def test_planted_future_rows_change_no_label_and_no_baseline_before_as_of(tiny):
    """Rows after AS OF would change labels and baselines if read; they must not be."""
    sql = f"PREDICT {TARGET} FOR EACH customers.customer_id AS OF TIMESTAMP '2024-02-05'"
    before = _plan(tiny, sql)
    ex1 = arrow(tiny, before.examples_sql(before.split_anchors())).to_pylist()
    out1 = {m: arrow(tiny, before.output_sql(before.baseline_sql(before.rows_sql(), m))).to_pylist()
            for m in ("popular", "past")}
    # the future: customer 1 buys product 4 fifty times right after AS OF, a brand-new product appears
    tiny.execute("INSERT INTO products VALUES (6, 'w', TIMESTAMP '2024-02-06')")
    tiny.execute("INSERT INTO orders SELECT 1000 + i, 1, CASE WHEN i % 2 = 0 THEN 4 ELSE 6 END, "
                 "TIMESTAMP '2024-02-05 00:00:01' + INTERVAL (i) MINUTE FROM range(50) t(i)")
    after = _plan(tiny, sql)
    assert after.split_anchors() == before.split_anchors()
    assert arrow(tiny, after.examples_sql(after.split_anchors())).to_pylist() == ex1
    for m in ("popular", "past"):
        assert arrow(tiny, after.output_sql(after.baseline_sql(after.rows_sql(), m))).to_pylist() == out1[m]


def test_items_that_appear_only_after_the_anchor_are_never_recommended(tiny):
    """Product 5 is released on day 40 and bought right away: at anchors before that it is no candidate."""
    tiny.execute("INSERT INTO orders SELECT 500 + i, 1 + i % 2, 5, TIMESTAMP '2024-02-10' + INTERVAL (i) HOUR "
                 "FROM range(30) t(i)")
    plan = _plan(tiny, f"PREDICT {TARGET} FOR EACH customers.customer_id")
    five = run(tiny, parse_statement("SELECT n FROM (SELECT product_id, row_number() OVER (ORDER BY product_id) - 1 "
                                     "AS n FROM products) WHERE product_id = 5"))[0][0]
    rows = parse_statement("SELECT * FROM (VALUES (1, TIMESTAMP '2024-02-09'), (2, TIMESTAMP '2024-02-09'), "
                           "(1, TIMESTAMP '2024-02-12')) t(customer_id, anchor_time)")
    for m in ("popular", "past"):
        got = run(tiny, plan.baseline_sql(rows, m))
        early = [r for r in got if r[1] == dt.datetime(2024, 2, 9)]
        late = [r for r in got if r[1] == dt.datetime(2024, 2, 12)]
        assert early and all(r[3] != five for r in early)
        assert any(r[3] == five for r in late)  # once sold, it is the most popular item
    assert five not in [r[0] for r in run(tiny, plan.candidates_sql(dt.datetime(2024, 2, 9)))]


def test_k_larger_than_the_items_and_an_entity_without_history(tiny):
    plan = _plan(tiny, "PREDICT LIST_DISTINCT(orders.product_id, 0, 7, DAYS) RANK TOP 50 "
                       "FOR EACH customers.customer_id")
    for m in ("popular", "past"):
        out = arrow(tiny, plan.output_sql(plan.baseline_sql(plan.rows_sql(), m))).to_pylist()
        by = {}
        for r in out:
            by.setdefault(r["customer_id"], []).append(r)
        # 4 products were sold by the prediction anchor (5 never was): 4 rows each, ranks 1..4, no repeats
        assert set(by) == {1, 2, 3}
        for rows in by.values():
            assert [r["rank"] for r in rows] == [1, 2, 3, 4]
            assert len({r["product_id"] for r in rows}) == 4 and 5 not in {r["product_id"] for r in rows}
    past = arrow(tiny, plan.output_sql(plan.baseline_sql(plan.rows_sql(), "past"))).to_pylist()
    popular = arrow(tiny, plan.output_sql(plan.baseline_sql(plan.rows_sql(), "popular"))).to_pylist()
    # customer 3 has no history: the past-items list is the popular one
    assert [r["product_id"] for r in past if r["customer_id"] == 3] == \
        [r["product_id"] for r in popular if r["customer_id"] == 3]


def test_item_table_empty_after_the_cut_off_gives_no_rows(tiny):
    """AS OF before any order: no item was ever sold, so nothing is recommended (and nothing trains)."""
    plan = _plan(tiny, f"PREDICT {TARGET} FOR EACH customers.customer_id")
    rows = parse_statement("SELECT * FROM (VALUES (1, TIMESTAMP '2023-06-01')) t(customer_id, anchor_time)")
    for m in ("popular", "past"):
        assert run(tiny, plan.baseline_sql(rows, m)) == []


def test_past_ranks_own_items_by_count_then_recency_then_popular():
    con = duckdb.connect()
    con.execute("""
        CREATE TABLE u (uid INT PRIMARY KEY);
        CREATE TABLE i (iid INT PRIMARY KEY);
        CREATE TABLE e (eid INT PRIMARY KEY, uid INT REFERENCES u, iid INT REFERENCES i, t TIMESTAMP);
        INSERT INTO u VALUES (1), (2);
        INSERT INTO i VALUES (10), (11), (12), (13);
        INSERT INTO e VALUES (1, 1, 10, '2024-01-01'), (2, 1, 11, '2024-01-02'), (3, 1, 11, '2024-01-03'),
                             (4, 1, 12, '2024-01-04'), (5, 2, 13, '2024-01-05'), (6, 2, 13, '2024-01-06'),
                             (7, 2, 13, '2024-01-07'), (8, 2, 10, '2024-01-08'), (9, 1, 10, '2024-01-20');
    """)
    sql = ("PREDICT LIST_DISTINCT(e.iid, 0, 3, DAYS) RANK TOP 4 FOR u.uid IN (SELECT 1, TIMESTAMP '2024-01-09') "
           "WITH (val_start = '2024-01-06', test_start = '2024-01-08', anchor_step = 1)")
    q = to_query(parse_statement(sql), sql)
    plan = compile_ranking(con, read_schema(con), q, training=False)
    out = arrow(con, plan.output_sql(plan.baseline_sql(plan.rows_sql(), "past"))).to_pylist()
    # own: 11 (twice), then 12 (once, newer) and 10 (once, older); then the most popular other item, 13
    assert [r["iid"] for r in out] == [11, 12, 10, 13]
    assert [r["rank"] for r in out] == [1, 2, 3, 4]
    assert out[0]["score"] == 2.0 and out[3]["score"] < 1.0


# ---- metrics --------------------------------------------------------------------------------------
def test_ranking_metrics_by_hand():
    # row 0: truth {1, 2}; list [1, 3, 2] -> AP@3 = (1/1 + 2/3) / 2; row 1: truth {5}; list [4] -> 0
    row = [0, 0, 0, 1]
    item = [1, 3, 2, 4]
    rank = [1, 2, 3, 1]
    hit = hits(row, item, [0, 0, 1], [1, 2, 5])
    assert hit.tolist() == [True, False, True, False]
    m = ranking_metrics(row, rank, hit, [2, 1], 3)
    assert m["MAP@3"] == pytest.approx(((1 + 2 / 3) / 2 + 0) / 2)
    assert m["precision@3"] == pytest.approx((2 / 3 + 0) / 2)
    assert m["recall@3"] == pytest.approx((1.0 + 0) / 2)
    # a row without any list scores 0; k cuts the list
    assert ranking_metrics([0], [2], [True], [1, 1], 1)["MAP@1"] == 0.0
