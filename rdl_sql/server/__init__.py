"""``rdl-sql serve``: the PostgreSQL wire protocol (3.0) over an rdl-sql database.

Modules: ``protocol`` (framing, messages), ``auth`` (SCRAM-SHA-256),
``types`` (DuckDB types as PostgreSQL OIDs, text and binary values),
``catalog`` (SET/SHOW, version(), pg_catalog spellings), ``errors``
(SQLSTATE and positions), ``session`` (one client), ``server`` (listener,
cancel, shutdown).
"""
from rdl_sql.server.server import ConfigError, Server, serve

__all__ = ["Server", "serve", "ConfigError"]
