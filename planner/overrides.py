"""Graph overrides kept inside the user's database, in table ``rdl_graph``.

Real databases often lack declared constraints (DuckDB enforces foreign keys,
so data with dangling keys cannot declare them) or have several timestamp
columns. ``ALTER GRAPH`` statements record the missing facts here; keeping
them in the database file means they persist, travel with the file and are
visible to any SQL tool.
"""
from __future__ import annotations

from dataclasses import dataclass

import duckdb
from sqlglot import exp

from .errors import PlanError
from .sql import ident, lit, run, table

OVERRIDES_TABLE = "rdl_graph"

KINDS = ("link", "drop_link", "time", "ignore", "keep")


@dataclass(frozen=True)
class Override:
    kind: str
    table: str
    columns: tuple[str, ...]
    ref_table: str | None = None
    ref_columns: tuple[str, ...] | None = None


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``rdl_graph`` if missing; one row per override, in order of declaration."""
    has_table(con)  # refuses a table of that name that is not rdl-sql's before writing to it
    con.execute(
        exp.Create(
            this=exp.Schema(
                this=table(OVERRIDES_TABLE),
                expressions=[
                    exp.ColumnDef(this=ident("kind"), kind=exp.DataType.build("VARCHAR")),
                    exp.ColumnDef(this=ident("table_name"), kind=exp.DataType.build("VARCHAR")),
                    exp.ColumnDef(this=ident("columns"), kind=exp.DataType.build("VARCHAR[]")),
                    exp.ColumnDef(this=ident("ref_table"), kind=exp.DataType.build("VARCHAR")),
                    exp.ColumnDef(this=ident("ref_columns"), kind=exp.DataType.build("VARCHAR[]")),
                    exp.ColumnDef(this=ident("declared_at"), kind=exp.DataType.build("TIMESTAMP"),
                                  constraints=[exp.ColumnConstraint(kind=exp.DefaultColumnConstraint(
                                      this=exp.CurrentTimestamp()))]),
                ],
            ),
            kind="TABLE",
            exists=True,
        ).sql("duckdb")
    )


def has_table(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``rdl_graph`` exists; a PlanError if a table of that name lacks its columns (a user's own)."""
    rows = run(con, exp.select(exp.column("column_name")).from_("duckdb_columns()").where(
        exp.column("table_name").eq(lit(OVERRIDES_TABLE))
    ).where(exp.column("schema_name").eq(lit("main"))))
    if not rows:
        return False
    missing = [c for c in ("kind", "table_name", "columns", "ref_table", "ref_columns")
               if c not in {r[0].lower() for r in rows}]
    if missing:
        raise PlanError(f"the table `{OVERRIDES_TABLE}` here lacks the column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(missing)} of rdl-sql's graph declarations: it is not rdl-sql's, or was "
                        f"altered; rename it (ALTER TABLE {OVERRIDES_TABLE} RENAME TO {OVERRIDES_TABLE}_old) "
                        f"and rdl-sql makes its own")
    return True


def record(con: duckdb.DuckDBPyConnection, override: Override) -> None:
    """Append one override (the schema reader resolves them in declaration order)."""
    ensure_table(con)
    arr = lambda cols: exp.Array(expressions=[lit(c) for c in cols]) if cols is not None else exp.null()
    insert = exp.insert(
        exp.select(
            lit(override.kind), lit(override.table), arr(override.columns),
            lit(override.ref_table) if override.ref_table is not None else exp.null(),
            arr(override.ref_columns),
            exp.CurrentTimestamp(),
        ),
        table(OVERRIDES_TABLE),
        columns=["kind", "table_name", "columns", "ref_table", "ref_columns", "declared_at"],
    )
    run(con, insert)


def load(con: duckdb.DuckDBPyConnection) -> list[Override]:
    if not has_table(con):
        return []
    q = exp.select("kind", "table_name", "columns", "ref_table", "ref_columns").from_(
        table(OVERRIDES_TABLE)).order_by("declared_at", "rowid")
    return [
        Override(k, t, tuple(c or ()), rt, tuple(rc) if rc is not None else None)
        for k, t, c, rt, rc in run(con, q)
    ]


def add_link(con, child: str, columns, parent: str, ref_columns) -> None:
    record(con, Override("link", child, tuple(columns), parent, tuple(ref_columns)))


def drop_link(con, child: str, columns, parent: str | None = None) -> None:
    record(con, Override("drop_link", child, tuple(columns), parent, None))


def set_time_column(con, tbl: str, column: str | None) -> None:
    """``column=None`` declares the table static (no time column)."""
    record(con, Override("time", tbl, (column,) if column else (), None, None))


def ignore_column(con, tbl: str, column: str) -> None:
    record(con, Override("ignore", tbl, (column,), None, None))


def ignored_columns(con, tbl: str) -> set[str]:
    """The columns of ``tbl`` that ``IGNORE COLUMN`` hides."""
    return {c for ov in load(con) if ov.kind == "ignore" and ov.table == tbl for c in ov.columns}


def keep_column(con, tbl: str, column: str) -> None:
    """Use ``tbl(column)`` as a feature although ``hindsight`` takes it for a running last time."""
    record(con, Override("keep", tbl, (column,), None, None))


def unignore_column(con, tbl: str, column: str) -> None:
    """Undo ``IGNORE COLUMN tbl(column)``: its rows leave ``rdl_graph``, so the column is a feature again."""
    where = exp.and_(exp.column("kind").eq(lit("ignore")), exp.column("table_name").eq(lit(tbl)),
                     exp.func("list_contains", exp.column("columns"), lit(column)))
    run(con, exp.delete(table(OVERRIDES_TABLE), where=where))
