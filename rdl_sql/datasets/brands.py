"""A generated shop whose next purchases follow a brand that only past purchases reveal.

``build_brands(con)`` creates three tables in a DuckDB connection::

    customers(customer_id BIGINT PK, signup_at TIMESTAMP, region VARCHAR)
    products (product_id BIGINT PK, brand VARCHAR, price DOUBLE, released_at TIMESTAMP)
    orders   (order_id BIGINT PK, customer_id FK -> customers, product_id FK -> products, ordered_at TIMESTAMP)

The planted preference, for ``PREDICT LIST_DISTINCT(orders.product_id, 0, 7,
DAYS) RANK TOP 10 FOR EACH customers.customer_id``:

- every customer has a hidden favourite brand (not a column; ``region`` is
  noise) and buys from it with probability ``P_FAVOURITE``, else from a
  random brand;
- brands release products all the time; a product sells only during the
  ``SHELF_DAYS`` days after its release (``products.released_at``), so the
  items worth recommending next week are mostly ones the customer has never
  bought and that did not exist a month earlier;
- a customer re-buys one of their own still-sold products with probability
  ``P_REPEAT``, else picks a product of the chosen brand on the shelf, the
  newer the likelier: the same few items are bought by every customer of the
  brand that week (co-purchase structure shared with similar customers).

So the customer's own past items (the ``past`` baseline) are right only for
repeats, and global popularity (``popular``) spreads over every brand; a
model that reads the brand of the customer's past products and which products
of that brand customers like them buy now (two hops: customers -> orders ->
products -> orders) can do much better.

Vectorised with numpy (one loop over days); deterministic for a given seed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .load import load_tables

__all__ = ["build_brands"]

P_FAVOURITE = 0.85
P_REPEAT = 0.25
SHELF_DAYS = 21
MIN_DAYS_PER_ORDER = 3.0
MAX_DAYS_PER_ORDER = 10.0
REGIONS = ("north", "south", "east", "west")


_DDL = {
    "customers": "CREATE TABLE customers (customer_id BIGINT PRIMARY KEY, signup_at TIMESTAMP, region VARCHAR)",
    "products": "CREATE TABLE products (product_id BIGINT PRIMARY KEY, brand VARCHAR, price DOUBLE, "
                "released_at TIMESTAMP)",
    "orders": "CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT REFERENCES customers, "
              "product_id BIGINT REFERENCES products, ordered_at TIMESTAMP)",
}


def build_brands(con, *, customers: int = 1500, brands: int = 12, days: int = 150,
                 release_every_days: float = 3.0, seed: int = 0,
                 start: str = "2024-01-01") -> dict[str, int]:
    """Create the three tables in ``con``; returns the row count of each."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    # products: each brand releases one every ``release_every_days`` on average, from SHELF_DAYS before day 0
    rel_days, rel_brand = [], []
    for b in range(brands):
        n = rng.poisson((days + SHELF_DAYS) / release_every_days)
        rel_days.append(np.sort(rng.uniform(-SHELF_DAYS, days, n)))
        rel_brand.append(np.full(n, b))
    rel = np.concatenate(rel_days)
    pbrand = np.concatenate(rel_brand)
    order = np.argsort(rel, kind="stable")
    rel, pbrand = rel[order], pbrand[order]
    n_products = len(rel)
    price = np.round(rng.lognormal(3.0, 0.5, n_products), 2)

    fav = rng.integers(0, brands, customers)
    signup = rng.uniform(-30, days * 0.5, customers)
    rate = 1.0 / rng.uniform(MIN_DAYS_PER_ORDER, MAX_DAYS_PER_ORDER, customers)
    last_bought = [[] for _ in range(customers)]  # product ids, newest last
    o_cust, o_prod, o_time = [], [], []
    for day in range(days):
        active = (signup <= day) & (rng.random(customers) < rate)
        idx = np.flatnonzero(active)
        if not len(idx):
            continue
        on_shelf = (rel <= day) & (rel > day - SHELF_DAYS)
        brand = np.where(rng.random(len(idx)) < P_FAVOURITE, fav[idx], rng.integers(0, brands, len(idx)))
        repeat = rng.random(len(idx)) < P_REPEAT
        for c, b, rep in zip(idx, brand, repeat):
            mine = [p for p in last_bought[c][-10:] if on_shelf[p]]
            if rep and mine:
                p = mine[rng.integers(len(mine))]
            else:
                shelf = np.flatnonzero(on_shelf & (pbrand == b))
                if not len(shelf):
                    continue
                w = np.exp(-(day - rel[shelf]) / 7.0)  # the newer, the likelier
                p = int(rng.choice(shelf, p=w / w.sum()))
            last_bought[c].append(p)
            o_cust.append(c)
            o_prod.append(p)
            o_time.append(day + rng.uniform(0, 1))

    def ts(x):
        return t0 + pd.to_timedelta(np.asarray(x) * 86400.0, unit="s").round("s")

    customers_df = pd.DataFrame({"customer_id": np.arange(customers, dtype=np.int64), "signup_at": ts(signup),
                                 "region": np.array(REGIONS)[rng.integers(0, len(REGIONS), customers)]})
    products_df = pd.DataFrame({"product_id": np.arange(n_products, dtype=np.int64),
                                "brand": [f"brand_{b:02d}" for b in pbrand], "price": price,
                                "released_at": ts(rel)})
    o_order = np.argsort(np.asarray(o_time), kind="stable")
    orders_df = pd.DataFrame({"order_id": np.arange(len(o_time), dtype=np.int64),
                              "customer_id": np.asarray(o_cust, np.int64)[o_order],
                              "product_id": np.asarray(o_prod, np.int64)[o_order],
                              "ordered_at": ts(np.asarray(o_time)[o_order])})
    return load_tables(con, _DDL, {"customers": customers_df, "products": products_df, "orders": orders_df})
