"""A generated e-commerce database with a planted two-hop churn signal.

``build_shop(con)`` creates four tables in a DuckDB connection::

    customers(customer_id BIGINT PK, signup_at TIMESTAMP, country VARCHAR, age INTEGER)
    products (product_id BIGINT PK, category VARCHAR, price DOUBLE, brand VARCHAR)
    orders   (order_id BIGINT PK, customer_id FK -> customers, product_id FK -> products,
              ordered_at TIMESTAMP, amount DOUBLE)
    reviews  (review_id BIGINT PK, customer_id FK -> customers, product_id FK -> products,
              rating INTEGER, reviewed_at TIMESTAMP)

The planted signal: every product has a hidden quality (good or bad, about 30 %
bad) that is not a column. It shows strongly in ``products.brand`` (the brands
in ``BAD_BRANDS`` make mostly bad products, the others mostly good ones) and
moderately in ``reviews.rating``. Customers sign up during the first 60 % of
the period; an active customer orders on each day with a personal rate (one
order per 5 to 25 days). After buying a bad product a customer turns inactive
with probability ``P_CHURN_AFTER_BAD`` and stops ordering; an inactive customer
comes back with a small daily probability. ``customers.country`` and
``customers.age`` are pure noise. So whether a recently active customer places
no order in the next 30 days depends mostly on the quality of the products they
bought last: a signal two hops away (customers -> orders -> products).

The simulation is vectorised with numpy (one loop over days) and deterministic
for a given seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .load import load_tables

__all__ = ["build_shop", "product_quality", "ORACLE_SQL", "ORACLE_FEATURES", "OWN_COUNT_FEATURES",
           "BRANDS", "BAD_BRANDS", "COUNTRIES", "CATEGORIES"]

BRANDS = (
    "Acme", "Borealis", "Cobalt", "Dynamo", "Everly",
    "Fjord", "Granite", "Helix", "Ionic", "Juniper",
)
# Brands whose products are mostly bad (the hidden quality).
BAD_BRANDS = frozenset({"Cobalt", "Fjord", "Ionic"})
P_BAD_IN_BAD_BRAND = 0.9
P_BAD_IN_GOOD_BRAND = 0.05

COUNTRIES = ("US", "DE", "FR", "GB", "JP", "BR")
COUNTRY_P = (0.35, 0.15, 0.12, 0.15, 0.13, 0.10)

CATEGORIES = (
    "electronics", "books", "clothing", "home",
    "toys", "sports", "beauty", "grocery",
)
# Median price per category (log-normal around it).
CATEGORY_PRICE = (180.0, 15.0, 40.0, 60.0, 25.0, 50.0, 20.0, 8.0)

SIGNUP_FRACTION = 0.6          # customers sign up over the first 60 % of the period
MIN_DAYS_PER_ORDER = 5.0       # per-customer rate: one order per 5 ... 25 days
MAX_DAYS_PER_ORDER = 25.0
P_CHURN_AFTER_BAD = 0.6        # P(turn inactive | just bought a bad product)
P_REACTIVATE = 1.0 / 60.0      # daily P(inactive -> active)
P_REVIEW = 0.3                 # P(an order is followed by a review)
MAX_REVIEW_DELAY_DAYS = 5.0

# Rating distributions over 1..5.
RATING_P_GOOD = (0.03, 0.05, 0.12, 0.35, 0.45)
RATING_P_BAD = (0.40, 0.30, 0.15, 0.10, 0.05)

_DAY_US = 86_400 * 1_000_000

_DDL = {
    "customers": """
        CREATE TABLE customers (
            customer_id BIGINT PRIMARY KEY,
            signup_at   TIMESTAMP,
            country     VARCHAR,
            age         INTEGER
        )""",
    "products": """
        CREATE TABLE products (
            product_id BIGINT PRIMARY KEY,
            category   VARCHAR,
            price      DOUBLE,
            brand      VARCHAR
        )""",
    "orders": """
        CREATE TABLE orders (
            order_id    BIGINT PRIMARY KEY,
            customer_id BIGINT REFERENCES customers (customer_id),
            product_id  BIGINT REFERENCES products (product_id),
            ordered_at  TIMESTAMP,
            amount      DOUBLE
        )""",
    "reviews": """
        CREATE TABLE reviews (
            review_id   BIGINT PRIMARY KEY,
            customer_id BIGINT REFERENCES customers (customer_id),
            product_id  BIGINT REFERENCES products (product_id),
            rating      INTEGER,
            reviewed_at TIMESTAMP
        )""",
}


def _timestamps(base: np.datetime64, offset_us: np.ndarray) -> np.ndarray:
    return base + offset_us.astype("timedelta64[us]")


#: hand-made features of each example row ``__ex`` (customer, anchor) that reach the planted signal, for
#: an oracle baseline: the customer's order counts and recency, and the hidden quality (``__quality``, the
#: table ``product_quality`` returns) of the products of their latest orders, all as of the anchor
ORACLE_SQL = """
WITH o AS (
  SELECT e.customer_id, e.anchor_time, o.ordered_at, q.bad,
         row_number() OVER (PARTITION BY e.customer_id, e.anchor_time ORDER BY o.ordered_at DESC) AS k
  FROM __ex e JOIN orders o ON o.customer_id = e.customer_id AND o.ordered_at <= e.anchor_time
  JOIN __quality q ON q.product_id = o.product_id),
f AS (
  SELECT customer_id, anchor_time,
         count(*) FILTER (WHERE ordered_at > anchor_time - INTERVAL 30 DAY) AS orders_30d,
         count(*) FILTER (WHERE ordered_at > anchor_time - INTERVAL 90 DAY) AS orders_90d,
         count(*) FILTER (WHERE ordered_at > anchor_time - INTERVAL 360 DAY) AS orders_360d,
         date_diff('hour', max(ordered_at), any_value(anchor_time)) AS hours_since_last,
         max(bad::INT) FILTER (WHERE k = 1) AS last_bad,
         sum(bad::INT) FILTER (WHERE k <= 3) AS bad_last3,
         date_diff('hour', max(ordered_at) FILTER (WHERE bad), any_value(anchor_time)) AS hours_since_bad
  FROM o GROUP BY customer_id, anchor_time)
SELECT e.*, f.orders_30d, f.orders_90d, f.orders_360d, f.hours_since_last, f.last_bad, f.bad_last3,
       f.hours_since_bad
FROM __ex e LEFT JOIN f USING (customer_id, anchor_time)
"""
#: the columns of ``ORACLE_SQL``; the first four are the customer's own counts and recency alone
ORACLE_FEATURES = ("orders_30d", "orders_90d", "orders_360d", "hours_since_last", "last_bad", "bad_last3",
                   "hours_since_bad")
OWN_COUNT_FEATURES = ORACLE_FEATURES[:4]


def _brand_and_quality(rng: np.random.Generator, n_prod: int) -> tuple[np.ndarray, np.ndarray]:
    """Each product's brand (an index into ``BRANDS``) and hidden quality (True: bad): ``build_shop``'s first draws."""
    brand_idx = rng.integers(0, len(BRANDS), n_prod)
    brand_is_bad = np.array([b in BAD_BRANDS for b in BRANDS])
    p_bad = np.where(brand_is_bad[brand_idx], P_BAD_IN_BAD_BRAND, P_BAD_IN_GOOD_BRAND)
    return brand_idx, rng.random(n_prod) < p_bad


def product_quality(*, products: int = 200, seed: int = 0) -> pd.DataFrame:
    """``(product_id, bad)``: the hidden quality of each product of ``build_shop(products=..., seed=...)``.

    Not a column of the database; for benchmarks that score a model on the
    planted signal itself (an oracle). Drawn exactly as ``build_shop`` draws it.
    """
    _, bad = _brand_and_quality(np.random.default_rng(seed), int(products))
    return pd.DataFrame({"product_id": np.arange(1, int(products) + 1, dtype=np.int64), "bad": bad})


def build_shop(
    con,
    *,
    customers: int = 2000,
    products: int = 200,
    days: int = 730,
    seed: int = 0,
    start: str = "2023-01-01",
) -> dict[str, int]:
    """Create the tables customers, products, orders and reviews in ``con``.

    ``con`` is a ``duckdb.DuckDBPyConnection``; the tables must not exist yet.
    Returns the number of rows per table.
    """
    n_cust, n_prod, days = int(customers), int(products), int(days)
    if n_cust < 1 or n_prod < 1 or days < 2:
        raise ValueError("need customers >= 1, products >= 1 and days >= 2")
    rng = np.random.default_rng(seed)
    base = np.datetime64(pd.Timestamp(start).to_datetime64(), "us")

    # ---- products: brand -> hidden quality; category -> price -------------
    brands = np.array(BRANDS, dtype=object)
    brand_idx, prod_bad = _brand_and_quality(rng, n_prod)
    cat_idx = rng.integers(0, len(CATEGORIES), n_prod)
    price = np.round(
        np.asarray(CATEGORY_PRICE)[cat_idx] * rng.lognormal(0.0, 0.5, n_prod), 2
    )
    price = np.maximum(price, 0.99)
    popularity = rng.lognormal(0.0, 1.0, n_prod)   # independent of quality
    popularity /= popularity.sum()

    # ---- customers: signup time, noise attributes, personal order rate ----
    signup_span = max(1, int(days * SIGNUP_FRACTION))
    signup_day = rng.integers(0, signup_span, n_cust)
    signup_us = signup_day * _DAY_US + rng.integers(0, _DAY_US, n_cust)
    country = np.array(COUNTRIES, dtype=object)[
        rng.choice(len(COUNTRIES), n_cust, p=np.asarray(COUNTRY_P))
    ]
    age = rng.integers(18, 80, n_cust).astype(np.int32)
    rate = 1.0 / rng.uniform(MIN_DAYS_PER_ORDER, MAX_DAYS_PER_ORDER, n_cust)

    # ---- daily simulation ------------------------------------------------
    active = np.ones(n_cust, dtype=bool)
    o_cust, o_prod, o_day = [], [], []
    for d in range(1, days):
        # inactive customers come back with a small daily probability
        active |= rng.random(n_cust) < P_REACTIVATE
        buy = active & (signup_day < d) & (rng.random(n_cust) < rate)
        who = np.flatnonzero(buy)
        if who.size == 0:
            continue
        what = rng.choice(n_prod, who.size, p=popularity)
        churn = prod_bad[what] & (rng.random(who.size) < P_CHURN_AFTER_BAD)
        active[who[churn]] = False
        o_cust.append(who)
        o_prod.append(what)
        o_day.append(np.full(who.size, d, dtype=np.int64))

    if o_cust:
        o_cust = np.concatenate(o_cust)
        o_prod = np.concatenate(o_prod)
        o_day = np.concatenate(o_day)
    else:
        o_cust = o_prod = o_day = np.zeros(0, dtype=np.int64)
    n_ord = o_cust.size
    o_us = o_day * _DAY_US + rng.integers(0, _DAY_US, n_ord)
    qty = rng.choice(np.array([1, 2, 3]), n_ord, p=[0.7, 0.2, 0.1])
    amount = np.round(price[o_prod] * qty, 2)
    order_sort = np.argsort(o_us, kind="stable")   # order ids follow time

    # ---- reviews: some orders are followed by a rating within days -------
    has_review = rng.random(n_ord) < P_REVIEW
    delay_us = rng.integers(3_600 * 1_000_000, int(MAX_REVIEW_DELAY_DAYS * _DAY_US), n_ord)
    r_us = o_us + delay_us
    r_bad = prod_bad[o_prod]
    u = rng.random(n_ord)
    rating = np.where(
        r_bad,
        np.searchsorted(np.cumsum(RATING_P_BAD), u, side="right"),
        np.searchsorted(np.cumsum(RATING_P_GOOD), u, side="right"),
    )
    rating = np.minimum(rating, 4).astype(np.int32) + 1
    keep = has_review & (r_us < days * _DAY_US)
    r_idx = np.flatnonzero(keep)
    r_idx = r_idx[np.argsort(r_us[r_idx], kind="stable")]

    frames = {
        "customers": pd.DataFrame({
            "customer_id": np.arange(1, n_cust + 1, dtype=np.int64),
            "signup_at": _timestamps(base, signup_us),
            "country": country,
            "age": age,
        }),
        "products": pd.DataFrame({
            "product_id": np.arange(1, n_prod + 1, dtype=np.int64),
            "category": np.array(CATEGORIES, dtype=object)[cat_idx],
            "price": price,
            "brand": brands[brand_idx],
        }),
        "orders": pd.DataFrame({
            "order_id": np.arange(1, n_ord + 1, dtype=np.int64),
            "customer_id": o_cust[order_sort].astype(np.int64) + 1,
            "product_id": o_prod[order_sort].astype(np.int64) + 1,
            "ordered_at": _timestamps(base, o_us[order_sort]),
            "amount": amount[order_sort],
        }),
        "reviews": pd.DataFrame({
            "review_id": np.arange(1, r_idx.size + 1, dtype=np.int64),
            "customer_id": o_cust[r_idx].astype(np.int64) + 1,
            "product_id": o_prod[r_idx].astype(np.int64) + 1,
            "rating": rating[r_idx],
            "reviewed_at": _timestamps(base, r_us[r_idx]),
        }),
    }

    return load_tables(con, _DDL, frames)
