"""The classic DB-API 2.0 compliance suite (PyPI ``dbapi-compliance``) against ``rdl_sql.connect``.

The suite's ``DatabaseAPI20Test`` is the test case driver authors subclass;
only what DuckDB cannot have is overridden, each override saying why.
"""
import pytest

import rdl_sql

dbapi20 = pytest.importorskip("dbapi20", reason="the DB-API 2.0 suite is in the test extras (dbapi-compliance)")


class TestRdlSqlDbApi20(dbapi20.DatabaseAPI20Test):
    driver = rdl_sql
    connect_args = (":memory:",)
    connect_kw_args = {"progress": False}

    # DuckDB has no stored procedures: callproc and nextset raise NotSupportedError, as PEP 249 allows
    def test_callproc(self):
        con = self._connect()
        try:
            with pytest.raises(rdl_sql.NotSupportedError, match="no stored procedures"):
                con.cursor().callproc(self.lower_func, ("FOO",))
        finally:
            con.close()

    def test_nextset(self):
        con = self._connect()
        try:
            with pytest.raises(rdl_sql.NotSupportedError):
                con.cursor().nextset()
        finally:
            con.close()

    # DuckDB has no output buffers to size (no LOB locators): setoutputsize is the no-op PEP 249 permits
    def test_setoutputsize(self):
        con = self._connect()
        try:
            cur = con.cursor()
            cur.setoutputsize(1000, 0)
            cur.execute("SELECT 'x' AS a")
            assert cur.fetchall() == [("x",)]
        finally:
            con.close()
