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
auto-commit (see ``rdl_sql.connection``): a SQLAlchemy ``begin()`` block
issues ``BEGIN`` and ends it with commit or rollback.
"""
from __future__ import annotations

import re

from sqlalchemy import exc, pool
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects.postgresql import ARRAY, INTERVAL, UUID
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine import reflection
from sqlalchemy.engine.default import DefaultDialect

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

    # ---- transactions: auto-commit connections; BEGIN only inside a begin() block ----------------------
    def get_isolation_level(self, dbapi_connection):
        return "AUTOCOMMIT"

    def get_default_isolation_level(self, dbapi_connection):
        return "AUTOCOMMIT"

    def set_isolation_level(self, dbapi_connection, level):
        pass

    def get_isolation_level_values(self, dbapi_connection):
        return ["AUTOCOMMIT"]

    def do_begin(self, dbapi_connection):
        pass  # each statement commits on its own, as with DuckDB; rdl_sql.Connection.commit/rollback end a BEGIN

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
