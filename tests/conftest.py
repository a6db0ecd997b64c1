"""Shared fixtures: small hand-made databases in in-memory DuckDB connections.

Every connection is closed at teardown (DuckDB 2.0 prints nanobind leak
warnings for connections left open at exit).

The ``tiny`` shop (customers, products, orders) is small enough that every
label can be computed by hand; its dates are chosen around the anchor
``A = 2024-01-10 00:00`` (see ``TINY_ORDERS``):

* order 3 lies exactly at ``A`` and order 6 exactly at ``A + 10 days``, so
  window boundaries are pinned;
* customer 3 signs up after ``A`` (exactly at ``B = 2024-01-15``);
* customer 4 has no orders at all;
* products is static (no time column).
"""
from __future__ import annotations

import datetime as dt

import duckdb
import pytest

A = dt.datetime(2024, 1, 10)
B = dt.datetime(2024, 1, 15)

TINY_SCHEMA = """
CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    signup_at   TIMESTAMP,
    country     VARCHAR,
    age         INTEGER
);
CREATE TABLE products (
    product_id INTEGER PRIMARY KEY,
    category   VARCHAR,
    price      DOUBLE
);
CREATE TABLE orders (
    order_id    INTEGER PRIMARY KEY,
    customer_id INTEGER REFERENCES customers (customer_id),
    product_id  INTEGER REFERENCES products (product_id),
    ordered_at  TIMESTAMP,
    amount      DOUBLE
);
"""

TINY_CUSTOMERS = [
    (1, "2023-09-01 00:00:00", "US", 30),
    (2, "2023-12-15 00:00:00", "DE", 40),
    (3, "2024-01-15 00:00:00", "US", 25),  # signs up after A, exactly at B
    (4, "2023-11-01 00:00:00", "FR", None),  # never orders
]
TINY_PRODUCTS = [(1, "books", 10.0), (2, "toys", 20.0), (3, "home", None)]
TINY_ORDERS = [
    # id, customer, product, ordered_at, amount
    (1, 1, 1, "2023-10-01 00:00:00", 1.0),
    (2, 1, 2, "2024-01-05 00:00:00", 10.0),
    (3, 1, 1, "2024-01-10 00:00:00", 20.0),   # exactly at A
    (4, 1, 1, "2024-01-12 00:00:00", 5.0),
    (5, 1, 2, "2024-01-15 00:00:00", 7.0),    # exactly at B
    (6, 1, 1, "2024-01-20 00:00:00", 3.0),    # exactly at A + 10 days
    (7, 1, 3, "2024-01-25 00:00:00", 100.0),  # exactly at B + 10 days; latest order
    (8, 2, 3, "2023-12-20 00:00:00", 50.0),
    (9, 2, 3, "2024-01-11 00:00:00", 8.0),
    (10, 2, 3, "2024-01-11 12:00:00", 8.0),
    (11, 3, 2, "2024-01-17 00:00:00", 30.0),
]


def _values(rows) -> str:
    def one(v):
        if v is None:
            return "NULL"
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        return repr(v)
    return ", ".join("(" + ", ".join(one(v) for v in r) + ")" for r in rows)


def fill_tiny(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(TINY_SCHEMA)
    con.execute(f"INSERT INTO customers VALUES {_values(TINY_CUSTOMERS)}")
    con.execute(f"INSERT INTO products VALUES {_values(TINY_PRODUCTS)}")
    con.execute(f"INSERT INTO orders VALUES {_values(TINY_ORDERS)}")


@pytest.fixture
def con():
    """An empty in-memory database, closed at teardown."""
    c = duckdb.connect()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def tiny(con):
    """The hand-made shop of this module's docstring (fresh per test: tests may insert rows)."""
    fill_tiny(con)
    return con


@pytest.fixture
def weird(con):
    """Identifiers that need quoting everywhere: spaces, keywords, a double quote, mixed case.

    ``group`` is the entity table; ``Order Items`` links to it and is dated by ``when``.
    """
    con.execute('''
        CREATE TABLE "group" (
            "user id" INTEGER PRIMARY KEY,
            "from"    TIMESTAMP,
            "Name"    VARCHAR
        );
        CREATE TABLE "Order Items" (
            "item id" INTEGER PRIMARY KEY,
            "user id" INTEGER REFERENCES "group" ("user id"),
            "select"  DOUBLE,
            "a""b"    VARCHAR,
            "when"    TIMESTAMP
        );
        INSERT INTO "group" VALUES
            (1, '2024-01-01', 'O''Brien'),
            (2, '2024-01-02', 'select'),
            (3, '2024-02-01', 'late');
        INSERT INTO "Order Items" VALUES
            (10, 1, 2.0, 'x', '2024-01-05'),
            (11, 1, 0.5, 'y', '2024-01-12'),
            (12, 1, 4.0, 'x', '2024-01-20'),
            (13, 2, 3.0, NULL, '2024-01-11'),
            (14, NULL, 9.0, 'z', '2024-01-11'),
            (15, 2, 1.0, 'x', '2024-02-20');
    ''')
    return con


@pytest.fixture
def shop_small():
    """A generated shop (300 customers, 40 products, 300 days), fresh per test."""
    from rdl_sql.datasets.shop import build_shop
    c = duckdb.connect()
    try:
        build_shop(c, customers=300, products=40, days=300, seed=0)
        yield c
    finally:
        c.close()


@pytest.fixture
def one_thread_torch():
    """Run torch on one thread for the test (2-thread OpenMP on a loaded 2-core box is ~8x slower)."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


TYPED_CLASSES = """
CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, signup_at TIMESTAMP,
                        tier ENUM('bronze', 'silver', 'gold'), country VARCHAR);
CREATE TABLE products (product_id INTEGER PRIMARY KEY, price DOUBLE);
CREATE TABLE promos (promo_day DATE PRIMARY KEY);
CREATE TABLE tiers (vip BOOLEAN PRIMARY KEY);
CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (customer_id),
                     product_id INTEGER REFERENCES products (product_id),
                     promo_day DATE REFERENCES promos (promo_day), vip BOOLEAN REFERENCES tiers (vip),
                     ordered_at TIMESTAMP, amount DOUBLE);
INSERT INTO customers SELECT i, TIMESTAMP '2024-01-01' + INTERVAL (i * 37 % 200) DAY,
    CASE WHEN i % 5 = 0 THEN NULL ELSE ['bronze', 'silver', 'gold'][1 + i % 3] END,
    CASE WHEN i % 7 = 0 THEN NULL ELSE ['US', 'DE', 'FR'][1 + i // 2 % 3] END FROM range(1, 121) r(i);
INSERT INTO products SELECT i, i * 1.5 FROM range(1, 6) r(i);
INSERT INTO promos SELECT DATE '2024-01-01' + CAST(7 * i AS INTEGER) FROM range(0, 4) r(i);
INSERT INTO tiers VALUES (true), (false);
INSERT INTO orders
SELECT o.i, c.customer_id, o.p, DATE '2024-01-01' + CAST(7 * (o.p % 4) AS INTEGER), c.customer_id % 3 = 0,
       c.signup_at + INTERVAL (o.i * 613 % 2880) HOUR, o.i * 37 % 100
FROM (SELECT i, 1 + i * 7919 % 120 AS c, CASE WHEN i % 10 < 7 THEN 1 + (1 + i * 7919 % 120) % 5
                                              ELSE 1 + i * 31 % 5 END AS p FROM range(1, 1501) r(i)) o
JOIN customers c ON c.customer_id = o.c;
"""


@pytest.fixture
def typed_classes(con):
    """Multiclass targets of every kind of class column: ``FIRST(orders.product_id ...)`` (an INTEGER key),
    ``orders.promo_day`` (a DATE key), ``orders.vip`` (a BOOLEAN key), ``customers.tier`` (an ENUM category,
    NULL for every fifth customer) and ``customers.country`` (a VARCHAR category, NULL for every seventh)."""
    con.execute(TYPED_CLASSES)
    return con


@pytest.fixture
def typed_classes_rdl():
    """``typed_classes`` behind an ``rdl_sql`` connection, to PREDICT on."""
    import rdl_sql
    with rdl_sql.connect(progress=False) as c:
        c.duckdb_connection.execute(TYPED_CLASSES)
        yield c
