"""PEP 249 connection and cursor over DuckDB, understanding rdl-sql statements.

Each cursor owns a DuckDB cursor (a separate DuckDB connection to the same
database), so results of two cursors never interfere; every statement's
result, plain or PREDICT, ends up on that DuckDB cursor and is fetched from
it, without a copy through Python rows.
"""
from __future__ import annotations

import warnings
from typing import Any, Iterable, Sequence

import duckdb

from rdl_sql import errors
from rdl_sql.script import Statement, split
from rdl_sql.session import Outcome, Session


class Cursor:
    arraysize = 1

    def __init__(self, connection: "Connection"):
        self.connection = connection
        self._duck = connection._con.cursor()
        self._has_result = False
        self._closed = False
        self.notices: list[str] = []
        self.metrics: dict | None = None

    # ---- execution ---------------------------------------------------------------
    def execute(self, operation: "str | Statement", parameters: Sequence[Any] | dict | None = None) -> "Cursor":
        """Run a statement or a script; the last statement's result is fetched.

        ``operation`` may also be one ``rdl_sql.script.Statement`` (a piece of a
        larger script), so that messages name its place in that script.
        """
        self._check_open()
        statements = [operation] if isinstance(operation, Statement) else split(operation)
        if not statements:
            raise errors.ProgrammingError("empty statement")
        if parameters is not None and len(statements) > 1:
            raise errors.ProgrammingError("parameters are only accepted with a single statement")
        self.notices, self.metrics = [], None
        self._has_result = False
        for stmt in statements:
            outcome: Outcome = self.connection._session.execute(self._duck, stmt, parameters)
            self.notices.extend(outcome.notices)
            self.metrics = outcome.metrics if outcome.metrics is not None else self.metrics
        self._has_result = True
        return self

    def executemany(self, operation: str, seq_of_parameters: Iterable[Sequence[Any]]) -> "Cursor":
        for params in seq_of_parameters:
            self.execute(operation, params)
        return self

    # ---- results -----------------------------------------------------------------
    def _result(self):
        self._check_open()
        if not self._has_result:
            raise errors.ProgrammingError("no result: call execute() first")
        return self._duck

    def _fetch(self, method: str, *args):
        try:
            return getattr(self._result(), method)(*args)
        except duckdb.InvalidInputException as e:
            if "No open result set" in str(e):
                raise errors.ProgrammingError("the last statement returned no rows to fetch") from None
            raise errors.DatabaseError(str(e)) from e

    def fetchone(self):
        return self._fetch("fetchone")

    def fetchmany(self, size: int | None = None):
        return self._fetch("fetchmany", size or self.arraysize)

    def fetchall(self):
        return self._fetch("fetchall")

    def fetchdf(self):
        """The rest of the result as a pandas DataFrame."""
        return self._fetch("fetchdf")

    def fetch_arrow_table(self):
        """The rest of the result as a pyarrow Table."""
        with warnings.catch_warnings():
            # DuckDB warns that Arrow from an executed result copies once; this
            # method exists for DB-API users who already hold such a result
            warnings.simplefilter("ignore", UserWarning)
            return self._fetch("to_arrow_table")

    @property
    def description(self):
        if not self._has_result or self._closed:
            return None
        return self._duck.description

    @property
    def rowcount(self) -> int:
        return -1 if not self._has_result or self._closed else self._duck.rowcount

    def setinputsizes(self, sizes) -> None:
        pass

    def setoutputsize(self, size, column=None) -> None:
        pass

    def __iter__(self):
        while (row := self.fetchone()) is not None:
            yield row

    # ---- lifetime ------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._duck.close()
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise errors.InterfaceError("cursor is closed")
        if self.connection._closed:
            raise errors.InterfaceError("connection is closed")

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Connection:
    """A database file (or ``:memory:``) opened with rdl-sql's statements available."""

    def __init__(self, database: str = ":memory:", read_only: bool = False, progress: bool | None = None,
                 config: dict | None = None):
        try:
            self._con = duckdb.connect(database, read_only=read_only, config=config or {})
        except duckdb.Error as e:
            raise errors.OperationalError(f"cannot open {database!r}: {e}") from e
        self._closed = False
        self._session = Session(self._con, progress)
        self._cursors: list[Cursor] = []
        self._default: Cursor | None = None

    def cursor(self) -> Cursor:
        if self._closed:
            raise errors.InterfaceError("connection is closed")
        cur = Cursor(self)
        self._cursors.append(cur)
        return cur

    # shortcuts that use one default cursor, as sqlite3 and duckdb offer
    def execute(self, operation: str, parameters=None) -> Cursor:
        if self._default is None or self._default._closed:
            self._default = self.cursor()
        return self._default.execute(operation, parameters)

    def _default_cursor(self) -> Cursor:
        if self._default is None:
            raise errors.ProgrammingError("no result: call execute() first")
        return self._default

    def fetchone(self):
        return self._default_cursor().fetchone()

    def fetchmany(self, size=None):
        return self._default_cursor().fetchmany(size)

    def fetchall(self):
        return self._default_cursor().fetchall()

    def fetchdf(self):
        return self._default_cursor().fetchdf()

    def fetch_arrow_table(self):
        return self._default_cursor().fetch_arrow_table()

    @property
    def description(self):
        return self._default.description if self._default else None

    @property
    def duckdb_connection(self) -> duckdb.DuckDBPyConnection:
        """The underlying DuckDB connection, for tools that want one."""
        return self._con

    def commit(self) -> None:
        if self._closed:
            raise errors.InterfaceError("connection is closed")
        try:
            self._con.commit()
        except duckdb.TransactionException:
            pass  # nothing open: DuckDB runs in auto-commit mode

    def rollback(self) -> None:
        if self._closed:
            raise errors.InterfaceError("connection is closed")
        try:
            self._con.rollback()
        except duckdb.TransactionException:
            pass

    def cancel(self) -> None:
        """Stop what this connection is running, from any thread: a training stops between batches,
        a running DuckDB query is interrupted; the statement fails with an OperationalError."""
        if self._closed:
            return
        self._session.engine.cancel.set()
        self._con.interrupt()
        for cur in list(self._cursors):
            if not cur._closed:
                cur._duck.interrupt()

    def close(self) -> None:
        if self._closed:
            return
        for cur in self._cursors:
            cur.close()
        self._session.close()
        self._con.close()
        self._closed = True

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def connect(database: str = ":memory:", read_only: bool = False, progress: bool | None = None,
            config: dict | None = None) -> Connection:
    """Open ``database`` (a DuckDB file path or ``:memory:``) as a PEP 249 connection."""
    return Connection(database, read_only, progress, config)
