"""Mistakes in SQL give an rdl_sql error with a position and a fix, never a Python exception (issue 8).

Each test pins one class of failure that a hostile-user run found: it raised
a Python exception (RecursionError, TypeError, OverflowError, a raw DuckDB
error), showed sqlglot's internals, or said something beside the point.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import re
import shutil

import duckdb
import pytest

import rdl_sql
from rdl_sql.bind import to_query
from rdl_sql.datasets.shop import build_shop
from rdl_sql.dialect import parse_statement

TINY = "WITH (epochs = 1, channels = 8, fanouts = '2,2', max_train_rows = 200, patience = 0)"
CHURN = "PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id"
#: Python class names, sqlglot internals, tracebacks: none may reach a SQL user
INTERNALS = re.compile(r"<class |\bsqlglot\.|\bTokenType\b|Traceback|\b[A-Za-z]*[a-z](?:Error|Exception)\b")


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory):
    """A small shop database file holding one stored model, `churn`."""
    path = tmp_path_factory.mktemp("errors") / "shop.duckdb"
    with rdl_sql.connect(str(path), progress=False) as con:
        build_shop(con.duckdb_connection, customers=120, products=20, days=150, seed=1)
        con.execute(f"CREATE MODEL churn AS {CHURN} {TINY}")
    return path


@pytest.fixture
def con(shop_file, tmp_path):
    path = tmp_path / "copy.duckdb"
    shutil.copy(shop_file, path)
    c = rdl_sql.connect(str(path), progress=False)
    yield c
    c.close()


def error(con, sql, kind=rdl_sql.ProgrammingError) -> rdl_sql.Error:
    """The rdl_sql error ``sql`` raises; its message shows nothing of Python."""
    with pytest.raises(kind) as err:
        con.execute(sql)
    assert not INTERNALS.search(str(err.value)), str(err.value)
    return err.value


# ---- nesting --------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [60, 400, 990])
def test_nested_parentheses_up_to_duckdbs_depth_plan(con, depth):
    # RecursionError from 50 levels on before: sqlglot's parser recursed past Python's limit
    where = "(" * depth + "customers.age > 30" + ")" * depth
    rows = con.execute(f"EXPLAIN {CHURN} WHERE {where}").fetchall()
    assert any(section == "task" for section, _, _ in rows)


def test_nesting_past_duckdbs_depth_is_a_located_error(con):
    err = error(con, f"EXPLAIN {CHURN} WHERE " + "(" * 1200 + "customers.age > 30" + ")" * 1200)
    assert "max_expression_depth" in str(err) and err.line == 1 and err.col is not None


# ---- time zones, BC and extreme times -------------------------------------------------------------
@pytest.mark.parametrize("literal, utc", [
    ("TIMESTAMP '2023-06-01T12:00:00Z'", dt.datetime(2023, 6, 1, 12)),
    ("TIMESTAMPTZ '2023-06-01 12:00:00+02'", dt.datetime(2023, 6, 1, 10)),
])
def test_time_zone_aware_as_of_is_taken_in_utc(con, literal, utc):
    # TypeError (offset-naive vs offset-aware) before
    sql = f"{CHURN} AS OF {literal}"
    assert to_query(parse_statement(sql), sql).as_of == utc
    rows = con.execute(f"EXPLAIN {sql}").fetchall()
    assert any("2023-06-01" in str(detail) for _, _, detail in rows)


def test_bc_dated_row_is_refused_with_the_fix(con):
    # TypeError ('<' between datetime and str) before: DuckDB hands a BC time to Python as text
    con.execute("INSERT INTO orders SELECT 99999, customer_id, product_id, TIMESTAMP '0044-03-15 (BC)', amount "
                "FROM orders LIMIT 1")
    err = error(con, f"EXPLAIN {CHURN}")
    assert "0044-03-15 (BC)" in str(err) and "NULL" in str(err)


@pytest.mark.parametrize("sql, words", [
    # OverflowError / ValueError before, reachable through EXPLAIN alone
    ("EXPLAIN PREDICT COUNT(orders.*, 0, 3000000000, DAYS) = 0 FOR EACH customers.customer_id", "out of range"),
    (f"EXPLAIN {CHURN} WHERE COUNT(orders.*, -9223372036854775807, 0, DAYS) > 0", "out of range"),
    (f"EXPLAIN {CHURN} WHERE COUNT(orders.*, -2147483649, 0, SECONDS) > 0", "out of range"),
    (f"EXPLAIN {CHURN} WITH (val_start = '0001-01-02', test_start = '0001-02-01')", "years 1 to 9999"),
    (f"EXPLAIN {CHURN} AS OF TIMESTAMP '10000-01-01'", "AS OF needs a timestamp"),
    (f"EXPLAIN {CHURN} AS OF TIMESTAMP '0001-01-01'", "no dated rows"),
])
def test_huge_windows_and_extreme_dates_are_plan_errors(con, sql, words):
    assert words in str(error(con, sql))


def test_huge_anchor_step_plans_or_refuses_without_overflow(con):
    # OverflowError before: the anchor grid stepped past the year 1
    rows = con.execute(f"EXPLAIN {CHURN} WITH (anchor_step = 1000000)").fetchall()
    assert rows


def test_far_future_as_of_plans(con):
    assert con.execute(f"EXPLAIN {CHURN} AS OF TIMESTAMP '9999-12-31'").fetchall()


# ---- options that training could not use ----------------------------------------------------------
@pytest.mark.parametrize("option", ["epochs = 0", "batch_size = 0", "lr = 1e30", "seed = 9223372036854775808",
                                    "channels = 0"])
def test_options_training_would_crash_on_are_refused_through_sql(con, option):
    # accepted before, then training crashed or trained a constant model
    err = error(con, f"{CHURN} WITH ({option})")
    assert f"option `{option.split(' ')[0]}` must be" in str(err) and err.line == 1


def test_training_that_diverges_is_an_error_not_null_predictions(con, monkeypatch):
    from rdl_sql.engine import gnn
    real = gnn.train

    def diverged(*args, **kwargs):
        result = real(*args, **kwargs)
        result.metrics["val_MAE"] = math.nan  # what an exploding learning rate leaves
        return result

    monkeypatch.setattr(gnn, "train", diverged)
    err = error(con, f"PREDICT SUM(orders.amount, 0, 30, DAYS) FOR EACH customers.customer_id {TINY}")
    assert "diverged" in str(err) and "lr" in str(err)


def test_only_a_nan_validation_metric_is_divergence_not_an_undefined_test_one():
    """A test split of one class has no AUROC: that is no reason to blame the learning rate."""
    from rdl_sql.engine.runner import _refuse_diverged
    from rdl_sql.planner.errors import PlanError
    _refuse_diverged({"val_AUROC": 0.71, "test_AUROC": math.nan, "test_rows": 18}, 0.005)
    with pytest.raises(PlanError, match="training diverged: val_AUROC is nan"):
        _refuse_diverged({"val_AUROC": math.nan, "test_AUROC": 0.6}, 0.005)


# ---- constants DuckDB would fail on mid-query -----------------------------------------------------
@pytest.mark.parametrize("sql, words", [
    (f"{CHURN.replace('= 0', '= ' + repr('abc'))} {TINY}", "compare it with a number"),
    (f"{CHURN.replace('= 0', '> -1e400')} {TINY}", "out of the range of a DOUBLE"),
    (f"{CHURN} WHERE COUNT(orders.*, -9223372036854775807, 0, DAYS) > 0 {TINY}", "out of range"),
    (f"PREDICT customers.age > 'old' FOR EACH customers.customer_id {TINY}", "compare it with a number"),
    (f"PREDICT EXISTS(orders.*, 0, 30, DAYS) = 3 FOR EACH customers.customer_id {TINY}", "TRUE or FALSE"),
    (f"PREDICT customers.country = 5 FOR EACH customers.customer_id {TINY}", "compare it with a string"),
    (f"{CHURN} WHERE customers.age > 'x' {TINY}", "compare it with a number, not the string 'x'"),
    (f"{CHURN} WHERE customers.signup_at > 'yesterday' {TINY}", "not a timestamp"),
    ("PREDICT COUNT(orders.* WHERE orders.amount > 'x', 0, 30, DAYS) > 0 FOR EACH customers.customer_id", "'x'"),
])
def test_constants_that_duckdb_would_refuse_mid_query_are_plan_errors(con, sql, words):
    # raw duckdb ConversionException / BinderException (Infinity as a column) before
    err = error(con, sql)
    assert words in str(err) and err.line == 1


# ---- sqlglot's voice ------------------------------------------------------------------------------
def test_misspelt_create_model_is_our_message_and_sqlglot_logs_nothing(con, caplog, capsys):
    with caplog.at_level(logging.DEBUG):
        err = error(con, f"CREATE MODLE m AS {CHURN}")
    assert "did you mean CREATE MODEL?" in str(err) and err.col == 8
    assert not [r for r in caplog.records if r.name.startswith("sqlglot")]
    assert "unsupported syntax" not in capsys.readouterr().err


@pytest.mark.parametrize("sql, message", [
    ("PREDICT COUNT(orders.*, 0, 30, DAYS) = FOR EACH customers.customer_id", "`=` needs a value on its right"),
    ("PREDICT COUNT(orders.*, 0, 30, DAYS) > 0 AND FOR EACH customers.customer_id", "`AND` needs a value"),
    ("PREDICT USING churn AS OF TIMESTAMP", "AS OF needs a timestamp"),
    (f"{CHURN} WITH (epochs = 3", "expected `)`"),
])
def test_parse_errors_in_plain_words_with_a_position(con, sql, message):
    # "Required keyword: 'expression' missing for <class 'sqlglot.expressions.core.EQ'>" before
    err = error(con, sql)
    assert message in str(err) and err.line == 1 and err.col is not None


# ---- messages beside the point ------------------------------------------------------------------------
def test_show_model_says_show_models(con):
    # DuckDB's "Table with name MODEL does not exist" alone before
    err = error(con, "SHOW MODEL")
    assert "did you mean SHOW MODELS?" in str(err) and err.col == 6


def test_for_eahc_says_for_each(con):
    # "FOR EACH needs a qualified key" before
    err = error(con, "PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EAHC customers.customer_id")
    assert "did you mean FOR EACH?" in str(err) and err.col == 46


def test_predict_takes_order_by_and_limit(con):
    # "Unexpected token" before
    rows = con.execute("PREDICT USING churn ORDER BY score DESC LIMIT 10").fetchall()
    assert len(rows) == 10 and [r[-1] for r in rows] == sorted((r[-1] for r in rows), reverse=True)
    assert con.execute("SELECT count(*) FROM (PREDICT USING churn LIMIT 3)").fetchall() == [(3,)]


@pytest.mark.parametrize("sql", [f"EXPLAIN {CHURN} ORDER BY score", f"CREATE MODEL m2 AS {CHURN} LIMIT 3"])
def test_order_by_where_no_prediction_rows_come_back_says_how_to_wrap(con, sql):
    assert "SELECT * FROM (PREDICT ...)" in str(error(con, sql))


def test_placeholder_dates_are_named_as_the_cause(con):
    # "every training label has the same value" before: anchors were placed in year 9999
    con.execute("INSERT INTO orders SELECT 99999, customer_id, product_id, TIMESTAMP '9999-12-31', amount "
                "FROM orders LIMIT 1")
    err = error(con, f"{CHURN} {TINY}")
    assert "9999-12-31" in str(err) and "placeholder" in str(err)


def test_column_target_on_undated_rows_says_how_to_make_the_table_static(con):
    # "no dated row with a value" before
    con.execute("UPDATE customers SET signup_at = NULL")
    err = error(con, f"PREDICT customers.country FOR EACH customers.customer_id {TINY}")
    assert "SET TIME COLUMN customers(NONE)" in str(err)


# ---- what PREDICT USING would ignore -----------------------------------------------------------------
@pytest.mark.parametrize("clause, words", [
    ("WITH (epoch = 3)", "unknown option `epoch`; did you mean `epochs`?"),
    ("WITH (epochs = 3)", "would change nothing"),
    ("ASSUMING COUNT(orders.*, 0, 10, DAYS) > 0", "does not train"),
])
def test_predict_using_refuses_what_it_would_ignore(con, clause, words):
    # silently ignored before, even unknown option names
    err = error(con, f"PREDICT USING churn {clause}")
    assert words in str(err) and err.col is not None


# ---- names as DuckDB resolves them -------------------------------------------------------------------
def test_table_and_column_names_ignore_case(con):
    # "table `Orders` not found" / "column `Customer_ID` not found" before
    sql = ("EXPLAIN PREDICT COUNT(Orders.*, 0, 30, DAYS) = 0 FOR EACH Customers.Customer_ID "
           "WHERE CUSTOMERS.Age > 20 AND COUNT(ORDERS.* WHERE Orders.AMOUNT > 5, -30, 0, DAYS) > 0")
    rows = con.execute(sql).fetchall()
    assert ("graph", "node orders") in [(s, i) for s, i, _ in rows]


def test_model_names_ignore_case(con):
    # "model `Churn` not found" before
    assert con.execute("PREDICT USING Churn LIMIT 2").fetchall()
    assert ("name", "churn") in con.execute("DESCRIBE MODEL CHURN").fetchall()
    assert "already exists" in str(error(con, f"CREATE MODEL CHURN AS {CHURN} {TINY}"))
    con.execute("DROP MODEL cHuRn")
    assert con.execute("SHOW MODELS").fetchall() == []


def test_alter_graph_stores_names_as_the_catalog_spells_them(con):
    con.execute("ALTER GRAPH IGNORE COLUMN Customers(AGE)")
    rows = con.execute("DESCRIBE GRAPH").fetchall()
    assert ("customers", "age", "ignored") in [(r[0], r[1], r[3]) for r in rows]


def test_duckdb_errors_inside_rdl_statements_are_rdl_errors(con):
    err = error(con, "PREDICT USING churn FOR customers.customer_id IN (SELECT nope FROM customers)")
    assert "nope" in str(err)


def test_a_plain_duckdb_connection_is_untouched(shop_file):
    # the shop file is still readable by DuckDB alone after every statement above ran on copies
    c = duckdb.connect(str(shop_file), read_only=True)
    try:
        assert c.sql("SELECT count(*) FROM customers").fetchall() == [(120,)]
    finally:
        c.close()


@pytest.mark.parametrize("option, message, literal", [
    ("channels = -5", "option `channels` must be a whole number from 1 to 4,096, got -5", "5"),
    ("epochs = (-2)", "option `epochs` must be a whole number from 1 to 10,000, got -2", "2"),
    ("val_start = DATE 'soon'", "option val_start = 'soon' is not a timestamp", "'soon'"),
])
def test_a_bad_option_value_is_located_even_when_signed_bracketed_or_typed(con, option, message, literal):
    """The position is the literal's inside the sign, brackets or type (sqlglot locates only literals)."""
    sql = f"EXPLAIN {CHURN} WITH ({option})"
    err = error(con, sql)
    column = sql.rindex(literal) + 1
    assert message in str(err) and f"line 1, column {column}:" in str(err)


def test_a_typed_date_is_a_constant_for_the_split_options(con):
    """It was refused as 'needs a constant value'; it plans exactly as the same text does."""
    typed = con.execute(f"EXPLAIN {CHURN} WITH (val_start = DATE '2024-03-01', "
                        f"test_start = TIMESTAMP '2024-05-01 12:00')").fetchall()
    text = con.execute(f"EXPLAIN {CHURN} WITH (val_start = '2024-03-01', test_start = '2024-05-01 12:00')").fetchall()
    assert typed == text and any(r[0] == "anchors" for r in typed)


def test_order_by_a_column_the_result_lacks_names_the_columns_it_has(con):
    spend = "PREDICT SUM(orders.amount, 0, 30, DAYS) FOR EACH customers.customer_id WITH (model = 'gbdt')"
    err = error(con, f"{spend} ORDER BY score DESC LIMIT 2")
    assert ("ORDER BY `score`: the result has no such column (a regression PREDICT has no score); its columns are "
            "customer_id, anchor_time, prediction") in str(err)
    assert "__predictions" not in str(err)
    rows = con.execute(f"{spend} ORDER BY prediction DESC LIMIT 2").fetchall()
    assert len(rows) == 2 and rows[0][2] >= rows[1][2]


def test_a_missing_column_around_a_nested_predict_is_located_in_the_users_text(con):
    """DuckDB's binder error quoted the SQL the prediction query was spliced into (``__predictions``,
    ``__rdl_result_N``) at positions the user never wrote."""
    spend = "PREDICT SUM(orders.amount, 0, 30, DAYS) FOR EACH customers.customer_id WITH (model = 'gbdt')"
    inner = f"SELECT * FROM ({spend} ORDER BY score LIMIT 2)"
    err = str(error(con, inner))
    assert "ORDER BY `score`: the result has no such column" in err and "__" not in err
    assert f"line 1, column {inner.index('score') + 1}:" in err
    outer = f"WITH p AS ({spend}) SELECT customer_id FROM p ORDER BY scor"
    err = str(error(con, outer))
    assert "column `scor` not found; DuckDB's closest names:" in err and "__" not in err
    assert f"line 1, column {outer.index('scor') + 1}:" in err
    rows = con.execute(f"WITH p AS ({spend}) SELECT customer_id FROM p ORDER BY prediction DESC LIMIT 2").fetchall()
    assert len(rows) == 2


def test_errors_around_a_predict_show_none_of_the_sql_it_was_spliced_into(con):
    """Qualified names, ordinals, LIMITs and casts around a PREDICT gave DuckDB's message with ``LINE 1:`` quoting
    the generated SQL (``__predictions``, ``__rdl_result_N``, the scoring query)."""
    p = "PREDICT COUNT(orders.*, 0, 30, DAYS) > 0 FOR EACH customers.customer_id WITH (model = 'gbdt')"
    cases = {
        f"SELECT p.nonexistent FROM ({p}) p": ("column `p.nonexistent` not found", "nonexistent"),
        f"SELECT c.bogus FROM ({p}) p JOIN customers c USING (customer_id)": ("column `c.bogus` not found", "bogus"),
        f"{p} ORDER BY c.score DESC": ("ORDER BY `c.score`: a PREDICT's ORDER BY names the columns of its result, "
                                       "without a table (`score`)", "score"),
        f"{p} ORDER BY 9": ("ORDER BY 9: the result has 4 columns (customer_id, anchor_time, prediction, score)", "9"),
        f"{p} LIMIT -1": ("LIMIT -1: a PREDICT's LIMIT is a whole number of rows, 0 or more", "1"),
        f"SELECT * FROM ({p} LIMIT 'a')": ("LIMIT 'a': a PREDICT's LIMIT is a whole number", "'a'"),
    }
    for sql, (message, at) in cases.items():
        err = str(error(con, sql))
        assert message in err and "__" not in err and "LINE 1" not in err, err
        assert f"line 1, column {sql.rindex(at) + 1}:" in err, err
    err = str(error(con, f"SELECT customer_id FROM ({p}) x, ({p}) y"))
    assert 'Ambiguous reference to column name "customer_id"' in err and "__" not in err
    err = error(con, f"SELECT CAST('x' AS INTEGER) FROM ({p}) LIMIT 1", rdl_sql.DataError)
    assert "Could not convert string 'x'" in str(err) and "LINE 1" not in str(err)


def test_a_column_target_as_of_before_its_first_row_says_so(con):
    """It blamed NULL times (none are NULL) and suggested filling them in."""
    err = error(con, "PREDICT customers.country FOR EACH customers.customer_id AS OF TIMESTAMP '2000-01-01'")
    assert "no row of `customers` with a value of `country` is dated on or before AS OF 2000-01-01" in str(err)
    assert "NULL time" not in str(err)


def test_the_no_null_to_fill_notice_quotes_the_names_it_suggests(tmp_path):
    with rdl_sql.connect(str(tmp_path / "odd.duckdb"), progress=False) as c:
        c.execute('CREATE TABLE "My Users" ("User ID" INTEGER PRIMARY KEY, city VARCHAR)')
        c.execute("""INSERT INTO "My Users" VALUES (1, 'a'), (2, 'b'), (3, 'a')""")
        cur = c.cursor().execute('PREDICT "My Users".city FOR EACH "My Users"."User ID"')
        (note,) = [n for n in cur.notices if "no NULL to fill in" in n]
        assert 'use FOR "My Users"."User ID" IN (...)' in note


def test_odd_schemas_get_fixes_that_run_as_written(tmp_path):
    """Found by a bug hunt: a column target's table in another case was refused; a suggested ALTER GRAPH
    named an odd table unquoted (it does not parse); a window over a table with two time columns said it
    had none."""
    c = rdl_sql.connect(str(tmp_path / "odd.duckdb"), progress=False)
    c.execute("""
        CREATE TABLE base(cid INTEGER PRIMARY KEY, seg VARCHAR, v DOUBLE);
        INSERT INTO base SELECT i, CASE WHEN i % 4 = 0 THEN NULL ELSE 's' || (i % 3) END, i FROM range(60) t(i);
        CREATE TABLE ch(id INTEGER PRIMARY KEY, cid INTEGER REFERENCES base(cid), ts TIMESTAMP, shipped_at TIMESTAMP);
        INSERT INTO ch SELECT i, i % 60, TIMESTAMP '2024-01-01' + INTERVAL (i) HOUR,
                              TIMESTAMP '2024-01-02' + INTERVAL (i) HOUR FROM range(600) t(i);
        CREATE TABLE "My Items"(id INTEGER PRIMARY KEY, made TIMESTAMP, kind VARCHAR);
        INSERT INTO "My Items" SELECT i, NULL, CASE WHEN i % 3 = 0 THEN NULL ELSE 'k' || (i % 2) END
               FROM range(30) t(i);
    """)
    for target in ("BASE.seg", '"Base".seg'):
        rows = c.execute(f"PREDICT {target} FOR EACH base.cid WITH (model = 'gbdt')").fetchall()
        assert sorted(r[0] for r in rows) == list(range(0, 60, 4))
    err = str(error(c, "PREDICT COUNT(ch.*, 0, 7, DAYS) FOR EACH base.cid"))
    assert "table `ch` has several time columns (ts, shipped_at) and none is its time column" in err
    fix = err.split("e.g. ")[1].split("\n")[0]
    assert fix == "ALTER GRAPH SET TIME COLUMN ch(ts)"
    c.execute(fix)
    assert len(c.execute("PREDICT COUNT(ch.*, 0, 7, DAYS) FOR EACH base.cid WITH (model = 'gbdt')").fetchall()) == 60
    err = str(error(c, 'PREDICT "My Items".kind FOR EACH "My Items".id'))
    fix = err.split("treat the table as static with ")[1].split(", or fill in")[0]
    assert fix == 'ALTER GRAPH SET TIME COLUMN "My Items"(NONE)'
    c.execute(fix)
    assert len(c.execute("PREDICT \"My Items\".kind FOR EACH \"My Items\".id WITH (model = 'gbdt')").fetchall()) == 10
    c.close()


def test_an_epoch_number_as_time_column_gets_a_conversion_that_runs(tmp_path):
    """SET TIME COLUMN on a BIGINT said only 'must be DATE or TIMESTAMP', and every window error sends the
    user back to SET TIME COLUMN: the refusal now says how to turn epoch seconds into a time."""
    c = rdl_sql.connect(str(tmp_path / "epoch.duckdb"), progress=False)
    c.execute("""CREATE TABLE "Buys"(id INTEGER PRIMARY KEY, "at" BIGINT);
                 INSERT INTO "Buys" SELECT i, 1700000000 + i * 3600 FROM range(50) t(i);""")
    err = str(error(c, 'ALTER GRAPH SET TIME COLUMN "Buys"("at")'))
    assert "`Buys.at` is BIGINT; a time column must be DATE or TIMESTAMP; if it counts seconds since 1970" in err
    fix = err.split("convert it: ")[1].split(" (milliseconds")[0]
    c.execute(fix)
    c.execute('ALTER GRAPH SET TIME COLUMN "Buys"("at")')
    first = c.execute('SELECT min("at") FROM "Buys"').fetchone()[0]
    assert str(first) == "2023-11-14 22:13:20"
    c.close()


def test_a_column_target_whose_rows_share_one_time_offers_the_static_split():
    """Every labelled row dated alike left validation empty, and the fix offered ('move val_start /
    test_start') could not help: any dates put every row on one side."""
    c = rdl_sql.connect(progress=False)
    c.execute("""CREATE TABLE people(pid INTEGER PRIMARY KEY, joined TIMESTAMP, city VARCHAR, age DOUBLE);
                 INSERT INTO people SELECT i, TIMESTAMP '2023-01-01', CASE WHEN i % 10 = 0 THEN NULL
                        ELSE 'c' || (i % 3) END, i % 70 FROM range(200) t(i);""")
    err = str(error(c, "PREDICT people.city FOR EACH people.pid WITH (model = 'gbdt')"))
    assert ("every row of `people` with a value of `city` is dated 2023-01-01 00:00:00 (`joined`), so time cannot "
            "split training from validation and test rows") in err
    fix = err.split("treat the table as static with ")[1].split(" (its rows")[0]
    c.execute(fix)
    assert len(c.execute("PREDICT people.city FOR EACH people.pid WITH (model = 'gbdt')").fetchall()) == 20
    c.close()
