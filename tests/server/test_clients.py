"""psycopg 3 and SQLAlchemy against ``rdl-sql serve``: parameters, types, errors, transactions, inspection."""
from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal

import pytest
from server_helpers import CHURN, needs_second_session_predict

psycopg = pytest.importorskip("psycopg")


def test_parameters_and_types_text_and_binary(pg):
    row = pg.execute("SELECT %s::INTEGER + 1, %s, %s, %s::DATE, %s::DOUBLE, %s::BOOLEAN",
                     [41, "it's", None, dt.date(2024, 2, 29), 2.5, True]).fetchone()
    assert row == (42, "it's", None, dt.date(2024, 2, 29), 2.5, True)
    sql = ("SELECT 1::SMALLINT, 2::INTEGER, 3::BIGINT, 1.25::DECIMAL(10, 2), 1.5::FLOAT, 2.5::DOUBLE, true, 'x', "
           "DATE '2024-01-02', TIMESTAMP '2024-01-02 03:04:05.5', TIMESTAMPTZ '2024-01-02 03:04:05+02', "
           "INTERVAL 90 MINUTE, [1, 2, NULL], ['a', 'b c'], NULL::INTEGER, 123456789012345678901::HUGEINT")
    expected = (1, 2, 3, Decimal("1.25"), 1.5, 2.5, True, "x", dt.date(2024, 1, 2),
                dt.datetime(2024, 1, 2, 3, 4, 5, 500000), dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=dt.timezone.utc),
                dt.timedelta(minutes=90), [1, 2, None], ["a", "b c"], None, Decimal("123456789012345678901"))
    assert pg.execute(sql).fetchone() == expected
    with pg.cursor(binary=True) as cur:
        assert cur.execute(sql).fetchone() == expected
    desc = pg.execute("SELECT 1::INTEGER AS i, 'x' AS t, [1.5::DOUBLE] AS l").description
    names = [(d.name, d.type_code) for d in desc]
    assert names == [("i", 23), ("t", 25), ("l", 1022)]


def test_parameters_in_where_and_insert(pg):
    pg.execute("CREATE OR REPLACE TABLE params_t (id INTEGER, name VARCHAR, ts TIMESTAMP)")
    with pg.cursor() as cur:
        cur.executemany("INSERT INTO params_t VALUES (%s, %s, %s)",
                        [(i, f"n{i}", dt.datetime(2024, 1, 1 + i)) for i in range(5)])
    assert pg.execute("SELECT name FROM params_t WHERE id = %s", [3]).fetchone() == ("n3",)
    assert pg.execute("SELECT count(*) FROM params_t WHERE ts >= %s AND name <> %s",
                      [dt.datetime(2024, 1, 3), "n4"]).fetchone() == (2,)
    cur = pg.execute("UPDATE params_t SET name = 'z' WHERE id < %s", [2])
    assert cur.rowcount == 2 and cur.statusmessage == "UPDATE 2"


def test_server_side_error_has_sqlstate_message_and_position(pg):
    with pytest.raises(psycopg.errors.UndefinedTable) as err:
        pg.execute("SELECT * FROM no_such_table")
    assert err.value.sqlstate == "42P01"
    assert "no_such_table" in err.value.diag.message_primary
    assert err.value.diag.statement_position == "15"
    # an rdl-sql statement's error: its message, and where in the statement
    with pytest.raises(psycopg.Error) as err:
        pg.execute("PREDICT COUNT(orders.*, 0, 30, DAYS) FOR EACH customers.nope")
    assert err.value.sqlstate.startswith("42")
    assert "nope" in err.value.diag.message_primary
    assert "line 1" in err.value.diag.message_primary
    assert err.value.diag.statement_position is not None
    # the connection is still usable
    assert pg.execute("SELECT 1").fetchone() == (1,)


def test_transactions(server, pg):
    pg.execute("CREATE OR REPLACE TABLE tx_t (a INTEGER)")
    with psycopg.connect(server.dsn()) as con:   # not autocommit: psycopg sends BEGIN
        con.execute("INSERT INTO tx_t VALUES (1)")
        assert pg.execute("SELECT count(*) FROM tx_t").fetchone() == (0,)   # not committed yet
        con.rollback()
        con.execute("INSERT INTO tx_t VALUES (2)")
        with con.transaction():   # a nested block: a savepoint, released
            con.execute("INSERT INTO tx_t VALUES (3)")
        con.commit()
    assert pg.execute("SELECT list(a ORDER BY a) FROM tx_t").fetchone() == ([2, 3],)
    # an error inside a transaction fails it until ROLLBACK, as in PostgreSQL
    with psycopg.connect(server.dsn()) as con:
        with pytest.raises(psycopg.errors.UndefinedTable):
            con.execute("SELECT * FROM nowhere")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            con.execute("SELECT 1")
        con.rollback()
        assert con.execute("SELECT 1").fetchone() == (1,)


def test_set_show_and_version(pg):
    pg.execute("SET application_name = 'bi tool'")
    assert pg.execute("SHOW application_name").fetchone() == ("bi tool",)
    assert pg.execute("SHOW standard_conforming_strings").fetchone() == ("on",)
    assert pg.execute("SHOW TRANSACTION ISOLATION LEVEL").fetchone()[0]
    assert pg.execute("SELECT version()").fetchone()[0].startswith("PostgreSQL 15.0 (rdl-sql")
    assert pg.info.parameter_status("server_version").startswith("15.0")
    assert pg.info.parameter_status("integer_datetimes") == "on"
    pg.execute("SET threads = 2")   # a DuckDB setting goes to DuckDB
    assert pg.execute("SELECT current_setting('threads')").fetchone() == (2,)


@needs_second_session_predict
def test_predict_over_psycopg(pg):
    rows = pg.execute(CHURN).fetchall()
    assert len(rows) == 120
    assert {type(r[0]) for r in rows} == {int}


@needs_second_session_predict
def test_sqlalchemy_reads_a_prediction_into_pandas(server):
    sa = pytest.importorskip("sqlalchemy")
    pd = pytest.importorskip("pandas")
    engine = sa.create_engine(f"postgresql+psycopg://tester@{server.host}:{server.port}/shop")
    try:
        df = pd.read_sql(sa.text(f"SELECT * FROM ({CHURN}) p ORDER BY customer_id"), engine)
        assert len(df) == 120 and "score" in df.columns
        assert df["customer_id"].tolist() == list(range(1, 121))
    finally:
        engine.dispose()


def test_sqlalchemy_inspector_and_core(server):
    sa = pytest.importorskip("sqlalchemy")
    pd = pytest.importorskip("pandas")
    engine = sa.create_engine(f"postgresql+psycopg://tester@{server.host}:{server.port}/shop")
    try:
        df = pd.read_sql(sa.text("SELECT country, count(*) AS n FROM customers GROUP BY 1 ORDER BY 1"), engine)
        assert df.to_dict("list") == {"country": ["DE", "FR", "US"], "n": [40, 40, 40]}
        insp = sa.inspect(engine)
        assert {"customers", "orders"} <= set(insp.get_table_names())
        cols = {c["name"]: c for c in insp.get_columns("orders")}
        assert list(cols) == ["order_id", "customer_id", "ordered_at", "amount"]
        assert isinstance(cols["order_id"]["type"], sa.INTEGER) and not cols["order_id"]["nullable"]
        assert isinstance(cols["ordered_at"]["type"], sa.TIMESTAMP)
        assert isinstance(cols["amount"]["type"], sa.Float)
        assert insp.get_pk_constraint("orders")["constrained_columns"] == ["order_id"]
        fks = insp.get_foreign_keys("orders")
        assert [(f["constrained_columns"], f["referred_table"], f["referred_columns"]) for f in fks] == [
            (["customer_id"], "customers", ["customer_id"])]
        with engine.connect() as con:   # Core with bound parameters
            n = con.execute(sa.text("SELECT count(*) FROM orders WHERE customer_id = :c"), {"c": 8}).scalar()
            assert n > 0
    finally:
        engine.dispose()


@needs_second_session_predict
def test_concurrent_clients_and_training_does_not_block_reads(server):
    errors: list[BaseException] = []

    def train():
        try:
            with psycopg.connect(server.dsn(), autocommit=True) as con:
                con.execute(CHURN.replace("epochs = 1", "epochs = 4")).fetchall()
        except BaseException as e:   # noqa: BLE001 - reported below
            errors.append(e)

    def reader(k: int):
        try:
            with psycopg.connect(server.dsn(), autocommit=True) as con:
                for _ in range(20):
                    assert con.execute("SELECT count(*) FROM orders WHERE customer_id %% 7 = %s",
                                       [k % 7]).fetchone()[0] > 0
        except BaseException as e:   # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=train)
    t.start()
    time.sleep(1.0)
    start = time.monotonic()
    with psycopg.connect(server.dsn(), autocommit=True) as con:
        con.execute("SELECT count(*) FROM customers").fetchone()
    first_read = time.monotonic() - start
    readers = [threading.Thread(target=reader, args=(k,)) for k in range(6)]
    for r in readers:
        r.start()
    for r in readers:
        r.join(60)
    t.join(120)
    assert not errors, errors
    assert first_read < 5.0, f"a read waited {first_read:.1f} s behind a training"
