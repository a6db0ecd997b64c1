"""A SQLAlchemy dialect: ``create_engine("rdl_sql:///shop.duckdb")`` over ``rdl_sql.connect``.

Registered through the entry point ``sqlalchemy.dialects: rdl_sql`` (so the
URL works in pandas ``read_sql``, Superset-style URIs and any SQLAlchemy
tool), with every rdl-sql statement available::

    engine = create_engine("rdl_sql:///shop.duckdb")            # relative path
    engine = create_engine("rdl_sql:////data/shop.duckdb?read_only=true")
    pandas.read_sql("PREDICT USING churn", engine)

URL query options: ``read_only`` (true/false), ``storage_compatibility``
(e.g. v1.5.0), ``progress`` (true/false); no path means ``:memory:``.

SQL is compiled as PostgreSQL (DuckDB's dialect is close to it);
reflection (the inspector's table, view, column, key and index calls) asks
DuckDB's own catalog functions, not pg_catalog. rdl-sql connections
auto-commit (see ``rdl_sql.connection``), so SQLAlchemy's transactions are
made real here: a transaction (a ``begin()`` block, or the one ``connect()``
opens on its first statement) issues ``BEGIN`` on one rdl-sql cursor that
every statement of that transaction then runs on (each rdl-sql cursor is a
DuckDB connection of its own), and commit or rollback ends it. With
``isolation_level="AUTOCOMMIT"`` (engine or execution option) no ``BEGIN``
is issued and every statement commits on its own.
"""
from __future__ import annotations

import re
import weakref

from sqlalchemy import exc, pool
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects.postgresql import ARRAY, INTERVAL, UUID
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine import reflection
from sqlalchemy.engine.default import DefaultDialect, DefaultExecutionContext

import rdl_sql

_TRUE = {"1", "true", "yes", "on"}

#: DuckDB type name (without its parameters) -> SQLAlchemy type
_TYPES = {
    "BOOLEAN": sqltypes.BOOLEAN, "TINYINT": sqltypes.SMALLINT, "SMALLINT": sqltypes.SMALLINT,
    "INTEGER": sqltypes.INTEGER, "BIGINT": sqltypes.BIGINT, "HUGEINT": sqltypes.NUMERIC,
    "UTINYINT": sqltypes.SMALLINT, "USMALLINT": sqltypes.INTEGER, "UINTEGER": sqltypes.BIGINT,
    "UBIGINT": sqltypes.NUMERIC, "UHUGEINT": sqltypes.NUMERIC,
    "FLOAT": sqltypes.REAL, "DOUBLE": sqltypes.DOUBLE_PRECISION, "DECIMAL": sqltypes.NUMERIC,
    "VARCHAR": sqltypes.VARCHAR, "BLOB": sqltypes.LargeBinary, "UUID": UUID, "JSON": sqltypes.JSON,
    "DATE": sqltypes.DATE, "TIME": sqltypes.TIME, "INTERVAL": INTERVAL,
    "TIMESTAMP": sqltypes.TIMESTAMP, "TIMESTAMP_S": sqltypes.TIMESTAMP, "TIMESTAMP_MS": sqltypes.TIMESTAMP,
    "TIMESTAMP_NS": sqltypes.TIMESTAMP,
}


def column_type(name: str) -> sqltypes.TypeEngine:
    """The SQLAlchemy type of a DuckDB type name; NullType for one SQLAlchemy has no match for."""
    text = name.strip().upper()
    if text.endswith("[]"):
        inner = column_type(text[:-2])
        return ARRAY(inner) if not isinstance(inner, sqltypes.NullType) else sqltypes.NullType()
    if text in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        return sqltypes.TIMESTAMP(timezone=True)
    if text in ("TIME WITH TIME ZONE", "TIMETZ"):
        return sqltypes.TIME(timezone=True)
    base, _, args = text.partition("(")
    kind = _TYPES.get(base.strip())
    if kind is None:
        return sqltypes.NullType()
    if kind is sqltypes.NUMERIC and args:
        nums = [int(x) for x in re.findall(r"\d+", args)]
        return sqltypes.NUMERIC(*nums[:2])
    return kind()


def _raw(dbapi_connection):
    """The rdl_sql.Connection behind a pool's proxy (or itself)."""
    return getattr(dbapi_connection, "dbapi_connection", dbapi_connection)


class _Transaction:
    """The one rdl-sql cursor an open SQLAlchemy transaction runs its statements on.

    A statement's result stays on that cursor until the next statement comes; the
    next one first reads what is left of it into its SQLAlchemy cursor, so a result
    fetched later (or a loop that executes while it iterates) still sees its rows.
    """

    def __init__(self, cursor):
        self.cursor = cursor
        self.owner: _Cursor | None = None

    def run(self, owner: _Cursor, method: str, *args):
        if self.owner is not None and self.owner is not owner:
            self.owner._buffer()
        self.owner = owner
        getattr(self.cursor, method)(*args)

    def close(self):
        if self.owner is not None:
            self.owner._buffer()
            self.owner = None
        self.cursor.close()


class _Cursor:
    """What SQLAlchemy gets as a cursor. SQLAlchemy makes it before its autobegin issues BEGIN, so
    which rdl-sql cursor runs the statement is settled at execute: the transaction's one while a
    transaction is open, else one of its own (each statement then commits on its own)."""

    def __init__(self, dialect, connection):
        self._dialect, self._connection = dialect, connection
        self._txn: _Transaction | None = None
        self._own = None  # an rdl-sql cursor, outside a transaction
        self._rows: list | None = None  # the rest of the result, once another statement needed the cursor
        self._description = None
        self._rowcount = -1
        self.arraysize = 1

    def _run(self, method: str, *args):
        self._rows = None
        if self._own is None and self._txn is None:
            self._txn = self._dialect._transactions.get(self._connection)
            if self._txn is None:
                self._own = self._connection.cursor()
        if self._own is not None:
            getattr(self._own, method)(*args)
            cur = self._own
        else:
            self._txn.run(self, method, *args)
            cur = self._txn.cursor
        self._description, self._rowcount = cur.description, cur.rowcount
        return self

    def execute(self, operation, parameters=None):
        return self._run("execute", operation, parameters)

    def executemany(self, operation, seq_of_parameters):
        return self._run("executemany", operation, seq_of_parameters)

    def _buffer(self):
        if self._rows is None:
            self._rows = self._txn.cursor.fetchall() if self._description is not None else []
        if self._txn.owner is self:
            self._txn.owner = None

    def _live(self):
        """The rdl-sql cursor that holds this result unread, or None once it is buffered here."""
        if self._own is not None:
            return self._own
        if self._txn is not None and self._rows is None and self._txn.owner is self:
            return self._txn.cursor
        return None

    @property
    def description(self):
        return self._description

    @property
    def rowcount(self):
        return self._rowcount

    @property
    def lastrowid(self):
        return None

    @property
    def notices(self):
        live = self._live()
        return live.notices if live is not None else []

    @property
    def metrics(self):
        live = self._live()
        return live.metrics if live is not None else None

    def fetchone(self):
        live = self._live()
        if live is not None:
            return live.fetchone()
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size=None):
        live = self._live()
        if live is not None:
            return live.fetchmany(size)
        n = self.arraysize if size is None else size
        out, self._rows[:n] = (self._rows or [])[:n], []
        return out

    def fetchall(self):
        live = self._live()
        if live is not None:
            return live.fetchall()
        out, self._rows = self._rows or [], []
        return out

    def __iter__(self):
        return iter(self.fetchone, None)

    def setinputsizes(self, sizes):
        pass

    def setoutputsize(self, size, column=None):
        pass

    def close(self):
        if self._own is not None:
            self._own.close()
        elif self._txn is not None and self._txn.owner is self:
            self._txn.owner = None  # the transaction's cursor stays open; its next statement drops this result
        self._rows = []


class RdlExecutionContext(DefaultExecutionContext):
    def create_default_cursor(self):
        return _Cursor(self.dialect, _raw(self._dbapi_connection))


class RdlDialect(PGDialect):
    name = "rdl_sql"
    driver = "rdl_sql"
    default_paramstyle = "qmark"
    supports_statement_cache = True
    supports_server_side_cursors = False
    supports_sane_rowcount = True
    supports_sane_multi_rowcount = False
    postfetch_lastrowid = False
    implicit_returning = False
    supports_native_enum = False
    supports_comments = False
    div_is_floordiv = False
    default_schema_name = "main"
    execution_ctx_cls = RdlExecutionContext

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._transactions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # connection -> _Transaction
        self._autocommit: weakref.WeakSet = weakref.WeakSet()  # connections set to isolation_level AUTOCOMMIT

    # reflection: the generic loops over the single-table methods below, not PostgreSQL's pg_catalog queries
    get_multi_columns = DefaultDialect.get_multi_columns
    get_multi_pk_constraint = DefaultDialect.get_multi_pk_constraint
    get_multi_foreign_keys = DefaultDialect.get_multi_foreign_keys
    get_multi_indexes = DefaultDialect.get_multi_indexes
    get_multi_unique_constraints = DefaultDialect.get_multi_unique_constraints
    get_multi_check_constraints = DefaultDialect.get_multi_check_constraints
    get_multi_table_comment = DefaultDialect.get_multi_table_comment
    get_multi_table_options = DefaultDialect.get_multi_table_options

    @classmethod
    def import_dbapi(cls):
        return rdl_sql

    @classmethod
    def get_pool_class(cls, url):
        if (url.database or ":memory:") == ":memory:":  # each connection would be a database of its own
            return pool.SingletonThreadPool
        return pool.QueuePool  # a file stays open (and locked) until the engine is disposed of

    def create_connect_args(self, url):
        opts = dict(url.query)
        kwargs = {"database": url.database or ":memory:"}
        if "read_only" in opts:
            kwargs["read_only"] = str(opts.pop("read_only")).lower() in _TRUE
        if "progress" in opts:
            kwargs["progress"] = str(opts.pop("progress")).lower() in _TRUE
        else:
            kwargs["progress"] = False
        if "storage_compatibility" in opts:
            kwargs["storage_compatibility"] = opts.pop("storage_compatibility")
        if opts:
            raise rdl_sql.InterfaceError(f"rdl_sql URL: unknown option(s) {', '.join(sorted(opts))}; known: "
                                         "read_only, storage_compatibility, progress")
        return (), kwargs

    def initialize(self, connection):
        DefaultDialect.initialize(self, connection)  # not PostgreSQL's: it asks the server settings DuckDB lacks
        self._backslash_escapes = False
        self.supports_smallserial = False
        self.supports_identity_columns = False

    def _get_server_version_info(self, connection):
        return (13, 0)  # PostgreSQL's SQL as DuckDB speaks it

    def _get_default_schema_name(self, connection):
        return connection.exec_driver_sql("SELECT current_schema()").scalar()

    # ---- transactions: BEGIN on one cursor that the transaction's statements share ------------------------
    def get_isolation_level(self, dbapi_connection):
        return "AUTOCOMMIT" if _raw(dbapi_connection) in self._autocommit else "SERIALIZABLE"

    def get_default_isolation_level(self, dbapi_connection):
        return "SERIALIZABLE"

    def set_isolation_level(self, dbapi_connection, level):
        if level == "AUTOCOMMIT":
            self._autocommit.add(_raw(dbapi_connection))
        else:
            self._autocommit.discard(_raw(dbapi_connection))

    def get_isolation_level_values(self, dbapi_connection):
        return ["AUTOCOMMIT", "SERIALIZABLE"]

    def do_begin(self, dbapi_connection):
        raw = _raw(dbapi_connection)
        if raw in self._autocommit or raw in self._transactions:
            return
        cur = raw.cursor()
        try:
            cur.execute("BEGIN")
        except BaseException:
            cur.close()
            raise
        self._transactions[raw] = _Transaction(cur)

    def _end(self, dbapi_connection, how: str):
        raw = _raw(dbapi_connection)
        txn = self._transactions.pop(raw, None)
        try:
            if not raw.closed:
                getattr(raw, how)()  # every cursor's open transaction, the one BEGIN opened included
        finally:
            if txn is not None and not raw.closed:
                txn.close()

    def do_commit(self, dbapi_connection):
        self._end(dbapi_connection, "commit")

    def do_rollback(self, dbapi_connection):
        self._end(dbapi_connection, "rollback")

    def do_close(self, dbapi_connection):
        self._transactions.pop(_raw(dbapi_connection), None)
        dbapi_connection.close()

    def do_ping(self, dbapi_connection):
        cur = dbapi_connection.cursor()
        try:
            cur.execute("SELECT 1")
            cur.fetchall()
        finally:
            cur.close()
        return True

    # ---- reflection --------------------------------------------------------------------------------------
    def _rows(self, connection, sql: str, *params):
        return connection.exec_driver_sql(sql, tuple(params)).fetchall()

    def _schema(self, schema):
        return schema or self.default_schema_name or "main"

    @reflection.cache
    def get_schema_names(self, connection, **kw):
        return [r[0] for r in self._rows(
            connection, "SELECT DISTINCT schema_name FROM duckdb_schemas() WHERE database_name = current_database() "
                        "AND NOT internal ORDER BY 1")]

    @reflection.cache
    def get_table_names(self, connection, schema=None, **kw):
        return [r[0] for r in self._rows(
            connection, "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                        "AND schema_name = ? AND NOT temporary ORDER BY 1", self._schema(schema))]

    @reflection.cache
    def get_temp_table_names(self, connection, **kw):
        return [r[0] for r in self._rows(connection, "SELECT table_name FROM duckdb_tables() WHERE temporary "
                                                     "ORDER BY 1")]

    @reflection.cache
    def get_view_names(self, connection, schema=None, **kw):
        return [r[0] for r in self._rows(
            connection, "SELECT view_name FROM duckdb_views() WHERE database_name = current_database() "
                        "AND schema_name = ? AND NOT internal ORDER BY 1", self._schema(schema))]

    def get_materialized_view_names(self, connection, schema=None, **kw):
        return []

    def get_sequence_names(self, connection, schema=None, **kw):
        return [r[0] for r in self._rows(
            connection, "SELECT sequence_name FROM duckdb_sequences() WHERE database_name = current_database() "
                        "AND schema_name = ? ORDER BY 1", self._schema(schema))]

    @reflection.cache
    def get_view_definition(self, connection, view_name, schema=None, **kw):
        rows = self._rows(connection, "SELECT sql FROM duckdb_views() WHERE database_name = current_database() "
                                      "AND schema_name = ? AND view_name = ?", self._schema(schema), view_name)
        return rows[0][0] if rows else None

    def has_table(self, connection, table_name, schema=None, **kw):
        self._ensure_has_table_connection(connection)
        rows = self._rows(connection,
                          "SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ? "
                          "AND table_name = ? UNION ALL SELECT 1 FROM duckdb_views() WHERE database_name = "
                          "current_database() AND schema_name = ? AND view_name = ?",
                          self._schema(schema), table_name, self._schema(schema), table_name)
        return bool(rows)

    def has_sequence(self, connection, sequence_name, schema=None, **kw):
        return sequence_name in self.get_sequence_names(connection, schema)

    def has_type(self, connection, type_name, schema=None, **kw):
        return False

    def _relation_exists(self, connection, table_name, schema):
        if not self.has_table(connection, table_name, schema):
            raise exc.NoSuchTableError(table_name)

    @reflection.cache
    def get_columns(self, connection, table_name, schema=None, **kw):
        self._relation_exists(connection, table_name, schema)
        rows = self._rows(connection,
                          "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
                          "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ? "
                          "ORDER BY ordinal_position", self._schema(schema), table_name)
        return [{"name": name, "type": column_type(kind), "nullable": nullable == "YES", "default": default,
                 "autoincrement": False} for name, kind, nullable, default in rows]

    def _constraints(self, connection, table_name, schema, kind):
        return self._rows(connection,
                          "SELECT constraint_name, constraint_column_names, referenced_table, referenced_column_names "
                          "FROM duckdb_constraints() WHERE database_name = current_database() AND schema_name = ? "
                          "AND table_name = ? AND constraint_type = ? ORDER BY constraint_index",
                          self._schema(schema), table_name, kind)

    @reflection.cache
    def get_pk_constraint(self, connection, table_name, schema=None, **kw):
        self._relation_exists(connection, table_name, schema)
        rows = self._constraints(connection, table_name, schema, "PRIMARY KEY")
        if not rows:
            return {"constrained_columns": [], "name": None}
        return {"constrained_columns": list(rows[0][1]), "name": rows[0][0]}

    @reflection.cache
    def get_foreign_keys(self, connection, table_name, schema=None, **kw):
        self._relation_exists(connection, table_name, schema)
        return [{"name": name, "constrained_columns": list(cols), "referred_schema": None,
                 "referred_table": ref, "referred_columns": list(ref_cols), "options": {}}
                for name, cols, ref, ref_cols in self._constraints(connection, table_name, schema, "FOREIGN KEY")]

    @reflection.cache
    def get_unique_constraints(self, connection, table_name, schema=None, **kw):
        self._relation_exists(connection, table_name, schema)
        return [{"name": name, "column_names": list(cols)}
                for name, cols, _, _ in self._constraints(connection, table_name, schema, "UNIQUE")]

    @reflection.cache
    def get_check_constraints(self, connection, table_name, schema=None, **kw):
        self._relation_exists(connection, table_name, schema)
        rows = self._rows(connection,
                          "SELECT constraint_name, expression FROM duckdb_constraints() WHERE database_name = "
                          "current_database() AND schema_name = ? AND table_name = ? AND constraint_type = 'CHECK'",
                          self._schema(schema), table_name)
        return [{"name": name, "sqltext": text} for name, text in rows]

    @reflection.cache
    def get_indexes(self, connection, table_name, schema=None, **kw):
        self._relation_exists(connection, table_name, schema)
        rows = self._rows(connection,
                          "SELECT index_name, is_unique, expressions FROM duckdb_indexes() WHERE database_name = "
                          "current_database() AND schema_name = ? AND table_name = ? ORDER BY 1",
                          self._schema(schema), table_name)
        return [{"name": name, "unique": bool(unique),
                 "column_names": [str(e).strip('"') for e in (exprs or [])]} for name, unique, exprs in rows]

    def get_table_comment(self, connection, table_name, schema=None, **kw):
        rows = self._rows(connection, "SELECT comment FROM duckdb_tables() WHERE database_name = current_database() "
                                      "AND schema_name = ? AND table_name = ?", self._schema(schema), table_name)
        return {"text": rows[0][0] if rows else None}

    def get_table_options(self, connection, table_name, schema=None, **kw):
        return {}


dialect = RdlDialect
