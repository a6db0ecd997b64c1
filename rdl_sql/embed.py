"""``rdl_sql.register(con)``: rdl-sql from SQL alone on a plain DuckDB Python connection.

After ``rdl_sql.register(con)``, a notebook or a DuckDB-based tool in Python
reaches every rdl-sql statement through three functions on ``con``::

    SELECT * FROM rdl('PREDICT USING churn');             -- a table macro: rows usable in FROM
    SELECT * FROM query(rdl_query('PREDICT USING churn')); -- the same from any cursor of con
    SELECT rdl_run('CREATE TABLE scores AS PREDICT USING churn');  -- a statement that writes

How: a UDF may not use the connection of the query that calls it, so the
statement runs through an rdl-sql session of its own (stored models are
loaded from ``rdl_models`` as ``rdl_sql.connect`` loads them) on a cursor of
``con``, which is its own transaction: it does not see the caller's
uncommitted rows, and what it writes is committed when it returns. DuckDB
has no Python table functions; ``rdl_query`` runs the statement while the
calling query is bound (its argument is a constant), copies the rows into a
fresh in-memory database attached to ``con``'s database instance
(``rdl_result_<n>``, the last ``KEEP`` of them are kept), and returns the
``SELECT`` that reads them, which DuckDB's ``query()`` table function runs;
``rdl(sql)`` is a temporary table macro for ``FROM query(rdl_query(sql))``.
A statement without rows (``CREATE MODEL`` ..., DDL) gives one row per
notice, ``OK`` when there is none.
"""
from __future__ import annotations

import itertools
import threading
import warnings
import weakref

import duckdb

from rdl_sql import errors
from rdl_sql.connection import _is_status
from rdl_sql.script import split
from rdl_sql.session import Session

#: result databases kept attached per registered connection (older ones are detached)
KEEP = 8
_names = itertools.count(1)
#: connection -> its Embedded state, so that registering a connection twice does nothing
_registered: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class Embedded:
    """The rdl-sql session that the functions registered on one DuckDB connection run statements in."""

    def __init__(self, con: duckdb.DuckDBPyConnection, progress: bool | None):
        self._base = con.cursor()  # a connection of its own to the database: free while the caller's query runs
        self.session = Session(self._base, progress)
        self._lock = threading.Lock()  # DuckDB may call a UDF from several threads; one statement at a time
        self._results: list[str] = []

    def _run(self, sql: str):
        """Run ``sql`` (one statement or a script) on a fresh cursor: (the cursor, holding the last statement's
        result; that statement; its outcome)."""
        statements = split(sql or "")
        if not statements:
            raise errors.ProgrammingError("rdl-sql: empty statement")
        duck = self._base.cursor()
        try:
            for stmt in statements:
                duck.abort()
                outcome = self.session.execute(duck, stmt)
            return duck, statements[-1], outcome
        except BaseException:
            duck.close()
            raise

    def query(self, sql: str) -> str:
        """Run ``sql``; copy its rows into an attached in-memory database; the SELECT that reads them."""
        with self._lock:
            duck, stmt, outcome = self._run(sql)
            try:
                desc = duck.description
                if desc is not None and not _is_status(stmt, desc):
                    with warnings.catch_warnings():  # DuckDB warns that Arrow from an executed result copies
                        warnings.simplefilter("ignore", UserWarning)
                        rows = duck.to_arrow_table()
                else:
                    duck.abort()
                    rows = None
                name = f"rdl_result_{next(_names)}"
                duck.execute(f'ATTACH \':memory:\' AS "{name}" (READ_WRITE)')  # also on a read-only file
                if rows is None:
                    texts = list(outcome.notices) or ["OK"]
                    duck.execute(f'CREATE TABLE "{name}".result AS SELECT unnest(?::VARCHAR[]) AS notice', [texts])
                else:
                    duck.register("__rdl_rows", rows)
                    duck.execute(f'CREATE TABLE "{name}".result AS SELECT * FROM __rdl_rows')
                    duck.unregister("__rdl_rows")
                self._results.append(name)
                while len(self._results) > KEEP:
                    duck.execute(f'DETACH "{self._results.pop(0)}"')
            finally:
                duck.close()
        return f'SELECT * FROM "{name}".result'

    def run(self, sql: str) -> str:
        """Run ``sql``; a line that says what it did: rows returned or changed, then its notices."""
        with self._lock:
            duck, stmt, outcome = self._run(sql)
            try:
                desc = duck.description
                if desc is None:
                    said = "OK"
                elif _is_status(stmt, desc):
                    row = duck.fetchone() if desc[0][0] == "Count" else None
                    said = f"{row[0]} rows changed" if row and row[0] is not None else "OK"
                else:
                    n = len(duck.fetchall())
                    said = f"{n} row{'' if n == 1 else 's'} (read them with rdl(...) or rdl_query(...))"
            finally:
                duck.close()
        return "\n".join([said, *outcome.notices])

    def close(self) -> None:
        """Release the session's held models; when ``con`` is gone, its cursors are closed already."""
        try:
            self.session.close()
        except duckdb.Error:  # the connection closed first: DuckDB dropped its functions with it
            pass
        self._base.close()


def register(con: duckdb.DuckDBPyConnection, progress: bool | None = False) -> None:
    """Make ``con`` run rdl-sql statements from SQL: ``rdl(sql)``, ``rdl_query(sql)``, ``rdl_run(sql)``.

    ``progress``: show a training progress bar (default off; None: when
    stderr is a terminal or in a notebook). Registering ``con`` again does
    nothing. The functions live as long as ``con``.
    """
    if not isinstance(con, duckdb.DuckDBPyConnection):
        raise errors.InterfaceError("rdl_sql.register expects a duckdb connection (duckdb.connect(...)); "
                                    "an rdl_sql.connect connection runs rdl-sql statements already")
    if con in _registered:
        return
    state = Embedded(con, progress)
    try:
        con.create_function("rdl_query", _call(state.query), ["VARCHAR"], "VARCHAR", side_effects=True)
        con.create_function("rdl_run", _call(state.run), ["VARCHAR"], "VARCHAR", side_effects=True)
    except duckdb.Error as e:
        state.close()
        if "already" in str(e).lower() or "not an scalar function" in str(e).lower():
            raise errors.InterfaceError(
                "rdl_sql.register: the name rdl_query or rdl_run is taken on this database: by another "
                "connection of this process that registered rdl-sql (DuckDB shares Python functions between "
                "them; use that connection or a cursor of it), or by a function or macro of your own (drop or "
                f"rename it) (DuckDB: {str(e).splitlines()[0]})") from None
        raise errors.InterfaceError(f"rdl_sql.register: {e}") from None
    con.execute("CREATE OR REPLACE TEMP MACRO rdl(sql) AS TABLE FROM query(rdl_query(sql))")
    _registered[con] = state
    weakref.finalize(con, state.close)  # the held models go when the connection does


def _call(method):
    """``method`` as a UDF body: SQL NULL in, NULL out."""
    def udf(sql):
        if sql is None:
            return None
        return method(sql)
    udf.__name__ = method.__name__
    return udf
