"""The key graph of a database: tables, keys, links, time columns, column types.

Read from DuckDB's catalog (``duckdb_tables()``, ``duckdb_columns()``,
``duckdb_constraints()``) and corrected by the overrides in ``rdl_graph``,
so a database with declared constraints needs no set-up and one without can
be described with ``ALTER GRAPH``.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

import duckdb
from sqlglot import exp

from . import hindsight, overrides
from .errors import PlanError, did_you_mean, sql_name
from .sql import alias, arrow, col, lit, run, table

#: tables rdl-sql keeps in the user's database; never part of the graph
INTERNAL_TABLES = {overrides.OVERRIDES_TABLE, "rdl_models"}

TIME_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S",
              "TIMESTAMP WITH TIME ZONE")
#: time types that name an instant: read as their UTC wall clock (``as_timestamp``)
ZONED_TIME_TYPES = ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ")
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "BOOLEAN")
STRING_TYPES = ("VARCHAR",)

#: a string column with at most this many distinct values (or few per row) is categorical
MAX_CATEGORIES = 1000


def as_timestamp(value: exp.Expression, dtype: str | None) -> exp.Expression:
    """``value``, a column of DuckDB type ``dtype``, as a naive TIMESTAMP on the clock every time rdl-sql uses.

    A TIMESTAMPTZ is an instant: it becomes its UTC wall clock, whatever the session's TimeZone
    (``CAST(tz AS TIMESTAMP)`` gives the session's local wall clock, which DuckDB takes from the
    machine's ``TZ``, so AS OF, bound in UTC, was compared with New York or Tokyo time). A DATE or a
    naive TIMESTAMP has no zone and is cast (``timezone('UTC', naive)`` would read it as UTC and
    return a TIMESTAMPTZ, which the session's zone turns back into local time).
    """
    if dtype is not None and dtype.upper() in ZONED_TIME_TYPES:
        return exp.func("timezone", lit("UTC"), value)
    return exp.cast(value, "TIMESTAMP")


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    stype: str  # numerical | categorical | text | timestamp | id | time | ignored


@dataclass(frozen=True)
class Link:
    """``child(child_columns) REFERENCES parent(parent_columns)``: one edge type each way."""

    child: str
    child_columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]
    declared: str = "constraint"  # constraint | override

    @property
    def name(self) -> str:
        return f"{self.child}({', '.join(self.child_columns)}) -> {self.parent}({', '.join(self.parent_columns)})"


@dataclass(frozen=True)
class TableInfo:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    time_column: str | None
    rows: int
    notes: tuple[str, ...] = ()
    #: ``primary_key`` is a declared PRIMARY KEY (unique, never NULL), not a UNIQUE constraint that
    #: admits several NULL keys: ordering by it alone is a total order (``nodes.node_order``)
    key_is_primary: bool = False
    #: its timestamp columns that ``hindsight`` found to be running last times (ignored), and why
    hindsight: tuple[hindsight.Hindsight, ...] = ()

    def time_of(self, name: str, tbl_alias: str | None = None) -> exp.Expression:
        """Its column ``name`` (under ``tbl_alias``) as a naive UTC TIMESTAMP (``as_timestamp``)."""
        c = self.column(name)
        return as_timestamp(col(name, tbl_alias), c.dtype if c is not None else None)

    def column(self, name: str) -> Column | None:
        """The column called ``name``, compared without case as DuckDB compares names; None if absent."""
        for c in self.columns:
            if c.name == name:
                return c
        folded = name.lower()
        return next((c for c in self.columns if c.name.lower() == folded), None)

    @property
    def features(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.stype in ("numerical", "categorical", "timestamp"))


@dataclass(frozen=True)
class Schema:
    tables: dict[str, TableInfo]
    links: tuple[Link, ...]
    notes: tuple[str, ...] = field(default=())

    def table(self, name: str, position=None) -> TableInfo:
        """The table called ``name``; a PlanError with the closest name when missing."""
        if name in self.tables:
            return self.tables[name]
        folded = name.lower()  # DuckDB resolves `Orders` to table orders: names compare without case
        match = next((t for n, t in self.tables.items() if n.lower() == folded), None)
        if match is not None:
            return match
        raise PlanError(f"table `{name}` not found{did_you_mean(name, self.tables)}", position)

    def links_from(self, child: str, parent: str) -> list[Link]:
        return [lk for lk in self.links if lk.child == child and lk.parent == parent]

    def fingerprint(self, tables: list[str]) -> dict:
        """What a model trained on ``tables`` depends on: their keys, time columns, feature columns, links.

        Stored with the model (JSON), so that scoring can tell a compatible
        change (a new column, a new table) from one that breaks the model.
        """
        names = set(tables)
        return {
            "tables": {name: {"key": list(self.tables[name].primary_key), "time": self.tables[name].time_column,
                              "columns": {c.name: f"{c.dtype} {c.stype}" for c in self.tables[name].columns
                                          if c.stype != "ignored"}}
                       for name in tables},
            "links": [lk.name for lk in self.links if lk.child in names and lk.parent in names],
        }

    def incompatibilities(self, fingerprint: dict) -> list[str]:
        """Why a model with ``fingerprint`` cannot read this schema (empty: it can), one line per reason."""
        out = []
        for name, want in fingerprint["tables"].items():
            have = self.tables.get(name)
            if have is None:
                out.append(f"table `{name}` is gone")
                continue
            if list(have.primary_key) != want["key"]:
                out.append(f"table `{name}`: key ({', '.join(want['key'])}) is now ({', '.join(have.primary_key)})")
            if have.time_column != want["time"]:
                out.append(f"table `{name}`: time column {want['time'] or 'none'} is now {have.time_column or 'none'}")
            cols = {c.name: f"{c.dtype} {c.stype}" for c in have.columns if c.stype != "ignored"}
            for col_name, kind in want["columns"].items():
                if col_name not in cols:
                    out.append(f"table `{name}`: column `{col_name}` ({kind}) is gone or ignored")
                elif cols[col_name] != kind:
                    out.append(f"table `{name}`: column `{col_name}` was {kind}, is now {cols[col_name]}")
        links = {lk.name for lk in self.links}
        out += [f"link {name} is gone" for name in fingerprint["links"] if name not in links]
        return out

    def links_named(self, names: list[str]) -> list[Link]:
        by_name = {lk.name: lk for lk in self.links}
        return [by_name[n] for n in names]


def _catalog_tables(con) -> list[str]:
    q = (exp.select("table_name").from_("duckdb_tables()")
         .where(exp.column("schema_name").eq(lit("main")))
         .where(exp.column("database_name").eq(exp.func("current_database")))
         .where(exp.not_(exp.column("temporary")))
         .order_by("table_name"))
    return [r[0] for r in run(con, q) if r[0] not in INTERNAL_TABLES]


def _catalog_columns(con) -> dict[str, list[tuple[str, str]]]:
    q = (exp.select("table_name", "column_name", "data_type").from_("duckdb_columns()")
         .where(exp.column("schema_name").eq(lit("main")))
         .where(exp.column("database_name").eq(exp.func("current_database")))
         .order_by("table_name", "column_index"))
    out: dict[str, list[tuple[str, str]]] = {}
    for t, c, d in run(con, q):
        out.setdefault(t, []).append((c, d))
    return out


def _catalog_constraints(con):
    q = (exp.select("table_name", "constraint_type", "constraint_column_names",
                    "referenced_table", "referenced_column_names")
         .from_("duckdb_constraints()")
         .where(exp.column("schema_name").eq(lit("main")))
         .where(exp.column("database_name").eq(exp.func("current_database")))
         .where(exp.column("constraint_type").isin(lit("PRIMARY KEY"), lit("FOREIGN KEY"), lit("UNIQUE")))
         .order_by("table_name", "constraint_index"))
    return run(con, q)


def _base_type(dtype: str) -> str:
    return dtype.split("(")[0].upper()


def _distinct_counts(con, tname: str, columns: list[str], time_column: str | None, time_type: str | None,
                     as_of: dt.datetime | None) -> tuple[int, dict[str, int]]:
    """Row count and approximate distinct count per string column, in one scan of the rows visible at ``as_of``.

    Bounded by ``as_of`` because a column's semantic type decides what a model reads: rows
    dated after a backtest's AS OF must not turn a category into text.
    """
    sel = [alias(exp.Count(this=exp.Star()), "__rows")]
    sel += [alias(exp.func("approx_count_distinct", col(c)), f"d{i}") for i, c in enumerate(columns)]
    q = exp.select(*sel).from_(table(tname))
    if time_column is not None and as_of is not None:
        t = as_timestamp(col(time_column), time_type)
        q = q.where(exp.or_(t.is_(exp.null()), t.copy() <= lit(as_of)))
    row = arrow(con, q).to_pylist()[0]
    return row["__rows"], {c: row[f"d{i}"] for i, c in enumerate(columns)}


def data_digest(con, tables: list[str]) -> str:
    """Row count and an order-independent hash of every row of ``tables``: equal digests, equal data.

    Rows are hashed column by column (a table's name as a column would read a user column
    of that name), and summed rather than XORed, so two equal rows do not cancel out.
    """
    columns = _catalog_columns(con)
    parts = []
    for name in sorted(tables):
        row_hash = exp.func("hash", *[col(c) for c, _ in columns.get(name, [])])
        total = exp.func("sum", exp.cast(row_hash, "HUGEINT"))
        q = exp.select(exp.Count(this=exp.Star()), total).from_(table(name))
        n, h = run(con, q)[0]
        parts.append(f"{name}:{n}:{h}")
    return "|".join(parts)


def read_schema(con: duckdb.DuckDBPyConnection, *, with_counts: bool = True,
                as_of: dt.datetime | None = None) -> Schema:
    """Discover the key graph of the database behind ``con``, overrides applied.

    Column types that depend on the data (categorical or text) read only the rows visible
    at ``as_of``, so a backtest is planned as it would have been on that date.
    """
    names = _catalog_tables(con)
    columns = _catalog_columns(con)
    pks: dict[str, tuple[str, ...]] = {}
    uniques: dict[str, list[tuple[str, ...]]] = {}
    links: list[Link] = []
    for tname, ctype, cols, ref_table, ref_cols in _catalog_constraints(con):
        if tname not in names:
            continue
        if ctype == "PRIMARY KEY":
            pks[tname] = tuple(cols)
        elif ctype == "UNIQUE":
            uniques.setdefault(tname, []).append(tuple(cols))
        elif ctype == "FOREIGN KEY" and ref_table in names:
            links.append(Link(tname, tuple(cols), ref_table, tuple(ref_cols)))

    notes: list[str] = []
    time_override: dict[str, str | None] = {}
    ignored: dict[str, set[str]] = {}
    kept: dict[str, set[str]] = {}
    for ov in overrides.load(con):
        if ov.table not in names:
            notes.append(f"override on missing table `{ov.table}` skipped")
            continue
        if ov.kind == "link":
            links = [lk for lk in links if not (lk.child == ov.table and lk.child_columns == ov.columns)]
            links.append(Link(ov.table, ov.columns, ov.ref_table, ov.ref_columns, "override"))
        elif ov.kind == "drop_link":
            links = [lk for lk in links if not (lk.child == ov.table and lk.child_columns == ov.columns)]
        elif ov.kind == "time":
            time_override[ov.table] = ov.columns[0] if ov.columns else None
        elif ov.kind == "ignore":
            ignored.setdefault(ov.table, set()).update(ov.columns)
        elif ov.kind == "keep":
            kept.setdefault(ov.table, set()).update(ov.columns)

    key_cols: dict[str, set[str]] = {n: set(pks.get(n, ())) for n in names}
    for lk in links:
        key_cols.setdefault(lk.child, set()).update(lk.child_columns)
        key_cols.setdefault(lk.parent, set()).update(lk.parent_columns)

    tables: dict[str, TableInfo] = {}
    for tname in names:
        cols = columns.get(tname, [])
        tnotes: list[str] = []
        if tname in time_override:
            tcol = time_override[tname]
        else:
            candidates = [c for c, d in cols if _base_type(d) in TIME_TYPES and c not in key_cols[tname]]
            tcol = candidates[0] if len(candidates) == 1 else None
            if len(candidates) > 1:
                tnotes.append(f"several time columns ({', '.join(candidates)}); table treated as static "
                              f"until ALTER GRAPH SET TIME COLUMN {sql_name(tname)}(<column>)")
        strings = [c for c, d in cols if _base_type(d) in STRING_TYPES and c not in key_cols[tname]
                   and c not in ignored.get(tname, ())]
        ttype = next((d for c, d in cols if tcol is not None and c.lower() == tcol.lower()), None)
        rows, distinct = _distinct_counts(con, tname, strings, tcol, ttype, as_of) if with_counts else (0, {})
        out_cols = []
        for c, d in cols:
            base = _base_type(d)
            if c in ignored.get(tname, ()):
                stype = "ignored"
            elif c == tcol:
                stype = "time"
            elif c in key_cols[tname]:
                stype = "id"
            elif base in NUMERIC_TYPES or base.startswith("DECIMAL"):
                stype = "numerical"
            elif base in TIME_TYPES:
                stype = "timestamp"
            elif base in STRING_TYPES or base.startswith("ENUM"):
                nd = distinct.get(c, 0)
                stype = "categorical" if nd <= MAX_CATEGORIES or nd <= 0.05 * rows else "text"
            else:
                stype = "ignored"
            out_cols.append(Column(c, d, stype))
        pk = pks.get(tname) or next(iter(uniques.get(tname, [])), ())
        tables[tname] = TableInfo(tname, tuple(out_cols), tuple(pk), tcol, rows, tuple(tnotes),
                                  key_is_primary=bool(pks.get(tname)))

    for lk in links:
        if lk.parent not in tables or lk.child not in tables:
            notes.append(f"link {lk.name} names a missing table; skipped")
    links = [lk for lk in links if lk.parent in tables and lk.child in tables]
    if with_counts:
        tables = _without_hindsight(con, tables, links, kept, as_of)
    return Schema(tables, tuple(links), tuple(notes))


def _without_hindsight(con, tables: dict[str, TableInfo], links: list[Link], kept: dict[str, set[str]],
                       as_of: dt.datetime | None) -> dict[str, TableInfo]:
    """``tables`` with each running "last time" column (``hindsight``) ignored and explained."""
    candidates = {t.name: [c.name for c in t.columns if c.stype == "timestamp" and c.name not in kept.get(t.name, ())]
                  for t in tables.values()}
    found = hindsight.hindsight_columns(con, {t: cs for t, cs in candidates.items() if cs}, links,
                                        {t.name: t.time_column for t in tables.values()}, as_of,
                                        lambda tname, column, a: tables[tname].time_of(column, a))
    out = dict(tables)
    for h in found:
        t = out[h.table]
        out[h.table] = replace(t, columns=tuple(replace(c, stype="ignored") if c.name == h.column else c
                                                for c in t.columns),
                               hindsight=t.hindsight + (h,))
    return out
