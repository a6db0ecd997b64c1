"""The protocol's edges: bad messages, cancel, passwords, read-only, shutdown, the listening address."""
from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from server_helpers import CHURN, ServerProcess, make_shop, needs_second_session_predict

import rdl_sql

psycopg = pytest.importorskip("psycopg")


def _startup(server) -> socket.socket:
    s = socket.create_connection((server.host, server.port), timeout=10)
    params = b"user\0tester\0database\0shop\0\0"
    s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
    buf = b""
    while not buf.endswith(b"Z\x00\x00\x00\x05I"):
        chunk = s.recv(4096)
        assert chunk, "server closed during start-up"
        buf += chunk
    return s


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        out += chunk
    return out


@pytest.mark.parametrize("payload, sqlstate", [
    (b"Y\x00\x00\x00\x04", b"08P01"),                          # unknown message type
    (b"Q" + struct.pack("!i", 1 << 30), b"54000"),             # oversized: 1 GiB announced
    (b"Q\x00\x00\x00\x02", b"08P01"),                          # length shorter than itself
    (b"P\x00\x00\x00\x08ab\x00\x00", b"08P01"),                # Parse cut short
])
def test_bad_message_closes_only_that_connection(server, pg, payload, sqlstate):
    s = _startup(server)
    s.sendall(payload)
    reply = _read_all(s)
    s.close()
    assert reply[:1] == b"E" and b"C" + sqlstate in reply
    assert pg.execute("SELECT count(*) FROM customers").fetchone() == (120,)


def test_garbage_start_up_and_ssl_request(server, pg):
    s = socket.create_connection((server.host, server.port), timeout=10)
    s.sendall(struct.pack("!ii", 8, 80877103))      # SSLRequest: refused with 'N', then a normal start-up
    assert s.recv(1) == b"N"
    s.sendall(b"\x7f\xff\xff\xff" + b"x" * 8)        # absurd start-up length
    assert b"08P01" in _read_all(s)
    s.close()
    assert pg.execute("SELECT 1").fetchone() == (1,)


def test_binary_parameters_and_results_round_trip(pg):
    with pg.cursor(binary=True) as cur:
        cur.execute("SELECT %b::BIGINT * 2, %b::DOUBLE, %b::VARCHAR, %b::DATE", [21, 0.5, "é", "2024-03-01"])
        assert cur.fetchone()[:3] == (42, 0.5, "é")


def test_cancel_a_running_query(server):
    with psycopg.connect(server.dsn(), autocommit=True) as con:
        timer = threading.Timer(1.0, con.cancel)
        timer.start()
        start = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            con.execute("SELECT count(*) FROM range(10000000000) a WHERE a.range % 7 = 3").fetchone()
        assert time.monotonic() - start < 15
        assert con.execute("SELECT 1").fetchone() == (1,)


@needs_second_session_predict
def test_cancel_stops_a_training(server):
    long = CHURN.replace("WITH (epochs = 1", "WITH (model = 'gnn', patience = 10000, epochs = 1000")
    with psycopg.connect(server.dsn(), autocommit=True) as con:
        timer = threading.Timer(3.0, con.cancel)
        timer.start()
        start = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            con.execute(long).fetchall()
        assert time.monotonic() - start < 30
        assert con.execute("SELECT 1").fetchone() == (1,)


def test_scram_password(tmp_path):
    db = make_shop(tmp_path / "pw.duckdb")
    pwfile = tmp_path / "passwords"
    pwfile.write_text("# users\nanalyst:s3cret pass\n")
    server = ServerProcess(db, "--password-file", str(pwfile))
    try:
        with psycopg.connect(server.dsn(user="analyst", password="'s3cret pass'"), autocommit=True) as con:
            assert con.execute("SELECT count(*) FROM orders").fetchone() == (1500,)
        for user, password in [("analyst", "wrong"), ("nobody", "s3cret pass")]:
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(server.dsn(user=user, password=f"'{password}'"), connect_timeout=10)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(server.dsn(user="analyst"), connect_timeout=10)   # no password at all
    finally:
        assert server.stop() == 0


def test_non_loopback_needs_a_password_file(tmp_path):
    r = subprocess.run([sys.executable, "-m", "rdl_sql.cli", "serve", str(tmp_path / "x.duckdb"), "--host",
                        "0.0.0.0"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--password-file" in r.stderr


def test_read_only_server_shares_the_file(tmp_path):
    db = make_shop(tmp_path / "ro.duckdb")
    server = ServerProcess(db, "--read-only")
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as con:
            assert con.execute("SELECT count(*) FROM customers").fetchone() == (120,)
            with pytest.raises(psycopg.Error) as err:
                con.execute("CREATE TABLE nope (a INTEGER)")
            assert err.value.sqlstate == "25006"
        other = rdl_sql.connect(str(db), read_only=True, progress=False)   # another process may read too
        assert other.execute("SELECT count(*) FROM orders").fetchone() == (1500,)
        other.close()
    finally:
        server.stop()


def test_shutdown_loses_nothing(tmp_path):
    db = make_shop(tmp_path / "down.duckdb")
    server = ServerProcess(db, "--grace", "5")
    idle = psycopg.connect(server.dsn(), autocommit=True)
    with psycopg.connect(server.dsn(), autocommit=True) as con:
        con.execute("CREATE TABLE kept AS SELECT range AS i FROM range(1000)")
        con.execute("INSERT INTO kept VALUES (-1)")
    in_tx = psycopg.connect(server.dsn())
    in_tx.execute("INSERT INTO kept VALUES (-2)")           # never committed: rolled back
    assert server.stop(signal.SIGTERM, timeout=60) == 0
    with pytest.raises(psycopg.OperationalError):
        idle.execute("SELECT 1")
    idle.close()
    in_tx.close()
    con = rdl_sql.connect(str(db), progress=False)          # the server released the file
    try:
        assert con.execute("SELECT count(*), min(i) FROM kept").fetchone() == (1001, -1)
    finally:
        con.close()
