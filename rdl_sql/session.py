"""Execute statements: plain SQL to DuckDB as written, rdl-sql statements through the planner.

A PREDICT is planned (labels, splits, extraction as DuckDB queries), trained
here in Python between short queries (so Ctrl-C stops it cleanly; DuckDB
cannot interrupt a running UDF), and scored by one DuckDB query that calls
the ``rdl_score`` UDF, whose result the cursor then fetches like any other.
"""
from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
from sqlglot.errors import ParseError

from rdl_sql import errors, training
from rdl_sql.bind import to_query
from rdl_sql.dialect import AlterGraph, DescribeGraph, Predict, parse_statement
from rdl_sql.planner import overrides
from rdl_sql.planner.errors import PlanError, did_you_mean
from rdl_sql.planner.schema import read_schema
from rdl_sql.planner.sql import to_sql
from rdl_sql.script import Statement

RESULT_VIEW = "__rdl_result"
_keys = itertools.count(1)


@dataclass
class Outcome:
    """What a statement leaves for the cursor: notices and, for PREDICT, its metrics."""

    notices: list[str] = field(default_factory=list)
    metrics: dict | None = None


class Session:
    """rdl-sql state of one database connection: held models, progress setting."""

    MAX_HELD = 4

    def __init__(self, con: duckdb.DuckDBPyConnection, progress: bool | None = None):
        self.con = con
        self.progress = sys.stderr.isatty() if progress is None else progress
        self._held: list[str] = []
        self._scoring_ready = False

    def close(self) -> None:
        if self._held:
            from rdl_sql.udfs import scoring
            for key in self._held:
                scoring.release(key)
            self._held.clear()

    # ---- dispatch ------------------------------------------------------------
    def execute(self, duck: duckdb.DuckDBPyConnection, stmt: Statement, params=None) -> Outcome:
        """Run ``stmt`` on cursor ``duck``; its result is left on ``duck`` for fetching."""
        if not stmt.is_rdl:
            self._plain(duck, stmt.text, params)
            return Outcome()
        try:
            node = parse_statement(stmt.text)
        except ParseError as e:
            info = e.errors[0] if e.errors else {}
            raise self._parse_error(stmt, info) from None
        try:
            if isinstance(node, Predict):
                if params:
                    raise PlanError("PREDICT takes no query parameters")
                return self._predict(duck, node, stmt)
            if isinstance(node, AlterGraph):
                return self._alter_graph(duck, node)
            if isinstance(node, DescribeGraph):
                return self._describe_graph(duck)
        except PlanError as e:
            p = e.position
            raise errors.located(e.message, stmt.text, stmt.index, p.start if p else None, p.end if p else None,
                                 stmt.first_line) from None
        self._plain(duck, stmt.text, params)
        return Outcome()

    @staticmethod
    def _plain(duck, text: str, params) -> None:
        try:
            duck.execute(text, params) if params is not None else duck.execute(text)
        except duckdb.Error as e:
            raise _wrap_duckdb(e) from e

    @staticmethod
    def _parse_error(stmt: Statement, info: dict) -> errors.ProgrammingError:
        msg = info.get("description") or "syntax error"
        line, col, hl = info.get("line"), info.get("col"), info.get("highlight") or ""
        if line is None or col is None:
            return errors.located(msg, stmt.text, stmt.index, None, None)
        lines = stmt.text.split("\n")
        offset = sum(len(x) + 1 for x in lines[: line - 1])
        end = offset + col - 1
        start = max(offset, end - max(len(hl), 1) + 1)
        return errors.located(msg, stmt.text, stmt.index, start, end, stmt.first_line)

    def _show(self, duck, table: pa.Table) -> None:
        """Leave ``table`` as ``duck``'s current result."""
        # stays registered until the cursor's next result replaces it: DuckDB
        # refuses to unregister while the result is still being fetched
        duck.register(RESULT_VIEW, table)
        duck.execute(f'SELECT * FROM "{RESULT_VIEW}"')

    # ---- PREDICT ---------------------------------------------------------------
    def _predict(self, duck, node: Predict, stmt: Statement) -> Outcome:
        query = to_query(node, stmt.text)
        q = duck.cursor()
        try:
            prep = training.prepare(q, query)
            result = training.train_gnn(q, prep, self.progress)
        finally:
            q.close()
        self._score_gnn(duck, prep.plan, result)
        return Outcome([f"trained gnn: {_describe_metrics(result.metrics)}"], result.metrics)

    def _score_gnn(self, duck, plan, result: training.GnnResult, anchor=None) -> None:
        """Leave on ``duck`` the result of the one query that scores ``plan``'s entities."""
        from rdl_sql.udfs import scoring
        key = f"m{next(_keys)}"
        scoring.hold(key, result.trained, result.graph)
        self._held.append(key)
        while len(self._held) > self.MAX_HELD:
            scoring.release(self._held.pop(0))
        if not self._scoring_ready:
            scoring.register(self.con)
            self._scoring_ready = True
        try:
            duck.execute(to_sql(plan.score_sql(key, anchor)))
        except duckdb.Error as e:
            raise _wrap_duckdb(e) from e

    # ---- graph statements --------------------------------------------------------
    def _alter_graph(self, duck, node: AlterGraph) -> Outcome:
        from rdl_sql.planner.errors import Position
        schema = read_schema(duck, with_counts=False)
        action = node.this.name
        tname = node.args["table"].name
        tinfo = schema.table(tname, Position.of(node.args["table"]))
        cols = [c.name for c in node.args.get("columns") or []]
        for c, cnode in zip(cols, node.args.get("columns") or []):
            if tinfo.column(c) is None:
                raise PlanError(f"column `{c}` not found in table `{tname}`"
                                f"{did_you_mean(c, [x.name for x in tinfo.columns])}", Position.of(cnode))
        if action == "ADD_LINK":
            ref = node.args["ref_table"]
            rinfo = schema.table(ref.name, Position.of(ref))
            ref_cols = [c.name for c in node.args["ref_columns"]]
            for c, cnode in zip(ref_cols, node.args["ref_columns"]):
                if rinfo.column(c) is None:
                    raise PlanError(f"column `{c}` not found in table `{ref.name}`"
                                    f"{did_you_mean(c, [x.name for x in rinfo.columns])}", Position.of(cnode))
            overrides.add_link(duck, tname, cols, ref.name, ref_cols)
            msg = f"link {tname}({', '.join(cols)}) -> {ref.name}({', '.join(ref_cols)}) added"
        elif action == "DROP_LINK":
            if not any(lk.child == tname and lk.child_columns == tuple(cols) for lk in schema.links):
                raise PlanError(f"no link from {tname}({', '.join(cols)})", Position.of(node.args["table"]))
            overrides.drop_link(duck, tname, cols)
            msg = f"link from {tname}({', '.join(cols)}) dropped"
        elif action == "SET_TIME":
            col = cols[0] if cols else None
            if col is not None and tinfo.column(col).dtype.split("(")[0].upper() not in (
                    "DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"):
                raise PlanError(f"`{tname}.{col}` is {tinfo.column(col).dtype}; a time column must be DATE or "
                                f"TIMESTAMP", Position.of(node.args["columns"][0]))
            overrides.set_time_column(duck, tname, col)
            msg = f"time column of {tname}: {col or 'none (static table)'}"
        else:
            for c in cols:
                overrides.ignore_column(duck, tname, c)
            msg = f"{tname}: {', '.join(cols)} ignored"
        self._show(duck, pa.table({"result": [msg]}))
        return Outcome([msg])

    def _describe_graph(self, duck) -> Outcome:
        schema = read_schema(duck)
        rows = {k: [] for k in ("table_name", "column_name", "data_type", "semantic_type", "role", "table_rows")}
        for t in schema.tables.values():
            for c in t.columns:
                role = []
                if c.name in t.primary_key:
                    role.append("primary key")
                if c.name == t.time_column:
                    role.append("time")
                for lk in schema.links:
                    if lk.child == t.name and c.name in lk.child_columns:
                        i = lk.child_columns.index(c.name)
                        role.append(f"link -> {lk.parent}({lk.parent_columns[i]})"
                                    + (" [override]" if lk.declared == "override" else ""))
                for key, val in zip(rows, (t.name, c.name, c.dtype, c.stype, "; ".join(role), t.rows)):
                    rows[key].append(val)
        self._show(duck, pa.table(rows))
        return Outcome(list(schema.notes) + [n for t in schema.tables.values() for n in t.notes])


def _describe_metrics(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())


def _wrap_duckdb(e: duckdb.Error) -> errors.DatabaseError:
    msg = str(e)
    if isinstance(e, (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException,
                      duckdb.SyntaxException)):
        return errors.ProgrammingError(msg)
    if isinstance(e, duckdb.ConstraintException):
        return errors.IntegrityError(msg)
    if isinstance(e, (duckdb.ConversionException, duckdb.OutOfRangeException, duckdb.InvalidInputException)):
        return errors.DataError(msg)
    return errors.OperationalError(msg)
