"""``Engine``: runs the rdl-sql statements of one database connection.

The front-end parses and binds a statement into a ``PredictQuery`` (or a
model name) and calls one method here; each returns a ``Result``. The engine
never sees SQL text it would have to parse: a stored model's statement is
re-parsed by the front-end, which hands over the query it binds to.

Training runs here, in Python, between short DuckDB queries, so Ctrl-C (or
``cancel``, set by another thread such as a server's CancelRequest) stops it
between batches; scoring is one DuckDB query through the scoring UDFs.
"""
from __future__ import annotations

import threading

import pyarrow as pa
from sqlglot import exp

from rdl_sql.planner.errors import PlanError, Position
from rdl_sql.planner.query import PredictQuery
from rdl_sql.planner.sql import table as ident_table

from . import store
from .explain import explain
from .prepare import Prepared, prepare, prepare_scoring
from .registry import ModelRegistry
from .result import Result, describe_metrics


class Engine:
    def __init__(self, con, progress: bool):
        self.con = con
        self.progress = progress
        #: set from any thread to stop a running training between batches
        self.cancel = threading.Event()
        self.registry = ModelRegistry(con)

    def close(self) -> None:
        self.registry.close()

    # ---- PREDICT ---------------------------------------------------------------
    def predict(self, con, query: PredictQuery, identity: str) -> Result:
        """Train (or reuse) the statement's model and return the query that scores its entities.

        ``identity`` is the statement's canonical text: with the data digest
        it decides whether an earlier or stored model is reused.
        """
        prep = prepare(con, query)
        if prep.plan.options.model != "gnn":
            from . import auto  # LightGBM: loaded only when a statement asks for it
            return auto.predict(self, con, prep)
        result, note = self._train_or_reuse(con, prep, identity)
        return Result(query=self.score_query(prep, result), notices=[note], metrics=result.metrics)

    def _train_or_reuse(self, con, prep: Prepared, identity: str):
        from . import gnn  # torch: loaded only when a statement trains or scores
        key = (identity, prep.digest(con))
        result = self.registry.trained(key)
        if result is not None:
            return result, f"reused the model trained by an identical PREDICT on unchanged data: " \
                           f"{describe_metrics(result.metrics)}"
        stored = store.find_reusable(con, *key)
        if stored is not None:
            result = gnn.load_stored(con, prep, stored)
            self.registry.remember(key, result)
            return result, (f"reused stored model `{stored.name}` (same statement, same data): "
                            f"{describe_metrics(result.metrics)}")
        result = self.train_gnn(con, prep)
        self.registry.remember(key, result)
        return result, f"trained gnn: {describe_metrics(result.metrics)}"

    def train_gnn(self, con, prep: Prepared):
        from . import gnn  # torch: loaded only when a statement trains or scores
        self.cancel.clear()
        return gnn.train(con, prep, self.progress, self.cancel)

    def score_query(self, prep: Prepared, result, anchor=None) -> exp.Select:
        """The one DuckDB query that scores ``prep``'s entities with a held GNN."""
        return prep.plan.score_sql(self.registry.hold(result), anchor)

    def predict_using(self, con, stored: store.StoredModel, query: PredictQuery) -> Result:
        """Score ``query`` (the stored statement with the user's FOR / WHERE / AS OF) with a stored model."""
        from . import gnn  # torch: loaded only when a statement trains or scores
        prep = prepare_scoring(con, query)
        result = gnn.load_stored(con, prep, stored)
        note = f"scored with stored model `{stored.name}` (trained {stored.created_at:%Y-%m-%d %H:%M})"
        return Result(query=self.score_query(prep, result), notices=[note], metrics=result.metrics)

    # ---- models ----------------------------------------------------------------
    def create_model(self, con, name: str, query: PredictQuery, statement: str, identity: str, replace: bool,
                     position: Position | None) -> Result:
        """Train a GNN and store it in ``rdl_models`` under ``name``; the result is its metrics row."""
        from . import gnn  # torch: loaded only when a statement trains or scores
        if query.options.model != "gnn":
            raise PlanError("CREATE MODEL stores GNN models; use model = 'gbdt' or 'auto' with a plain PREDICT",
                            query.options_position)
        if not replace and name in store.names(con):  # checked before training, and again when writing
            raise PlanError(f"model `{name}` already exists; use CREATE OR REPLACE MODEL or DROP MODEL {name}",
                            position)
        prep = prepare(con, query)
        result = self.train_gnn(con, prep)
        digest = prep.digest(con)
        stored = gnn.to_stored(prep, result, name, statement, identity, digest)
        store.save(con, stored, replace, position)
        self.registry.remember((identity, digest), result)
        m = result.metrics
        metric = prep.plan.task_type.metric
        row = {"model": [name], "task": [prep.plan.task_type.value],
               f"val_{metric}": [m.get(f"val_{metric}")], f"test_{metric}": [m.get(f"test_{metric}")],
               "train_rows": [m.get("train_rows")], "val_rows": [m.get("val_rows")], "test_rows": [m.get("test_rows")],
               "epochs": [m.get("epochs")], "train_seconds": [round(m.get("train_seconds", 0.0), 3)]}
        return Result(table=pa.table(row), notices=[f"model `{name}` stored in {store.TABLE}"], metrics=m)

    def show_models(self, con) -> Result:
        cols = ["name", "task", "model", "created_at", "metrics", "statement"]
        if not store.exists_table(con):
            return Result(table=pa.table({c: pa.array([], pa.string()) for c in cols}))
        return Result(query=exp.select(*[exp.column(c) for c in cols]).from_(ident_table(store.TABLE))
                      .order_by(exp.column("name")))

    def describe_model(self, con, name: str, position: Position | None) -> Result:
        stored = store.load(con, name, position)
        rows = [("name", stored.name), ("statement", stored.statement), ("task", stored.task),
                ("model", stored.model), ("created_at", str(stored.created_at)),
                ("weights_bytes", str(len(stored.weights))), ("data_digest", stored.data_digest)]
        rows += [(f"option {k}", str(v)) for k, v in stored.options.items()]
        rows += [(f"metric {k}", str(v)) for k, v in stored.metrics.items()]
        for table_name, info in stored.fingerprint["tables"].items():
            rows.append((f"table {table_name}", f"key ({', '.join(info['key'])}), time {info['time'] or 'none'}, "
                         + ", ".join(f"{c} {k}" for c, k in info["columns"].items())))
        rows += [("link", link) for link in stored.fingerprint["links"]]
        return Result(table=pa.table({"property": [r[0] for r in rows], "value": [r[1] for r in rows]}))

    def drop_model(self, con, name: str, if_exists: bool, position: Position | None) -> Result:
        dropped = store.drop(con, name, if_exists, position)
        msg = f"model `{name}` dropped" if dropped else f"model `{name}` does not exist; nothing dropped"
        return Result(table=pa.table({"result": [msg]}), notices=[msg])

    # ---- EVALUATE / EXPLAIN ----------------------------------------------------------
    def evaluate_model(self, con, stored: store.StoredModel, query: PredictQuery) -> Result:
        """A stored model's metrics on labels computed now, at the query's test anchor."""
        from . import evaluate, gnn  # torch: loaded only when a statement trains or scores
        prep = prepare_scoring(con, query)
        result = gnn.load_stored(con, prep, stored)
        table = evaluate.fresh(con, prep, result)
        return Result(table=table, notices=[f"model `{stored.name}` on fresh labels at {prep.plan.test_anchor}"],
                      metrics=result.metrics)

    def evaluate_predict(self, con, query: PredictQuery) -> Result:
        """Train the statement's GNN and report its test-split metrics beside the trivial predictor's."""
        from . import evaluate  # torch: loaded only when a statement trains or scores
        if query.options.model != "gnn":
            raise PlanError("EVALUATE PREDICT evaluates the GNN; for 'gbdt' or 'auto' run the PREDICT, "
                            "whose notice gives both models' validation and test metrics", query.options_position)
        prep = prepare(con, query)
        result = self.train_gnn(con, prep)
        return Result(table=evaluate.test_split(prep, result),
                      notices=[f"trained gnn, evaluated on the test split at {prep.plan.test_anchor}"],
                      metrics=result.metrics)

    def explain(self, con, query: PredictQuery) -> Result:
        return explain(con, query)
