"""Planted-future tests for what a model is built from: column types, vocabularies, normalisation, GBDT features.

DESIGN.md section 3: ``AS OF t`` means nothing dated after ``t`` is read, neither
for features nor for column types, vocabularies and normalisation statistics.
Each test plants rows dated after the cut-off that would change the answer if
they were read, and checks that the answer does not change.
"""
from __future__ import annotations

import datetime as dt
import shutil

import duckdb
import pytest

import rdl_sql
from rdl_sql.datasets.shop import build_shop
from rdl_sql.planner import overrides
from rdl_sql.planner.extract import extract
from rdl_sql.planner.features import feature_sql
from rdl_sql.planner.query import Aggregate, PredictQuery, Target
from rdl_sql.planner.schema import read_schema
from rdl_sql.planner.sql import arrow
from rdl_sql.planner.task import compile_task
from rdl_sql.udfs.columns import fit_spec

A = dt.datetime(2024, 1, 10)  # the anchor of the `tiny` shop (tests/conftest.py)

AS_OF = dt.datetime(2023, 9, 1)
CHURN = ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
         "WHERE COUNT(orders.*, -90, 0, DAYS) > 0 AS OF TIMESTAMP '2023-09-01' ")
FAST_GNN = "WITH (epochs = 1, channels = 8, fanouts = '2,2', max_train_rows = 800, seed = 3)"
GBDT = "WITH (model = 'gbdt', max_train_rows = 2000, seed = 3)"

#: 1,200 customers who sign up after AS OF, each from a country never seen before: counted, they would
#: turn `country` from a category into free text (over 1,000 distinct values)
PLANT_CUSTOMERS = """
    INSERT INTO customers SELECT 900000 + i, TIMESTAMP '2023-09-15' + INTERVAL (i) MINUTE, 'new-' || i, 30
    FROM range(1200) r(i)
"""


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("leak") / "shop.duckdb")
    con = duckdb.connect(path)
    build_shop(con, customers=300, products=40, days=300, seed=0)
    con.close()
    return path


@pytest.fixture
def shop(shop_file, tmp_path):
    """A private copy of the module's shop as a plain DuckDB connection."""
    path = str(tmp_path / "copy.duckdb")
    shutil.copy(shop_file, path)
    con = duckdb.connect(path)
    yield con
    con.close()


def test_column_types_read_only_the_rows_visible_at_as_of(shop):
    """Before: types counted every row, so future customers made `country` free text in a backtest."""
    before = read_schema(shop, as_of=AS_OF).tables["customers"].column("country").stype
    shop.execute(PLANT_CUSTOMERS)
    assert before == "categorical"
    assert read_schema(shop, as_of=AS_OF).tables["customers"].column("country").stype == "categorical"
    assert read_schema(shop).tables["customers"].column("country").stype == "text"  # the plant does matter


def test_vocabularies_and_normalisation_read_only_the_rows_visible_at_as_of(shop):
    def specs():
        s = read_schema(shop, as_of=AS_OF)
        g = extract(shop, s, ["customers", "orders"], AS_OF)
        return {t: fit_spec(g.nodes[t], s.tables[t]) for t in ("customers", "orders")}

    before = specs()
    # a future country more frequent than any (it would head the vocabulary), and huge future amounts
    shop.execute("INSERT INTO customers SELECT 800000 + i, TIMESTAMP '2023-09-02', 'ZZ', 99 FROM range(2000) r(i)")
    shop.execute("INSERT INTO orders SELECT 9000000 + i, 1 + i % 300, 1 + i % 40, TIMESTAMP '2023-09-01' "
                 "+ INTERVAL 1 SECOND, 1e9 FROM range(5000) r(i)")
    after = specs()
    assert after == before
    assert "ZZ" not in after["customers"].vocabs[after["customers"].categorical.index("country")]


def _prediction_rows(path: str, statement: str) -> list[tuple]:
    with rdl_sql.connect(path, progress=False) as con:
        return con.execute(statement).fetchall()


@pytest.mark.slow
def test_gbdt_backtest_ignores_future_customers_with_new_categories(shop_file, tmp_path):
    """Before: the planted customers removed `country` from the GBDT's features and changed its predictions."""
    path = str(tmp_path / "g.duckdb")
    shutil.copy(shop_file, path)
    before = _prediction_rows(path, CHURN + GBDT)
    with duckdb.connect(path) as con:
        con.execute(PLANT_CUSTOMERS)
    after = _prediction_rows(path, CHURN + GBDT)
    assert before and after == before


@pytest.mark.slow
def test_gnn_backtest_ignores_future_customers_with_new_categories(shop_file, tmp_path):
    """Before: the planted customers removed `country` from the GNN's features and changed its predictions."""
    path = str(tmp_path / "n.duckdb")
    shutil.copy(shop_file, path)
    before = _prediction_rows(path, CHURN + FAST_GNN)
    with duckdb.connect(path) as con:
        con.execute(PLANT_CUSTOMERS)
    after = _prediction_rows(path, CHURN + FAST_GNN)
    assert before and after == before


# ---- GBDT: an entity's timestamp column later than the anchor --------------------------------------
def _cancel_plan(con):
    con.execute("ALTER TABLE customers ADD COLUMN cancelled_at TIMESTAMP")
    overrides.set_time_column(con, "customers", "signup_at")  # two timestamps: say which one dates the row
    target = Aggregate("COUNT", "orders", None, 0, 10, "DAYS")
    q = PredictQuery(Target(target, "=", 0), "customers", "customer_id", aggregates=(target,))
    return compile_task(con, read_schema(con), q)


def _entity_features(con, p) -> dict:
    rows = arrow(con, feature_sql(p, p.predict_sql(A))).to_pylist()
    return {r["customer_id"]: r["customers__cancelled_at"] for r in rows}


def test_gbdt_hides_an_entity_timestamp_later_than_the_anchor(tiny):
    """Before: a cancellation 5 days after the anchor entered GBDT as -5 days (the GNN hides it)."""
    p = _cancel_plan(tiny)
    tiny.execute("UPDATE customers SET cancelled_at = TIMESTAMP '2024-01-15' WHERE customer_id = 1")  # A + 5 days
    tiny.execute("UPDATE customers SET cancelled_at = TIMESTAMP '2024-01-05' WHERE customer_id = 2")  # A - 5 days
    before = _entity_features(tiny, p)
    assert before[1] is None and before[2] == 5.0
    # planted: the future date moves further into the future; what is known at A is the same
    tiny.execute("UPDATE customers SET cancelled_at = TIMESTAMP '2024-06-01' WHERE customer_id = 1")
    assert _entity_features(tiny, p) == before


def test_gbdt_timestamp_at_the_anchor_is_known(tiny):
    p = _cancel_plan(tiny)
    tiny.execute("UPDATE customers SET cancelled_at = TIMESTAMP '2024-01-10' WHERE customer_id = 1")  # exactly A
    assert _entity_features(tiny, p)[1] == 0.0


# ---- a running last time (planner.hindsight) ---------------------------------------------------------
PLANT_LAST_ORDER = """
    ALTER TABLE customers ADD COLUMN last_order_at TIMESTAMP;
    UPDATE customers SET last_order_at = (SELECT max(ordered_at) FROM orders o
                                          WHERE o.customer_id = customers.customer_id);
"""


@pytest.mark.slow
@pytest.mark.parametrize("options", [GBDT, FAST_GNN], ids=["gbdt", "gnn"])
def test_a_running_last_time_changes_no_prediction(shop_file, tmp_path, options):
    """A snapshot's `last_order_at` is set for every customer with orders; hidden after the anchor, it would
    mark exactly the customers who order again. Planted, it must be left out: the same predictions."""
    path = str(tmp_path / "h.duckdb")
    shutil.copy(shop_file, path)
    with duckdb.connect(path) as con:
        overrides.set_time_column(con, "customers", "signup_at")
    before = _prediction_rows(path, CHURN + options)
    with duckdb.connect(path) as con:
        con.execute(PLANT_LAST_ORDER)
        # it would matter: in the snapshot it lies after the anchor for the customers who order again
        assert con.execute("SELECT count(*) FROM customers WHERE last_order_at > TIMESTAMP '2023-09-01'").fetchone()[0]
    with rdl_sql.connect(path, progress=False) as con:
        cur = con.execute(CHURN + options)
        after, notices = cur.fetchall(), cur.notices
    assert before and after == before
    assert any("customers.last_order_at` is not a feature" in n for n in notices)
