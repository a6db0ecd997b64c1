"""Execute statements: plain SQL to DuckDB as written, rdl-sql statements through their handlers.

Dispatch only: parse, put parameter values into the parsed statement, pick
the handler (``rdl_sql.statements``), turn planner and DuckDB errors into
located messages, and leave the handler's ``Result`` on the DuckDB cursor,
where the DB-API cursor fetches it like any other result.
"""
from __future__ import annotations

import itertools
import re
import sys
from dataclasses import dataclass, field

import duckdb
from sqlglot import exp
from sqlglot.errors import ParseError

from rdl_sql import errors
from rdl_sql.bind import substitute
from rdl_sql.dialect import Predict, deep_recursion, parse_statement, plain_message
from rdl_sql.engine import Engine, Result
from rdl_sql.planner.errors import PlanError, Position
from rdl_sql.planner.sql import ident, to_sql
from rdl_sql.planner.sql import table as ident_table
from rdl_sql.script import Statement, suggest
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
        """Run ``stmt`` on cursor ``duck``; its result is left on ``duck`` for fetching.

        ``params`` (a sequence for ``?`` / ``$1``, a mapping for ``$name``) go
        to DuckDB with plain SQL; in an rdl-sql statement they are put into
        the parsed statement as literals, never into its text.
        """
        self._drop_views(duck)
        self.engine.cancel.clear()  # a cancel stops the statement running when it comes, not a later one
        if not stmt.is_rdl:
            self._plain(duck, stmt, stmt.text, params)
            return Outcome()
        try:
            node = parse_statement(stmt.text)
        except ParseError as e:
            raise _parse_error(stmt, e.errors[0] if e.errors else {}) from None
        if isinstance(node, exp.Command):  # sqlglot could not parse it: a misspelt rdl-sql word, or DuckDB's own
            hint = suggest(stmt.text)
            if hint is not None:
                raise _located(stmt, *hint)
            self._plain(duck, stmt, stmt.text, params)
            return Outcome()
        try:
            with deep_recursion():
                handler = HANDLERS.get(type(node))
                if handler is None and node.find(Predict) is None:
                    self._plain(duck, stmt, stmt.text, params)
                    return Outcome()
                node = substitute(node, params)
                if handler is None:
                    return self._composed(duck, node, stmt)
                return self._emit(duck, handler(self.engine, duck, node, stmt), node)
        except PlanError as e:
            p = e.position
            raise errors.located(e.message, stmt.text, stmt.index, p.start if p else None, p.end if p else None,
                                 stmt.first_line) from None
        except duckdb.Error as e:  # a query rdl-sql generated failed: DuckDB's message names the cause
            raise _wrap_duckdb(e, stmt) from None
        except KeyboardInterrupt:
            if self.engine.cancel.is_set():  # Connection.cancel() from another thread, not Ctrl-C
                raise errors.OperationalError(f"statement {stmt.index}: cancelled; the database is as it was "
                                              f"before the statement") from None
            raise
        except (RecursionError, MemoryError) as e:
            raise errors.OperationalError(f"statement {stmt.index}: too large or too deeply nested to run "
                                          f"({e})") from None
        except errors.Error:
            raise
        except Exception as e:  # a bug of rdl-sql, not a mistake of the user: still no traceback for SQL users
            raise errors.InternalError(f"statement {stmt.index}: internal error ({e}); the statement was not "
                                       f"run to its end; please report this with the statement") from e

    def _composed(self, duck, node: exp.Expression, stmt: Statement) -> Outcome:
        """A SQL statement with PREDICT where a query stands: splice each prediction query in, run once."""
        outcome = Outcome()
        for inner in list(node.find_all(Predict)):
            result = predict(self.engine, duck, inner, stmt)
            outcome.notices.extend(result.notices)
            outcome.metrics = result.metrics
            query = self._query_of(duck, result)
            _check_order(duck, query, inner)
            inner.replace(_ordered(query, inner))
        try:
            duck.execute(node.sql("duckdb"))
        except (duckdb.BinderException, duckdb.CatalogException, duckdb.ParserException) as e:
            raise _around_predict(e, node) from None
        except duckdb.Error as e:  # a value DuckDB cannot cast: its class stays, the spliced SQL goes
            raise _wrap_duckdb(e, stmt, quoted_sql=False) from None
        return outcome

    # ---- results -----------------------------------------------------------------
    def _emit(self, duck, result: Result, node: exp.Expression) -> Outcome:
        """Run ``result``'s rows as ``duck``'s result; return its notices and metrics."""
        query = self._query_of(duck, result)
        if isinstance(node, Predict):
            _check_order(duck, query, node)
            query = _ordered(query, node)
        duck.execute(to_sql(query))
        return Outcome(list(result.notices), result.metrics)

    def _query_of(self, duck, result: Result) -> exp.Select:
        """The query giving ``result``'s rows: its own, or a scan of its table registered on ``duck``.

        Inside a transaction the user opened on ``duck``, a query is run first on a
        connection of its own and its rows registered instead: rdl-sql statements read
        committed data only (the model's graph was read so), and the scoring functions,
        installed after that transaction began, are not in its catalog.
        """
        if result.query is not None and _in_transaction(duck):
            work = duck.cursor()
            try:
                result = Result(table=work.sql(to_sql(result.query)).to_arrow_table(), notices=result.notices,
                                metrics=result.metrics)
            finally:
                work.close()
        if result.query is not None:
            return result.query
        # views stay registered until the cursor's next statement: DuckDB
        # refuses to unregister one while its result is still being fetched
        name = f"{RESULT_VIEW}_{next(_keys)}"
        duck.register(name, result.table)
        self._views.setdefault(id(duck), []).append((duck, name))
        if result.select is not None:
            return result.select(ident_table(name))
        return exp.select("*").from_(ident_table(name))

    def _drop_views(self, duck) -> None:
        views = self._views.pop(id(duck), [])
        if views:
            duck.abort()  # the previous result, possibly half-fetched, is replaced anyway
        for d, name in views:
            d.unregister(name)

    @staticmethod
    def _plain(duck, stmt: Statement, text: str, params) -> None:
        try:
            duck.execute(text, params) if params is not None else duck.execute(text)
        except duckdb.Error as e:
            hint = suggest(stmt.text)
            if hint is not None:  # SHOW MODEL, CREATE MODLE ...: say which rdl-sql statement was meant
                message, start, end = hint
                raise _located(stmt, f"{message} (DuckDB: {str(e).splitlines()[0]})", start, end) from None
            raise _wrap_duckdb(e, stmt) from None
        except (TypeError, ValueError, OverflowError) as e:  # parameters DuckDB's client cannot convert
            raise errors.InterfaceError(f"statement {stmt.index}: parameters not accepted: {e}") from None


def _in_transaction(duck) -> bool:
    """Whether ``duck`` has a transaction open (BEGIN): outside one each statement gets a transaction id
    of its own, inside one they share it."""
    first = duck.execute("SELECT txid_current()").fetchall()
    return duck.execute("SELECT txid_current()").fetchall() == first


def _check_order(duck, query: exp.Select, node: Predict) -> None:
    """A PREDICT's ORDER BY names columns of its result: say which exist, not DuckDB's binder error on
    rdl-sql's wrapper query (a regression result has no ``score``, the README's example orders by)."""
    _check_limit(node.args.get("limit"))
    order = node.args.get("order")
    if order is None:
        return
    names = list(duck.sql(to_sql(query)).columns)  # binds the query, runs nothing
    folded = {n.lower() for n in names}
    for o in order.expressions:
        key = o.this
        if isinstance(key, exp.Literal) and key.is_int and not 1 <= int(key.name) <= len(names):
            raise PlanError(f"ORDER BY {key.name}: the result has {len(names)} columns ({', '.join(names)})",
                            Position.of(key))
        for c in o.find_all(exp.Column):
            if c.table:
                raise PlanError(f"ORDER BY `{c.table}.{c.name}`: a PREDICT's ORDER BY names the columns of its "
                                f"result, without a table (`{c.name}`); its columns are {', '.join(names)}",
                                Position.of(c))
            if c.name.lower() not in folded:
                extra = " (a regression PREDICT has no score)" if c.name.lower() == "score" else ""
                raise PlanError(f"ORDER BY `{c.name}`: the result has no such column{extra}; its columns are "
                                f"{', '.join(names)}", Position.of(c))


def _check_limit(limit: exp.Expression | None) -> None:
    """A PREDICT's LIMIT is a count of rows: DuckDB's own errors for -1 or 'a' quote the wrapper query."""
    if limit is None:
        return
    value = limit.expression
    if isinstance(value, exp.Literal) and value.is_int:
        return
    raise PlanError(f"LIMIT {value.sql('duckdb')}: a PREDICT's LIMIT is a whole number of rows, 0 or more",
                    Position.of(value) or Position.of(value.find(exp.Literal)))


def _around_predict(e: duckdb.Error, node: exp.Expression) -> PlanError:
    """DuckDB's error on a statement around a PREDICT, without the SQL rdl-sql spliced the prediction
    query into (its ``LINE 1: ...`` quotes names and positions the user never wrote).

    A column DuckDB could not bind is located where the user wrote it;
    otherwise the message is DuckDB's first line, shown with the user's
    statement.
    """
    text = str(e)
    first = text.splitlines()[0] if text else type(e).__name__
    found = re.search(r'Referenced column "([^"]+)" not found|does not have a column named "([^"]+)"', text)
    name = found and (found.group(1) or found.group(2))
    written = next((c for c in node.find_all(exp.Column) if c.name == name and Position.of(c) is not None),
                   None) if name else None
    if written is None:
        return PlanError(re.sub(r"^[A-Za-z ]+ Error: ", "", first))
    bindings = re.search(r"Candidate bindings: (.+)", text)
    close = f"; DuckDB's closest names: {bindings.group(1).strip(' :')}" if bindings else ""
    return PlanError(f"column `{written.sql('duckdb')}` not found{close}", Position.of(written))


def _ordered(query: exp.Select, node: Predict) -> exp.Select:
    """``query`` ordered and cut as the PREDICT's own ORDER BY / LIMIT say."""
    order, limit = node.args.get("order"), node.args.get("limit")
    if order is None and limit is None:
        return query
    out = exp.select("*").from_(exp.Subquery(this=query, alias=exp.TableAlias(this=ident("__predictions"))))
    if order is not None:
        out = out.order_by(*[o.copy() for o in order.expressions])
    if limit is not None:
        out.set("limit", limit.copy())
    return out


def _located(stmt: Statement, message: str, start: int | None, end: int | None) -> errors.ProgrammingError:
    return errors.located(message, stmt.text, stmt.index, start, end, stmt.first_line)


def _parse_error(stmt: Statement, info: dict) -> errors.ProgrammingError:
    hint = suggest(stmt.text)
    if hint is not None:  # EXPLIAN PREDICT ...: the misspelt word is the mistake, not what followed it
        return _located(stmt, *hint)
    msg = plain_message(info.get("description") or "syntax error")
    if info.get("start") is not None:
        return _located(stmt, msg, info["start"], info.get("end"))
    line, col, hl = info.get("line"), info.get("col"), info.get("highlight") or ""
    if line is None or col is None:
        return errors.located(msg, stmt.text, stmt.index, None, None)
    lines = stmt.text.split("\n")
    offset = sum(len(x) + 1 for x in lines[: line - 1])
    end = offset + col - 1
    start = max(offset, end - max(len(hl), 1) + 1)
    return _located(stmt, msg, start, end)


def _wrap_duckdb(e: duckdb.Error, stmt: Statement | None = None, quoted_sql: bool = True) -> errors.DatabaseError:
    """DuckDB's error as the DB-API class for it; ``quoted_sql=False`` drops the ``LINE 1: ...`` excerpt
    DuckDB adds, where that is SQL rdl-sql generated rather than the user's."""
    msg = str(e) if quoted_sql else str(e).split("\n\nLINE ")[0].rstrip()
    if stmt is not None and not msg.startswith("statement "):
        msg = f"statement {stmt.index}: {msg}"
    if isinstance(e, (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException,
                      duckdb.SyntaxException)):
        return errors.ProgrammingError(msg)
    if isinstance(e, duckdb.ConstraintException):
        return errors.IntegrityError(msg)
    if isinstance(e, (duckdb.ConversionException, duckdb.OutOfRangeException, duckdb.InvalidInputException)):
        return errors.DataError(msg)
    return errors.OperationalError(msg)
