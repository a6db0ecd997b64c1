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
from rdl_sql.server import types

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
# DuckDB's own pg_catalog lacks columns and rows that PostgreSQL clients read (and
# numbers constraint keys from 0): each session gets temporary views and macros
# named __pg_*, and catalog queries are rewritten to read those instead.
SHIM_VIEWS = {
    "pg_constraint": """
        SELECT con.* REPLACE (
                 CASE con.contype WHEN 'p' THEN c.relname || '_pkey'
                      WHEN 'u' THEN c.relname || '_' || array_to_string(dc.constraint_column_names, '_') || '_key'
                      WHEN 'f' THEN c.relname || '_' || array_to_string(dc.constraint_column_names, '_') || '_fkey'
                      ELSE c.relname || '_check' END AS conname,
                 list_transform(con.conkey, lambda k: (k + 1)::SMALLINT) AS conkey,
                 CASE WHEN con.contype = 'f' THEN list_transform(dc.referenced_column_names,
                      lambda n: list_position(rcols.names, n)::SMALLINT) END AS confkey,
                 CASE WHEN con.contype = 'f' THEN coalesce(rt.oid, 0) ELSE 0 END AS confrelid,
                 CASE WHEN con.contype = 'f' THEN 'a' END AS confupdtype,
                 CASE WHEN con.contype = 'f' THEN 'a' END AS confdeltype,
                 CASE WHEN con.contype = 'f' THEN 's' END AS confmatchtype,
                 CASE con.contype WHEN 'p' THEN con.oid WHEN 'u' THEN con.oid ELSE 0 END AS conindid),
               con.conname AS __condef
        FROM pg_catalog.pg_constraint con JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
        LEFT JOIN duckdb_constraints() dc ON dc.table_oid = con.conrelid
             AND dc.table_oid * 1000000 + dc.constraint_index = con.oid
        LEFT JOIN pg_catalog.pg_class rt ON rt.relname = dc.referenced_table AND rt.relnamespace = c.relnamespace
        LEFT JOIN (SELECT table_oid, list(column_name ORDER BY column_index) AS names FROM duckdb_columns()
                   GROUP BY table_oid) rcols ON rcols.table_oid = rt.oid
        WHERE con.contype IN ('p', 'u', 'f', 'c')""",
    "pg_class": """
        SELECT *, false AS relforcerowsecurity FROM pg_catalog.pg_class
        UNION ALL BY NAME
        SELECT oid, conname AS relname, connamespace AS relnamespace, 'i' AS relkind, 0 AS relam, 0 AS relowner,
               0 AS reltablespace, 'p' AS relpersistence, false AS relhasindex, 0 AS reloftype, 0 AS relchecks,
               false AS relhasrules, false AS relhastriggers, false AS relrowsecurity, false AS relispartition,
               'n' AS relreplident, false AS relforcerowsecurity, len(conkey) AS relnatts, 0 AS reltoastrelid
        FROM __pg_constraint WHERE contype IN ('p', 'u')""",
    "pg_index": """
        SELECT oid AS indexrelid, conrelid AS indrelid, len(conkey)::SMALLINT AS indnatts,
               len(conkey)::SMALLINT AS indnkeyatts, true AS indisunique, contype = 'p' AS indisprimary,
               false AS indisexclusion, true AS indimmediate, false AS indisclustered, true AS indisvalid,
               false AS indcheckxmin, true AS indisready, true AS indislive, false AS indisreplident,
               conkey AS indkey, NULL::BIGINT[] AS indcollation, NULL::BIGINT[] AS indclass,
               list_transform(conkey, lambda k: 0) AS indoption, NULL AS indexprs, NULL AS indpred,
               false AS indnullsnotdistinct
        FROM __pg_constraint WHERE contype IN ('p', 'u')""",
    "pg_attribute": """
        SELECT a.* REPLACE (coalesce(__pg_typeoid(col.data_type), a.atttypid) AS atttypid,
                            coalesce(__pg_typmod(col.data_type), -1) AS atttypmod,
                            CASE WHEN col.data_type LIKE '%]' THEN 1 ELSE 0 END AS attndims)
        FROM pg_catalog.pg_attribute a
        LEFT JOIN duckdb_columns() col ON col.table_oid = a.attrelid AND col.column_index = a.attnum
        UNION ALL BY NAME
        SELECT con.oid AS attrelid, a.attname, a.atttypid, a.atttypmod, k.n::SMALLINT AS attnum, false AS attnotnull,
               false AS atthasdef, false AS attisdropped, '' AS attidentity, '' AS attgenerated, 0 AS attcollation
        FROM __pg_constraint con, unnest(con.conkey) WITH ORDINALITY AS k(key, n), pg_catalog.pg_attribute a
        WHERE con.contype IN ('p', 'u') AND a.attrelid = con.conrelid AND a.attnum = k.key""",
    "pg_namespace": "SELECT * FROM pg_catalog.pg_namespace UNION ALL SELECT 11, 'pg_catalog', 10, NULL "
                    "UNION ALL SELECT 13, 'information_schema', 10, NULL",
    "pg_type": "__TYPES__",
    "pg_collation": "SELECT oid, collname, 11::BIGINT AS collnamespace, 10 AS collowner, 'c' AS collprovider, "
                    "true AS collisdeterministic, -1 AS collencoding, 'C' AS collcollate, 'C' AS collctype "
                    "FROM pg_catalog.pg_collation",
    "pg_description": "SELECT objoid, TRY_CAST(classoid AS BIGINT) AS classoid, objsubid, description "
                      "FROM pg_catalog.pg_description",
    "pg_am": "SELECT * FROM pg_catalog.pg_am UNION ALL SELECT 403, 'btree', NULL, 'i' UNION ALL "
             "SELECT 2, 'heap', NULL, 't'",
    "pg_inherits": "SELECT 0::BIGINT AS inhrelid, 0::BIGINT AS inhparent, 0 AS inhseqno, false AS inhdetachpending "
                   "WHERE false",
    "pg_trigger": "SELECT 0::BIGINT AS oid, 0::BIGINT AS tgrelid, '' AS tgname, 0::BIGINT AS tgfoid, 0 AS tgtype, "
                  "'' AS tgenabled, false AS tgisinternal, 0::BIGINT AS tgparentid, 0::BIGINT AS tgconstraint "
                  "WHERE false",
    "pg_policy": "SELECT 0::BIGINT AS oid, '' AS polname, 0::BIGINT AS polrelid, '' AS polcmd, true AS polpermissive, "
                 "[]::BIGINT[] AS polroles, NULL AS polqual, NULL AS polwithcheck WHERE false",
    "pg_statistic_ext": "SELECT 0::BIGINT AS oid, 0::BIGINT AS stxrelid, '' AS stxname, 0::BIGINT AS stxnamespace, "
                        "[]::SMALLINT[] AS stxkeys, 0 AS stxstattarget, []::VARCHAR[] AS stxkind WHERE false",
    "pg_publication": "SELECT 0::BIGINT AS oid, '' AS pubname, false AS puballtables WHERE false",
    "pg_publication_rel": "SELECT 0::BIGINT AS oid, 0::BIGINT AS prpubid, 0::BIGINT AS prrelid, NULL AS prqual, "
                          "NULL AS prattrs WHERE false",
    "pg_publication_namespace": "SELECT 0::BIGINT AS oid, 0::BIGINT AS pnpubid, 0::BIGINT AS pnnspid WHERE false",
    "pg_foreign_table": "SELECT 0::BIGINT AS ftrelid, 0::BIGINT AS ftserver, NULL AS ftoptions WHERE false",
    "pg_partitioned_table": "SELECT 0::BIGINT AS partrelid, '' AS partstrat WHERE false",
    "pg_roles": "SELECT 10::BIGINT AS oid, current_user AS rolname, true AS rolsuper, true AS rolcanlogin",
    "pg_user": "SELECT 10::BIGINT AS usesysid, current_user AS usename, true AS usesuper",
}
SHIM_MACROS = {
    "pg_get_userbyid": "(id) AS {user}",
    "pg_get_indexdef": "(idx) AS (SELECT CASE WHEN __con.contype = 'p' THEN "
                       "'CREATE UNIQUE INDEX ' ELSE 'CREATE UNIQUE INDEX ' END || __con.conname || ' ON ' "
                       "|| __c.relname "
                       "|| ' USING btree (' || (SELECT string_agg(__a.attname, ', ' ORDER BY __k.n) FROM "
                       "unnest(__con.conkey) WITH ORDINALITY AS __k(key, n) JOIN pg_catalog.pg_attribute __a ON "
                       "__a.attrelid = __con.conrelid AND __a.attnum = __k.key) || ')' FROM __pg_constraint __con JOIN "
                       "pg_catalog.pg_class __c ON __c.oid = __con.conrelid WHERE __con.oid = idx)",
    "pg_get_constraintdef": "(cid) AS (SELECT CASE WHEN __con.contype IN ('f', 'c') THEN __con.__condef ELSE "
                            "CASE __con.contype WHEN 'p' THEN 'PRIMARY KEY ('"
                            " WHEN 'u' THEN 'UNIQUE (' WHEN 'f' THEN 'FOREIGN KEY (' ELSE 'CHECK (' END || "
                            "coalesce((SELECT string_agg(__a.attname, ', ' ORDER BY __k.n) FROM "
                            "unnest(__con.conkey) WITH ORDINALITY AS __k(key, n) JOIN pg_catalog.pg_attribute __a "
                            "ON __a.attrelid = __con.conrelid AND "
                            "__a.attnum = __k.key), '') || ')' END FROM __pg_constraint __con WHERE __con.oid = cid)",
    "pg_get_expr": "(e, r, pretty) AS e::VARCHAR, (e, r) AS e::VARCHAR",
    "to_regtype": "(n) AS (SELECT max(oid) FROM __pg_type WHERE typname = n OR __format_type(oid, -1) = n)",
    "to_regclass": "(n) AS (SELECT max(oid) FROM __pg_class WHERE relname = n)",
    "pg_get_serial_sequence": "(t, c) AS NULL::BIGINT",
    "pg_get_statisticsobjdef_columns": "(oid) AS NULL",
    "pg_get_partkeydef": "(oid) AS NULL",
    "pg_encoding_to_char": "(enc) AS 'UTF8'",
    "pg_get_function_identity_arguments": "(oid) AS ''",
    "array_to_string_pg": "(a, s) AS array_to_string(a, s)",
}
PG_NAMES = {16: "boolean", 17: "bytea", 20: "bigint", 21: "smallint", 23: "integer", 25: "text", 114: "json",
            700: "real", 701: "double precision", 1043: "character varying", 1082: "date",
            1083: "time without time zone", 1114: "timestamp without time zone",
            1184: "timestamp with time zone", 1186: "interval", 1266: "time with time zone", 1700: "numeric",
            2950: "uuid"}


def _scalar_case() -> str:
    whens = " ".join(f"WHEN '{k}' THEN {v}" for k, v in types._SCALAR.items())
    return f"CASE WHEN t LIKE 'DECIMAL(%' THEN 1700 ELSE CASE t {whens} ELSE 25 END END"


def _type_case() -> str:
    arrays = " ".join(f"WHEN {k} THEN {v}" for k, v in types.ARRAY_OF.items())
    base = "regexp_replace(t, '(\\[\\d*\\])+$', '')"
    return (f"CASE WHEN t IS NULL THEN NULL WHEN t LIKE '%]' THEN CASE __pg_scalar_oid({base}) {arrays} ELSE 1009 END "
            "ELSE __pg_scalar_oid(t) END")


def _format_case() -> str:
    names = dict(PG_NAMES)
    for elem, arr in types.ARRAY_OF.items():
        names[arr] = names.get(elem, types.NAMES[elem]) + "[]"
    whens = " ".join(f"WHEN {k} THEN '{v}'" for k, v in names.items())
    return ("CASE WHEN oid = 1700 AND typmod > 4 THEN 'numeric(' || ((typmod - 4) >> 16) || ',' || "
            f"((typmod - 4) & 65535) || ')' ELSE CASE oid {whens} ELSE 'text' END END")


def _types_sql() -> str:
    rows = []
    element = {arr: elem for elem, arr in types.ARRAY_OF.items()}
    for oid, name in sorted(types.NAMES.items()):
        rows.append((oid, name, types.SIZE.get(oid, -1), 0, types.ARRAY_OF.get(oid, 0), "N" if oid in
                     (20, 21, 23, 700, 701, 1700) else "S" if oid in (25, 1043) else "U"))
    for arr, elem in element.items():
        rows.append((arr, "_" + types.NAMES[elem], -1, elem, 0, "A"))
    values = ", ".join(f"({o}, '{n}', {ln}, {e}, {a}, '{c}')" for o, n, ln, e, a, c in rows)
    return ("SELECT oid::BIGINT AS oid, typname, 11::BIGINT AS typnamespace, 10 AS typowner, typlen, "
            "typlen > 0 AS typbyval, 'b' AS typtype, typcategory, false AS typispreferred, true AS typisdefined, "
            "',' AS typdelim, 0::BIGINT AS typrelid, typelem::BIGINT AS typelem, typarray::BIGINT AS typarray, "
            "CASE WHEN typelem <> 0 THEN 'array_in' ELSE typname || 'in' END AS typinput, "
            "typname || 'out' AS typoutput, 'i' AS typalign, 'p' AS typstorage, false AS typnotnull, "
            "0::BIGINT AS typbasetype, -1 AS typtypmod, 0 AS typndims, 0::BIGINT AS typcollation, "
            "NULL AS typdefault, NULL AS typdefaultbin "
            f"FROM (VALUES {values}) AS t(oid, typname, typlen, typelem, typarray, typcategory)")


EXTRA_ARGS = {"pg_get_indexdef": "__col, __pretty", "pg_get_constraintdef": "__pretty"}
_SHIM_NAMES = "|".join(sorted(SHIM_VIEWS, key=len, reverse=True))
_SHIM_FUNCS = "|".join(sorted(list(SHIM_MACROS) + ["format_type"], key=len, reverse=True))


def shim_sql(user: str) -> list[str]:
    quoted = "'" + user.replace("'", "''") + "'"
    out = [f"CREATE OR REPLACE TEMP MACRO __pg_scalar_oid(t) AS {_scalar_case()}",
           f"CREATE OR REPLACE TEMP MACRO __pg_typeoid(t) AS {_type_case()}",
           "CREATE OR REPLACE TEMP MACRO __pg_typmod(t) AS CASE WHEN t LIKE 'DECIMAL(%' THEN "
           "(regexp_extract(t, 'DECIMAL\\((\\d+),\\s*(\\d+)\\)', 1)::INT << 16) + "
           "regexp_extract(t, 'DECIMAL\\((\\d+),\\s*(\\d+)\\)', 2)::INT + 4 ELSE -1 END",
           f"CREATE OR REPLACE TEMP MACRO __format_type(oid, typmod) AS {_format_case()}"]
    # views that others build on come first
    for name in ["pg_constraint"] + [n for n in SHIM_VIEWS if n != "pg_constraint"]:
        body = _types_sql() if name == "pg_type" else SHIM_VIEWS[name]
        out.append(f"CREATE OR REPLACE TEMP VIEW __{name} AS {body}")
    for name, body in SHIM_MACROS.items():
        body = body.format(user=quoted)
        if name in EXTRA_ARGS:   # the same body, also with the arguments PostgreSQL callers add
            head, _, rest = body.partition(") AS ")
            body = f"{body}, {head}, {EXTRA_ARGS[name]}) AS {rest}"
        out.append(f"CREATE OR REPLACE TEMP MACRO __{name}{body}")
    return out


_CATALOG_HINT = re.compile(r"pg_|information_schema|regclass|regtype|regproc|::oid|OPERATOR\(", re.I)
_REWRITES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"OPERATOR\s*\(\s*pg_catalog\s*\.\s*([~!=<>*+\-/]+)\s*\)", re.I), r"\1"),
    (re.compile(r"\s+COLLATE\s+pg_catalog\.\"?default\"?", re.I), ""),
    (re.compile(r"\bpg_catalog\.version\s*\(\s*\)", re.I), f"'{VERSION_TEXT}'"),
    # '<name>'::regclass -> the table's oid; <oid>::regtype::text -> the type's name
    (re.compile(r"('(?:[^']|'')*'|\$\d+)\s*::\s*(?:pg_catalog\.)?regclass\b", re.I),
     r"(SELECT max(oid) FROM __pg_class WHERE relname = split_part(\1, '.', -1))"),
    (re.compile(r"CAST\(\s*('(?:[^']|'')*'|\$\d+)\s+AS\s+(?:pg_catalog\.)?REGCLASS\s*\)", re.I),
     r"(SELECT max(oid) FROM __pg_class WHERE relname = split_part(\1, '.', -1))"),
    (re.compile(r"([\w.]+)\s*::\s*(?:pg_catalog\.)?regtype\s*::\s*(?:pg_catalog\.)?text\b", re.I),
     r"format_type(\1, NULL)"),
    (re.compile(r"::\s*(?:pg_catalog\.)?(regclass|regtype|regproc|regnamespace|oid)\b", re.I), "::BIGINT"),
    (re.compile(r"\bAS\s+(?:pg_catalog\.)?(REGCLASS|REGTYPE|REGPROC|REGNAMESPACE|OID)\s*\)", re.I), "AS BIGINT)"),
    (re.compile(r"\b(?:pg_catalog\.)?json_build_object\s*\(", re.I), "json_object("),
    # (the dimension argument stays, multiplied by 0, so that a $n parameter keeps its place)
    (re.compile(r"\bgenerate_subscripts\s*\(\s*([\w.]+)\s*,\s*([^()]*)\)", re.I),
     r"unnest(range(1 + 0 * (\2), len(\1) + 1))"),
    (re.compile(r"::\s*pg_catalog\.(text|name|char|bool|int2|int4|int8|varchar)\b", re.I), r"::\1"),
    (re.compile(r"::\s*name\b", re.I), "::VARCHAR"),
    (re.compile(r"(?<![\w\"])(?:pg_catalog\s*\.\s*)?(" + _SHIM_NAMES + r")\b(?!\s*\()", re.I), r"__\1"),
    (re.compile(r"(?<![\w\"])(?:pg_catalog\s*\.\s*)?(" + _SHIM_FUNCS + r")\s*\(", re.I), r"__\1("),
]


_EMPTY = re.compile(r"\b(?:pg_catalog\s*\.\s*)?(pg_inherits|pg_trigger|pg_policy|pg_statistic_ext|pg_publication\w*|"
                    r"pg_foreign_table|pg_partitioned_table|pg_rewrite|pg_event_trigger)\b", re.I)


def reads_empty_catalog(sql: str) -> bool:
    """Whether ``sql`` reads a catalog table that is always empty here (triggers, policies, ...)."""
    return bool(_EMPTY.search(sql))


def is_catalog_query(sql: str) -> bool:
    return bool(_CATALOG_HINT.search(sql))


_STRING = re.compile(r"('(?:[^']|'')*')")


def rewrite(sql: str) -> str:
    """``sql`` with PostgreSQL-only spellings replaced; string literals are left alone."""
    for pattern, repl in _REWRITES[:6]:   # these look at literals themselves
        sql = pattern.sub(repl, sql)
    parts = _STRING.split(sql)
    for i in range(0, len(parts), 2):     # even parts are outside string literals
        for pattern, repl in _REWRITES[6:]:
            parts[i] = pattern.sub(repl, parts[i])
    return "".join(parts)
