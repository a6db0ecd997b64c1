"""The feature query of the GBDT baseline: hand-computed values, time rules, quoting.

Dates refer to the ``tiny`` database of ``tests/conftest.py`` (anchor
``A = 2024-01-10``, ``B = 2024-01-15``). With a 10-day target the past
windows are 2, 10, 30 and 120 days.
"""
from __future__ import annotations

import datetime as dt

import pytest

from rdl_sql.planner import overrides
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


# ---- equivalence with a direct computation ---------------------------------------------------------
def _months_before(t: dt.datetime, n: int) -> dt.datetime:
    """``t - INTERVAL n MONTH`` as DuckDB computes it: the day clamped to the target month's length."""
    import calendar
    y, m = divmod(t.year * 12 + t.month - 1 - n, 12)
    return t.replace(year=y, month=m + 1, day=min(t.day, calendar.monthrange(y, m + 1)[1]))


def _reference(con, anchors, windows, as_of) -> dict:
    """The features of ``events`` (via ``users.code``, with its parent ``shops``) and ``notes``, by hand in Python.

    An independent computation of the rules: rows dated at or before the anchor and AS OF, windows
    ``(anchor - w, anchor]``, last = the row with the latest (time, value) among non-NULL values, mode = the
    most frequent non-NULL value, ties to the smallest; a shop opened after the anchor (or AS OF) is unknown.
    """
    from collections import Counter
    users = {u: code for u, code in con.execute("SELECT uid, code FROM users").fetchall()}
    events = con.execute("SELECT code, ts, amount, kind, shop_id FROM events").fetchall()
    shops = {s: (o, size, region) for s, o, size, region in con.execute("SELECT * FROM shops").fetchall()}
    notes = con.execute("SELECT uid, stars FROM notes").fetchall()

    def start(a, w):
        return _months_before(a, w[0]) if w[1] == "MONTHS" else a - dt.timedelta(days=w[0])

    def stats(vals):
        vals = [v for v in vals if v is not None]
        return (sum(vals) / len(vals), min(vals), max(vals)) if vals else (None, None, None)

    def last(pairs):  # (time, value)
        pairs = [p for p in pairs if p[1] is not None]
        return max(pairs)[1] if pairs else None

    def mode(vals):
        counts = Counter(v for v in vals if v is not None)
        return min(counts, key=lambda v: (-counts[v], v)) if counts else None

    out = {}
    for uid, a in anchors:
        rows = [e for e in events if e[0] == users[uid] and e[1] is not None and e[1] <= a
                and (as_of is None or e[1] <= as_of)]

        def shop(e, i, a=a):
            s = shops.get(e[4])
            if s is None or (s[0] is not None and (s[0] > a or (as_of is not None and s[0] > as_of))):
                return None
            return s[i]
        f = {}
        for w in [*windows, None]:
            name = "all" if w is None else f"{w[0]}{w[1].lower()}"
            rs = rows if w is None else [e for e in rows if e[1] > start(a, w)]
            f[f"events__count__{name}"] = len(rs)
            mean, lo, hi = stats([e[2] for e in rs])
            f[f"events__amount__mean__{name}"], f[f"events__amount__min__{name}"] = mean, lo
            f[f"events__amount__max__{name}"] = hi
            f[f"events__shops__size__mean__{name}"] = stats([shop(e, 1) for e in rs])[0]
        f["events__amount__last"] = last([(e[1], e[2]) for e in rows])
        f["events__days_since_last"] = (a - max(e[1] for e in rows)).total_seconds() / 86400 if rows else None
        f["events__kind__last"] = last([(e[1], e[3]) for e in rows])
        f["events__kind__mode"] = mode([e[3] for e in rows])
        f["events__shops__size__last"] = last([(e[1], shop(e, 1)) for e in rows])
        f["events__shops__region__last"] = last([(e[1], shop(e, 2)) for e in rows])
        f["events__shops__region__mode"] = mode([shop(e, 2) for e in rows])
        stars = [s for u, s in notes if u == uid]
        f["notes__count__all"] = len(stars)
        f["notes__stars__mean__all"], f["notes__stars__min__all"], f["notes__stars__max__all"] = stats(stars)
        out[(uid, a)] = f
    return out


def _random_db(con, seed: int = 7) -> None:
    """Users linked by a non-primary UNIQUE code, dated events with ties, NULLs and a dated parent, static notes."""
    import random
    rng = random.Random(seed)
    day0 = dt.datetime(2024, 1, 1)
    con.execute("""
        CREATE TABLE users (uid INTEGER PRIMARY KEY, code VARCHAR UNIQUE, joined_at TIMESTAMP);
        CREATE TABLE shops (shop_id INTEGER PRIMARY KEY, opened_at TIMESTAMP, size DOUBLE, region VARCHAR);
        CREATE TABLE events (eid INTEGER PRIMARY KEY, code VARCHAR REFERENCES users (code),
                             shop_id INTEGER REFERENCES shops (shop_id), ts TIMESTAMP, amount DOUBLE, kind VARCHAR);
        CREATE TABLE notes (nid INTEGER PRIMARY KEY, uid INTEGER REFERENCES users (uid), stars DOUBLE);
    """)
    con.executemany("INSERT INTO users VALUES (?, ?, ?)", [(u, f"c{u:02d}", day0) for u in range(1, 21)])
    con.executemany("INSERT INTO shops VALUES (?, ?, ?, ?)", [
        (s, None if s % 4 == 0 else day0 + dt.timedelta(days=rng.randrange(0, 150)),
         None if s % 5 == 0 else float(rng.randrange(1, 50)), rng.choice(["n", "s", "e", None])) for s in range(1, 9)])
    events = []
    for i in range(1, 500):
        u = rng.randrange(1, 19)  # users 19 and 20 have no events
        ts = None if i % 37 == 0 else day0 + dt.timedelta(days=rng.randrange(0, 180), hours=rng.choice([0, 0, 12]))
        events.append((i, f"c{u:02d}", rng.randrange(1, 9), ts, None if i % 7 == 0 else float(rng.randrange(-20, 100)),
                       rng.choice(["a", "b", "c", None])))
    con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", events)
    con.executemany("INSERT INTO notes VALUES (?, ?, ?)",
                    [(i, rng.randrange(1, 21), None if i % 6 == 0 else float(rng.randrange(1, 6))) for i in range(40)])


@pytest.mark.parametrize("as_of", [None, dt.datetime(2024, 5, 1)])
def test_features_equal_a_direct_computation(con, as_of):
    _random_db(con)
    windows = ((3, "DAYS"), (10, "DAYS"), (1, "MONTHS"))
    p = plan(con, table="events", entity=("users", "uid"), end=10, as_of=as_of)
    anchors = [dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 29, 12), dt.datetime(2024, 3, 31),
               dt.datetime(2024, 4, 15), dt.datetime(2024, 7, 1)]

    def compute() -> dict:
        out = {}
        for t in anchors:
            for r in arrow(con, feature_sql(p, p.predict_sql(t), windows)).to_pylist():
                keep = {k: v for k, v in r.items() if k.startswith(("events__", "notes__"))}
                out[(r["uid"], r["anchor_time"])] = keep
        return out

    got = compute()
    want = _reference(con, list(got), windows, as_of)
    assert len(got) == 20 * len(anchors)
    for k, f in want.items():
        assert set(got[k]) == set(f), k
        for name, v in f.items():
            g = got[k][name]
            assert (g is None) == (v is None) and (g == pytest.approx(v, rel=1e-9, abs=1e-9) if v is not None
                                                   and not isinstance(v, str) else g == v), (k, name, g, v)
    # planted future: events and a shop dated after every anchor (and after AS OF) change no value
    con.execute("INSERT INTO shops VALUES (99, '2024-07-01 00:00:01', 9999.0, 'zz')")
    con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
                    [(1000 + u, f"c{u:02d}", 99 if u % 2 else 1, dt.datetime(2024, 7, 1, 0, 0, 1), 9999.0, "zz")
                     for u in range(1, 21)])
    # a past event of a shop that opens after it (a data error): the event counts, the shop is unknown until open
    con.execute("UPDATE shops SET opened_at = '2024-07-01 00:00:01' WHERE shop_id = 3")
    want = _reference(con, list(got), windows, as_of)
    after = compute()
    for k, f in want.items():
        for name, v in f.items():
            g = after[k][name]
            assert (g is None) == (v is None) and (g == pytest.approx(v, rel=1e-9, abs=1e-9) if v is not None
                                                   and not isinstance(v, str) else g == v), (k, name, g, v)
    assert got != after  # shop 3's values are gone: the reference did change, so the comparison has teeth


def test_the_same_query_gives_the_same_floats_on_several_threads():
    """Run to run on 2 threads the features must be the same to the last bit, or GBDT trains another model:
    a version that summed per-time sums gave 4 different tables in 15 runs on 2 busy threads."""
    import duckdb

    from rdl_sql.datasets.shop import build_shop

    con = duckdb.connect()
    build_shop(con, customers=150, products=20, days=200, seed=4)
    con.execute("SET threads = 2")
    p = plan(con, end=30)
    anchors = [dt.datetime(2023, 3, 1) + dt.timedelta(days=7 * i) for i in range(12)]
    q = feature_sql(p, p.examples_sql([(a, "train") for a in anchors]))
    runs = {tuple(map(tuple, arrow(con, q).sort_by([("customer_id", "ascending"), ("anchor_time", "ascending")])
                      .to_pydict().values())) for _ in range(6)}
    assert len(runs) == 1


# ---- a parent key that repeats (rows added after ALTER GRAPH ADD LINK) ------------------------------------
def link_countries(con, dated: bool) -> None:
    """``countries`` keyed by a name that repeats, linked from ``customers`` and from a new child ``visits``.

    The links are recorded directly, as ADD LINK records them: the repeated rows stand for rows inserted after it.
    Customer 2 visits US on 2024-01-05 and 2023-06-01, DE on 01-06; customer 1 visits US on 01-08.
    """
    time = ", opened_at TIMESTAMP" if dated else ""
    con.execute(f"""
        CREATE TABLE countries (country VARCHAR, gdp DOUBLE{time});
        CREATE TABLE visits (visit_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (customer_id),
                             country VARCHAR, visited_at TIMESTAMP);
        INSERT INTO visits VALUES (1, 2, 'US', '2024-01-05'), (2, 2, 'DE', '2024-01-06'), (3, 2, 'US', '2023-06-01'),
                                  (4, 1, 'US', '2024-01-08');
    """)
    overrides.add_link(con, "customers", ["country"], "countries", ["country"])
    overrides.add_link(con, "visits", ["country"], "countries", ["country"])


def scored_rows(con, p, t) -> list[dict]:
    return arrow(con, feature_sql(p, p.predict_sql(t))).to_pylist()


def test_a_repeated_parent_key_joins_each_row_with_one_parent_row(tiny):
    link_countries(tiny, dated=False)
    tiny.execute("INSERT INTO countries VALUES ('US', 2.0), ('US', 1.0), ('DE', 5.0), ('DE', 5.0)")
    p = plan(tiny)
    rows = scored_rows(tiny, p, A)
    assert sorted(r["customer_id"] for r in rows) == [1, 2, 4]       # once each (customer 3 signs up after A)
    f = {r["customer_id"]: r for r in rows}
    assert f[1]["countries__gdp"] == 1.0                               # ('US', 1.0): the first in row order
    assert f[2]["countries__gdp"] == 5.0 and f[4]["countries__gdp"] is None   # customer 4 is in FR
    c2 = f[2]
    assert c2["visits__count__10days"] == 2 and c2["visits__count__all"] == 3   # no visit counted twice
    assert c2["visits__countries__gdp__mean__10days"] == 3.0           # US 1.0 and DE 5.0
    assert c2["visits__countries__gdp__mean__all"] == pytest.approx(7 / 3)
    labelled = feature_sql(p, p.examples_sql([(A, "train"), (B, "val")]))
    assert len(arrow(tiny, labelled)) == len(arrow(tiny, p.examples_sql([(A, "train"), (B, "val")])))


def test_a_repeated_parent_key_reads_its_earliest_row_and_never_a_future_one(tiny):
    """The earliest parent row of a value: a row dated after the anchor cannot displace one dated before it."""
    link_countries(tiny, dated=True)
    tiny.execute("""INSERT INTO countries VALUES ('US', 20.0, '2023-06-01'), ('US', 10.0, '2023-01-01'),
                                                 ('DE', 500.0, '2024-01-12')""")   # DE opens between A and B
    p = plan(tiny)
    before = {t: scored_rows(tiny, p, t) for t in (A, B)}
    at_a = {r["customer_id"]: r for r in before[A]}
    assert at_a[1]["countries__gdp"] == 10.0 and at_a[2]["countries__gdp"] is None
    assert at_a[2]["visits__countries__gdp__mean__all"] == 10.0        # the US visits; DE does not exist yet
    assert {r["customer_id"]: r for r in before[B]}[2]["countries__gdp"] == 500.0
    # planted after A: a US row (also after B), and a DE row one second after A, earlier than DE's own row
    tiny.execute("""INSERT INTO countries VALUES ('US', 9999.0, '2024-01-10 00:00:01'), ('US', 9999.0, '2030-01-01'),
                                                 ('DE', 7777.0, '2024-01-10 00:00:01')""")
    assert scored_rows(tiny, p, A) == before[A]
    at_b = {r["customer_id"]: r for r in scored_rows(tiny, p, B)}
    assert at_b[1]["countries__gdp"] == 10.0 and at_b[2]["countries__gdp"] == 7777.0   # DE's earliest row at B
    assert len(at_b) == len(before[B])
