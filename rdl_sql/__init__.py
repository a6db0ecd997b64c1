"""rdl-sql: relational deep learning inside DuckDB.

``rdl_sql.connect(path)`` opens a DuckDB database as a PEP 249 connection
that also understands ``PREDICT`` and the other rdl-sql statements;
``rdl_sql.register(duckdb_con)`` lets a plain DuckDB connection run them from
SQL (``SELECT * FROM rdl('PREDICT USING churn')``).
"""
from rdl_sql.connection import (
    BINARY,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    Connection,
    Cursor,
    Date,
    DateFromTicks,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
    connect,
)
from rdl_sql.embed import register
from rdl_sql.errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)

__version__ = "0.1.0"
#: PEP 249: DB-API 2.0; threads may share the module but not connections; ``?`` parameters
apilevel = "2.0"
threadsafety = 1
paramstyle = "qmark"


__all__ = ["connect", "Connection", "Cursor", "register", "Error", "Warning", "InterfaceError", "DatabaseError",
           "DataError", "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
           "NotSupportedError", "apilevel", "threadsafety", "paramstyle", "STRING", "BINARY", "NUMBER", "DATETIME",
           "ROWID", "Date", "Time", "Timestamp", "Binary", "DateFromTicks", "TimeFromTicks", "TimestampFromTicks"]
