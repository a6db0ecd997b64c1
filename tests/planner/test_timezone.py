"""TIMESTAMP WITH TIME ZONE time columns are read as their UTC wall clock, whatever the session's TimeZone.

AS OF ``TIMESTAMPTZ '2024-03-01 00:00:00+00'`` is bound as the naive UTC time
``2024-03-01 00:00``. DuckDB's ``CAST(tz AS TIMESTAMP)`` gives the session's
local wall clock instead (its TimeZone comes from the machine's ``TZ``), so
in New York rows dated up to five hours after the cut-off were read, and in
Tokyo rows up to nine hours before it were not: every result depended on the
machine's zone.

The database below has every time-like column as TIMESTAMPTZ and rows close
to the cut-off on both sides: an order at 22:00 UTC the day before (a
Tokyo wall clock after the cut), a ``vip_since`` at 02:00 UTC after it (a New
York wall clock before it), and a running last time (``last_order_at``) that
``hindsight`` flags only when it counts the 22:00 orders.
"""
from __future__ import annotations

import datetime as dt

import duckdb
import pytest
from sqlglot import exp

import rdl_sql
from rdl_sql.planner import overrides
from rdl_sql.planner.extract import extract
from rdl_sql.planner.features import feature_sql
from rdl_sql.planner.query import Aggregate, PredictQuery, Target
from rdl_sql.planner.schema import as_timestamp, read_schema
from rdl_sql.planner.sql import arrow, col, run, table, to_sql
from rdl_sql.planner.task import compile_task

AS_OF = dt.datetime(2024, 3, 1)  # TIMESTAMPTZ '2024-03-01 00:00:00+00' as bound
AS_OF_SQL = "TIMESTAMPTZ '2024-03-01 00:00:00+00'"
ZONES = ("UTC", "America/New_York", "Asia/Tokyo")
CUSTOMERS = 24  # hindsight needs 20 parent rows before it flags a column

SCHEMA = """
CREATE TABLE customers (
    customer_id   INTEGER PRIMARY KEY,
    signup_at     TIMESTAMPTZ,
    country       VARCHAR,
    vip_since     TIMESTAMPTZ,
    last_order_at TIMESTAMPTZ
);
CREATE TABLE orders (
    order_id    INTEGER PRIMARY KEY,
    customer_id INTEGER REFERENCES customers (customer_id),
    ordered_at  TIMESTAMPTZ,
    amount      DOUBLE
);
"""

# every customer orders on 2024-02-01 and 2024-02-15, then at 22:00 UTC on 2024-02-29 (07:00 on
# 03-01 in Tokyo); ``last_order_at`` is the last of them, so at AS OF it follows each customer's last
# order (three distinct times): hindsight flags it
FILL = f"""
INSERT INTO customers
SELECT i, TIMESTAMPTZ '2023-06-01 00:00:00+00' + i * INTERVAL 1 DAY, ['US', 'DE', 'FR'][1 + i % 3],
       CASE WHEN i = 1 THEN TIMESTAMPTZ '2024-03-01 02:00:00+00'       -- after AS OF (21:00 the day before in NY)
            WHEN i = 2 THEN TIMESTAMPTZ '2024-02-29 20:00:00+00'       -- before AS OF (05:00 on 03-01 in Tokyo)
            WHEN i = 3 THEN TIMESTAMPTZ '2024-01-01 00:00:00+00' END,
       TIMESTAMPTZ '2024-02-29 22:00:00+00'
FROM range(1, {CUSTOMERS + 1}) r(i);
INSERT INTO orders
SELECT 3 * i + k, i, [TIMESTAMPTZ '2024-02-01 00:00:00+00', TIMESTAMPTZ '2024-02-15 00:00:00+00',
                      TIMESTAMPTZ '2024-02-29 22:00:00+00'][k + 1], 10.0 * i + k
FROM range(1, {CUSTOMERS + 1}) r(i), range(3) s(k);
INSERT INTO orders
SELECT 1000 + i, 1 + i % {CUSTOMERS}, TIMESTAMPTZ '2023-07-01 00:00:00+00' + i * INTERVAL 5 DAY + INTERVAL 7 HOUR, i
FROM range(1, 40) r(i);
"""

# a few hours after AS OF (before it in the wall clock of New York): a new customer, and orders
PLANTED = """
INSERT INTO customers VALUES (100, TIMESTAMPTZ '2024-03-01 02:00:00+00', 'US', NULL, NULL);
INSERT INTO orders VALUES (9001, 1, TIMESTAMPTZ '2024-03-01 03:00:00+00', 999.0),
                          (9002, 2, TIMESTAMPTZ '2024-03-01 04:00:00+00', 999.0),
                          (9003, 100, TIMESTAMPTZ '2024-03-01 04:30:00+00', 999.0);
"""


def fill(con, plant: bool) -> None:
    con.execute(SCHEMA)
    con.execute(FILL)
    if plant:
        con.execute(PLANTED)
    overrides.set_time_column(con, "customers", "signup_at")  # vip_since and last_order_at are features


def _zone(con, zone: str) -> None:
    """The session's TimeZone, for this connection and every cursor opened from it (DuckDB keeps it per session)."""
    con.execute(f"SET GLOBAL TimeZone = '{zone}'")
    con.execute(f"SET TimeZone = '{zone}'")
    assert con.execute("SELECT current_setting('TimeZone')").fetchone()[0] == zone


@pytest.fixture
def make_db():
    opened = []

    def make(zone: str, plant: bool = False) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        opened.append(con)
        fill(con, plant)
        _zone(con, zone)
        return con

    yield make
    for con in opened:
        con.close()


def planner_reads(con) -> dict:
    """What the planner reads at AS OF: schema, anchors, labels, the graph, and the GBDT feature values."""
    schema = read_schema(con, as_of=AS_OF)
    target = Aggregate("COUNT", "orders", None, 0, 30, "DAYS")
    q = PredictQuery(Target(target, "=", 0), "customers", "customer_id", aggregates=(target,), as_of=AS_OF)
    plan = compile_task(con, schema, q)
    graph = extract(con, plan.schema, ["customers", "orders"], AS_OF)
    examples = plan.examples_sql(plan.split_anchors())
    return {
        "schema": {t.name: (t.rows, [(c.name, c.stype) for c in t.columns], [h.column for h in t.hindsight])
                   for t in schema.tables.values()},
        "anchors": (plan.train_anchors, plan.val_anchors, plan.test_anchors, plan.predict_anchor),
        "labels": arrow(con, examples).to_pylist(),
        "nodes": {t: g.to_pylist() for t, g in graph.nodes.items()},
        "edges": {lk.name: g.to_pylist() for lk, g in graph.edges.items()},
        "features": arrow(con, feature_sql(plan, plan.predict_sql())).to_pylist(),
        "train features": arrow(con, feature_sql(plan, examples)).to_pylist(),
    }


def explain(zone: str, plant: bool) -> list[tuple]:
    with rdl_sql.connect(progress=False) as con:
        duck = con.duckdb_connection
        fill(duck, plant)
        _zone(duck, zone)  # GLOBAL: the statement runs on a cursor, a DuckDB session of its own
        return con.execute(f"EXPLAIN PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
                           f"AS OF {AS_OF_SQL}").fetchall()


# ---- the helper -------------------------------------------------------------------------------
def test_as_timestamp_reads_timestamptz_as_utc_and_casts_the_rest(con):
    _zone(con, "America/New_York")
    con.execute("CREATE TABLE t (tz TIMESTAMPTZ, ts TIMESTAMP, d DATE)")
    con.execute("INSERT INTO t VALUES (TIMESTAMPTZ '2024-03-01 03:00:00+00', TIMESTAMP '2024-03-01 03:00:00', "
                "DATE '2024-03-01')")
    exprs = [as_timestamp(col("tz", "t"), "TIMESTAMP WITH TIME ZONE"), as_timestamp(col("ts", "t"), "TIMESTAMP"),
             as_timestamp(col("d", "t"), "DATE")]
    assert to_sql(exprs[0]) == "TIMEZONE('UTC', \"t\".\"tz\")"
    assert to_sql(exprs[1]) == "CAST(\"t\".\"ts\" AS TIMESTAMP)"
    got = run(con, exp.select(*exprs, *[exp.func("typeof", e.copy()) for e in exprs]).from_(table("t")))
    assert got == [(dt.datetime(2024, 3, 1, 3), dt.datetime(2024, 3, 1, 3), dt.datetime(2024, 3, 1),
                    "TIMESTAMP", "TIMESTAMP", "TIMESTAMP")]


# ---- planted future ---------------------------------------------------------------------------
@pytest.mark.parametrize("zone", ZONES)
def test_rows_planted_hours_after_a_utc_as_of_change_nothing_the_planner_reads(make_db, zone):
    assert planner_reads(make_db(zone, plant=True)) == planner_reads(make_db(zone))


@pytest.mark.parametrize("zone", ZONES)
def test_explain_counts_no_row_planted_hours_after_a_utc_as_of(zone):
    planted, clean = explain(zone, True), explain(zone, False)
    assert planted == clean
    graph = {r[1]: r[2] for r in clean if r[0] == "graph"}
    assert graph["node orders"].startswith(f"{3 * CUSTOMERS + 39} rows")
    assert graph["node customers"].startswith(f"{CUSTOMERS} rows")


# ---- no dependence on the session's zone ------------------------------------------------------
def test_planner_reads_the_same_in_every_session_zone(make_db):
    utc = planner_reads(make_db("UTC"))
    for zone in ZONES[1:]:
        assert planner_reads(make_db(zone)) == utc, zone


def test_explain_is_the_same_in_every_session_zone():
    utc = explain("UTC", False)
    for zone in ZONES[1:]:
        assert explain(zone, False) == utc, zone


def test_values_read_at_the_cut_are_the_utc_ones(make_db):
    """Hand-checked: the 22:00 UTC orders are read, 02:00 UTC vip_since is unknown, 20:00 UTC is known."""
    for zone in ZONES:
        got = planner_reads(make_db(zone, plant=True))
        assert got["schema"]["customers"][2] == ["last_order_at"], zone  # follows the 22:00 orders: flagged
        assert got["schema"]["orders"][0] == 3 * CUSTOMERS + 39, zone
        rows = {r["customer_id"]: r for r in got["features"]}
        assert set(rows) == set(range(1, CUSTOMERS + 1)), zone  # customer 100 signs up after AS OF
        assert rows[1]["customers__vip_since"] is None, zone
        assert rows[2]["customers__vip_since"] == pytest.approx(4 / 24), zone
        assert rows[3]["customers__vip_since"] == 60.0, zone
        assert rows[5]["orders__count__7days"] == 1, zone  # the order at 22:00 UTC, two hours before AS OF
        assert rows[5]["orders__days_since_last"] == pytest.approx(2 / 24), zone
        times = [r["__time_us"] for r in got["nodes"]["orders"]]
        assert max(times) == (dt.datetime(2024, 2, 29, 22) - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
        vip = {r["__node"]: r["vip_since"] for r in got["nodes"]["customers"]}
        assert vip[1] == (dt.datetime(2024, 2, 29, 20) - dt.datetime(1970, 1, 1)).total_seconds(), zone
