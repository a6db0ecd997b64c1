"""Accuracy on a planted signal three links from the entity: the default GNN must reach it.

The generated shop of ``rdl_sql.datasets.three_hop`` makes a customer stop
ordering after buying a bad product, and a product's quality shows only in
the ratings other shoppers gave it (customers <- orders -> products <-
reviews). A model that does not reach the reviews can only use the
customer's own order counts and recency; LightGBM on exactly those is the
baseline. The default statement (no WITH options but the seed, fewer epochs
and rows for CI) must beat it by a margin, and the same statement with two
layers (which cannot reach the reviews) must not.

The shop has more products than ``extract.KEY_FEATURE_MAX_ROWS``: with fewer,
the GNN learns an embedding per product, and two layers then learn each
product's quality from the training labels (as LightGBM does from a price
unique to each product) without reading a review, which is a second road to
the signal and no test of depth.
"""
from __future__ import annotations

import pyarrow.compute as pc
import pytest

import rdl_sql
from rdl_sql.bind import to_query
from rdl_sql.datasets import three_hop
from rdl_sql.dialect import parse_statement
from rdl_sql.engine import gnn
from rdl_sql.engine import prepare as training
from rdl_sql.planner.extract import KEY_FEATURE_MAX_ROWS
from rdl_sql.udfs.gbdt import fit_gbdt

CHURN = ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
         "WHERE COUNT(orders.*, -90, 0, DAYS) > 0")
#: the default model, trained for fewer epochs on fewer rows so CI stays quick
CI = "seed = 0, epochs = 3, max_train_rows = 3000"
#: the deep model's lead over the counts (measured: 0.709 against 0.602) and the control's (0.606 against 0.593)
MARGIN = 0.05
CONTROL_MARGIN = 0.03
#: too many products for an embedding each (KEY_FEATURE_MAX_ROWS)
PRODUCTS = 1500


@pytest.fixture(scope="module")
def db():
    con = rdl_sql.connect(":memory:", progress=False)
    three_hop.build_three_hop(con.duckdb_connection, customers=500, products=PRODUCTS, days=400, seed=3)
    yield con.duckdb_connection
    con.close()


def _prepare(duck, options: str) -> training.Prepared:
    text = f"{CHURN} WITH ({options})"
    return training.prepare(duck, to_query(parse_statement(text), text))


def own_counts_auroc(duck, prep: training.Prepared) -> float:
    """Test AUROC of LightGBM on the customer's own order counts and recency, as of each anchor."""
    duck.register("__ex", prep.examples)
    try:
        rows = duck.sql(three_hop.ORACLE_SQL).to_arrow_table()
    finally:
        duck.unregister("__ex")
    parts = {s: rows.filter(pc.equal(rows.column("split"), s)) for s in training.SPLITS}
    model = fit_gbdt(parts["train"], parts["val"], parts["test"], prep.plan.task_type, prep.plan.options,
                     list(three_hop.OWN_COUNT_FEATURES))
    return model.metrics["test_AUROC"]


@pytest.mark.slow
def test_default_gnn_reaches_a_signal_three_links_away(db):
    prep = _prepare(db, CI)
    assert prep.plan.options.layers == 3  # chosen from the schema: the reviews are three links away
    assert prep.schema.tables["products"].rows > KEY_FEATURE_MAX_ROWS
    baseline = own_counts_auroc(db, prep)
    deep = gnn.train(db, prep, progress=False).metrics["test_AUROC"]
    assert deep > baseline + MARGIN, (deep, baseline)


@pytest.mark.slow
def test_two_layers_cannot_reach_it(db):
    """The control: the same model two links deep sees no review, and does no better than the counts."""
    prep = _prepare(db, CI + ", layers = 2")
    assert "reviews" not in prep.graph_tables
    shallow = gnn.train(db, prep, progress=False).metrics["test_AUROC"]
    assert shallow < own_counts_auroc(db, prep) + CONTROL_MARGIN
