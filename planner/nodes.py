"""Row numbering shared by every query that names a graph node.

A node is a row of a table, numbered ``0..n-1`` in ``rowid`` order among the
rows visible at the cut-off time. Labels, extraction and edges all number
rows with this one function, so a node id means the same row everywhere.
"""
from __future__ import annotations

import datetime as dt

from sqlglot import exp

from .schema import TableInfo
from .sql import alias, col, lit, table

NODE = "__node"
TIME = "__time"
TIME_US = "__time_us"


def time_value(tinfo: TableInfo, tbl_alias: str | None = None) -> exp.Expression:
    """The table's time column as TIMESTAMP (DATE and TIMESTAMPTZ are cast)."""
    return exp.cast(col(tinfo.time_column, tbl_alias), "TIMESTAMP")


def visible(tinfo: TableInfo, as_of: dt.datetime | None, tbl_alias: str | None = None) -> exp.Expression | None:
    """Rows that exist at ``as_of``: dated no later than it, or undated (static)."""
    if tinfo.time_column is None or as_of is None:
        return None
    t = time_value(tinfo, tbl_alias)
    return exp.or_(t.is_(exp.null()), t.copy() <= lit(as_of))


def node_select(tinfo: TableInfo, as_of: dt.datetime | None, columns: list[exp.Expression],
                *, time_us: bool = False) -> exp.Select:
    """``SELECT __node, __time[_us], <columns> FROM t WHERE visible`` with stable node ids."""
    number = exp.Window(this=exp.RowNumber(), order=exp.Order(expressions=[exp.Ordered(this=exp.column("rowid"))]))
    sel = [alias(number - exp.Literal.number(1), NODE)]
    if tinfo.time_column is None:
        t = exp.cast(exp.null(), "BIGINT" if time_us else "TIMESTAMP")
    else:
        t = time_value(tinfo)
        if time_us:
            t = exp.func("epoch_us", t)
    sel.append(alias(t, TIME_US if time_us else TIME))
    q = exp.select(*sel, *columns).from_(table(tinfo.name))
    cond = visible(tinfo, as_of)
    return q.where(cond) if cond is not None else q
