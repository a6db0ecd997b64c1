"""Small builders for sqlglot ASTs with quoted identifiers.

Every query rdl-sql generates goes through these, so a table called
``Order Items`` or ``select`` is always quoted and user text never becomes
SQL source.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
from sqlglot import exp

DIALECT = "duckdb"


def ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def table(name: str, alias: str | None = None) -> exp.Table:
    t = exp.Table(this=ident(name))
    return t.as_(ident(alias), table=True) if alias else t


def col(name: str, tbl: str | None = None) -> exp.Column:
    return exp.Column(this=ident(name), table=ident(tbl) if tbl else None)


def lit(value: Any) -> exp.Expression:
    """A SQL literal for a Python value (strings are escaped by sqlglot)."""
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return exp.Literal.number(value)
    if isinstance(value, dt.datetime):
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), "TIMESTAMP")
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), "DATE")
    return exp.Literal.string(str(value))


def alias(expression: exp.Expression, name: str) -> exp.Alias:
    return exp.alias_(expression, ident(name))


def to_sql(expression: exp.Expression) -> str:
    return expression.sql(DIALECT)


def run(con: duckdb.DuckDBPyConnection, expression: exp.Expression) -> list[tuple]:
    """Execute a generated AST on ``con`` and return all its rows.

    Fetching everything matters: DuckDB 2.0 refuses further work on a
    connection whose last result was left half-read.
    """
    return con.execute(to_sql(expression)).fetchall()


def arrow(con: duckdb.DuckDBPyConnection, expression: exp.Expression):
    """Materialise a generated query as a pyarrow Table (no Python row loop)."""
    return con.sql(to_sql(expression)).to_arrow_table()
