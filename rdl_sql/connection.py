"""PEP 249 connection and cursor over DuckDB, understanding rdl-sql statements.

Each cursor owns a DuckDB cursor (a separate DuckDB connection to the same
database), so results of two cursors never interfere; every statement's
result, plain or PREDICT, ends up on that DuckDB cursor and is fetched from
it, without a copy through Python rows.

Transactions: auto-commit, as DuckDB itself works. Every statement commits
on its own unless a ``BEGIN`` opened a transaction on that cursor;
``Connection.commit()`` / ``rollback()`` end the open transaction of every
cursor of the connection (``Connection.execute``'s one included), so
``con.execute("BEGIN"); con.execute("INSERT ..."); con.commit()`` keeps the
row and ``rollback()`` drops it. PEP 249 asks for auto-commit to start off;
rdl-sql does not, because cursors are separate DuckDB connections (an
implicit transaction per cursor would hide one cursor's rows from the other,
which PEP 249 forbids) and because training and stored models are written
in transactions of their own, which must not wait on a user's open one.
"""
from __future__ import annotations

import datetime as _dt
import html
import sys
import time
import warnings
from typing import Any, Iterable, Sequence

import duckdb
import pyarrow as pa

from rdl_sql import errors
from rdl_sql.script import Statement, split
from rdl_sql.session import Outcome, Session


# ---- PEP 249 type objects and constructors ----------------------------------------------
class DBAPITypeObject:
    """A PEP 249 type object: equal to every DuckDB type code (``cursor.description[i][1]``) of its group."""

    def __init__(self, name: str, *types: str):
        self.name = name
        self.types = frozenset(types)

    def __eq__(self, other) -> bool:
        if isinstance(other, DBAPITypeObject):
            return other is self
        text = str(other).strip().upper()
        if text.endswith("]"):  # a list or array of the type is not the type
            return False
        return text.split("(", 1)[0].strip() in self.types

    def __ne__(self, other) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"rdl_sql.{self.name}"


STRING = DBAPITypeObject("STRING", "VARCHAR", "CHAR", "BPCHAR", "TEXT", "STRING", "UUID", "ENUM", "JSON")
BINARY = DBAPITypeObject("BINARY", "BLOB", "BYTEA", "BINARY", "VARBINARY", "BIT", "BITSTRING")
NUMBER = DBAPITypeObject("NUMBER", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                         "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "REAL", "DOUBLE", "DECIMAL", "NUMERIC",
                         "VARINT", "BIGNUM")
DATETIME = DBAPITypeObject("DATETIME", "DATE", "TIME", "TIMESTAMP", "DATETIME", "TIMESTAMP WITH TIME ZONE",
                           "TIMESTAMPTZ", "TIME WITH TIME ZONE", "TIMETZ", "TIMESTAMP_S", "TIMESTAMP_MS",
                           "TIMESTAMP_NS", "INTERVAL")
#: DuckDB's ``rowid`` pseudo-column is a BIGINT (so NUMBER); no column type is a row id of its own
ROWID = DBAPITypeObject("ROWID")

Date = _dt.date
Time = _dt.time
Timestamp = _dt.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> _dt.date:  # noqa: N802 - the name PEP 249 requires
    return Date(*time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> _dt.time:  # noqa: N802
    return Time(*time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> _dt.datetime:  # noqa: N802
    return Timestamp(*time.localtime(ticks)[:6])


# ---- which statements return rows ---------------------------------------------------------
#: DuckDB answers DDL and DML with one ``Count`` (rows changed) or ``Success`` column; for PEP 249
#: such a statement has no result set: ``description`` is None and ``rowcount`` the Count
_STATUS_COLUMNS = {("Count", "BIGINT"), ("Success", "BOOLEAN")}
_ROW_KINDS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN, duckdb.StatementType.CALL,
              duckdb.StatementType.RELATION}


#: the first word of an rdl-sql statement whose DuckDB part changes data (CREATE TABLE t AS PREDICT ...)
_STATUS_WORDS = {"CREATE", "INSERT", "UPDATE", "DELETE", "COPY"}


def _is_status(stmt: Statement, description) -> bool:
    """True if ``description`` is DuckDB's status answer to a statement that returns no rows."""
    if description is None or len(description) != 1:
        return False
    if (description[0][0], str(description[0][1]).upper()) not in _STATUS_COLUMNS:
        return False
    if stmt.is_rdl:  # PREDICT spliced into a statement: DuckDB cannot parse the text, its first word tells
        words = stmt.text.split(None, 1)
        return bool(words) and words[0].upper() in _STATUS_WORDS
    try:
        kinds = [s.type for s in duckdb.extract_statements(stmt.text)]
    except duckdb.Error:
        return False
    return bool(kinds) and kinds[-1] not in _ROW_KINDS


def _in_notebook() -> bool:
    """True inside a Jupyter kernel, where a progress bar shows although stderr is no terminal."""
    return "ipykernel" in sys.modules


class Cursor:
    """A PEP 249 cursor; ``notices`` and ``metrics`` hold what the last rdl-sql statement reported."""

    arraysize = 1

    def __init__(self, connection: Connection):
        self.connection = connection
        self._duck = connection._con.cursor()
        self._has_result = False
        self._description = None
        self._rowcount = -1
        self._closed = False
        self._last = ""
        self._peeked = None  # the result, materialised once for a notebook's display
        self.notices: list[str] = []
        self.metrics: dict | None = None

    # ---- execution ---------------------------------------------------------------
    def execute(self, operation: str | Statement, parameters: Sequence[Any] | dict | None = None) -> Cursor:
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
        self._forget_peeked()
        self._has_result, self._description, self._rowcount = False, None, -1
        for stmt in statements:
            # a previous result, fetched in part or not at all, is dropped: DuckDB refuses other work
            # (registering a result table or a function) on a connection whose result is unfinished
            self._duck.abort()
            outcome: Outcome = self.connection._session.execute(self._duck, stmt, parameters)
            self.notices.extend(outcome.notices)
            self.metrics = outcome.metrics if outcome.metrics is not None else self.metrics
        self._settle(statements[-1])
        return self

    def _settle(self, stmt: Statement) -> None:
        """Set ``description`` and ``rowcount`` for the last statement's result."""
        self._last = stmt.text
        desc = self._duck.description
        if desc is None:
            return
        if _is_status(stmt, desc):
            if desc[0][0] == "Count":
                row = self._duck.fetchone()
                self._rowcount = int(row[0]) if row and row[0] is not None else -1
            self._duck.abort()
            return
        self._has_result, self._description = True, desc
        self._rowcount = self._duck.rowcount

    def executemany(self, operation: str, seq_of_parameters: Iterable[Sequence[Any]]) -> Cursor:
        """Run one statement once per parameter set; ``rowcount`` is the total of rows changed."""
        total = 0
        for params in seq_of_parameters:
            self.execute(operation, params)
            total = total + self._rowcount if total >= 0 and self._rowcount >= 0 else -1
        self._rowcount = total
        return self

    def callproc(self, procname: str, parameters: Sequence[Any] = ()):
        raise errors.NotSupportedError("DuckDB has no stored procedures: call a function with "
                                       "execute('SELECT fn(?)', ...) or a table function with "
                                       "execute('SELECT * FROM fn(?)', ...)")

    def nextset(self):
        raise errors.NotSupportedError("a statement has one result set; a script's result is its last statement's")

    # ---- results -----------------------------------------------------------------
    def _result(self):
        self._check_open()
        if not self._has_result:
            if self._last:
                raise errors.ProgrammingError("the last statement returned no rows to fetch")
            raise errors.ProgrammingError("no result: call execute() first")
        return self._duck

    def _fetch(self, method: str, *args):
        try:
            return getattr(self._result(), method)(*args)
        except duckdb.InvalidInputException as e:
            if "No open result set" in str(e):
                raise errors.ProgrammingError("the last statement returned no rows to fetch") from None
            raise errors.DatabaseError(str(e)) from e
        except duckdb.Error as e:
            raise errors.OperationalError(str(e)) from e

    def fetchone(self):
        return self._fetch("fetchone")

    def fetchmany(self, size: int | None = None):
        return self._fetch("fetchmany", self.arraysize if size is None else size)

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
        """One 7-tuple per result column (name, DuckDB type, then five Nones); None without a result set."""
        return None if self._closed else self._description

    @property
    def rowcount(self) -> int:
        """Rows changed by the last INSERT / UPDATE / DELETE (summed by executemany); -1 when unknown."""
        return -1 if self._closed else self._rowcount

    @property
    def lastrowid(self) -> None:
        return None  # DuckDB exposes no id of an inserted row

    def setinputsizes(self, sizes) -> None:
        pass

    def setoutputsize(self, size, column=None) -> None:
        pass

    def __iter__(self):
        while (row := self.fetchone()) is not None:
            yield row

    # ---- display -----------------------------------------------------------------
    def __repr__(self) -> str:
        state = "closed" if self._closed else "no result"
        if not self._closed and self._description is not None:
            state = "result (" + ", ".join(d[0] for d in self._description) + ")"
        elif not self._closed and self._rowcount >= 0:
            state = f"{self._rowcount} row{'' if self._rowcount == 1 else 's'} changed"
        metrics = f"; metrics: {_metrics_text(self.metrics)}" if self.metrics else ""
        return f"<rdl_sql.Cursor {state}{metrics}>"

    def _repr_html_(self) -> str:
        """A notebook's view: the first rows of the result (still all fetchable afterwards), notices, metrics."""
        parts = []
        if not self._closed and self._has_result:
            head, total = self._peek(10)
            parts.append(head.to_pandas().to_html(index=False, max_cols=30))
            parts.append(f"<p>{total} row{'' if total == 1 else 's'}" + (" (10 shown)" if total > 10 else "")
                         + "</p>")
        elif not self._closed and self._rowcount >= 0:
            parts.append(f"<p>{self._rowcount} row{'' if self._rowcount == 1 else 's'} changed</p>")
        for n in self.notices:
            parts.append(f"<pre>{html.escape(n)}</pre>")
        if self.metrics:
            rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_value_text(v))}</td></tr>"
                           for k, v in self.metrics.items())
            parts.append(f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>")
        return "\n".join(parts) or html.escape(repr(self))

    def _peek(self, n: int):
        """The first ``n`` rows of the unfetched result and its row count, leaving the result fetchable.

        The rest of the result is read once into Arrow and served again from
        DuckDB, so a notebook that displays a cursor and then fetches from it
        gets every row, with DuckDB's own Python types.
        """
        if self._peeked is None:
            table = self.fetch_arrow_table()
            if table is None:  # every row fetched already: nothing left to show or to serve again
                return pa.table({d[0]: pa.array([], pa.null()) for d in self._description}), 0
            self._duck.register(self._peek_view, table)
            self._duck.execute(f'SELECT * FROM "{self._peek_view}"')
            self._peeked = table
        return self._peeked.slice(0, n), self._peeked.num_rows

    @property
    def _peek_view(self) -> str:
        return f"__rdl_shown_{id(self)}"

    def _forget_peeked(self) -> None:
        """Drop the view ``_peek`` left registered (the next statement replaces its result anyway)."""
        if self._peeked is not None:
            self._duck.abort()
            self._duck.unregister(self._peek_view)
            self._peeked = None

    # ---- lifetime ------------------------------------------------------------------
    def close(self) -> None:
        """Close the cursor; closing it again does nothing (any other call raises InterfaceError)."""
        if not self._closed:
            self._duck.close()
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise errors.InterfaceError("cursor is closed")
        if self.connection._closed:
            raise errors.InterfaceError("connection is closed")

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _value_text(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _metrics_text(metrics: dict) -> str:
    return ", ".join(f"{k} {_value_text(v)}" for k, v in metrics.items())


class Connection:
    """A database file (or ``:memory:``) opened with rdl-sql's statements available."""

    # PEP 249's optional extension: the exceptions as connection attributes
    Warning = errors.Warning
    Error = errors.Error
    InterfaceError = errors.InterfaceError
    DatabaseError = errors.DatabaseError
    DataError = errors.DataError
    OperationalError = errors.OperationalError
    IntegrityError = errors.IntegrityError
    InternalError = errors.InternalError
    ProgrammingError = errors.ProgrammingError
    NotSupportedError = errors.NotSupportedError

    def __init__(self, database: str = ":memory:", read_only: bool = False, progress: bool | None = None,
                 config: dict | None = None, storage_compatibility: str | None = None):
        config = dict(config or {})
        if storage_compatibility is not None:  # the oldest DuckDB that must read a file this creates
            config["storage_compatibility_version"] = storage_compatibility
        try:
            self._con = duckdb.connect(database, read_only=read_only, config=config)
        except duckdb.Error as e:
            raise errors.OperationalError(f"cannot open {database!r}: {e}") from e
        self.database, self.read_only = database, read_only
        self._closed = False
        if progress is None:  # a bar where someone watches: a terminal, or a notebook
            progress = sys.stderr.isatty() or _in_notebook()
        self._session = Session(self._con, progress)
        self._cursors: list[Cursor] = []
        self._default: Cursor | None = None

    def cursor(self) -> Cursor:
        if self._closed:
            raise errors.InterfaceError("connection is closed")
        self._cursors = [c for c in self._cursors if not c._closed]
        cur = Cursor(self)
        self._cursors.append(cur)
        return cur

    # shortcuts that use one default cursor, as sqlite3 and duckdb offer
    def execute(self, operation: str, parameters=None) -> Cursor:
        if self._default is None or self._default._closed:
            self._default = self.cursor()
        return self._default.execute(operation, parameters)

    def executemany(self, operation: str, seq_of_parameters) -> Cursor:
        if self._default is None or self._default._closed:
            self._default = self.cursor()
        return self._default.executemany(operation, seq_of_parameters)

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

    # ---- transactions ------------------------------------------------------------------
    @property
    def autocommit(self) -> bool:
        """Always True: each statement commits unless BEGIN opened a transaction (see the module doc)."""
        return True

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        if not value:
            raise errors.NotSupportedError("rdl-sql connections auto-commit; open a transaction with "
                                           "execute('BEGIN') and end it with commit() or rollback()")

    def _open_ducks(self) -> list[duckdb.DuckDBPyConnection]:
        return [self._con] + [c._duck for c in self._cursors if not c._closed]

    def commit(self) -> None:
        """Commit the open transaction of every cursor of this connection; without one, nothing happens."""
        if self._closed:
            raise errors.InterfaceError("connection is closed")
        for duck in self._open_ducks():
            try:
                duck.commit()
            except duckdb.Error as e:
                raise errors.OperationalError(f"commit failed: {e}") from e

    def rollback(self) -> None:
        """Roll back the open transaction of every cursor of this connection; without one, nothing happens."""
        if self._closed:
            raise errors.InterfaceError("connection is closed")
        for duck in self._open_ducks():
            try:
                duck.rollback()
            except duckdb.TransactionException as e:
                if "no transaction is active" not in str(e):
                    raise errors.OperationalError(f"rollback failed: {e}") from e
            except duckdb.Error as e:
                raise errors.OperationalError(f"rollback failed: {e}") from e

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

    # ---- lifetime ------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (an open transaction is rolled back); closing it twice raises InterfaceError."""
        if self._closed:
            raise errors.InterfaceError("connection is already closed")
        self._close()

    def _close(self) -> None:
        for cur in self._cursors:
            cur.close()
        self._session.close()
        self._con.close()
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        mode = ", read-only" if self.read_only else ""
        state = "closed" if self._closed else "open"
        return f"<rdl_sql.Connection {self.database!r}{mode}, {state}>"

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        """Commit an open transaction if the block succeeded, roll it back if it raised; then close."""
        if self._closed:
            return
        try:
            if exc_type is None:
                self.commit()
            else:
                self.rollback()
        finally:
            self._close()

    def __del__(self):
        try:
            if not self._closed:
                self._close()
        except Exception:
            pass


def connect(database: str = ":memory:", read_only: bool = False, progress: bool | None = None,
            config: dict | None = None, storage_compatibility: str | None = None) -> Connection:
    """Open ``database`` (a DuckDB file path or ``:memory:``) as a PEP 249 connection.

    ``progress``: show a training progress bar (default: when stderr is a
    terminal or inside a Jupyter notebook).
    ``storage_compatibility``: the oldest DuckDB version that must open a file
    this connection creates, e.g. ``"v1.5.0"`` so that DuckDB 1.x readers (the
    ``duckdb-cli`` on PyPI, BI tools on a 1.x driver) open it. It decides the
    format when the file is created (later connections keep that format);
    default: DuckDB's own (the newest format, which DuckDB 1.x cannot read).
    """
    return Connection(database, read_only, progress, config, storage_compatibility)


__all__ = ["connect", "Connection", "Cursor", "STRING", "BINARY", "NUMBER", "DATETIME", "ROWID", "Date", "Time",
           "Timestamp", "Binary", "DateFromTicks", "TimeFromTicks", "TimestampFromTicks"]
