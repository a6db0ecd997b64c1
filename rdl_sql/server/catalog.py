"""What PostgreSQL clients ask that DuckDB answers differently: SET/SHOW, version(), pg_catalog queries.

``intercept`` answers a statement here (runtime parameters, ``version()``);
``rewrite`` turns the PostgreSQL-only spellings clients use in catalog
queries (``OPERATOR(pg_catalog.~)``, ``::regclass``, ``COLLATE
pg_catalog.default``, ...) into DuckDB SQL over DuckDB's own pg_catalog.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

import rdl_sql

SERVER_VERSION = "15.0"
VERSION_TEXT = (f"PostgreSQL {SERVER_VERSION} (rdl-sql {rdl_sql.__version__} on DuckDB {duckdb.__version__}), "
                "64-bit")

# parameters reported at start-up and kept per session; SHOW answers them
DEFAULTS = {
    "server_version": f"{SERVER_VERSION} (rdl-sql {rdl_sql.__version__})",
    "server_version_num": "150000",
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "integer_datetimes": "on",
    "standard_conforming_strings": "on",
    "is_superuser": "on",
    "application_name": "",
    "default_transaction_read_only": "off",
    "in_hot_standby": "off",
}
REPORTED = ["server_version", "server_encoding", "client_encoding", "DateStyle", "IntervalStyle", "TimeZone",
            "integer_datetimes", "standard_conforming_strings", "is_superuser", "application_name",
            "default_transaction_read_only", "in_hot_standby", "session_authorization"]
# settings PostgreSQL clients send that mean nothing to DuckDB: kept and shown, not applied
CLIENT_ONLY = {"extra_float_digits", "application_name", "datestyle", "intervalstyle", "client_encoding",
               "client_min_messages", "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
               "bytea_output", "lc_messages", "lc_monetary", "lc_numeric", "lc_time", "geqo", "jit",
               "transaction_isolation", "default_transaction_isolation", "default_transaction_read_only",
               "transaction_read_only", "synchronous_commit", "row_security", "escape_string_warning",
               "standard_conforming_strings", "session_authorization", "role", "timezone", "time zone",
               "search_path", "join_collapse_limit", "from_collapse_limit", "work_mem"}
EXTRA_SHOW = {"transaction_isolation": "repeatable read", "transaction isolation level": "repeatable read",
              "default_transaction_isolation": "repeatable read", "transaction_read_only": "off",
              "max_identifier_length": "63", "max_index_keys": "32", "lc_collate": "C", "lc_ctype": "C",
              "block_size": "8192", "search_path": "main", "extra_float_digits": "1",
              "bytea_output": "hex", "client_min_messages": "notice", "statement_timeout": "0",
              "lock_timeout": "0", "server_version_num": "150000"}


@dataclass
class Canned:
    """A result made here: column names, rows of text (or None), and the command tag."""

    columns: list[str]
    rows: list[tuple]
    tag: str


_SET = re.compile(r"^\s*SET\s+(?:(SESSION|LOCAL)\s+)?(?!SESSION\s+CHARACTERISTICS)"
                  r"(TIME\s+ZONE|[A-Za-z_][\w.]*)\s*(?:=|\s+TO\s+|\s+)(.*?)\s*;?\s*$", re.I | re.S)
_SET_CHAR = re.compile(r"^\s*SET\s+(SESSION\s+CHARACTERISTICS\s+AS\s+)?TRANSACTION\b", re.I)
_SHOW = re.compile(r"^\s*SHOW\s+(TRANSACTION\s+ISOLATION\s+LEVEL|TIME\s+ZONE|[A-Za-z_][\w.]*)\s*;?\s*$", re.I)
_RESET = re.compile(r"^\s*RESET\s+(ALL|[A-Za-z_][\w.]*)\s*;?\s*$", re.I)
_DISCARD = re.compile(r"^\s*DISCARD\s+(ALL|PLANS|SEQUENCES|TEMP|TEMPORARY)\s*;?\s*$", re.I)
_VERSION = re.compile(r"^\s*SELECT\s+(?:pg_catalog\.)?version\s*\(\s*\)\s*(?:AS\s+\w+\s*)?;?\s*$", re.I)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value


def _canonical(name: str) -> str:
    for key in DEFAULTS:
        if key.lower() == name.lower():
            return key
    return name


def intercept(sql: str, params: dict[str, str], duck_has_setting) -> Canned | None:
    """Answer ``sql`` here when it is a SET/SHOW/RESET of a client-side parameter or ``version()``."""
    if _SET_CHAR.match(sql):
        return Canned([], [], "SET")
    m = _SET.match(sql)
    if m:
        name = re.sub(r"\s+", " ", m.group(2)).lower()
        if name == "time zone":
            name = "timezone"
        if name in CLIENT_ONLY or not duck_has_setting(name):
            value = _unquote(m.group(3))
            if name == "timezone" and value.upper() not in ("UTC", "'UTC'", "GMT", "Z", "0", "LOCAL", "DEFAULT"):
                # results keep coming in UTC (with their offset, +00), whatever the client asked
                value = "UTC"
            params[_canonical(name if name != "timezone" else "TimeZone")] = value
            return Canned([], [], "SET")
        return None
    m = _SHOW.match(sql)
    if m:
        name = re.sub(r"\s+", " ", m.group(1)).lower()
        key = "TimeZone" if name in ("time zone", "timezone") else _canonical(name)
        if key in params:
            value = params[key]
        elif name in EXTRA_SHOW:
            value = EXTRA_SHOW[name]
        elif name in CLIENT_ONLY:
            value = ""
        else:
            return None   # DuckDB's own SHOW: tables, settings
        col = "transaction_isolation" if name.startswith("transaction isolation") else name
        return Canned([col], [(value,)], "SHOW")
    m = _RESET.match(sql)
    if m:
        name = m.group(1).lower()
        if name == "all":
            params.clear()
            params.update(DEFAULTS)
            return Canned([], [], "RESET")
        if name in CLIENT_ONLY or _canonical(name) in DEFAULTS:
            key = _canonical(name)
            if key in DEFAULTS:
                params[key] = DEFAULTS[key]
            else:
                params.pop(key, None)
            return Canned([], [], "RESET")
        return None
    if _DISCARD.match(sql):
        return Canned([], [], "DISCARD " + _DISCARD.match(sql).group(1).upper())
    if _VERSION.match(sql):
        return Canned(["version"], [(VERSION_TEXT,)], "SELECT 1")
    return None


# ---- catalog queries ------------------------------------------------------------------
_CATALOG_HINT = re.compile(r"pg_|information_schema|regclass|regtype|regproc|::oid|OPERATOR\(", re.I)
_REWRITES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"OPERATOR\s*\(\s*pg_catalog\s*\.\s*([~!=<>*+\-/]+)\s*\)", re.I), r"\1"),
    (re.compile(r"\s+COLLATE\s+pg_catalog\.\"?default\"?", re.I), ""),
    (re.compile(r"\bpg_catalog\.version\s*\(\s*\)", re.I), f"'{VERSION_TEXT}'"),
]


def is_catalog_query(sql: str) -> bool:
    return bool(_CATALOG_HINT.search(sql))


def rewrite(sql: str) -> str:
    for pattern, repl in _REWRITES:
        sql = pattern.sub(repl, sql)
    return sql
