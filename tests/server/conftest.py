"""Fixtures: one ``rdl-sql serve`` process over a tiny shop, shared by the server tests."""
from __future__ import annotations

from pathlib import Path

import pytest
from server_helpers import ServerProcess, make_shop


@pytest.fixture(scope="session")
def shop_db(tmp_path_factory) -> Path:
    return make_shop(tmp_path_factory.mktemp("server") / "shop.duckdb")


@pytest.fixture(scope="session")
def server(shop_db):
    s = ServerProcess(shop_db)
    yield s
    s.stop()
    if "Traceback" in s.stderr():   # a server-side bug shows here even when clients only saw an error
        print(s.stderr())


@pytest.fixture
def pg(server):
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(server.dsn(), autocommit=True, connect_timeout=10) as con:
        yield con
