"""Stored models of every kind: a GBDT's bytes, its round trip through ``rdl_models``, and refusals."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

import rdl_sql
from rdl_sql.datasets.shop import build_shop
from rdl_sql.engine import store
from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.options import Options
from rdl_sql.udfs.gbdt import GbdtModel, fit_gbdt

CHURN = ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
         "WHERE COUNT(orders.*, -90, 0, DAYS) > 0 ")
GBDT = CHURN + "WITH (model = 'gbdt')"
BRANDS = ["acme", "bolt", "cobalt", "dyn"]


def rows(n: int, seed: int, label=None) -> pa.Table:
    rng = np.random.default_rng(seed)
    brand = rng.choice(BRANDS, n)
    x = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(2.5 * (brand == "cobalt") + 1.5 * x - 1)))).astype(np.float64)
    return pa.table({"__node": np.arange(n), "anchor_time": pa.array(np.zeros(n, np.int64), pa.timestamp("us")),
                     "split": ["x"] * n, "label": y if label is None else label(brand),
                     "brand": pa.array(brand.tolist(), pa.string()), "x": x})


# ---- the bytes ---------------------------------------------------------------------------------------
def test_a_gbdt_round_trips_through_its_bytes_and_scores_identically():
    m = fit_gbdt(rows(1500, 0), rows(400, 1), None, "binary", Options(seed=0), ["brand", "x"])
    back = GbdtModel.loads(m.dumps())
    probe = rows(300, 5)
    np.testing.assert_array_equal(back.predict(probe), m.predict(probe))
    assert back.features == m.features and back.task_type == "binary"
    assert back.categories["brand"].to_pylist() == sorted(BRANDS)
    assert back.train_mean == pytest.approx(float(np.mean(rows(1500, 0).column("label").to_numpy())))
    state = json.loads(m.dumps())
    assert state["format"] == 1 and state["kind"] == "gbdt" and set(state["importance"]) <= {"brand", "x"}


def test_a_multiclass_gbdt_keeps_its_classes():
    idx = lambda brand: np.array([BRANDS.index(b) for b in brand], np.float64)  # noqa: E731
    m = fit_gbdt(rows(800, 0, idx), rows(200, 1, idx), None, "multiclass", Options(seed=0), ["brand", "x"],
                 num_classes=4)
    m.classes = list(BRANDS)
    back = GbdtModel.loads(m.dumps())
    assert back.classes == BRANDS
    np.testing.assert_array_equal(back.predict(rows(50, 2)), m.predict(rows(50, 2)))


def test_unknown_formats_and_foreign_bytes_are_refused_with_the_reason():
    m = fit_gbdt(rows(500, 0), rows(200, 1), None, "binary", Options(seed=0), ["brand", "x"])
    state = json.loads(m.dumps())
    with pytest.raises(ValueError, match="stored gbdt format 99 is not readable by this version"):
        GbdtModel.loads(json.dumps(dict(state, format=99)).encode())
    with pytest.raises(ValueError, match="not a gbdt model"):
        GbdtModel.loads(b"PK\x03\x04 torch zip")


# ---- through SQL ----------------------------------------------------------------------------------------
@pytest.fixture
def shop():
    con = rdl_sql.connect(progress=False)
    try:
        build_shop(con.duckdb_connection, customers=300, products=40, days=300, seed=2)
        yield con
    finally:
        con.close()


def error_of(con, sql) -> str:
    with pytest.raises(rdl_sql.Error) as err:
        con.execute(sql)
    return str(err.value)


def test_create_model_gbdt_then_predict_using_equals_the_predicts_own_scores(shop):
    cur = shop.cursor()
    own = cur.execute(GBDT).fetchall()
    assert cur.notices[0].startswith("trained gbdt")
    created = cur.execute("CREATE MODEL g AS " + GBDT)
    (row,) = created.fetchall()
    assert row[0] == "g" and row[2] == cur.metrics["val_AUROC"]
    assert created.notices[-1] == "model `g` (gbdt) stored in rdl_models"
    assert shop.execute("SELECT model FROM rdl_models WHERE name = 'g'").fetchall() == [("gbdt",)]
    using = cur.execute("PREDICT USING g")
    assert [d[0] for d in using.description] == ["customer_id", "anchor_time", "prediction", "score"]
    assert using.fetchall() == own
    assert using.notices[0].startswith("scored with stored model `g` (gbdt, trained ")
    sub = cur.execute("PREDICT USING g FOR customers.customer_id IN (SELECT customer_id FROM customers "
                      "WHERE customer_id <= 20)").fetchall()
    by_key = {r[0]: r for r in own}
    assert {k for k in by_key if k <= 20} <= {r[0] for r in sub} <= set(range(1, 21))
    assert all(r == by_key[r[0]] for r in sub if r[0] in by_key)  # a row's score does not depend on the others


def test_a_stored_gbdt_is_reused_by_an_identical_predict_until_the_data_changes(tmp_path):
    path = str(tmp_path / "shop.duckdb")
    with rdl_sql.connect(path, progress=False) as con:
        build_shop(con.duckdb_connection, customers=300, products=40, days=300, seed=2)
        con.execute("CREATE MODEL g AS " + GBDT)
    with rdl_sql.connect(path, progress=False) as con:  # a new session: nothing held in memory
        cur = con.cursor()
        first = cur.execute(GBDT).fetchall()
        assert cur.notices[0].startswith("reused stored model `g` (same statement, same data)")
        assert first == con.execute("PREDICT USING g").fetchall()
        con.execute("INSERT INTO customers VALUES (99999, TIMESTAMP '2023-01-02', 'US', 33)")
        cur.execute(GBDT)
        assert cur.notices[0].startswith("trained gbdt")


def test_evaluate_model_on_a_stored_gbdt_gives_intervals_around_each_value(shop):
    shop.execute("CREATE MODEL g AS " + GBDT)
    cur = shop.cursor().execute("EVALUATE MODEL g")
    assert [d[0] for d in cur.description] == ["metric", "value", "ci_low", "ci_high", "baseline"]
    got = {r[0]: r[1:] for r in cur.fetchall()}
    assert set(got) == {"AUROC", "average_precision", "accuracy", "rows"}
    for metric, (value, low, high, _) in got.items():
        assert low <= value <= high, metric
    assert got["AUROC"][3] == 0.5 and got["AUROC"][2] - got["AUROC"][1] > 0.01
    assert cur.notices[0].startswith("gbdt model `g` on fresh labels")


@pytest.mark.slow
def test_evaluate_predict_accepts_gbdt_and_auto(shop):
    got = {r[0]: r[1:] for r in shop.execute("EVALUATE " + GBDT).fetchall()}
    assert got["AUROC"][1] <= got["AUROC"][0] <= got["AUROC"][2]
    cur = shop.cursor().execute("EVALUATE " + CHURN + "WITH (model = 'auto', layers = 1, fanouts = '4', "
                                "epochs = 1, channels = 8, max_train_rows = 800)")
    table = {r[0]: r[1:] for r in cur.fetchall()}
    assert set(table) == {"AUROC", "average_precision", "accuracy", "rows"}
    assert cur.notices[-1].startswith(f"evaluated {cur.metrics['model']} on the test split (")


def test_describe_model_shows_a_gbdts_kind_format_features_options_and_metrics(shop):
    shop.execute("CREATE MODEL g AS " + CHURN + "WITH (model = 'gbdt', seed = 3)")
    props = dict(shop.execute("DESCRIBE MODEL g").fetchall())
    assert props["model"] == "gbdt" and props["format"] == "gbdt 1" and int(props["features"]) > 10
    assert props["option seed"] == "3" and props["option model"] == "gbdt"
    assert float(props["metric val_AUROC"]) > 0.5 and "%" in props["top features (gain)"]
    assert "table products" in props  # the feature query reads two links away


def test_predict_using_a_stored_gbdt_as_of_ignores_planted_future_rows(shop):
    cutoff = "2023-08-01 00:00:00"
    shop.execute("CREATE MODEL g AS " + GBDT)
    stmt = f"PREDICT USING g AS OF TIMESTAMP '{cutoff}'"
    before = shop.execute(stmt).fetchall()
    evaluated = shop.execute(f"EVALUATE MODEL g AS OF TIMESTAMP '{cutoff}'").fetchall()
    assert before and {str(r[1]) for r in before} == {cutoff}
    # every customer orders again right after the cut-off, with product 1: features
    # (counts, recency, last product), the entity set and fresh labels would all change if read
    shop.execute(f"""
        INSERT INTO orders SELECT 1000000 + customer_id, customer_id, 1,
                                  TIMESTAMP '{cutoff}' + INTERVAL 1 SECOND, 9999.0 FROM customers;
        INSERT INTO orders SELECT 2000000 + customer_id, customer_id, 1,
                                  TIMESTAMP '{cutoff}' + INTERVAL 20 DAYS, 1.0 FROM customers;
        INSERT INTO customers VALUES (99999, TIMESTAMP '{cutoff}' + INTERVAL 1 HOUR, 'US', 33);
    """)
    assert shop.execute(stmt).fetchall() == before
    assert shop.execute(f"EVALUATE MODEL g AS OF TIMESTAMP '{cutoff}'").fetchall() == evaluated
    assert shop.execute("PREDICT USING g").fetchall() != before  # the planted rows are visible without AS OF


def test_a_schema_change_refuses_a_stored_gbdt_and_says_what_changed(shop):
    shop.execute("CREATE MODEL g AS " + GBDT)
    shop.execute("ALTER GRAPH IGNORE COLUMN products(price)")
    text = error_of(shop, "PREDICT USING g")
    assert "model `g` cannot read the database any more: table `products`: column `price`" in text
    assert "retrain it with CREATE OR REPLACE MODEL g AS PREDICT" in text


def test_stored_rows_of_an_unknown_kind_or_format_are_refused_clearly(shop):
    shop.execute("CREATE MODEL g AS " + GBDT)
    duck = shop.duckdb_connection
    blob = duck.execute("SELECT weights FROM rdl_models WHERE name = 'g'").fetchone()[0]
    newer = json.dumps(dict(json.loads(bytes(blob)), format=7)).encode()
    duck.execute("UPDATE rdl_models SET weights = ? WHERE name = 'g'", [newer])
    text = error_of(shop, "PREDICT USING g")
    assert "model `g` cannot be loaded: stored gbdt format 7 is not readable by this version (it reads 1)" in text
    assert "retrain it with CREATE OR REPLACE MODEL g" in text
    duck.execute("UPDATE rdl_models SET model = 'xgboost' WHERE name = 'g'")
    with pytest.raises(PlanError, match="model `g` holds a `xgboost` model, which this version of rdl-sql cannot "
                                        "read \\(it reads gnn, gbdt"):
        store.load(duck, "g")
    assert store.find_reusable(duck, "anything", "any") is None
    assert "holds a `xgboost` model" in error_of(shop, "PREDICT USING g")


@pytest.mark.parametrize("damage", ["options = '{bad json'", "metrics = '[1, 2]'", "fingerprint = NULL",
                                    "weights = NULL", "created_at = NULL", "fingerprint = '{}'",
                                    "statement = NULL"])
def test_a_row_damaged_outside_rdl_sql_is_refused_with_how_to_retrain(shop, damage):
    shop.execute("CREATE MODEL g AS " + GBDT)
    shop.duckdb_connection.execute(f"UPDATE rdl_models SET {damage} WHERE name = 'g'")
    column = damage.split(" = ")[0]
    redo = ("DROP MODEL g, then CREATE MODEL g AS PREDICT ..." if column == "statement"
            else "CREATE OR REPLACE MODEL g AS PREDICT COUNT(orders.*")
    for statement in ("PREDICT USING g", "DESCRIBE MODEL g", "EVALUATE MODEL g"):
        text = error_of(shop, statement)
        assert f"model `g` cannot be read: its `{column}` in rdl_models is damaged (" in text, statement
        assert f"retrain it with {redo}" in text
    assert [r[0] for r in shop.execute("SHOW MODELS").fetchall()] == ["g"]  # listed, whatever is damaged
    shop.execute("DROP MODEL g")  # the way back still works
    assert shop.execute("SHOW MODELS").fetchall() == []


def test_describe_model_of_a_gbdt_loads_neither_torch_nor_lightgbm(tmp_path):
    import subprocess
    import sys
    path = str(tmp_path / "shop.duckdb")
    with rdl_sql.connect(path, progress=False) as con:
        build_shop(con.duckdb_connection, customers=200, products=30, days=240, seed=1)
        con.execute("CREATE MODEL g AS " + GBDT)
    code = ("import sys, rdl_sql\n"
            f"con = rdl_sql.connect({path!r}, read_only=True)\n"
            "props = dict(con.execute('DESCRIBE MODEL g').fetchall())\n"
            "assert props['model'] == 'gbdt' and props['format'] == 'gbdt 1', props\n"
            "print(sorted(m for m in ('torch', 'lightgbm') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_stored_gbdt_fills_a_column_with_its_classes_and_evaluates(shop):
    shop.execute("UPDATE customers SET country = NULL WHERE customer_id % 10 = 0")
    stmt = "PREDICT customers.country FOR EACH customers.customer_id WITH (model = 'gbdt')"
    own = shop.execute(stmt).fetchall()
    shop.execute("CREATE MODEL country AS " + stmt)
    using = shop.execute("PREDICT USING country").fetchall()
    assert using == own and [r[0] for r in using] == list(range(10, 301, 10))
    got = {r[0]: r[1:] for r in shop.execute("EVALUATE MODEL country").fetchall()}
    assert set(got) == {"accuracy", "rows"} and got["accuracy"][1] <= got["accuracy"][0] <= got["accuracy"][2]


def test_a_stored_gbdt_regression_reports_errors_beside_the_training_mean(shop):
    shop.execute("CREATE MODEL spend AS PREDICT SUM(orders.amount, 0, 30, DAYS) FOR EACH customers.customer_id "
                 "WITH (model = 'gbdt')")
    got = {r[0]: r[1:] for r in shop.execute("EVALUATE MODEL spend").fetchall()}
    assert set(got) == {"MAE", "RMSE", "R2", "rows"}
    value, low, high, baseline = got["MAE"]
    assert 0 <= low <= value <= high and baseline > 0
