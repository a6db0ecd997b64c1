"""PEP 249 behaviour of rdl_sql.connect, and the messages SQL users see."""
import pytest

import rdl_sql
from rdl_sql.datasets.shop import build_shop


@pytest.fixture
def con():
    c = rdl_sql.connect(progress=False)
    c.execute("""
        CREATE TABLE customers(customer_id INTEGER PRIMARY KEY, age INTEGER, signup DATE);
        CREATE TABLE orders(order_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(customer_id),
                            amount DOUBLE, ordered_at TIMESTAMP);
        CREATE TABLE notes(note_id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(customer_id),
                           body VARCHAR);
        INSERT INTO customers VALUES (1, 30, DATE '2024-01-01'), (2, 40, DATE '2024-01-02');
        INSERT INTO orders VALUES (1, 1, 5.0, TIMESTAMP '2024-02-01'), (2, 2, 7.5, TIMESTAMP '2024-02-03');
    """)
    yield c
    c.close()


def test_module_globals():
    assert (rdl_sql.apilevel, rdl_sql.threadsafety, rdl_sql.paramstyle) == ("2.0", 1, "qmark")
    assert issubclass(rdl_sql.ProgrammingError, rdl_sql.DatabaseError)
    assert issubclass(rdl_sql.DatabaseError, rdl_sql.Error)


def test_cursor_fetch_methods_and_description(con):
    cur = con.cursor()
    cur.execute("SELECT customer_id, age FROM customers WHERE age > ? ORDER BY 1", [10])
    assert [d[0] for d in cur.description] == ["customer_id", "age"]
    assert cur.fetchone() == (1, 30)
    assert cur.fetchmany(5) == [(2, 40)]
    assert cur.fetchone() is None
    cur.execute("SELECT * FROM customers ORDER BY 1")
    assert len(cur.fetchall()) == 2
    cur.execute("SELECT amount FROM orders ORDER BY 1")
    assert cur.fetch_arrow_table().column("amount").to_pylist() == [5.0, 7.5]
    cur.execute("SELECT amount FROM orders ORDER BY 1")
    assert list(cur.fetchdf()["amount"]) == [5.0, 7.5]
    cur.execute("SELECT 1 UNION ALL SELECT 2")
    assert [r[0] for r in cur] == [1, 2]
    cur.close()
    with pytest.raises(rdl_sql.InterfaceError):
        cur.execute("SELECT 1")


def test_script_returns_last_result_and_plain_sql_runs_as_written(con):
    # DuckDB syntax sqlglot may not know still runs, since plain SQL is passed through untouched
    cur = con.execute("CREATE TABLE t AS SELECT * FROM range(3) r(i); FROM t SELECT i * 2 AS j ORDER BY j;")
    assert cur.fetchall() == [(0,), (2,), (4,)]


def test_context_managers_close(tmp_path):
    path = str(tmp_path / "x.duckdb")
    with rdl_sql.connect(path) as c:
        with c.cursor() as cur:
            cur.execute("CREATE TABLE a(x INTEGER); INSERT INTO a VALUES (1)")
        assert cur._closed
    with pytest.raises(rdl_sql.InterfaceError):
        c.cursor()
    with rdl_sql.connect(path) as c:
        assert c.execute("SELECT x FROM a").fetchall() == [(1,)]


def test_duckdb_errors_are_wrapped(con):
    with pytest.raises(rdl_sql.ProgrammingError, match="nope"):
        con.execute("SELECT * FROM nope")
    with pytest.raises(rdl_sql.IntegrityError):
        con.execute("INSERT INTO customers VALUES (1, 1, NULL)")
    with pytest.raises(rdl_sql.ProgrammingError, match="no result"):
        rdl_sql.connect().fetchall()


def test_semantic_error_names_statement_line_column_and_fix(con):
    with pytest.raises(rdl_sql.ProgrammingError) as err:
        con.execute("SELECT 1;\nPREDICT COUNT(orderz.*, 0, 30, DAYS) = 0\nFOR EACH customers.customer_id;")
    assert str(err.value) == ("statement 2, line 2, column 15: table `orderz` not found; did you mean `orders`?\n"
                              "  PREDICT COUNT(orderz.*, 0, 30, DAYS) = 0\n"
                              "                ^^^^^^")
    assert (err.value.statement, err.value.line, err.value.col) == (2, 2, 15)


@pytest.mark.parametrize("sql, message", [
    ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_idd",
     "column `customer_idd` not found in table `customers`; did you mean `customer_id`?"),
    ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.age",
     "FOR EACH needs the primary key of `customers`: its primary key is (customer_id)"),
    ("PREDICT COUNT(orders.*, -30, 0, DAYS) = 0 FOR EACH customers.customer_id",
     "the target window (-30, 0] DAYS lies in the past"),
    ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id WHERE COUNT(orders.*, -5, 5, DAYS) > 0",
     "WHERE reads only the past, but (-5, 5] DAYS reaches into the future"),
    ("PREDICT SUM(orders.amont, 0, 30, DAYS) FOR EACH customers.customer_id",
     "column `amont` not found in table `orders`; did you mean `amount`?"),
    ("PREDICT COUNT(notes.*, 0, 30, DAYS) FOR EACH customers.customer_id",
     "table `notes` has no time column, so a window over it has no meaning"),
    ("PREDICT COUNT(orders.*, 0, 30, DAYS) FOR EACH customers.customer_id WHERE customers.agee > 3",
     "column `agee` not found in table `customers`; did you mean `age`?"),
    ("PREDICT COUNT(orders.*, 0, 30, DAYZ) FOR EACH customers.customer_id", "unknown time unit `DAYZ`"),
])
def test_semantic_errors(con, sql, message):
    with pytest.raises(rdl_sql.ProgrammingError) as err:
        con.execute(sql)
    text = str(err.value)
    assert message in text
    assert text.splitlines()[-1].strip().startswith("^")
    assert "Traceback" not in text


def test_not_linked_table_is_refused_with_the_fix(con):
    con.execute("CREATE TABLE visits(visit_id INTEGER PRIMARY KEY, cust INTEGER, visited_at TIMESTAMP)")
    with pytest.raises(rdl_sql.ProgrammingError) as err:
        con.execute("PREDICT COUNT(visits.*, 0, 7, DAYS) FOR EACH customers.customer_id")
    assert "table `visits` is not linked to `customers`" in str(err.value)
    assert "ALTER GRAPH ADD LINK visits(<column>) REFERENCES customers(customer_id)" in str(err.value)
    con.execute("ALTER GRAPH ADD LINK visits(cust) REFERENCES customers(customer_id)")
    graph = con.execute("DESCRIBE GRAPH").fetchall()
    assert ("visits", "cust", "INTEGER", "id", "link -> customers(customer_id) [override]", 0) in graph
    assert ("orders", "ordered_at", "TIMESTAMP", "time", "time", 2) in graph


def test_alter_graph_errors_and_time_override(con):
    with pytest.raises(rdl_sql.ProgrammingError, match="column `ordered` not found in table `orders`; did you mean"):
        con.execute("ALTER GRAPH SET TIME COLUMN orders(ordered)")
    with pytest.raises(rdl_sql.ProgrammingError, match="a time column must be DATE or TIMESTAMP"):
        con.execute("ALTER GRAPH SET TIME COLUMN orders(amount)")
    con.execute("ALTER GRAPH SET TIME COLUMN orders(NONE)")
    roles = {(r[0], r[1]): r[3] for r in con.execute("DESCRIBE GRAPH").fetchall()}
    assert roles[("orders", "ordered_at")] == "timestamp"
    assert con.execute("SELECT kind, table_name FROM rdl_graph").fetchall() == [("time", "orders")]


# ---- PEP 249: transactions ---------------------------------------------------------------
def _count(path, table="t"):
    with rdl_sql.connect(path, progress=False) as c:
        return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_commit_keeps_what_the_connections_own_execute_did_in_a_transaction(tmp_path):
    path = str(tmp_path / "tx.duckdb")
    con = rdl_sql.connect(path, progress=False)
    con.execute("CREATE TABLE t(a INTEGER)")
    con.execute("BEGIN")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.close()
    assert _count(path) == 1


def test_rollback_drops_what_a_cursor_did_in_a_transaction(tmp_path):
    path = str(tmp_path / "tx.duckdb")
    con = rdl_sql.connect(path, progress=False)
    con.execute("CREATE TABLE t(a INTEGER)")
    cur = con.cursor()
    cur.execute("BEGIN")
    cur.execute("INSERT INTO t VALUES (1), (2)")
    cur.execute("SELECT * FROM t")
    cur.fetchone()                                        # a half-fetched result does not block the rollback
    con.rollback()
    assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)
    cur.execute("INSERT INTO t VALUES (3)")               # auto-commit again after the rollback
    con.close()
    assert _count(path) == 1


def test_closing_without_commit_rolls_back_and_a_with_block_commits(tmp_path):
    path = str(tmp_path / "tx.duckdb")
    con = rdl_sql.connect(path, progress=False)
    con.execute("CREATE TABLE t(a INTEGER); BEGIN; INSERT INTO t VALUES (1)")
    con.close()
    assert _count(path) == 0
    with rdl_sql.connect(path, progress=False) as con:
        con.execute("BEGIN")
        con.execute("INSERT INTO t VALUES (1)")
    assert _count(path) == 1
    with pytest.raises(ZeroDivisionError), rdl_sql.connect(path, progress=False) as con:
        con.execute("BEGIN")
        con.execute("INSERT INTO t VALUES (2)")
        raise ZeroDivisionError
    assert _count(path) == 1


def test_autocommit_is_on_and_cannot_be_turned_off():
    with rdl_sql.connect(progress=False) as con:
        assert con.autocommit is True
        with pytest.raises(rdl_sql.NotSupportedError, match="BEGIN"):
            con.autocommit = False
        con.commit()      # nothing open: nothing happens
        con.rollback()


# ---- PEP 249: description, rowcount, fetch without a result ----------------------------------
def test_description_and_rowcount_for_each_kind_of_statement(con):
    cur = con.cursor()
    cur.execute("CREATE TABLE t(a INTEGER, b VARCHAR)")
    assert (cur.description, cur.rowcount) == (None, -1)
    with pytest.raises(rdl_sql.ProgrammingError, match="no rows to fetch"):
        cur.fetchone()
    cur.executemany("INSERT INTO t VALUES (?, ?)", [(1, "x"), (2, "y"), (3, "z")])
    assert (cur.description, cur.rowcount) == (None, 3)
    cur.execute("UPDATE t SET b = 'w' WHERE a >= 2")
    assert (cur.description, cur.rowcount) == (None, 2)
    cur.execute("INSERT INTO t VALUES (4, 'v') RETURNING a")         # RETURNING: rows
    assert [d[0] for d in cur.description] == ["a"] and cur.fetchall() == [(4,)]
    cur.execute('SELECT count(*) AS "Count" FROM t')                # a query's own Count column stays rows
    assert cur.description[0][0] == "Count" and cur.fetchall() == [(4,)]
    cur.execute("SET threads = 1")
    assert cur.description is None
    cur.execute("DESCRIBE GRAPH")                                    # rdl-sql statements return rows
    assert cur.description[0][0] == "table_name"
    cur.execute("SELECT a, b, DATE '2024-01-01' AS d, 1.5::DOUBLE AS x, 'a'::BLOB AS y FROM t LIMIT 1")
    types = [d[1] for d in cur.description]
    assert types[0] == rdl_sql.NUMBER and types[1] == rdl_sql.STRING and types[2] == rdl_sql.DATETIME
    assert types[3] == rdl_sql.NUMBER and types[4] == rdl_sql.BINARY and types[1] != rdl_sql.NUMBER
    assert all(len(d) == 7 for d in cur.description)


def test_a_half_fetched_result_does_not_block_the_next_rdl_statement(con):
    # DuckDB refuses other work on a connection with an unfinished result; the cursor drops it first
    cur = con.cursor()
    cur.execute("SELECT * FROM range(10000)")
    assert cur.fetchone() == (0,)
    cur.execute("DESCRIBE GRAPH")
    assert len(cur.fetchall()) > 5
    cur.execute("SELECT * FROM customers ORDER BY 1")
    cur.fetchone()
    cur.execute("SHOW MODELS")
    assert cur.fetchall() == []
    assert [d[0] for d in cur.description] == ["name", "task", "model", "metric", "val_metric", "test_metric",
                                               "train_rows", "val_rows", "test_rows", "threshold", "created_at",
                                               "statement"]


def test_type_objects_and_constructors():
    assert rdl_sql.STRING == "VARCHAR" and rdl_sql.NUMBER == "DECIMAL(10,2)" and rdl_sql.NUMBER != "INTEGER[]"
    assert rdl_sql.DATETIME == "TIMESTAMP WITH TIME ZONE" and rdl_sql.STRING != rdl_sql.NUMBER
    assert rdl_sql.Date(2024, 1, 2).isoformat() == "2024-01-02"
    assert rdl_sql.Timestamp(2024, 1, 2, 3, 4, 5).hour == 3 and rdl_sql.Time(1, 2, 3).second == 3
    assert rdl_sql.Binary(b"ab") == b"ab"
    assert rdl_sql.TimestampFromTicks(0).year in (1969, 1970) and rdl_sql.DateFromTicks(86400 * 366).year == 1971
    with rdl_sql.connect(progress=False) as c:
        cur = c.execute("SELECT ?::DATE, ?::TIMESTAMP", [rdl_sql.Date(2024, 5, 6), rdl_sql.Timestamp(2024, 5, 6, 7)])
        assert cur.fetchone() == (rdl_sql.Date(2024, 5, 6), rdl_sql.Timestamp(2024, 5, 6, 7))


def test_closing_twice_raises_for_a_connection_not_for_a_cursor():
    c = rdl_sql.connect(progress=False)
    assert c.Error is rdl_sql.Error and c.ProgrammingError is rdl_sql.ProgrammingError
    cur = c.cursor()
    cur.close()
    cur.close()
    with pytest.raises(rdl_sql.InterfaceError):
        cur.fetchall()
    c.close()
    with pytest.raises(rdl_sql.InterfaceError, match="already closed"):
        c.close()
    with pytest.raises(rdl_sql.InterfaceError):
        c.commit()


# ---- notebooks ---------------------------------------------------------------------------------
def test_reprs_say_what_a_connection_and_cursor_hold(con):
    assert repr(con) == "<rdl_sql.Connection ':memory:', open>"
    cur = con.cursor()
    assert repr(cur) == "<rdl_sql.Cursor no result>"
    cur.execute("INSERT INTO notes VALUES (1, 1, 'a')")
    assert repr(cur) == "<rdl_sql.Cursor 1 row changed>"
    cur.execute("SELECT customer_id, age FROM customers ORDER BY 1")
    assert repr(cur) == "<rdl_sql.Cursor result (customer_id, age)>"
    cur.metrics = {"val_AUROC": 0.71234, "epochs": 3}
    assert repr(cur).endswith("; metrics: val_AUROC 0.7123, epochs 3>")


def test_html_repr_shows_the_head_and_leaves_every_row_fetchable(con):
    cur = con.execute("SELECT * FROM range(25) r(i) ORDER BY i")
    shown = cur._repr_html_()
    assert "<table" in shown and "25 rows (10 shown)" in shown and "<td>9</td>" in shown and "<td>10</td>" not in shown
    assert cur._repr_html_() == shown                       # displayed twice: the same, nothing consumed
    assert [r[0] for r in cur.fetchall()] == list(range(25))
    cur.metrics = {"val_AUROC": 0.5}
    assert "val_AUROC" in cur._repr_html_()


def test_unignore_column_undoes_ignore_column(con):
    def stype():
        return {(r[0], r[1]): r[3] for r in con.execute("DESCRIBE GRAPH").fetchall()}[("customers", "age")]
    before = stype()
    con.execute("ALTER GRAPH IGNORE COLUMN customers(age)")
    assert stype() == "ignored"
    assert con.execute("ALTER GRAPH UNIGNORE COLUMN Customers(AGE)").fetchall() == [("customers: age used again",)]
    assert stype() == before != "ignored"
    assert con.execute("SELECT count(*) FROM rdl_graph WHERE kind = 'ignore'").fetchone() == (0,)
    with pytest.raises(rdl_sql.ProgrammingError, match="column `age` of `customers` is not ignored") as err:
        con.execute("ALTER GRAPH UNIGNORE COLUMN customers(age)")
    assert err.value.col == 39


def test_filling_a_column_without_null_returns_no_rows_and_says_why():
    with rdl_sql.connect(progress=False) as c:
        c.execute("CREATE TABLE people(person_id INTEGER PRIMARY KEY, age INTEGER, city VARCHAR);"
                  "INSERT INTO people SELECT i, 20 + i % 50, ['a', 'b', 'c'][1 + i % 3] FROM range(200) r(i)")
        cur = c.execute("PREDICT people.city FOR EACH people.person_id")
        assert [d[0] for d in cur.description][:3] == ["person_id", "prediction", "score"]
        assert cur.fetchall() == []
        assert any("`people.city` has no NULL to fill in: 0 rows, nothing trained" in n for n in cur.notices)
        assert cur.metrics is None


def test_a_displayed_result_is_released_by_the_next_statement(con):
    cur = con.execute("SELECT * FROM range(3) r(i)")
    assert "3 rows" in cur._repr_html_() and cur._peeked is not None
    cur.execute("SELECT 42 AS answer")
    assert cur._peeked is None
    assert "<td>42</td>" in cur._repr_html_()
    assert cur.fetchall() == [(42,)]
    cur.execute("SELECT 7")
    cur.fetchall()
    assert "0 rows" in cur._repr_html_()            # fetched before it was shown: nothing left to show


def test_a_gnn_predict_inside_an_open_transaction_reads_committed_rows_and_keeps_the_transaction(tmp_path):
    """It failed (an IndexError from the scoring UDF: the query saw the transaction's new row, the model's graph
    did not; or 'rdl_score_binary does not exist', installed after the transaction began), which aborted the
    transaction, so COMMIT then dropped the user's INSERT or UPDATE without a word."""
    path = str(tmp_path / "tx.duckdb")
    with rdl_sql.connect(path, progress=False) as c:
        build_shop(c.duckdb_connection, customers=120, products=20, days=150, seed=1)
        c.execute("CREATE MODEL g AS PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
                  "WITH (epochs = 1, max_train_rows = 500, channels = 8)")
        age = c.execute("SELECT age FROM customers WHERE customer_id = 3").fetchall()[0][0]
    for change in ("INSERT INTO customers VALUES (9001, TIMESTAMP '2020-01-01', 'XX', 30)",
                   "UPDATE customers SET age = age + 1 WHERE customer_id = 3"):
        with rdl_sql.connect(path, progress=False) as c:
            committed = c.execute("PREDICT USING g").fetchall()
            cur = c.cursor()
            cur.execute("BEGIN")
            cur.execute(change)
            assert cur.execute("PREDICT USING g").fetchall() == committed  # committed data, as README says
            joined = cur.execute("SELECT count(*) FROM (PREDICT USING g) p JOIN customers USING (customer_id)")
            assert joined.fetchall() == [(len(committed),)]
            cur.execute("COMMIT")
    with rdl_sql.connect(path, progress=False) as c:
        assert c.execute("SELECT count(*) FROM customers WHERE customer_id = 9001").fetchall() == [(1,)]
        assert c.execute("SELECT age FROM customers WHERE customer_id = 3").fetchall() == [(age + 1,)]


def test_drop_then_create_model_in_one_transaction_replaces_the_model(tmp_path):
    """DROP MODEL ran inside the user's transaction and CREATE MODEL outside it: the create said the model
    existed ('use DROP MODEL', just done) or conflicted, and after COMMIT no model was left."""
    path = str(tmp_path / "models.duckdb")
    churn = "PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id WITH (model = 'gbdt')"
    with rdl_sql.connect(path, progress=False) as c:
        build_shop(c.duckdb_connection, customers=120, products=20, days=150, seed=1)
        c.execute(f"CREATE MODEL churn AS {churn}")
    for create in ("CREATE MODEL", "CREATE OR REPLACE MODEL"):
        with rdl_sql.connect(path, progress=False) as c:
            before = c.execute("SELECT created_at FROM rdl_models WHERE name = 'churn'").fetchall()
            cur = c.cursor()
            cur.execute("BEGIN")
            cur.execute("DROP MODEL churn")
            cur.execute(f"{create} churn AS {churn}")
            cur.execute("COMMIT")
            after = c.execute("SELECT created_at FROM rdl_models WHERE name = 'churn'").fetchall()
            assert len(after) == 1 and after != before
