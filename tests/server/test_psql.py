"""The psql binary against ``rdl-sql serve``: plain SQL, a PREDICT, errors, ``\\dt`` and ``\\d``."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from server_helpers import CHURN, needs_second_session_predict

pytestmark = pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")


def psql(server, *commands: str, password: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PGCONNECT_TIMEOUT="10")
    if password is not None:
        env["PGPASSWORD"] = password
    args = ["psql", "-X", "-h", server.host, "-p", str(server.port), "-U", "tester", "-d", "shop"]
    for c in commands:
        args += ["-c", c]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)


def test_plain_sql(server):
    r = psql(server, "CREATE TABLE psql_t (a INTEGER, b VARCHAR, d DATE, l INTEGER[])",
             "INSERT INTO psql_t VALUES (1, 'x', DATE '2024-01-02', [1, 2]), (2, NULL, NULL, NULL)",
             "SELECT * FROM psql_t ORDER BY a")
    assert r.returncode == 0, r.stderr
    assert "CREATE TABLE" in r.stdout and "INSERT 0 2" in r.stdout
    assert " 1 | x | 2024-01-02 | {1,2}" in r.stdout
    assert "(2 rows)" in r.stdout


@needs_second_session_predict
def test_predict(server):
    r = psql(server, f"SELECT count(*) AS n, min(score) >= 0 AS ok FROM ({CHURN}) p")
    assert r.returncode == 0, r.stderr
    assert " 120 | t" in r.stdout


def test_error_has_sqlstate_message_and_caret(server):
    r = subprocess.run(["psql", "-X", "-v", "VERBOSITY=verbose", "-h", server.host, "-p", str(server.port),
                        "-U", "tester", "-d", "shop", "-c", "SELECT nope FROM customers"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "ERROR:  42703:" in r.stderr and "nope" in r.stderr
    assert "LINE 1: SELECT nope FROM customers" in r.stderr
    assert "\n               ^" in r.stderr   # psql's caret under "nope", from the position we sent


def test_rdl_error_position(server):
    r = psql(server, "PREDICT COUNT(ordrs.*, 0, 30, DAYS) FOR EACH customers.customer_id")
    assert r.returncode == 1
    assert "ERROR:" in r.stderr and "ordrs" in r.stderr and "LINE 1:" in r.stderr


def test_dt_and_describe(server):
    r = psql(server, "\\dt", "\\d orders")
    assert r.returncode == 0, r.stderr
    assert "main   | customers | table" in r.stdout
    assert "main   | orders    | table" in r.stdout
    assert 'Table "main.orders"' in r.stdout
    assert "order_id    | integer                     |           | not null |" in r.stdout
    assert "ordered_at  | timestamp without time zone |" in r.stdout
    assert '"orders_pkey" PRIMARY KEY, btree (order_id)' in r.stdout
