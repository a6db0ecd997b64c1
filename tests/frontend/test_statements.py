"""Every rdl-sql statement through rdl_sql.connect: results, stored models, and each misuse's message."""
import shutil

import pytest

import rdl_sql

FAST = "WITH (epochs = 1, channels = 16, fanouts = '4,4', max_train_rows = 1500)"
CHURN = ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
         "WHERE COUNT(orders.*, -90, 0, DAYS) > 0 " + FAST)


@pytest.fixture
def con(stored, tmp_path):
    """A copy of the shared shop file holding `churn`, stored by CHURN (``stored``, tests/frontend/conftest.py)."""
    path = tmp_path / "copy.duckdb"
    shutil.copy(stored[0], path)
    c = rdl_sql.connect(str(path), progress=False)
    yield c
    c.close()


def error_of(con, sql) -> str:
    with pytest.raises(rdl_sql.ProgrammingError) as err:
        con.execute(sql)
    text = str(err.value)
    assert "Traceback" not in text
    return text


def test_create_model_returns_metrics_and_stores_every_field(con):
    cur = con.execute("CREATE MODEL churn2 AS " + CHURN)
    names = [d[0] for d in cur.description]
    assert names == ["model", "task", "val_AUROC", "test_AUROC", "train_rows", "val_rows", "test_rows", "epochs",
                     "train_seconds"]
    (row,) = cur.fetchall()
    assert row[0] == "churn2" and row[1] == "binary" and 0 <= row[2] <= 1 and row[4] > 0
    stored = con.execute("SELECT name, task, model, options, fingerprint, data_digest, metrics, octet_length(weights),"
                         " created_at FROM rdl_models WHERE name = 'churn2'").fetchall()[0]
    assert stored[:3] == ("churn2", "binary", "gnn")
    assert '"epochs": 1' in stored[3] and '"orders": {"key": ["order_id"]' in stored[4] and "customers:" in stored[5]
    assert "val_AUROC" in stored[6] and stored[7] > 1000 and stored[8] is not None


def test_create_model_row_has_the_same_column_types_for_every_kind_of_model(con):
    """A GBDT has no epochs: the row's `epochs` was typed NULL for it (BIGINT for a GNN)."""
    types = {}
    for kind in ("gnn", "gbdt"):
        cur = con.execute(f"CREATE MODEL churn_{kind} AS {CHURN.replace('WITH (', f'WITH (model = {kind!r}, ')}")
        types[kind] = [(d[0], str(d[1])) for d in cur.description]
        assert cur.fetchall()[0][7] == (None if kind == "gbdt" else 1)
    assert types["gbdt"] == types["gnn"]
    assert [t for _, t in types["gbdt"]] == ["VARCHAR", "VARCHAR", "DOUBLE", "DOUBLE", "BIGINT", "BIGINT", "BIGINT",
                                             "BIGINT", "DOUBLE"]


def test_create_model_misuse(con):
    assert "model `churn` already exists; use CREATE OR REPLACE MODEL or DROP MODEL churn" in error_of(
        con, "CREATE MODEL churn AS " + CHURN)
    con.execute("CREATE OR REPLACE MODEL churn AS " + CHURN)
    assert con.execute("SELECT count(*) FROM rdl_models WHERE name = 'churn'").fetchall() == [(1,)]


def test_predict_using_scores_without_training_and_matches_across_connections(con, stored):
    a = con.execute("PREDICT USING churn").fetchall()
    assert a and all(0 <= r[3] <= 1 for r in a)
    assert con._default.notices[0].startswith("scored with stored model `churn`")
    with rdl_sql.connect(str(stored[0]), progress=False, read_only=True) as other:
        assert other.execute("PREDICT USING churn").fetchall() == a


def test_predict_using_for_in_with_and_without_anchor_times(con):
    one = con.execute("PREDICT USING churn FOR customers.customer_id IN (SELECT 1 UNION ALL SELECT 2)").fetchall()
    assert [r[0] for r in one] == [1, 2]
    pairs = con.execute("PREDICT USING churn FOR customers.customer_id IN "
                        "(SELECT customer_id, signup_at + INTERVAL 40 DAY FROM customers WHERE customer_id <= 3)"
                        ).fetchall()
    signups = dict(con.execute("SELECT customer_id, signup_at FROM customers WHERE customer_id <= 3").fetchall())
    assert [(r[0], r[1]) for r in pairs] == [(k, signups[k] + __import__("datetime").timedelta(days=40))
                                             for k in (1, 2, 3)]
    assert "the FOR ... IN query returns 3 columns" in error_of(
        con, "PREDICT USING churn FOR customers.customer_id IN (SELECT 1, 2, 3)")
    assert "model `churn` predicts for customers.customer_id, not orders.order_id" in error_of(
        con, "PREDICT USING churn FOR EACH orders.order_id")


def test_predict_using_as_of_ignores_planted_future_rows(con):
    stmt = "PREDICT USING churn AS OF TIMESTAMP '2023-08-01'"
    before = con.execute(stmt).fetchall()
    con.execute("""INSERT INTO orders SELECT 900000 + order_id, customer_id, product_id,
                   TIMESTAMP '2023-08-01' + INTERVAL 1 HOUR, amount FROM orders""")
    assert con.execute(stmt).fetchall() == before


def test_schema_change_refuses_the_stored_model_and_says_what_changed(con):
    before = con.execute("PREDICT USING churn").fetchall()
    # compatible: a new column and a new linked table leave the model's graph as it was
    con.execute("""ALTER TABLE products ADD COLUMN color VARCHAR;
                   CREATE TABLE visits(visit_id INTEGER PRIMARY KEY,
                                       customer_id BIGINT REFERENCES customers(customer_id), at_ts TIMESTAMP);
                   INSERT INTO visits VALUES (1, 1, TIMESTAMP '2023-02-01')""")
    assert con.execute("PREDICT USING churn").fetchall() == before
    # incompatible: a feature column the model reads is gone
    con.execute("ALTER GRAPH IGNORE COLUMN products(price)")
    text = error_of(con, "PREDICT USING churn")
    assert "model `churn` cannot read the database any more: table `products`: column `price` (DOUBLE numerical) " \
           "is gone or ignored" in text
    assert "retrain it with CREATE OR REPLACE MODEL churn AS PREDICT" in text


def test_predict_composes_with_sql(con):
    joined = con.execute("SELECT c.country, p.score FROM (PREDICT USING churn) p JOIN customers c "
                         "USING (customer_id) ORDER BY p.score DESC LIMIT 3").fetchall()
    assert len(joined) == 3 and joined[0][1] >= joined[2][1]
    n = len(con.execute("PREDICT USING churn").fetchall())
    con.execute("CREATE TABLE scores AS PREDICT USING churn")
    con.execute("INSERT INTO scores PREDICT USING churn")
    assert con.execute("SELECT count(*) FROM scores").fetchall() == [(2 * n,)]
    assert con.execute("WITH p AS (PREDICT USING churn) SELECT count(*) FROM p").fetchall() == [(n,)]


def test_evaluate_model_reports_metrics_beside_the_trivial_predictor(con):
    rows = {r[0]: r[1:] for r in con.execute("EVALUATE MODEL churn").fetchall()}
    assert set(rows) == {"AUROC", "average_precision", "accuracy", "rows"}
    assert rows["AUROC"][3] == 0.5 and rows["rows"][0] > 0  # (value, ci_low, ci_high, baseline)
    assert rows["AUROC"][1] <= rows["AUROC"][0] <= rows["AUROC"][2]
    stmt = "EVALUATE MODEL churn AS OF TIMESTAMP '2023-08-01'"
    before = con.execute(stmt).fetchall()
    con.execute("""INSERT INTO orders SELECT 800000 + order_id, customer_id, product_id,
                   TIMESTAMP '2023-08-02', amount FROM orders""")
    assert con.execute(stmt).fetchall() == before  # labels after AS OF are never read


def test_evaluate_predict_trains_and_reports_regression_metrics(con):
    rows = {r[0]: r[1:] for r in con.execute(
        "EVALUATE PREDICT SUM(orders.amount, 0, 30, DAYS) FOR EACH customers.customer_id " + FAST).fetchall()}
    assert set(rows) == {"MAE", "RMSE", "R2", "rows"}
    assert rows["MAE"][0] >= 0 and rows["MAE"][1] >= 0


def test_explain_shows_the_plan_and_never_trains(con):
    rows = con.execute("EXPLAIN " + CHURN).fetchall()
    sections = {r[0] for r in rows}
    assert sections == {"graph", "task", "anchors", "sql", "model"}
    items = {(r[0], r[1]): r[2] for r in rows}
    assert items[("task", "type")] == "binary"
    assert "rows" in items[("graph", "node orders")]
    assert items[("sql", "labels")].startswith("SELECT")
    assert "hop 1: 4, hop 2: 4" in items[("model", "fanouts")]
    assert con.execute("SELECT count(*) FROM rdl_models").fetchall() == [(1,)]


def test_show_describe_drop(con):
    assert [r[0] for r in con.execute("SHOW MODELS").fetchall()] == ["churn"]
    props = dict(con.execute("DESCRIBE MODEL churn").fetchall())
    assert props["task"] == "binary" and props["statement"].startswith("PREDICT COUNT(orders.*, 0, 30, DAYS)")
    assert "model `chrun` not found; did you mean `churn`?" in error_of(con, "DESCRIBE MODEL chrun")
    con.execute("DROP MODEL churn")
    assert con.execute("SHOW MODELS").fetchall() == []
    assert "use DROP MODEL IF EXISTS" in error_of(con, "DROP MODEL churn")
    assert con.execute("DROP MODEL IF EXISTS churn").fetchall() == [("model `churn` does not exist; nothing dropped",)]


def test_identical_predict_reuses_the_model_until_the_data_changes(con):
    stmt = "PREDICT SUM(orders.amount, 0, 30, DAYS) FOR EACH customers.customer_id " + FAST
    first = con.execute(stmt).fetchall()
    assert con._default.notices[0].startswith("trained gnn")
    assert con.execute(stmt).fetchall() == first
    assert con._default.notices[0].startswith("reused the model")
    con.execute("INSERT INTO customers VALUES (99999, TIMESTAMP '2023-01-02', 'US', 33)")
    con.execute(stmt)
    assert con._default.notices[0].startswith("trained gnn")
    con.execute(CHURN)  # the very statement stored as `churn`: reused from the database
    assert con._default.notices[0].startswith("trained gnn")  # data changed since churn was stored


def test_stored_model_is_reused_by_an_identical_predict(con):
    con.execute(CHURN)
    assert con._default.notices[0].startswith("reused stored model `churn`")


def test_column_target_fills_nulls_with_classes_and_probabilities(con):
    con.execute("UPDATE customers SET country = NULL WHERE customer_id % 5 = 0")
    cur = con.execute("PREDICT customers.country FOR EACH customers.customer_id " + FAST)
    assert [d[0] for d in cur.description] == ["customer_id", "prediction", "score", "probabilities"]
    rows = cur.fetchall()
    assert [r[0] for r in rows] == [k for k in range(5, 301, 5)]
    countries = {r[0] for r in
                 con.execute("SELECT DISTINCT country FROM customers WHERE country IS NOT NULL").fetchall()}
    for _, pred, score, probs in rows:
        assert pred in countries and abs(sum(probs.values()) - 1) < 1e-4 and score == max(probs.values())
    regression = con.execute("PREDICT customers.age FOR EACH customers.customer_id " + FAST)
    assert [d[0] for d in regression.description] == ["customer_id", "prediction"]


def test_column_target_misuse(con):
    assert "`customers.signup_at` is the time column" in error_of(
        con, "PREDICT customers.signup_at FOR EACH customers.customer_id")
    assert "a column target must be a column of the entity table `customers`" in error_of(
        con, "PREDICT orders.amount FOR EACH customers.customer_id")


def test_composite_key_entity(con):
    con.execute("""
        CREATE TABLE stock(shop INTEGER, sku INTEGER, grade VARCHAR, qty DOUBLE, PRIMARY KEY (shop, sku));
        INSERT INTO stock SELECT i % 7, i, CASE WHEN i % 3 = 0 THEN 'a' ELSE 'b' END, i * 1.5
               FROM range(200) t(i);
        UPDATE stock SET grade = NULL WHERE sku % 10 = 0;
    """)
    rows = con.execute("PREDICT stock.grade FOR EACH (stock.shop, stock.sku) " + FAST).fetchall()
    assert [(r[0], r[1]) for r in rows] == sorted((s % 7, s) for s in range(0, 200, 10))
    assert "FOR EACH needs the primary key of `stock`: its primary key is (shop, sku)" in error_of(
        con, "PREDICT stock.grade FOR EACH stock.sku")

