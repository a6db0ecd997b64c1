"""A small generated shop as a graph, with a briefly trained churn model, shared by the udfs tests.

The database is never written to after the fixture is built, so the tests
that share it cannot disturb each other.
"""
from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
from sqlglot import exp

from rdl_sql.datasets.shop import build_shop
from rdl_sql.planner.extract import extract, key_feature, reachable
from rdl_sql.planner.features import default_windows, window_microseconds
from rdl_sql.planner.options import Options
from rdl_sql.planner.query import AggRef, Aggregate, PredictQuery, Target
from rdl_sql.planner.schema import read_schema
from rdl_sql.planner.sql import arrow
from rdl_sql.planner.task import compile_task
from rdl_sql.udfs.graph import build_graph
from rdl_sql.udfs.train import Examples, batches, new_model, objective, train_step

_TARGET = Aggregate("COUNT", "orders", None, 0, 30, "DAYS")
_ACTIVE = Aggregate("COUNT", "orders", None, -90, 0, "DAYS")
CHURN = PredictQuery(Target(_TARGET, "=", 0), "customers", "customer_id",
                     where=exp.GT(this=AggRef(this=1), expression=exp.Literal.number(0)),
                     aggregates=(_TARGET, _ACTIVE))
#: small and quick; 'recent' sampling is deterministic, so batching changes no score
SMALL = Options(epochs=1, channels=16, layers=2, fanouts=(4, 4), batch_size=64, sampler="recent")


def split(ex: pa.Table, name: str) -> Examples:
    return Examples.from_arrow(ex.filter(pc.equal(ex.column("split"), name)))


@pytest.fixture(scope="session")
def small_shop():
    """Graph, examples and a model after a few training steps (weights moved away from their init)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    con = duckdb.connect()
    try:
        build_shop(con, customers=200, products=30, days=240, seed=0)
        s = read_schema(con)
        p = compile_task(con, s, CHURN)
        ex = arrow(con, p.examples_sql(p.split_anchors()))
        tables = reachable(s, "customers", 2)
        keys = {t: k for t in tables if (k := key_feature(s.tables[t])) is not None}
        train, val = split(ex, "train"), split(ex, "val")
        # as the engine builds it (engine.gnn.load_graph): products (30 rows) keyed, encodings fitted on
        # what the training examples see, the task's windows counted
        g = build_graph(extract(con, s, tables, None, keys=keys), fit_until_us=int(train.anchor.max()), keys=keys)
        tm = new_model(g, g.type_of("customers"), "binary", SMALL, windows_us=window_microseconds(default_windows(p)))
        target, loss_fn = objective(tm, train.label)
        opt = torch.optim.Adam(tm.model.parameters(), lr=SMALL.lr)
        gen = torch.Generator().manual_seed(0)
        for idx in list(batches(len(train), SMALL.batch_size, gen))[:5]:
            train_step(tm, opt, loss_fn, g, train.take(idx), target[idx], gen)
        yield {"con": con, "schema": s, "plan": p, "examples": ex, "graph": g, "model": tm, "train": train,
               "val": val, "options": SMALL}
    finally:
        con.close()
        torch.set_num_threads(threads)
