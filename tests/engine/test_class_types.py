"""PREDICT, CREATE MODEL and PREDICT USING give a multiclass prediction in its column's type.

A key predicted by FIRST / LAST joins and compares with the key column (an INTEGER, a DATE, a BOOLEAN), a
category keeps its ENUM or VARCHAR type; the class probabilities stay a MAP keyed by the classes' names.
Trains tiny models on the ``typed_classes`` database of ``tests/conftest.py``.
"""
from __future__ import annotations

import pytest

ENUM = "ENUM('bronze', 'silver', 'gold')"
#: target -> the class column's DuckDB type
TARGETS = {
    "FIRST(orders.product_id, 0, 30, DAYS)": "INTEGER",
    "FIRST(orders.promo_day, 0, 30, DAYS)": "DATE",
    "LAST(orders.vip, 0, 30, DAYS)": "BOOLEAN",
    "customers.tier": ENUM,
    "customers.country": "VARCHAR",
}
FAST = "WITH (model = '{model}', epochs = 1, channels = 8, fanouts = '2,2', max_train_rows = 400)"


def types(con, sql: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {sql}").fetchall()}


def predictions_match_the_column(con, sql: str, target: str) -> None:
    """Every predicted class is a value of its column, compared as that column's type."""
    if target.startswith("customers."):
        column, source = target.split(".")[1], "customers"
    else:
        column, source = target.split("(")[1].split(",")[0].split(".")[1], "orders"
    missing = con.execute(f"SELECT count(*) FROM ({sql}) p WHERE p.prediction IS NOT NULL AND p.prediction "
                          f"NOT IN (SELECT {column} FROM {source})").fetchone()[0]
    assert missing == 0


@pytest.mark.parametrize("model", ["gnn", "gbdt"])
@pytest.mark.parametrize("target", TARGETS)
def test_predictions_fresh_and_stored_have_the_column_type(typed_classes_rdl, target, model):
    """A GNN's class comes from the scoring UDF as text, a GBDT's in an Arrow table: both are cast back."""
    con, dtype = typed_classes_rdl, TARGETS[target]
    options = FAST.format(model="gnn") if model == "gnn" else "WITH (model = 'gbdt')"
    statement = f"PREDICT {target} FOR EACH customers.customer_id {options}"
    fresh = types(con, statement)
    assert fresh["prediction"] == dtype and fresh["probabilities"] == "MAP(VARCHAR, DOUBLE)"
    predictions_match_the_column(con, statement, target)
    con.execute(f"CREATE MODEL m AS {statement}")
    assert types(con, "PREDICT USING m")["prediction"] == dtype
    predictions_match_the_column(con, "PREDICT USING m", target)
    keys = [r[0] for r in con.execute("PREDICT USING m").fetchall()]
    assert keys == sorted(keys)
