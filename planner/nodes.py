"""Row numbering shared by every query that names a graph node.

A node is a row of a table, numbered ``0..n-1`` among the rows visible at
the cut-off time, in the order of the table's primary key (without a
declared PRIMARY KEY: the unique key if any, then every other column). That
order is total up to rows equal in every column, which
are interchangeable (same features, same edges, same labels), so the label
query, the extraction queries and the scoring query, run separately, give
a node id the same meaning. DuckDB's ``rowid`` is not used: a user column
may be called ``rowid`` and hide it, and insertion order is not a promise.

Internal columns (the node id and the row's time) sit beside user columns
in one projection, so their names are chosen per table among names that no
column of the table has (compared without case, as DuckDB compares names):
a user column called ``__node`` or ``__time`` stays a user column.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlglot import exp

from .schema import TableInfo
from .sql import alias, col, ident, lit, table

NODE = "__node"
TIME = "__time"
TIME_US = "__time_us"


def fresh_name(base: str, taken: Iterable[str]) -> str:
    """``base``, or ``base_2``, ``base_3`` ...: the first name equal to none of ``taken`` (ignoring case)."""
    used = {t.lower() for t in taken}
    name, i = base, 2
    while name.lower() in used:
        name, i = f"{base}_{i}", i + 1
    return name


def _names(tinfo: TableInfo) -> list[str]:
    return [c.name for c in tinfo.columns]


def node_name(tinfo: TableInfo) -> str:
    """Name of the node-id column in ``node_select`` of ``tinfo``: ``__node`` unless the table has one."""
    return fresh_name(NODE, _names(tinfo))


def time_name(tinfo: TableInfo, time_us: bool = False) -> str:
    """Name of the row-time column in ``node_select`` of ``tinfo`` (``__time`` / ``__time_us`` unless taken)."""
    return fresh_name(TIME_US if time_us else TIME, _names(tinfo) + [node_name(tinfo)])


def time_value(tinfo: TableInfo, tbl_alias: str | None = None) -> exp.Expression:
    """The table's time column as a naive TIMESTAMP: a DATE cast, a TIMESTAMPTZ its UTC wall clock, as AS OF
    is bound (``schema.as_timestamp``), so no result depends on the session's TimeZone."""
    return tinfo.time_of(tinfo.time_column, tbl_alias)


def visible(tinfo: TableInfo, as_of: dt.datetime | None, tbl_alias: str | None = None) -> exp.Expression | None:
    """Rows that exist at ``as_of``: dated no later than it, or undated (static)."""
    if tinfo.time_column is None or as_of is None:
        return None
    t = time_value(tinfo, tbl_alias)
    return exp.or_(t.is_(exp.null()), t.copy() <= lit(as_of))


def node_order(tinfo: TableInfo) -> list[exp.Ordered]:
    """The numbering order: the primary key; without one (or with a UNIQUE key, which admits several
    NULLs), every column after the key. A total order up to rows equal in every column.

    The key alone when it can: sorting a million rows by every column took 7x longer than by the key.
    """
    key = list(tinfo.primary_key)
    rest = [] if key and tinfo.key_is_primary else [c.name for c in tinfo.columns if c.name not in key]
    return [exp.Ordered(this=col(c), nulls_first=False) for c in key + rest]


def node_select(tinfo: TableInfo, as_of: dt.datetime | None, columns: list[exp.Expression],
                *, time_us: bool = False) -> exp.Select:
    """``SELECT <node>, <time>, <columns> FROM t WHERE visible`` with stable node ids.

    The first two columns are named ``node_name(tinfo)`` and ``time_name(tinfo, time_us)``.
    """
    number = exp.Window(this=exp.RowNumber(), order=exp.Order(expressions=node_order(tinfo)))
    sel = [alias(number - exp.Literal.number(1), node_name(tinfo))]
    if tinfo.time_column is None:
        t = exp.cast(exp.null(), "BIGINT" if time_us else "TIMESTAMP")
    else:
        t = time_value(tinfo)
        if time_us:
            t = exp.func("epoch_us", t)
    sel.append(alias(t, time_name(tinfo, time_us)))
    q = exp.select(*sel, *columns).from_(table(tinfo.name))
    cond = visible(tinfo, as_of)
    return q.where(cond) if cond is not None else q


def one_row_per(tinfo: TableInfo, columns: tuple[str, ...], tbl_alias: str) -> exp.Expression:
    """``tinfo``'s table as ``tbl_alias``, with at most one row per value of ``columns`` (a link's parent side).

    ``ALTER GRAPH ADD LINK`` refuses parent columns that repeat a value, but rows inserted later may
    repeat one, and a join on them would then multiply the rows joined to it (an entity scored twice).
    The row kept is the earliest: undated ones first, then by time, then in node order
    (``node_order``). A row dated after an anchor therefore never displaces one dated at or before
    it, so which row a feature reads depends on no future row; a row later than the anchor is kept
    only when every row of its value is, and the caller's time rule hides it. The table itself when
    ``columns`` are its key (DuckDB keeps them unique): one window over the table otherwise.
    """
    if tinfo.primary_key and set(columns) == set(tinfo.primary_key):
        return table(tinfo.name, tbl_alias)
    order = node_order(tinfo)
    if tinfo.time_column is not None:
        order = [exp.Ordered(this=time_value(tinfo), nulls_first=True), *order]
    first = exp.Window(this=exp.RowNumber(), partition_by=[col(c) for c in columns],
                       order=exp.Order(expressions=order))
    q = exp.select(exp.Star()).from_(table(tinfo.name)).qualify(first.eq(exp.Literal.number(1)))
    return exp.Subquery(this=q, alias=exp.TableAlias(this=ident(tbl_alias)))
