"""``rdl_sql.register(con)``: a plain DuckDB connection runs rdl-sql from SQL alone, stored models included."""
from __future__ import annotations

import gc
import shutil

import duckdb
import pytest

import rdl_sql
from rdl_sql import embed
from rdl_sql.udfs import scoring

CHURN = ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
         "WHERE COUNT(orders.*, -90, 0, DAYS) > 0 WITH (epochs = 1, channels = 16, fanouts = '4,4', "
         "max_train_rows = 1500)")  # the statement of the shared `stored` fixture (tests/frontend/conftest.py)


@pytest.fixture
def con(stored, tmp_path):
    path = tmp_path / "copy.duckdb"
    shutil.copy(stored[0], path)
    c = duckdb.connect(str(path))
    rdl_sql.register(c)
    yield c
    c.close()


def test_a_stored_model_predicts_in_from_on_a_plain_duckdb_connection(con, stored):
    """The issue's failure was `KeyError: model 'churn' is not loaded in this session`."""
    rows = con.execute("SELECT * FROM rdl('PREDICT USING churn') ORDER BY customer_id").fetchall()
    assert rows == stored[1]
    joined = con.execute("SELECT c.country, count(*), avg(p.score) FROM rdl('PREDICT USING churn') p "
                         "JOIN customers c USING (customer_id) GROUP BY ALL ORDER BY 1").fetchall()
    assert sum(r[1] for r in joined) == len(rows) and all(0 <= r[2] <= 1 for r in joined)
    df = con.execute("SELECT customer_id, score FROM rdl('PREDICT USING churn')").df()
    assert list(df.columns) == ["customer_id", "score"] and len(df) == len(rows)


def test_two_calls_in_one_query_and_inside_a_transaction(con, stored):
    n = len(stored[1])
    assert con.execute("SELECT count(*) FROM rdl('PREDICT USING churn') a "
                       "JOIN rdl('SELECT customer_id FROM customers') b USING (customer_id)").fetchall() == [(n,)]
    con.execute("BEGIN")
    assert con.execute("SELECT count(*) FROM rdl('PREDICT USING churn')").fetchall() == [(n,)]
    assert con.execute("SELECT count(*) FROM rdl('PREDICT USING churn')").fetchall() == [(n,)]
    con.execute("COMMIT")


def test_rdl_run_writes_a_prediction_table(con, stored):
    (said,) = con.execute("SELECT rdl_run('CREATE TABLE scores AS PREDICT USING churn')").fetchone()
    assert said.startswith(f"{len(stored[1])} rows changed") and "scored with stored model `churn`" in said
    assert con.execute("SELECT * FROM scores ORDER BY customer_id").fetchall() == stored[1]
    (said,) = con.execute("SELECT rdl_run('SHOW MODELS')").fetchone()
    assert said.startswith("1 row ")


def test_any_cursor_reaches_it_through_query(con, stored):
    cur = con.cursor()
    assert cur.execute("SELECT count(*) FROM query(rdl_query('PREDICT USING churn'))").fetchall() == [
        (len(stored[1]),)]


def test_statements_without_rows_give_ok_and_rdl_statements_their_answer(con):
    assert con.execute("SELECT * FROM rdl('CREATE TABLE t (x INTEGER)')").fetchall() == [("OK",)]
    rows = con.execute("SELECT * FROM rdl('DROP MODEL churn')").fetchall()
    assert rows and "churn" in rows[0][0]
    assert con.execute("SELECT count(*) FROM rdl_models").fetchall() == [(0,)]


def test_mistakes_are_rdl_sql_messages_with_the_place(con):
    with pytest.raises(duckdb.Error) as err:
        con.execute("SELECT * FROM rdl('PREDICT USING nope')")
    text = str(err.value)
    assert "model `nope` not found" in text and "PREDICT USING nope" in text and "^^^^" in text
    assert "Traceback" not in text
    with pytest.raises(duckdb.Error, match="empty statement"):
        con.execute("SELECT rdl_run('  ')")
    assert con.execute("SELECT rdl_run(NULL)").fetchall() == [(None,)]


def test_results_are_kept_in_a_bounded_number_of_attached_databases(con):
    for i in range(embed.KEEP + 3):
        assert con.execute(f"SELECT * FROM rdl('SELECT {i} AS x')").fetchall() == [(i,)]
    names = [r[0] for r in con.execute("SELECT database_name FROM duckdb_databases() "
                                       "WHERE database_name LIKE 'rdl_result_%'").fetchall()]
    assert len(names) == embed.KEEP


def test_read_only_connection_and_the_lock_is_released_on_close(stored, tmp_path):
    path = tmp_path / "ro.duckdb"
    shutil.copy(stored[0], path)
    a = duckdb.connect(str(path), read_only=True)
    b = duckdb.connect(str(path), read_only=True)  # another reader beside it
    rdl_sql.register(a)
    rdl_sql.register(a)  # again: nothing happens
    assert a.execute("SELECT count(*) FROM rdl('PREDICT USING churn')").fetchall() == [(len(stored[1]),)]
    assert b.execute("SELECT count(*) FROM customers").fetchall() == [(300,)]
    a.close()
    b.close()
    w = duckdb.connect(str(path))  # the session's cursors went with the connection: the file is free to write
    w.execute("CREATE TABLE after_close AS SELECT 1")
    w.close()


def test_register_wants_a_duckdb_connection():
    with rdl_sql.connect(":memory:", progress=False) as c, pytest.raises(rdl_sql.InterfaceError,
                                                                          match="duckdb connection"):
        rdl_sql.register(c)


def test_the_session_s_models_go_with_the_connection(stored, tmp_path):
    path = tmp_path / "gone.duckdb"
    shutil.copy(stored[0], path)
    before = len(scoring._held)
    c = duckdb.connect(str(path))
    rdl_sql.register(c)
    c.execute("SELECT count(*) FROM rdl('PREDICT USING churn')").fetchall()
    assert len(scoring._held) == before + 1
    c.close()
    del c
    gc.collect()
    assert len(scoring._held) == before


def test_a_prediction_that_trains_runs_inside_the_function(con, stored):
    quoted = CHURN.replace("'", "''")
    rows = con.execute(f"SELECT customer_id, prediction, score FROM rdl('{quoted}') ORDER BY customer_id").fetchall()
    assert len(rows) == len(stored[1]) and all(0 <= r[2] <= 1 for r in rows)
    (said,) = con.execute(f"SELECT rdl_run('CREATE MODEL churn2 AS {quoted}')").fetchone()
    assert said.startswith("1 row ") and "trained" in said
    assert con.execute("SELECT name FROM rdl_models ORDER BY name").fetchall() == [("churn",), ("churn2",)]


def test_a_name_taken_by_the_users_own_function_or_macro_is_said_so():
    """It blamed 'another connection of this process' for the user's own rdl_run, and said only
    'rdl_query is not an scalar function' for a macro of that name."""
    plain = duckdb.connect()
    plain.create_function("rdl_run", lambda s: s, ["VARCHAR"], "VARCHAR")
    macro = duckdb.connect()
    macro.execute("CREATE MACRO rdl_query(x) AS x")
    for c in (plain, macro):
        with pytest.raises(rdl_sql.InterfaceError, match="the name rdl_query or rdl_run is taken on this database: "
                                                         "by another connection .* or by a function or macro of "
                                                         "your own \\(drop or rename it\\)"):
            rdl_sql.register(c)
        c.close()
