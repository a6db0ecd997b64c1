"""A generated shop whose churn signal sits three links away from the customer.

``build_three_hop(con)`` creates four tables in a DuckDB connection::

    customers(customer_id BIGINT PK, signup_at TIMESTAMP, region VARCHAR, age INTEGER)
    products (product_id BIGINT PK, category VARCHAR, price DOUBLE)
    orders   (order_id BIGINT PK, customer_id FK -> customers, product_id FK -> products,
              ordered_at TIMESTAMP, amount DOUBLE)
    reviews  (review_id BIGINT PK, product_id FK -> products, rating INTEGER, reviewed_at TIMESTAMP)

The planted signal: every product has a hidden quality (about 30 % bad) that
no column of ``products`` shows (category and price are independent of it).
It shows only in ``reviews.rating``, written by shoppers outside the
database (a review names no customer) at a steady rate per product. After
buying a bad product a customer turns inactive with probability
``P_CHURN_AFTER_BAD``; an inactive customer comes back with a small daily
probability. So whether a recently active customer orders in the next 30
days depends on the ratings of the products of their latest orders:
customers <- orders -> products <- reviews, three links from the customer.
``region`` and ``age`` are noise.

The "oracle" features that reach the signal (``ORACLE_SQL``): the mean
rating, as of the anchor, of the product of the customer's latest order, plus
the customer's own order counts and recency.

Vectorised with numpy (one loop over days) and deterministic for a seed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .load import load_tables

__all__ = ["build_three_hop", "ORACLE_SQL", "ORACLE_FEATURES", "OWN_COUNT_FEATURES"]

REGIONS = ("north", "south", "east", "west")
CATEGORIES = ("electronics", "books", "clothing", "home", "toys", "sports")
CATEGORY_PRICE = (180.0, 15.0, 40.0, 60.0, 25.0, 50.0)

P_BAD = 0.3
SIGNUP_FRACTION = 0.6
MIN_DAYS_PER_ORDER = 5.0
MAX_DAYS_PER_ORDER = 25.0
P_CHURN_AFTER_BAD = 0.6
P_REACTIVATE = 1.0 / 60.0
REVIEWS_PER_PRODUCT_PER_DAY = 0.1
RATING_P_GOOD = (0.03, 0.05, 0.12, 0.35, 0.45)
RATING_P_BAD = (0.40, 0.30, 0.15, 0.10, 0.05)

_DAY_US = 86_400 * 1_000_000

_DDL = {
    "customers": """CREATE TABLE customers (customer_id BIGINT PRIMARY KEY, signup_at TIMESTAMP,
                      region VARCHAR, age INTEGER)""",
    "products": "CREATE TABLE products (product_id BIGINT PRIMARY KEY, category VARCHAR, price DOUBLE)",
    "orders": """CREATE TABLE orders (order_id BIGINT PRIMARY KEY,
                   customer_id BIGINT REFERENCES customers (customer_id),
                   product_id BIGINT REFERENCES products (product_id), ordered_at TIMESTAMP, amount DOUBLE)""",
    "reviews": """CREATE TABLE reviews (review_id BIGINT PRIMARY KEY,
                    product_id BIGINT REFERENCES products (product_id), rating INTEGER, reviewed_at TIMESTAMP)""",
}

#: features of each example row ``__ex(customer_id, anchor_time)`` that reach the planted signal:
#: the customer's own order counts and recency, and the mean rating (reviews up to the anchor) of
#: the products of their latest order and latest three orders; nothing dated after the anchor is read
ORACLE_SQL = """
WITH o AS (
  SELECT e.customer_id, e.anchor_time, o.product_id, o.ordered_at,
         row_number() OVER (PARTITION BY e.customer_id, e.anchor_time ORDER BY o.ordered_at DESC) AS k
  FROM __ex e JOIN orders o ON o.customer_id = e.customer_id AND o.ordered_at <= e.anchor_time),
counts AS (
  SELECT customer_id, anchor_time,
         count(*) FILTER (WHERE ordered_at > anchor_time - INTERVAL 30 DAY) AS orders_30d,
         count(*) FILTER (WHERE ordered_at > anchor_time - INTERVAL 90 DAY) AS orders_90d,
         date_diff('hour', max(ordered_at), any_value(anchor_time)) AS hours_since_last
  FROM o GROUP BY customer_id, anchor_time),
r AS (
  SELECT o.customer_id, o.anchor_time, o.k, avg(r.rating) AS rating
  FROM o JOIN reviews r ON r.product_id = o.product_id AND r.reviewed_at <= o.anchor_time
  WHERE o.k <= 3 GROUP BY o.customer_id, o.anchor_time, o.k),
ratings AS (
  SELECT customer_id, anchor_time, max(rating) FILTER (WHERE k = 1) AS last_rating, min(rating) AS min_rating_last3
  FROM r GROUP BY customer_id, anchor_time)
SELECT e.*, c.orders_30d, c.orders_90d, c.hours_since_last, g.last_rating, g.min_rating_last3
FROM __ex e LEFT JOIN counts c USING (customer_id, anchor_time) LEFT JOIN ratings g USING (customer_id, anchor_time)
"""

#: the columns of ``ORACLE_SQL``: all of them reach the signal; the first three are the customer's
#: own order counts and recency alone (a baseline that does not reach it)
ORACLE_FEATURES = ("orders_30d", "orders_90d", "hours_since_last", "last_rating", "min_rating_last3")
OWN_COUNT_FEATURES = ORACLE_FEATURES[:3]


def build_three_hop(con, *, customers: int = 2000, products: int = 200, days: int = 730, seed: int = 0,
                    start: str = "2023-01-01") -> dict[str, int]:
    """Create customers, products, orders and reviews in ``con``; returns the rows per table."""
    n_cust, n_prod, days = int(customers), int(products), int(days)
    if n_cust < 1 or n_prod < 1 or days < 2:
        raise ValueError("need customers >= 1, products >= 1 and days >= 2")
    rng = np.random.default_rng(seed)
    base = np.datetime64(pd.Timestamp(start).to_datetime64(), "us")

    prod_bad = rng.random(n_prod) < P_BAD
    cat_idx = rng.integers(0, len(CATEGORIES), n_prod)
    price = np.maximum(np.round(np.asarray(CATEGORY_PRICE)[cat_idx] * rng.lognormal(0.0, 0.5, n_prod), 2), 0.99)
    popularity = rng.lognormal(0.0, 1.0, n_prod)
    popularity /= popularity.sum()

    signup_day = rng.integers(0, max(1, int(days * SIGNUP_FRACTION)), n_cust)
    signup_us = signup_day * _DAY_US + rng.integers(0, _DAY_US, n_cust)
    region = np.array(REGIONS, dtype=object)[rng.integers(0, len(REGIONS), n_cust)]
    age = rng.integers(18, 80, n_cust).astype(np.int32)
    rate = 1.0 / rng.uniform(MIN_DAYS_PER_ORDER, MAX_DAYS_PER_ORDER, n_cust)

    active = np.ones(n_cust, dtype=bool)
    o_cust, o_prod, o_day = [], [], []
    for d in range(1, days):
        active |= rng.random(n_cust) < P_REACTIVATE
        who = np.flatnonzero(active & (signup_day < d) & (rng.random(n_cust) < rate))
        if who.size == 0:
            continue
        what = rng.choice(n_prod, who.size, p=popularity)
        active[who[prod_bad[what] & (rng.random(who.size) < P_CHURN_AFTER_BAD)]] = False
        o_cust.append(who)
        o_prod.append(what)
        o_day.append(np.full(who.size, d, dtype=np.int64))
    o_cust, o_prod, o_day = (np.concatenate(x) if x else np.zeros(0, np.int64) for x in (o_cust, o_prod, o_day))
    o_us = o_day * _DAY_US + rng.integers(0, _DAY_US, o_cust.size)
    amount = np.round(price[o_prod] * rng.choice(np.array([1, 2, 3]), o_cust.size, p=[0.7, 0.2, 0.1]), 2)
    order_sort = np.argsort(o_us, kind="stable")

    # reviews: a Poisson stream per product over the whole period, ratings by hidden quality
    n_rev = rng.poisson(REVIEWS_PER_PRODUCT_PER_DAY * days, n_prod)
    r_prod = np.repeat(np.arange(n_prod), n_rev)
    r_us = rng.integers(0, days * _DAY_US, r_prod.size)
    u = rng.random(r_prod.size)
    rating = np.where(prod_bad[r_prod], np.searchsorted(np.cumsum(RATING_P_BAD), u, side="right"),
                      np.searchsorted(np.cumsum(RATING_P_GOOD), u, side="right"))
    rating = np.minimum(rating, 4).astype(np.int32) + 1
    r_sort = np.argsort(r_us, kind="stable")

    ts = lambda us: base + us.astype("timedelta64[us]")  # noqa: E731
    frames = {
        "customers": pd.DataFrame({"customer_id": np.arange(1, n_cust + 1, dtype=np.int64),
                                   "signup_at": ts(signup_us), "region": region, "age": age}),
        "products": pd.DataFrame({"product_id": np.arange(1, n_prod + 1, dtype=np.int64),
                                  "category": np.array(CATEGORIES, dtype=object)[cat_idx], "price": price}),
        "orders": pd.DataFrame({"order_id": np.arange(1, o_cust.size + 1, dtype=np.int64),
                                "customer_id": o_cust[order_sort].astype(np.int64) + 1,
                                "product_id": o_prod[order_sort].astype(np.int64) + 1,
                                "ordered_at": ts(o_us[order_sort]), "amount": amount[order_sort]}),
        "reviews": pd.DataFrame({"review_id": np.arange(1, r_prod.size + 1, dtype=np.int64),
                                 "product_id": r_prod[r_sort].astype(np.int64) + 1,
                                 "rating": rating[r_sort], "reviewed_at": ts(r_us[r_sort])}),
    }
    return load_tables(con, _DDL, frames)

