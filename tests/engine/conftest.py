"""Fixtures shared by the engine's end-to-end tests."""
from __future__ import annotations

import pytest

import rdl_sql
from rdl_sql.datasets.shop import build_shop


@pytest.fixture
def shop():
    """A connection on a small generated shop (300 customers, 300 days); modules with their own ``shop`` keep it."""
    con = rdl_sql.connect(progress=False)
    try:
        build_shop(con.duckdb_connection, customers=300, products=40, days=300, seed=0)
        yield con
    finally:
        con.close()
