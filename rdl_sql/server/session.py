"""One client connection: start-up, authentication, then simple and extended queries over its own session.

Every client gets its own ``rdl_sql`` connection to the server's database
(DuckDB shares one open database among the connections of a process), so
transactions, prepared statements and trained models stay per client and a
long PREDICT in one session does not hold up another's reads.
"""
from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import rdl_sql
from rdl_sql.script import Statement, split
from rdl_sql.server import catalog, protocol, types
from rdl_sql.server import errors as pgerrors
from rdl_sql.server.auth import AuthFailed, scram_exchange
from rdl_sql.server.protocol import ClientGone, Payload, ProtocolViolation

log = logging.getLogger("rdl_sql.server")

FETCH_BATCH = 1000
# rdl_sql.script.split shares one sqlglot tokenizer, which is not thread-safe: the server splits
# statements here, under a lock, and hands the engine Statement objects (which it does not split again)
_SPLIT_LOCK = threading.Lock()


def split_statements(query: str) -> list[Statement]:
    with _SPLIT_LOCK:
        return split(query)


def internal(sql: str) -> Statement:
    """A statement of the server's own (plain SQL, never an rdl-sql statement)."""
    return Statement(sql, 1, 1, False)
QUERY_KINDS = {"SELECT", "WITH", "VALUES", "TABLE", "FROM", "SHOW", "DESCRIBE", "SUMMARIZE", "PRAGMA",
               "EXPLAIN", "PREDICT", "EVALUATE", "CALL", "PIVOT", "UNPIVOT", "(", "EXPORT"}
_COMMENT = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)+", re.S)
_WORD = re.compile(r"\(|[A-Za-z_]+")
_PARAM = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\$(\d+)", re.S)


def words(sql: str, n: int = 3) -> list[str]:
    """The first ``n`` keywords of ``sql``, upper-case, comments skipped."""
    sql = _COMMENT.sub("", sql, count=1)
    return [w.upper() for w in _WORD.findall(sql[:200])[:n]]


def count_params(sql: str) -> int:
    """The highest ``$n`` placeholder outside strings and comments."""
    return max((int(m.group(1)) for m in _PARAM.finditer(sql) if m.group(1)), default=0)


class QueryCanceled(Exception):
    pass


@dataclass
class Result:
    """An executed statement: its columns (or none), a row source, and how to tag it."""

    columns: list[tuple[str, types.PgType]] | None
    rows: Iterator[tuple] | None
    tag_verb: str
    count: int | None = None           # DML row count, when the statement reports one
    notices: list[str] = field(default_factory=list)
    sent: int = 0
    done: bool = False

    def tag(self) -> str:
        if self.tag_verb == "SELECT":
            return f"SELECT {self.count if self.count is not None and self.columns is None else self.sent}"
        if self.tag_verb == "INSERT":
            return f"INSERT 0 {self.count if self.count is not None else self.sent}"
        if self.tag_verb in ("UPDATE", "DELETE", "MERGE", "COPY", "FETCH", "MOVE"):
            return f"{self.tag_verb} {self.count if self.count is not None else self.sent}"
        return self.tag_verb


@dataclass
class Prepared:
    name: str
    sql: str
    param_oids: list[int]
    statement: Statement | None = None
    described: Result | None = None     # a parameterless rdl-sql statement run early by a Describe


@dataclass
class Portal:
    name: str
    stmt: Prepared
    params: list[Any]
    formats: list[int]
    result: Result | None = None
    described: bool = False


class ClientSession:
    def __init__(self, server, sock, address, pid: int):
        self.server = server
        self.conn = protocol.Connection(sock, server.max_message)
        self.address = address
        self.pid = pid
        self.secret = secrets.randbits(31)
        self.user = ""
        self.params = dict(catalog.DEFAULTS)
        self.db: rdl_sql.Connection | None = None
        self.cur = None
        self.status = "I"             # I idle, T in a transaction, E in a failed transaction
        self.prepared: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        self.busy = threading.Event()  # set while a statement runs
        self.cancelled = False
        self.generation = 0
        self.closing = False
        self._settings: set[str] | None = None

    # ---- lifetime ------------------------------------------------------------------
    def run(self) -> None:
        try:
            if not self._startup():
                return
            self._loop()
        except ClientGone:
            pass
        except ProtocolViolation as e:
            log.info("client %s: %s", self.address, e)
            self._fatal(e.sqlstate, str(e))
        except Exception as e:   # a bug here must not take the server down
            log.exception("client %s: internal error", self.address)
            self._fatal("XX000", f"internal server error: {e}")
        finally:
            self.close()

    def _fatal(self, sqlstate: str, message: str) -> None:
        try:
            self.conn.send(protocol.error_response(sqlstate, message, severity="FATAL"))
            self.conn.flush()
        except ClientGone:
            pass

    def close(self) -> None:
        for portal in self.portals.values():
            portal.result = None
        self.portals.clear()
        if self.db is not None:
            try:
                self.db.close()   # rolls back an open transaction, as PostgreSQL does
            except Exception:
                log.exception("closing a session")
            self.db = None
        try:
            self.conn.sock.close()
        except OSError:
            pass
        self.server.forget(self)

    def cancel(self) -> bool:
        """Stop the running statement (a CancelRequest or shutdown); False if nothing runs."""
        if not self.busy.is_set() or self.db is None:
            return False
        cancel = getattr(self.db, "cancel", None)
        if cancel is None:
            log.warning("cancel requested, but this rdl_sql has no Connection.cancel(); the statement runs on")
            return False
        self.cancelled = True
        generation = self.generation

        def keep_cancelling():
            # a cancel that lands between two steps of a statement (after one query, before the training
            # starts) could be missed: repeat it until this statement has ended
            while self.busy.is_set() and self.generation == generation and self.db is not None:
                try:
                    cancel()
                except Exception:
                    log.exception("cancel")
                    return
                time.sleep(0.25)

        threading.Thread(target=keep_cancelling, name=f"rdl-sql-cancel-{self.pid}", daemon=True).start()
        return True

    # ---- start-up --------------------------------------------------------------------
    def _startup(self) -> bool:
        while True:
            code, body = self.conn.read_startup()
            if code in (protocol.SSL_REQUEST, protocol.GSSENC_REQUEST):
                self.conn.send_raw(b"N")
                continue
            if code == protocol.CANCEL_REQUEST:
                pid, key = body.int32(), body.int32()
                self.server.cancel(pid, key)
                return False
            if code >> 16 != 3:
                raise ProtocolViolation(f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}: "
                                        "the server supports 3.0", "0A000")
            break
        startup: dict[str, str] = {}
        while not body.at_end():
            key = body.cstring()
            if not key:
                break
            startup[key] = body.cstring()
        unknown = [k for k in startup if k.startswith("_pq_.")]
        if code & 0xFFFF or unknown:
            self.conn.send(protocol.negotiate_protocol_version(0, unknown))
        self.user = startup.get("user", "")
        if not self.user:
            raise ProtocolViolation("no PostgreSQL user name specified in startup packet", "28000")
        if self.server.verifiers is not None:
            try:
                scram_exchange(self.conn, self.user, self.server.verifiers)
            except AuthFailed:
                self._fatal("28P01", f'password authentication failed for user "{self.user}"')
                return False
        self.conn.send(protocol.auth_ok())
        for key in ("application_name", "client_encoding", "DateStyle", "IntervalStyle", "extra_float_digits"):
            if key in startup and key != "client_encoding":
                self.params[key] = startup[key]
        enc = startup.get("client_encoding", "UTF8").upper().replace("-", "")
        if enc not in ("UTF8", "UNICODE", "SQL_ASCII"):
            self._fatal("22023", f"client_encoding {startup['client_encoding']!r} is not supported: use UTF8")
            return False
        self.params["session_authorization"] = self.user
        try:
            self.db = self.server.open_session_connection()
            self.cur = self.db.cursor()
            for sql in catalog.shim_sql(self.user):
                self.cur.execute(internal(sql))
        except Exception as e:
            self._fatal("57P03", f"cannot open the database: {e}")
            return False
        for key in catalog.REPORTED:
            self.conn.send(protocol.parameter_status(key, self.params.get(key, "")))
        self.conn.send(protocol.backend_key_data(self.pid, self.secret))
        self.conn.send(protocol.ready_for_query(self.status))
        self.conn.flush()
        log.info("client %s connected as %r (session %d)", self.address, self.user, self.pid)
        return True

    # ---- message loop ------------------------------------------------------------------
    def _loop(self) -> None:
        skipping = False   # after an error in the extended protocol, until Sync
        while True:
            kind, body = self.conn.read_message()
            if kind == b"X":
                return
            if self.closing:
                self._fatal("57P01", "terminating connection due to administrator command")
                return
            if kind == b"Q":
                self._simple_query(body.cstring())
                continue
            if kind == b"S":
                skipping = False
                self.conn.send(protocol.ready_for_query(self.status))
                self.conn.flush()
                continue
            if kind == b"H":
                self.conn.flush()
                continue
            handler = {b"P": self._parse, b"B": self._bind, b"D": self._describe, b"E": self._execute,
                       b"C": self._close}.get(kind)
            if handler is None:
                if kind in (b"d", b"c", b"f"):   # COPY data outside a COPY: ignored, as PostgreSQL does
                    continue
                if kind == b"F":
                    self._error("0A000", "the function call protocol message is not supported")
                    continue
                raise ProtocolViolation(f"invalid frontend message type {kind!r}")
            if skipping:
                continue
            try:
                handler(body)
            except (ClientGone, ProtocolViolation):
                raise
            except _Refused as e:
                self._error(e.sqlstate, str(e))
                skipping = True
            except (Exception, KeyboardInterrupt) as e:   # a cancelled training may raise an interrupt
                self._send_exception(e, getattr(e, "_query", ""), getattr(e, "_offset", 0),
                                     getattr(e, "_stmt", ""))
                skipping = True

    def _error(self, sqlstate: str, message: str, extra: dict | None = None) -> None:
        self.conn.send(protocol.error_response(sqlstate, message, extra))
        if self.status == "T":
            self.status = "E"

    def _send_exception(self, exc: BaseException, query: str, offset: int = 0, stmt_text: str = "") -> None:
        if isinstance(exc, (QueryCanceled, KeyboardInterrupt)) or type(exc).__name__ == "Cancelled":
            f = {"C": "57014", "M": "canceling statement due to user request"}
        elif isinstance(exc, (rdl_sql.Error, types.Unsupported, ValueError)):
            if isinstance(exc, types.Unsupported):
                f = {"C": "0A000", "M": str(exc)}
            elif isinstance(exc, ValueError) and not isinstance(exc, rdl_sql.Error):
                f = {"C": "22P02", "M": str(exc)}
            else:
                f = pgerrors.fields(exc, query, offset, stmt_text)
            if self.cancelled and f["C"] != "57014":
                f = {"C": "57014", "M": "canceling statement due to user request", "D": f["M"]}
        else:
            log.exception("internal error")
            f = {"C": "XX000", "M": f"internal error: {type(exc).__name__}: {exc}"}
        code, message = f.pop("C"), f.pop("M")
        self._error(code, message, f)

    # ---- executing one statement ----------------------------------------------------------
    def _settings_known(self, name: str) -> bool:
        if self._settings is None:
            cur = self.db.cursor()
            try:
                cur.execute(internal("SELECT lower(name) FROM duckdb_settings()"))
                self._settings = {r[0] for r in cur.fetchall()}
            finally:
                cur.close()
        return name.lower() in self._settings

    def execute(self, sql: Statement, params: list | None) -> Result:
        """Run one statement on this session's cursor; its rows are fetched lazily."""
        text = sql.text
        head = words(text, 4)
        verb = head[0] if head else ""
        if self.status == "E" and verb not in ("ROLLBACK", "ABORT", "COMMIT", "END"):
            raise _Refused("25P02", "current transaction is aborted, commands ignored until end of transaction "
                           "block")
        canned = catalog.intercept(text, self.params, self._settings_known)
        if canned is not None:
            for key in ("application_name", "DateStyle", "IntervalStyle", "TimeZone"):
                self.conn.send(protocol.parameter_status(key, self.params.get(key, "")))
            cols = [(c, types.PgType(types.TEXT)) for c in canned.columns] or None
            return Result(cols, iter(canned.rows) if cols else None, canned.tag if not cols else "SELECT")
        # transaction control, with PostgreSQL's leniency where DuckDB would refuse
        if verb in ("BEGIN", "START"):
            if self.status != "I":
                self.conn.send(protocol.notice_response("there is already a transaction in progress", "25001",
                                                        "WARNING"))
                return Result(None, None, "BEGIN")
            self._run(internal("BEGIN TRANSACTION"), None)
            self.status = "T"
            return Result(None, None, "BEGIN")
        if verb in ("COMMIT", "END", "ROLLBACK", "ABORT"):
            if head[:2] in (["ROLLBACK", "TO"], ["ROLLBACK", "PREPARED"], ["COMMIT", "PREPARED"]):
                raise _Refused("0A000", "rolling back to a savepoint and two-phase commit are not supported "
                              "(DuckDB has no savepoints): roll back the whole transaction")
            rollback = verb in ("ROLLBACK", "ABORT") or self.status == "E"
            if self.status == "I":
                self.conn.send(protocol.notice_response("there is no transaction in progress", "25P01",
                                                        "WARNING"))
            else:
                self.status = "I"
                self._run(internal("ROLLBACK" if rollback else "COMMIT"), None)
            return Result(None, None, "ROLLBACK" if rollback else "COMMIT")
        if verb in ("SAVEPOINT", "RELEASE"):
            # DuckDB has no savepoints: creating and releasing one are accepted (drivers open one for
            # nested transaction blocks); rolling back to one is refused above
            if self.status == "I":
                raise _Refused("25P01", f"{verb} can only be used in transaction blocks")
            return Result(None, None, verb)
        if head[:1] == ["COPY"] and re.search(r"\b(FROM|TO)\s+(STDIN|STDOUT)\b", text, re.I):
            raise _Refused("0A000", "COPY FROM STDIN / TO STDOUT is not supported: use INSERT, or COPY with a file")
        if catalog.is_catalog_query(text):
            original = text
            text = catalog.rewrite(text)
            sql = Statement(text, sql.index, sql.first_line, sql.is_rdl)
            try:
                self._run(sql, params)
            except rdl_sql.Error:
                if self.status == "I" and catalog.reads_empty_catalog(original):
                    # a question about triggers, policies, inheritance...: none exist here
                    log.debug("empty answer for catalog query: %s", original)
                    return Result([("?column?", types.PgType(types.TEXT))], iter(()), "SELECT")
                raise
            return self._result(verb, head)
        self._run(sql, params)
        return self._result(verb, head)

    def _run(self, sql, params) -> None:
        self.cancelled = False
        self.generation += 1
        self.busy.set()
        try:
            self.cur.execute(sql, params)
        except KeyboardInterrupt:
            if self.cancelled:
                raise QueryCanceled() from None
            raise
        finally:
            self.busy.clear()
        if self.cancelled:
            raise QueryCanceled()

    def _result(self, verb: str, head: list[str]) -> Result:
        cur = self.cur
        notices = list(getattr(cur, "notices", []) or [])
        desc = cur.description
        is_query = verb in QUERY_KINDS or "PREDICT" in head
        if verb == "CREATE" and len(head) > 1:
            tag = "CREATE " + (head[1] if head[1] not in ("OR", "TEMP", "TEMPORARY", "UNIQUE") else
                               (head[3] if head[1] == "OR" and len(head) > 3 else head[2] if len(head) > 2
                                else ""))
        elif verb in ("DROP", "ALTER") and len(head) > 1:
            tag = f"{verb} {head[1]}"
        else:
            tag = "SELECT" if is_query else (verb or "SELECT")
        # DuckDB answers DDL and DML with one "Count" or "Success" column: a command, not rows
        count_only = desc is not None and len(desc) == 1 and desc[0][0] in ("Count", "Success") and not is_query
        if desc is None or count_only:
            # rdl_sql's cursor already answers DML with description None and rowcount = rows changed
            count = cur.rowcount if desc is None and cur.rowcount >= 0 else None
            if count_only:
                row = cur.fetchone()
                if row is not None and desc[0][0] == "Count" and row[0] is not None:
                    count = int(row[0])
            if tag == "CREATE TABLE" and count is not None:
                tag = "SELECT"   # CREATE TABLE ... AS reports its rows, as in PostgreSQL
            return Result(None, None, tag, count, notices)
        cols = [(d[0], types.from_duckdb(d[1])) for d in desc]
        return Result(cols, self._rows(), tag if not is_query else "SELECT", None, notices)

    def _rows(self) -> Iterator[tuple]:
        cur = self.cur
        while True:
            batch = cur.fetchmany(FETCH_BATCH)
            if not batch:
                return
            yield from batch

    # ---- sending results ---------------------------------------------------------------
    def _describe_result(self, result: Result, formats: list[int]) -> None:
        if result.columns is None:
            self.conn.send(protocol.NO_DATA)
            return
        fields = []
        for i, (name, t) in enumerate(result.columns):
            fmt = _format_for(formats, i)
            fields.append((name, t.oid, t.size, t.modifier, fmt))
        self.conn.send(protocol.row_description(fields))

    def _send_rows(self, result: Result, formats: list[int], limit: int = 0) -> bool:
        """Send up to ``limit`` rows (0: all); True when the result is exhausted."""
        if result.rows is None or result.columns is None or result.done:
            return True
        encoders = []
        for i, (_name, t) in enumerate(result.columns):
            if _format_for(formats, i):
                encoders.append(lambda v, t=t: types.binary(v, t))
            else:
                encoders.append(lambda v, t=t: types.text(v, t).encode("utf-8"))
        send, data_row = self.conn.send, protocol.data_row
        n = 0
        for row in result.rows:
            send(data_row([None if v is None else enc(v) for v, enc in zip(row, encoders)]))
            result.sent += 1
            n += 1
            if limit and n >= limit:
                return False
        result.done = True
        return True

    def _complete(self, result: Result) -> None:
        for note in result.notices:
            self.conn.send(protocol.notice_response(note))
        self.conn.send(protocol.command_complete(result.tag()))

    # ---- simple query -------------------------------------------------------------------
    def _simple_query(self, query: str) -> None:
        self._drop_unnamed_portal()
        try:
            statements = split_statements(query)
        except Exception as e:
            self._send_exception(e, query)
            statements = None
        if statements == []:
            self.conn.send(protocol.EMPTY_QUERY)
        pos = 0
        for stmt in statements or []:
            offset = query.find(stmt.text, pos)
            offset = pos if offset < 0 else offset
            pos = offset + len(stmt.text)
            try:
                result = self.execute(stmt, None)
                self._describe_result(result, []) if result.columns is not None else None
                self._send_rows(result, [])
                self._complete(result)
            except (ClientGone, ProtocolViolation):
                raise
            except _Refused as e:
                self._error(e.sqlstate, str(e))
                break
            except (Exception, KeyboardInterrupt) as e:   # a cancelled training may raise an interrupt
                self._send_exception(e, query, offset, stmt.text)
                break
        self.conn.send(protocol.ready_for_query(self.status))
        self.conn.flush()

    # ---- extended query -------------------------------------------------------------------
    def _drop_unnamed_portal(self) -> None:
        self.portals.pop("", None)

    def _parse(self, body: Payload) -> None:
        name, query = body.cstring(), body.cstring()
        n = body.int16()
        if n < 0:
            raise ProtocolViolation("negative parameter count")
        oids = [body.int32() for _ in range(n)]
        if name and name in self.prepared:
            raise _Refused("42P05", f'prepared statement "{name}" already exists')
        statements = split_statements(query)
        if len(statements) > 1:
            raise _Refused("42601", "cannot insert multiple commands into a prepared statement")
        sql = statements[0].text if statements else ""
        nparams = max(count_params(sql), len(oids))
        oids += [0] * (nparams - len(oids))
        self.prepared[name] = Prepared(name, sql, oids, statements[0] if statements else None)
        self.conn.send(protocol.PARSE_COMPLETE)

    def _bind(self, body: Payload) -> None:
        portal_name, stmt_name = body.cstring(), body.cstring()
        stmt = self.prepared.get(stmt_name)
        if stmt is None:
            raise _Refused("26000", f'prepared statement "{stmt_name}" does not exist')
        nfmt = body.int16()
        fmts = [body.int16() for _ in range(max(nfmt, 0))]
        nparams = body.int16()
        if nparams != len(stmt.param_oids):
            raise _Refused("08P01", f"bind message supplies {nparams} parameters, but prepared statement "
                           f'"{stmt_name}" requires {len(stmt.param_oids)}')
        if nfmt not in (0, 1, nparams):
            raise ProtocolViolation(f"bind message has {nfmt} parameter formats but {nparams} parameters")
        values = []
        for i in range(nparams):
            length = body.int32()
            if length == -1:
                values.append(None)
                continue
            raw = body.bytes(length)
            oid = stmt.param_oids[i]
            if _format_for(fmts, i):
                values.append(types.decode_binary_param(raw, oid))
            else:
                values.append(types.decode_text_param(raw, oid))
        nres = body.int16()
        res_formats = [body.int16() for _ in range(max(nres, 0))]
        if any(f not in (0, 1) for f in res_formats + fmts):
            raise ProtocolViolation("format codes must be 0 (text) or 1 (binary)")
        if portal_name and portal_name in self.portals:
            raise _Refused("42P03", f'portal "{portal_name}" already exists')
        self.portals[portal_name] = Portal(portal_name, stmt, values, res_formats)
        self.conn.send(protocol.BIND_COMPLETE)

    def _start(self, portal: Portal) -> Result:
        if portal.result is None:
            self._settle_suspended(portal)
            stmt = portal.stmt
            if stmt.described is not None and not portal.params:
                portal.result, stmt.described = stmt.described, None
            else:
                try:
                    portal.result = self.execute(stmt.statement, portal.params or None)
                except Exception as e:
                    e._query, e._offset, e._stmt = stmt.sql, 0, stmt.sql
                    raise
        return portal.result

    def _settle_suspended(self, current: Portal) -> None:
        """Another statement is about to use the cursor: keep the rows a suspended portal has left."""
        for p in self.portals.values():
            if p is not current and p.result is not None and not p.result.done and p.result.rows is not None:
                p.result.rows = iter(list(p.result.rows))

    def _describe(self, body: Payload) -> None:
        what, name = body.byte(), body.cstring()
        if what == b"P":
            portal = self.portals.get(name)
            if portal is None:
                raise _Refused("34000", f'portal "{name}" does not exist')
            result = self._start(portal)
            portal.described = True
            self._describe_result(result, portal.formats)
            self._check_binary(result, portal.formats)
            return
        if what != b"S":
            raise ProtocolViolation("Describe must name a statement (S) or a portal (P)")
        stmt = self.prepared.get(name)
        if stmt is None:
            raise _Refused("26000", f'prepared statement "{name}" does not exist')
        self.conn.send(protocol.parameter_description([o or types.TEXT for o in stmt.param_oids]))
        head = words(stmt.sql, 4)
        verb = head[0] if head else ""
        if not stmt.sql:
            self.conn.send(protocol.NO_DATA)
        elif verb in ("SELECT", "WITH", "VALUES", "TABLE", "FROM") and "PREDICT" not in [w for w in
                                                                                           words(stmt.sql, 60)]:
            # the columns of a query, without running it: LIMIT 0 with NULL parameters
            cols = self._probe_columns(stmt)
            self._describe_result(Result(cols, None, "SELECT"), [])
        elif not stmt.param_oids and verb not in ("BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT"):
            # a parameterless statement (a PREDICT, SHOW ...): run it now, keep the result for Execute
            result = self.execute(stmt.statement, None)
            stmt.described = result
            if result.rows is not None:
                result.rows = iter(list(result.rows))
            self._describe_result(result, [])
        else:
            self.conn.send(protocol.NO_DATA)

    def _probe_columns(self, stmt: Prepared):
        cur = self.db.cursor()
        try:
            sql = catalog.rewrite(stmt.sql) if catalog.is_catalog_query(stmt.sql) else stmt.sql
            params = [None] * len(stmt.param_oids) or None
            cur.execute(internal(f"SELECT * FROM ({sql}) AS __rdl_describe LIMIT 0"), params)
            return [(d[0], types.from_duckdb(d[1])) for d in cur.description]
        except rdl_sql.Error:
            return None
        finally:
            cur.close()

    def _check_binary(self, result: Result, formats: list[int]) -> None:
        if not result.columns:
            return
        for i, (name, t) in enumerate(result.columns):
            if _format_for(formats, i) and t.oid in (types.TIMETZ,):
                raise _Refused("0A000", f'binary format is not supported for column "{name}" of type {t.name}; '
                               "ask for text format")

    def _execute(self, body: Payload) -> None:
        name = body.cstring()
        limit = body.int32()
        portal = self.portals.get(name)
        if portal is None:
            raise _Refused("34000", f'portal "{name}" does not exist')
        if not portal.stmt.sql:
            self.conn.send(protocol.EMPTY_QUERY)
            return
        result = self._start(portal)
        if not portal.described:
            self._check_binary(result, portal.formats)
        finished = self._send_rows(result, portal.formats, max(limit, 0))
        if finished:
            self._complete(result)
        else:
            self.conn.send(protocol.PORTAL_SUSPENDED)

    def _close(self, body: Payload) -> None:
        what, name = body.byte(), body.cstring()
        if what == b"S":
            self.prepared.pop(name, None)
        elif what == b"P":
            self.portals.pop(name, None)
        else:
            raise ProtocolViolation("Close must name a statement (S) or a portal (P)")
        self.conn.send(protocol.CLOSE_COMPLETE)


class _Refused(Exception):
    """A statement this server refuses, with its SQLSTATE."""

    def __init__(self, sqlstate: str, message: str):
        super().__init__(message)
        self.sqlstate = sqlstate


def _format_for(formats: list[int], i: int) -> int:
    if not formats:
        return 0
    if len(formats) == 1:
        return formats[0]
    return formats[i] if i < len(formats) else 0
