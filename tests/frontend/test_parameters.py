"""Query parameters in rdl-sql statements: values go into the parsed statement, never into its text.

``?``, ``$1`` and ``$name`` stand wherever a value stands (AS OF, constants
in targets and filters, window bounds, FOR ... IN queries, WITH values); an
``execute`` with parameters runs exactly one statement, as in sqlite3.
"""
from __future__ import annotations

import datetime as dt
import shutil

import pytest

import rdl_sql
from rdl_sql.bind import substitute, to_query
from rdl_sql.datasets.shop import build_shop
from rdl_sql.dialect import canonical, parse_statement
from rdl_sql.planner.errors import PlanError

TINY = "WITH (epochs = 1, channels = 8, fanouts = '2,2', max_train_rows = 200, patience = 0)"
CHURN = "PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id"
INJECTION = "2023-10-01'; DROP TABLE victim; --"


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("params") / "shop.duckdb"
    with rdl_sql.connect(str(path), progress=False) as con:
        build_shop(con.duckdb_connection, customers=120, products=20, days=150, seed=1)
        con.execute(f"CREATE MODEL churn AS {CHURN} {TINY}")
        con.execute("CREATE TABLE victim (x INTEGER)")
        con.execute("INSERT INTO victim VALUES (1)")
    return path


@pytest.fixture
def con(shop_file, tmp_path):
    path = tmp_path / "copy.duckdb"
    shutil.copy(shop_file, path)
    c = rdl_sql.connect(str(path), progress=False)
    yield c
    c.close()


def bound(sql: str, params):
    node = substitute(parse_statement(sql), params)
    return node, to_query(node, sql)


# ---- binding, without a database --------------------------------------------------------------------
def test_every_value_position_takes_a_parameter():
    node, q = bound("PREDICT COUNT(orders.* WHERE orders.amount > ?, 0, ?, DAYS) > ? FOR EACH customers.customer_id "
                    "WHERE customers.country = ? ASSUMING COUNT(reviews.*, 0, ?, DAYS) > 0 AS OF TIMESTAMP ? "
                    "WITH (epochs = ?, sampler = ?)", [5.5, 30, 2, "US", 7, "2024-06-01", 3, "uniform"])
    assert q.target.aggregate.end == 30 and (q.target.op, q.target.value) == (">", 2)
    assert q.target.aggregate.where.sql() == "orders.amount > 5.5"
    assert q.where.sql() == "customers.country = 'US'"
    assert q.aggregates[1].end == 7
    assert q.as_of == dt.datetime(2024, 6, 1)
    assert (q.options.epochs, q.options.sampler) == (3, "uniform")
    assert "?" not in canonical(node)


def test_numbered_and_named_parameters():
    _, q = bound("PREDICT COUNT(o.*, 0, $2, DAYS) > $1 FOR EACH c.id WHERE c.x = $1", [4, 10])
    assert (q.target.value, q.target.aggregate.end, q.where.sql()) == (4, 10, "c.x = 4")
    _, q = bound("PREDICT COUNT(o.*, 0, 7, DAYS) > $n FOR EACH c.id AS OF $t", {"n": 1, "t": dt.date(2024, 1, 2)})
    assert (q.target.value, q.as_of) == (1, dt.datetime(2024, 1, 2))


def test_a_string_parameter_stays_one_string():
    node, q = bound("PREDICT COUNT(o.*, 0, 7, DAYS) > 0 FOR EACH c.id WHERE c.name = ?",
                    ["O'Brien'); DROP TABLE x; --"])
    assert q.where.sql() == "c.name = 'O''Brien''); DROP TABLE x; --'"
    assert parse_statement(canonical(node)).args["where"].expression.this == "O'Brien'); DROP TABLE x; --"


@pytest.mark.parametrize("sql, params, words", [
    ("PREDICT COUNT(o.*, 0, 7, DAYS) > ? FOR EACH c.id", [], "1 parameter but 0 values"),
    ("PREDICT COUNT(o.*, 0, 7, DAYS) > ? FOR EACH c.id", [1, 2], "1 parameter but 2 values"),
    ("PREDICT COUNT(o.*, 0, 7, DAYS) > ? FOR EACH c.id", None, "no values were given"),
    ("PREDICT COUNT(o.*, 0, 7, DAYS) > 1 FOR EACH c.id", [1], "has no `?` or `$n`"),
    ("PREDICT COUNT(o.*, 0, 7, DAYS) > ? FOR EACH c.id WHERE c.x = $1", [1], "one kind of parameter"),
    ("PREDICT COUNT(o.*, 0, 7, DAYS) > $2 FOR EACH c.id", [1, 2], "uses $2 but 2 values"),
    ("PREDICT COUNT(o.*, 0, 7, DAYS) > $n FOR EACH c.id", {"m": 1}, "no value given for parameter $n"),
    ("PREDICT COUNT(o.*, 0, 7, DAYS) > $n FOR EACH c.id", {"n": 1, "m": 2}, "does not use"),
    ("PREDICT COUNT(o.*, 0, 7, DAYS) > ? FOR EACH c.id", {"n": 1}, "not a mapping"),
    ("PREDICT COUNT(o.*, 0, 7, DAYS) > ? FOR EACH c.id", [float("inf")], "finite"),
    ("PREDICT COUNT(o.*, 0, 7, DAYS) > ? FOR EACH c.id", [object()], "must be a string, a number"),
    ("PREDICT COUNT(o.*, 0, ?, DAYS) > 1 FOR EACH c.id", ["7"], "window end must be a whole number"),
])
def test_parameter_mistakes_are_plan_errors(sql, params, words):
    with pytest.raises(PlanError) as err:
        bound(sql, params)
    assert words in err.value.message


# ---- through the connection --------------------------------------------------------------------------
def test_injection_through_as_of_is_a_clear_error_and_drops_nothing(con):
    # the application pasted d into "AS OF TIMESTAMP '{d}'" and lost table victim
    for sql in ("PREDICT USING churn AS OF TIMESTAMP ?", "PREDICT USING churn AS OF ?"):
        with pytest.raises(rdl_sql.ProgrammingError) as err:
            con.execute(sql, [INJECTION])
        assert "AS OF needs a timestamp" in str(err.value) and err.value.col == 27
    assert con.execute("SELECT x FROM victim").fetchall() == [(1,)]


def test_as_of_parameter_backtests_like_the_literal(con):
    literal = con.execute("PREDICT USING churn AS OF TIMESTAMP '2023-05-01'").fetchall()
    assert con.execute("PREDICT USING churn AS OF TIMESTAMP ?", ["2023-05-01"]).fetchall() == literal
    assert con.execute("PREDICT USING churn AS OF ?", [dt.datetime(2023, 5, 1)]).fetchall() == literal


def test_for_in_query_and_limit_take_parameters(con):
    rows = con.execute("PREDICT USING churn FOR customers.customer_id IN "
                       "(SELECT customer_id FROM customers WHERE customer_id <= ?) ORDER BY score DESC LIMIT ?",
                       [20, 5]).fetchall()
    assert len(rows) == 5 and all(r[0] <= 20 for r in rows)


def test_query_around_a_predict_takes_parameters_inside_and_outside(con):
    n = con.execute("SELECT count(*) FROM (PREDICT USING churn AS OF ?) p WHERE p.customer_id > ?",
                    ["2023-05-01", 100]).fetchall()
    assert n and 0 < n[0][0] <= 20


def test_explain_with_parameters_in_target_filter_and_options(con):
    rows = con.execute("EXPLAIN PREDICT COUNT(orders.*, 0, ?, DAYS) > ? FOR EACH customers.customer_id "
                       "WHERE customers.country = ? WITH (epochs = ?)", [14, 1, "US", 3]).fetchall()
    details = {(section, item): detail for section, item, detail in rows}
    assert "(0, 14] DAYS" in details[("task", "target")] and details[("model", "epochs")] == "3"
    assert "'US'" in details[("sql", "labels")]


def test_stored_model_shows_its_values_not_question_marks(con):
    con.execute(f"CREATE MODEL p AS {CHURN} WHERE customers.country = ? {TINY}", ["DE"])
    statement = dict(con.execute("DESCRIBE MODEL p").fetchall())["statement"]
    assert "'DE'" in statement and "?" not in statement


def test_plain_sql_parameters_still_go_to_duckdb(con):
    assert con.execute("SELECT ? + 1, $1::VARCHAR", [41]).fetchall() == [(42, "41")]


def test_parameters_run_exactly_one_statement(con):
    with pytest.raises(rdl_sql.ProgrammingError, match="single statement"):
        con.execute("SELECT ?; DROP TABLE victim", [1])
    assert con.execute("SELECT x FROM victim").fetchall() == [(1,)]


def test_rdl_statement_with_parameters_but_no_values_is_located(con):
    with pytest.raises(rdl_sql.ProgrammingError) as err:
        con.execute("PREDICT USING churn AS OF ?")
    assert "no values were given" in str(err.value) and err.value.col == 27
