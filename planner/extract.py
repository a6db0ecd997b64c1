"""Compile the key graph into extraction queries that hand rows and edges to Arrow.

One query per table (node id, time in microseconds, feature columns) and one
per link (child node id, parent node id, joined in DuckDB on the key
columns). Rows dated after the cut-off never leave DuckDB. NULL and dangling
keys fall out of the inner join: such a row is a node without that edge.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from sqlglot import exp

from .nodes import NODE, TIME_US, node_name, node_select, time_name
from .schema import Link, Schema, TableInfo, as_timestamp
from .sql import alias, arrow, col, ident

SRC = "src"
DST = "dst"


@dataclass(frozen=True)
class ExtractedGraph:
    """Arrow tables of a graph cut at ``as_of``: the input of ``udfs.graph``."""

    #: table -> (node id, time in microseconds, features...): the first two named by
    #: ``nodes.node_name`` / ``nodes.time_name(..., time_us=True)``, ``__node`` / ``__time_us``
    #: unless the table has a column of that name
    nodes: dict[str, pa.Table]
    edges: dict[Link, pa.Table]  # link -> (src = child node, dst = parent node)
    tables: dict[str, TableInfo]
    as_of: dt.datetime | None


def reachable(schema: Schema, start: str, hops: int) -> list[str]:
    """Tables within ``hops`` links of ``start``, in breadth-first order."""
    seen = [start]
    frontier = [start]
    for _ in range(hops):
        nxt = []
        for lk in schema.links:
            for a, b in ((lk.child, lk.parent), (lk.parent, lk.child)):
                if a in frontier and b not in seen:
                    seen.append(b)
                    nxt.append(b)
        frontier = nxt
    return seen


def feature_expr(c, tbl_alias: str | None = None) -> exp.Expression:
    """A feature column in the form the encoders read: DOUBLE, or VARCHAR for categories."""
    if c.stype == "categorical":
        return alias(exp.cast(col(c.name, tbl_alias), "VARCHAR"), c.name)
    if c.stype == "timestamp":
        # seconds since 1970 of its UTC wall clock (a TIMESTAMPTZ is not read in the session's zone)
        return alias(exp.cast(exp.func("epoch", as_timestamp(col(c.name, tbl_alias), c.dtype)), "DOUBLE"), c.name)
    return alias(exp.cast(col(c.name, tbl_alias), "DOUBLE"), c.name)


#: a table of at most this many rows with a one-column key gets its key as a category (``key_feature``)
KEY_FEATURE_MAX_ROWS = 1_000


def key_feature(tinfo: TableInfo) -> str | None:
    """The key column a GNN learns one embedding per value of, or None.

    A small table's rows are each seen in many training examples (200
    products under 20,000 orders): an embedding per row lets the model learn
    what no column says about it (this product makes customers leave), as
    LightGBM does from any column unique per row (a product's price). A
    large table's rows are seen too rarely to learn one from, and a
    composite key has no one value to embed.
    """
    if len(tinfo.primary_key) != 1 or tinfo.rows > KEY_FEATURE_MAX_ROWS:
        return None
    return tinfo.primary_key[0]


def nodes_sql(tinfo: TableInfo, as_of: dt.datetime | None, key: str | None = None) -> exp.Select:
    """Node id, time (microseconds) and features of the rows of ``tinfo`` visible at ``as_of``, by node id.

    ``key``: also the key column of that name, as VARCHAR (``key_feature``).
    """
    extra = [alias(exp.cast(col(key), "VARCHAR"), key)] if key is not None else []
    return node_select(tinfo, as_of, [*(feature_expr(c) for c in tinfo.features), *extra],
                       time_us=True).order_by(col(node_name(tinfo)))


def edges_sql(schema: Schema, link: Link, as_of: dt.datetime | None) -> exp.Select:
    """``(src, dst)`` node pairs of ``link``; key columns travel as ``__k<i>`` so no user name meets ours."""
    child, parent = schema.tables[link.child], schema.tables[link.parent]
    keys = [f"__k{i}" for i in range(len(link.child_columns))]
    c = _node_ids(child, as_of, link.child_columns, keys)
    p = _node_ids(parent, as_of, link.parent_columns, keys)
    on = exp.and_(*[col(k, "c").eq(col(k, "p")) for k in keys])
    return (exp.select(alias(col(NODE, "c"), SRC), alias(col(NODE, "p"), DST))
            .from_(exp.Subquery(this=c, alias=exp.TableAlias(this=ident("c"))))
            .join(exp.Subquery(this=p, alias=exp.TableAlias(this=ident("p"))), on=on)
            .order_by(col(NODE, "p"), col(NODE, "c")))


def _node_ids(tinfo: TableInfo, as_of: dt.datetime | None, columns: tuple[str, ...], names: list[str]) -> exp.Select:
    """``(__node, __k0, ...)``: node ids with the given key columns, under internal names only."""
    inner = node_select(tinfo, as_of, [alias(col(k), n) for k, n in zip(columns, names)])
    return (exp.select(alias(col(node_name(tinfo)), NODE), *[col(n) for n in names])
            .from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=ident("__n")))))


def extract(con: duckdb.DuckDBPyConnection, schema: Schema, tables: list[str],
            as_of: dt.datetime | None, links: list[Link] | None = None,
            keys: dict[str, str] | None = None) -> ExtractedGraph:
    """Run the extraction queries for ``tables`` and the links among them (or exactly ``links``).

    ``keys``: table -> key column to extract as well (``key_feature``, or a stored model's choice).
    """
    names = set(tables)
    keys = keys or {}
    if links is None:
        links = [lk for lk in schema.links if lk.child in names and lk.parent in names]
    nodes = {t: arrow(con, nodes_sql(schema.tables[t], as_of, keys.get(t))) for t in tables}
    edges = {lk: arrow(con, edges_sql(schema, lk, as_of)) for lk in links}
    return ExtractedGraph(nodes, edges, {t: schema.tables[t] for t in tables}, as_of)


__all__ = ["ExtractedGraph", "extract", "key_feature", "KEY_FEATURE_MAX_ROWS",
            "reachable", "nodes_sql", "edges_sql", "NODE", "TIME_US", "SRC", "DST",
           "time_name"]
