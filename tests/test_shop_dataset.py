from datetime import datetime

import duckdb
import pytest

from rdl_sql.datasets.shop import BAD_BRANDS, BRANDS, build_shop, product_quality

TABLES = ("customers", "products", "orders", "reviews")


@pytest.fixture(scope="module")
def shop():
    con = duckdb.connect()
    try:
        counts = build_shop(con)
        yield con, counts
    finally:
        con.close()


def _digest(con):
    return {
        t: con.execute(f"SELECT count(*), sum(hash(COLUMNS(*))) FROM {t}").fetchone()
        for t in TABLES
    }


def test_row_counts_positive_and_match_tables(shop):
    con, counts = shop
    assert set(counts) == set(TABLES)
    for t in TABLES:
        assert counts[t] > 0
        assert con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] == counts[t]
    assert counts["customers"] == 2000 and counts["products"] == 200
    assert counts["orders"] > 10 * counts["customers"]
    assert counts["reviews"] < counts["orders"]


def test_deterministic_for_seed():
    cons = [duckdb.connect() for _ in range(3)]
    try:
        a = build_shop(cons[0], customers=300, products=40, days=200, seed=7)
        b = build_shop(cons[1], customers=300, products=40, days=200, seed=7)
        c = build_shop(cons[2], customers=300, products=40, days=200, seed=8)
        assert a == b
        assert _digest(cons[0]) == _digest(cons[1])
        assert _digest(cons[0]) != _digest(cons[2])
        assert a != c
    finally:
        for con in cons:
            con.close()


def test_schema_columns_and_types(shop):
    con, _ = shop
    cols = {
        (t, c): ty
        for t, c, ty in con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns()"
        ).fetchall()
    }
    expected = {
        ("customers", "customer_id"): "BIGINT", ("customers", "signup_at"): "TIMESTAMP",
        ("customers", "country"): "VARCHAR", ("customers", "age"): "INTEGER",
        ("products", "product_id"): "BIGINT", ("products", "category"): "VARCHAR",
        ("products", "price"): "DOUBLE", ("products", "brand"): "VARCHAR",
        ("orders", "order_id"): "BIGINT", ("orders", "customer_id"): "BIGINT",
        ("orders", "product_id"): "BIGINT", ("orders", "ordered_at"): "TIMESTAMP",
        ("orders", "amount"): "DOUBLE",
        ("reviews", "review_id"): "BIGINT", ("reviews", "customer_id"): "BIGINT",
        ("reviews", "product_id"): "BIGINT", ("reviews", "rating"): "INTEGER",
        ("reviews", "reviewed_at"): "TIMESTAMP",
    }
    for key, ty in expected.items():
        assert cols.get(key) == ty, key
    assert {k[0] for k in cols if k[0] in TABLES and cols[k] == "TIMESTAMP"} == {
        "customers", "orders", "reviews"
    }
    n_ts = con.execute(
        "SELECT table_name, count(*) FROM duckdb_columns() "
        "WHERE data_type = 'TIMESTAMP' GROUP BY 1"
    ).fetchall()
    assert sorted(n_ts) == [("customers", 1), ("orders", 1), ("reviews", 1)]
    n_country, n_cat = con.execute(
        "SELECT (SELECT count(DISTINCT country) FROM customers),"
        " (SELECT count(DISTINCT category) FROM products)"
    ).fetchone()
    assert n_country == 6 and n_cat == 8
    assert con.execute("SELECT min(rating), max(rating) FROM reviews").fetchone() == (1, 5)


def test_keys_declared(shop):
    con, _ = shop
    pks = {
        (t, tuple(cols))
        for t, cols in con.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type = 'PRIMARY KEY'"
        ).fetchall()
    }
    assert pks >= {
        ("customers", ("customer_id",)), ("products", ("product_id",)),
        ("orders", ("order_id",)), ("reviews", ("review_id",)),
    }
    fks = {
        (t, tuple(cols), rt, tuple(rcols))
        for t, cols, rt, rcols in con.execute(
            "SELECT table_name, constraint_column_names, referenced_table, "
            "referenced_column_names FROM duckdb_constraints() "
            "WHERE constraint_type = 'FOREIGN KEY'"
        ).fetchall()
    }
    assert fks == {
        ("orders", ("customer_id",), "customers", ("customer_id",)),
        ("orders", ("product_id",), "products", ("product_id",)),
        ("reviews", ("customer_id",), "customers", ("customer_id",)),
        ("reviews", ("product_id",), "products", ("product_id",)),
    }
    with pytest.raises(duckdb.ConstraintException):
        con.execute(
            "INSERT INTO orders VALUES (-1, 999999999, 1, TIMESTAMP '2024-01-01', 1.0)"
        )


def test_no_order_before_signup(shop):
    con, _ = shop
    n = con.execute(
        "SELECT count(*) FROM orders o JOIN customers c USING (customer_id) "
        "WHERE o.ordered_at <= c.signup_at"
    ).fetchone()[0]
    assert n == 0
    lo, hi, span = con.execute(
        "SELECT min(signup_at), max(signup_at), "
        "date_diff('day', TIMESTAMP '2023-01-01', max(signup_at)) FROM customers"
    ).fetchone()
    assert lo >= datetime(2023, 1, 1)
    assert span < 0.6 * 730 + 1   # signups over the first ~60 % of the period
    t_max = con.execute(
        "SELECT greatest((SELECT max(ordered_at) FROM orders), "
        "(SELECT max(reviewed_at) FROM reviews))"
    ).fetchone()[0]
    assert t_max < datetime(2025, 1, 1)   # 730 days


def test_reviews_follow_an_order(shop):
    con, _ = shop
    orphan = con.execute(
        """
        SELECT count(*) FROM reviews r
        WHERE NOT EXISTS (
            SELECT 1 FROM orders o
            WHERE o.customer_id = r.customer_id AND o.product_id = r.product_id
              AND o.ordered_at < r.reviewed_at
              AND r.reviewed_at <= o.ordered_at + INTERVAL 5 DAY)
        """
    ).fetchone()[0]
    assert orphan == 0


def test_brand_and_ratings_carry_quality(shop):
    con, _ = shop
    assert set(BAD_BRANDS) < set(BRANDS)
    bad = ", ".join(f"'{b}'" for b in BAD_BRANDS)
    rows = dict(
        con.execute(
            f"SELECT brand IN ({bad}), avg(rating) FROM reviews "
            "JOIN products USING (product_id) GROUP BY 1"
        ).fetchall()
    )
    assert rows[True] < 2.8 and rows[False] > 3.6
    # the entity row alone carries no signal: country does not move activity
    per_country = [
        r[0] for r in con.execute(
            "SELECT count(o.order_id) / count(DISTINCT c.customer_id) "
            "FROM customers c LEFT JOIN orders o USING (customer_id) GROUP BY c.country"
        ).fetchall()
    ]
    assert max(per_country) / min(per_country) < 1.3


def test_planted_two_hop_churn_signal(shop):
    con, _ = shop
    bad = ", ".join(f"'{b}'" for b in BAD_BRANDS)
    rows = con.execute(
        f"""
        WITH a AS (SELECT TIMESTAMP '2023-01-01' + INTERVAL 600 DAY AS t),
        recent AS (
            SELECT o.customer_id, arg_max(p.brand, o.ordered_at) AS last_brand
            FROM orders o JOIN products p USING (product_id), a
            WHERE o.ordered_at > a.t - INTERVAL 90 DAY AND o.ordered_at <= a.t
            GROUP BY o.customer_id),
        future AS (
            SELECT DISTINCT o.customer_id FROM orders o, a
            WHERE o.ordered_at > a.t AND o.ordered_at <= a.t + INTERVAL 30 DAY)
        SELECT last_brand IN ({bad}) AS bad_last, count(*) AS n,
               avg(CASE WHEN f.customer_id IS NULL THEN 1.0 ELSE 0.0 END) AS churn
        FROM recent r LEFT JOIN future f USING (customer_id)
        GROUP BY 1
        """
    ).fetchall()
    stats = {bad_last: (n, churn) for bad_last, n, churn in rows}
    n_bad, churn_bad = stats[True]
    n_good, churn_good = stats[False]
    assert n_bad >= 200 and n_good >= 200
    assert churn_bad - churn_good >= 0.2, stats


def test_product_quality_is_the_hidden_quality_the_ratings_show(shop):
    con, _ = shop
    quality = product_quality()  # the shop fixture's arguments: 200 products, seed 0
    con.register("quality", quality)
    try:
        by_brand = dict(con.execute(
            "SELECT p.brand IN ({}), avg(q.bad::INT) FROM products p JOIN quality q USING (product_id) GROUP BY 1"
            .format(", ".join(f"'{b}'" for b in BAD_BRANDS))).fetchall())
        ratings = dict(con.execute(
            "SELECT q.bad, avg(r.rating) FROM reviews r JOIN quality q USING (product_id) GROUP BY 1").fetchall())
    finally:
        con.unregister("quality")
    assert len(quality) == 200 and 0.15 < quality["bad"].mean() < 0.5
    assert by_brand[True] > 0.75 and by_brand[False] < 0.15
    # the draws of build_shop itself: bad products are rated low, good ones high, with no overlap in the means
    assert ratings[True] < 2.5 and ratings[False] > 3.8
    other = product_quality(seed=1)
    assert not other["bad"].equals(quality["bad"])
