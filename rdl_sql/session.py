"""Execute statements: plain SQL to DuckDB as written, rdl-sql statements through their handlers.

Dispatch only: parse, pick the handler (``rdl_sql.statements``), turn
planner errors into located messages, and leave the handler's ``Result`` on
the DuckDB cursor, where the DB-API cursor fetches it like any other result.
"""
from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field

import duckdb
from sqlglot import exp
from sqlglot.errors import ParseError

from rdl_sql import errors
from rdl_sql.dialect import AlterGraph, Predict, parse_statement
from rdl_sql.engine import Engine, Result
from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.sql import table as ident_table
from rdl_sql.planner.sql import to_sql
from rdl_sql.script import Statement
from rdl_sql.statements import HANDLERS
from rdl_sql.statements.predict import predict

RESULT_VIEW = "__rdl_result"
_keys = itertools.count(1)


@dataclass
class Outcome:
    """What a statement leaves for the cursor: notices and, for PREDICT, its metrics."""

    notices: list[str] = field(default_factory=list)
    metrics: dict | None = None


class Session:
    """rdl-sql state of one database connection: its engine (held models) and result views."""

    def __init__(self, con: duckdb.DuckDBPyConnection, progress: bool | None = None):
        self.con = con
        self.engine = Engine(con, sys.stderr.isatty() if progress is None else progress)
        self._views: dict[int, list] = {}

    @property
    def progress(self) -> bool:
        return self.engine.progress

    def close(self) -> None:
        self.engine.close()

    def execute(self, duck: duckdb.DuckDBPyConnection, stmt: Statement, params=None) -> Outcome:
        """Run ``stmt`` on cursor ``duck``; its result is left on ``duck`` for fetching."""
        self._drop_views(duck)
        if not stmt.is_rdl:
            self._plain(duck, stmt.text, params)
            return Outcome()
        try:
            node = parse_statement(stmt.text)
        except ParseError as e:
            info = e.errors[0] if e.errors else {}
            raise _parse_error(stmt, info) from None
        try:
            handler = HANDLERS.get(type(node))
            if handler is not None or node.find(Predict) is not None:
                if params and not isinstance(node, AlterGraph):
                    raise PlanError("rdl-sql statements take no query parameters; write the values in the "
                                    "statement")
                if handler is None:
                    return self._composed(duck, node, stmt)
                return self._emit(duck, handler(self.engine, duck, node, stmt))
        except PlanError as e:
            p = e.position
            raise errors.located(e.message, stmt.text, stmt.index, p.start if p else None, p.end if p else None,
                                 stmt.first_line) from None
        self._plain(duck, stmt.text, params)
        return Outcome()

    def _composed(self, duck, node: exp.Expression, stmt: Statement) -> Outcome:
        """A SQL statement with PREDICT where a query stands: splice each prediction query in, run once."""
        outcome = Outcome()
        for inner in list(node.find_all(Predict)):
            result = predict(self.engine, duck, inner, stmt)
            outcome.notices.extend(result.notices)
            outcome.metrics = result.metrics
            inner.replace(self._query_of(duck, result))
        self._plain(duck, node.sql("duckdb"), None)
        return outcome

    # ---- results -----------------------------------------------------------------
    def _emit(self, duck, result: Result) -> Outcome:
        """Run ``result``'s rows as ``duck``'s result; return its notices and metrics."""
        try:
            duck.execute(to_sql(self._query_of(duck, result)))
        except duckdb.Error as e:
            raise _wrap_duckdb(e) from e
        return Outcome(list(result.notices), result.metrics)

    def _query_of(self, duck, result: Result) -> exp.Select:
        """The query giving ``result``'s rows: its own, or a scan of its table registered on ``duck``."""
        if result.query is not None:
            return result.query
        # views stay registered until the cursor's next statement: DuckDB
        # refuses to unregister one while its result is still being fetched
        name = f"{RESULT_VIEW}_{next(_keys)}"
        duck.register(name, result.table)
        self._views.setdefault(id(duck), []).append((duck, name))
        return exp.select("*").from_(ident_table(name))

    def _drop_views(self, duck) -> None:
        views = self._views.pop(id(duck), [])
        if views:
            duck.abort()  # the previous result, possibly half-fetched, is replaced anyway
        for d, name in views:
            d.unregister(name)

    @staticmethod
    def _plain(duck, text: str, params) -> None:
        try:
            duck.execute(text, params) if params is not None else duck.execute(text)
        except duckdb.Error as e:
            raise _wrap_duckdb(e) from e


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
