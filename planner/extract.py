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

from .nodes import NODE, TIME_US, node_select
from .schema import Link, Schema, TableInfo
from .sql import alias, arrow, col, ident

SRC = "src"
DST = "dst"


@dataclass(frozen=True)
class ExtractedGraph:
    """Arrow tables of a graph cut at ``as_of``: the input of ``udfs.graph``."""

    nodes: dict[str, pa.Table]  # table -> (__node, __time_us, features...)
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
        return alias(exp.cast(exp.func("epoch", exp.cast(col(c.name, tbl_alias), "TIMESTAMP")), "DOUBLE"), c.name)
    return alias(exp.cast(col(c.name, tbl_alias), "DOUBLE"), c.name)


def nodes_sql(tinfo: TableInfo, as_of: dt.datetime | None) -> exp.Select:
    return node_select(tinfo, as_of, [feature_expr(c) for c in tinfo.features], time_us=True).order_by(NODE)


def edges_sql(schema: Schema, link: Link, as_of: dt.datetime | None) -> exp.Select:
    child, parent = schema.tables[link.child], schema.tables[link.parent]
    c = node_select(child, as_of, [col(k) for k in link.child_columns])
    p = node_select(parent, as_of, [col(k) for k in link.parent_columns])
    on = exp.and_(*[col(a, "c").eq(col(b, "p")) for a, b in zip(link.child_columns, link.parent_columns)])
    return (exp.select(alias(col(NODE, "c"), SRC), alias(col(NODE, "p"), DST))
            .from_(exp.Subquery(this=c, alias=exp.TableAlias(this=ident("c"))))
            .join(exp.Subquery(this=p, alias=exp.TableAlias(this=ident("p"))), on=on)
            .order_by(col(NODE, "p"), col(NODE, "c")))


def extract(con: duckdb.DuckDBPyConnection, schema: Schema, tables: list[str],
            as_of: dt.datetime | None, links: list[Link] | None = None) -> ExtractedGraph:
    """Run the extraction queries for ``tables`` and the links among them (or exactly ``links``)."""
    names = set(tables)
    if links is None:
        links = [lk for lk in schema.links if lk.child in names and lk.parent in names]
    nodes = {t: arrow(con, nodes_sql(schema.tables[t], as_of)) for t in tables}
    edges = {lk: arrow(con, edges_sql(schema, lk, as_of)) for lk in links}
    return ExtractedGraph(nodes, edges, {t: schema.tables[t] for t in tables}, as_of)


__all__ = ["ExtractedGraph", "extract", "reachable", "nodes_sql", "edges_sql", "NODE", "TIME_US", "SRC", "DST"]
