"""The listener: accepts clients (one thread each), routes CancelRequests, shuts down cleanly.

The server opens the database once and keeps that connection for its whole
life; every client session opens its own ``rdl_sql`` connection to the same
path, which DuckDB serves from the same open database (one process, one
lock). On SIGINT/SIGTERM it stops accepting, lets running statements finish
for a grace period, cancels what still runs, closes every session (open
transactions roll back, as in PostgreSQL) and finally CHECKPOINTs and closes
the database, so everything committed is in the file.
"""
from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import signal
import socket
import threading
import time

import rdl_sql
from rdl_sql.server import protocol
from rdl_sql.server.auth import read_password_file
from rdl_sql.server.session import ClientSession

log = logging.getLogger("rdl_sql.server")


class ConfigError(Exception):
    """A server option that cannot work (the CLI prints it and exits with status 2)."""


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback
                       for info in socket.getaddrinfo(host, None))
        except (OSError, ValueError):
            return False


class Server:
    def __init__(self, database: str, host: str = "127.0.0.1", port: int = 5433, read_only: bool = False,
                 password_file: str | None = None, max_message: int = protocol.DEFAULT_MAX_MESSAGE,
                 grace: float = 10.0, config: dict | None = None, max_clients: int = 100):
        if not is_loopback(host) and password_file is None:
            raise ConfigError(f"refusing to listen on {host!r} without --password-file: anyone who can reach "
                              "the port could read, change or drop every table. Give a password file, or keep "
                              "the default host 127.0.0.1.")
        self.database = database if database == ":memory:" else os.path.abspath(database)
        if self.database == ":memory:":
            self.database = ":memory:rdl_sql_server"   # a named in-memory database the sessions can share
        self.host, self.port = host, port
        self.read_only = read_only
        self.verifiers = read_password_file(password_file) if password_file else None
        self.max_message = max_message
        self.grace = grace
        self.config = dict(config or {})
        self.max_clients = max_clients
        self._root: rdl_sql.Connection | None = None
        self._sock: socket.socket | None = None
        self._sessions: dict[int, ClientSession] = {}
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._ids = itertools.count(os.getpid() % 10_000 * 1000 + 1)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._accept_thread: threading.Thread | None = None

    # ---- database ---------------------------------------------------------------------
    def _connect(self) -> rdl_sql.Connection:
        kwargs = {"read_only": self.read_only, "progress": False}
        if self.config:
            kwargs["config"] = self.config
        return rdl_sql.connect(self.database, **kwargs)

    def open_session_connection(self) -> rdl_sql.Connection:
        if self._stop.is_set():
            raise RuntimeError("the server is shutting down")
        return self._connect()

    # ---- listening ---------------------------------------------------------------------
    def start(self) -> "Server":
        """Open the database and the listening socket; accept clients on a background thread."""
        self._root = self._connect()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            self._root.close()
            raise ConfigError(f"cannot listen on {self.host}:{self.port}: {e.strerror or e}") from None
        sock.listen(128)
        sock.settimeout(0.2)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._accept_thread = threading.Thread(target=self._accept_loop, name="rdl-sql-accept", daemon=True)
        self._accept_thread.start()
        return self

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, address = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.05)
                continue
            client.settimeout(None)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if len(self._sessions) >= self.max_clients:
                    _refuse(client, "53300", "sorry, too many clients already")
                    continue
                session = ClientSession(self, client, address, next(self._ids))
                self._sessions[session.pid] = session
                t = threading.Thread(target=self._serve_client, args=(session,), name=f"rdl-sql-{session.pid}",
                                     daemon=True)
                self._threads.add(t)
            t.start()

    def _serve_client(self, session: ClientSession) -> None:
        try:
            session.run()
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def forget(self, session: ClientSession) -> None:
        with self._lock:
            if self._sessions.get(session.pid) is session:
                del self._sessions[session.pid]

    def cancel(self, pid: int, key: int) -> None:
        """A CancelRequest: cancel session ``pid``'s running statement if ``key`` matches its secret."""
        with self._lock:
            session = self._sessions.get(pid)
        if session is not None and session.secret == key:
            session.cancel()

    # ---- running and stopping -------------------------------------------------------------
    def serve_forever(self) -> None:
        """Serve until SIGINT or SIGTERM, then shut down cleanly."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self._stop.set())
        while not self._stop.wait(0.5):
            pass
        self.shutdown()

    def shutdown(self) -> None:
        if self._stopped.is_set():
            return
        self._stop.set()
        log.info("shutting down")
        if self._accept_thread is not None:
            self._accept_thread.join(2)
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            sessions = list(self._sessions.values())
        # idle sessions end now; running statements get the grace period, then are cancelled
        for s in sessions:
            s.closing = True
            if not s.busy.is_set():
                _hang_up(s)
        deadline = time.monotonic() + self.grace
        while any(s.busy.is_set() for s in sessions) and time.monotonic() < deadline:
            time.sleep(0.05)
        for s in sessions:
            if s.busy.is_set():
                s.cancel()
        deadline = time.monotonic() + 10
        while any(s.busy.is_set() for s in sessions) and time.monotonic() < deadline:
            time.sleep(0.05)
        for s in sessions:
            _hang_up(s)
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()) + 1)
        if self._root is not None:
            if not self.read_only:
                try:
                    self._root.execute("CHECKPOINT")
                except rdl_sql.Error as e:
                    log.warning("CHECKPOINT at shutdown failed: %s", e)
            self._root.close()
            self._root = None
        self._stopped.set()
        log.info("stopped")


def _hang_up(session: ClientSession) -> None:
    try:
        session.conn.send_raw(protocol.error_response("57P01", "terminating connection due to administrator "
                                                               "command", severity="FATAL"))
    except Exception:
        pass
    try:
        session.conn.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _refuse(client: socket.socket, sqlstate: str, message: str) -> None:
    try:
        client.sendall(protocol.error_response(sqlstate, message, severity="FATAL"))
    except OSError:
        pass
    client.close()


def serve(database: str, host: str = "127.0.0.1", port: int = 5433, read_only: bool = False,
          password_file: str | None = None, config: dict | None = None, announce=print) -> int:
    """Run the server in the foreground until SIGINT/SIGTERM (what ``rdl-sql serve`` does)."""
    server = Server(database, host, port, read_only, password_file, config=config).start()
    auth = "SCRAM-SHA-256 passwords" if server.verifiers else "no password (loopback only)"
    announce(f"rdl-sql server on {server.host}:{server.port}, database {database} "
             f"({'read-only' if read_only else 'read-write'}, {auth}); Ctrl-C stops it")
    server.serve_forever()
    return 0
