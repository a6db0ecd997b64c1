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

import dataclasses
import datetime as dt
import json
import math
import threading

import pyarrow as pa
from sqlglot import exp

from rdl_sql.planner.errors import PlanError, Position, sql_name
from rdl_sql.planner.options import RANKING_MODELS
from rdl_sql.planner.query import PredictQuery, TaskType
from rdl_sql.planner.ranking import is_ranking
from rdl_sql.planner.sql import run as run_sql
from rdl_sql.planner.sql import table as ident_table

from . import auto, recommend, store
from .auto import GBDT, Trained
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
        """Train (or reuse) the statement's model and return the rows that score its entities.

        ``identity`` is the statement's canonical text: with the data digest
        it decides whether an earlier or stored model is reused.
        """
        if _ranking(query):  # LIST_DISTINCT(...) RANK TOP k: engine/recommend.py
            return recommend.predict(self, con, query, identity)
        prep = prepare(con, query)
        empty = _nothing_to_fill(con, prep)
        if empty is not None:
            return empty
        trained, notices = self._train_or_reuse(con, prep, identity)
        return self._scored(con, prep, trained, notices)

    def _train_or_reuse(self, con, prep: Prepared, identity: str) -> tuple[Trained, list[str]]:
        """The statement's model: held in this session, stored by an identical statement, or trained now."""
        key = (identity, auto.digest(con, prep))
        trained = self.registry.trained(key)
        if trained is not None:
            return trained, [f"reused the model trained by an identical PREDICT on unchanged data: "
                             f"{describe_metrics(trained.metrics)}"]
        stored = store.find_reusable(con, *key)
        if stored is not None:
            trained = self._load(con, prep, stored)
            self.registry.remember(key, trained)
            return trained, [f"reused stored model `{stored.name}` (same statement, same data): "
                             f"{describe_metrics(trained.metrics)}"]
        trained = auto.train(self, con, prep)
        self.registry.remember(key, trained)
        return trained, list(trained.notices)

    def _load(self, con, prep: Prepared, stored: store.StoredModel) -> Trained:
        """A stored model of any kind, ready to score ``prep``'s rows."""
        if stored.model == GBDT:
            from . import gbdt  # LightGBM: loaded only when a statement scores a GBDT
            return Trained(GBDT, gbdt.load_stored(prep, stored), prep, dict(stored.metrics))
        from . import gnn  # torch: loaded only when a statement trains or scores
        result = gnn.load_stored(con, prep, stored)
        return Trained(stored.model, result, prep, dict(result.metrics))

    def _scored(self, con, prep: Prepared, trained: Trained, notices: list[str]) -> Result:
        """The result that scores ``prep``'s rows: a query through the scoring UDF (GNN) or a table (GBDT)."""
        notices = notices + prep.notices  # what preparing the examples found (an empty test split, FOR ... IN)
        if trained.kind == GBDT:
            from . import gbdt  # LightGBM: loaded only when a statement scores a GBDT
            return Result(table=gbdt.score(con, prep.plan, trained.result), notices=notices, metrics=trained.metrics,
                          select=prep.plan.typed_sql)
        return Result(query=self.score_query(prep, trained.result), notices=notices, metrics=trained.metrics)

    def train_gnn(self, con, prep: Prepared):
        from . import gnn  # torch: loaded only when a statement trains or scores
        result = gnn.train(con, prep, self.progress, self.cancel)
        _refuse_diverged(result.metrics, prep.plan.options.lr)
        return result

    def score_query(self, prep: Prepared, result, anchor=None) -> exp.Select:
        """The one DuckDB query that scores ``prep``'s entities with a held GNN."""
        key = self.registry.hold(result)
        return prep.plan.score_sql(key, anchor, function=self.registry.score_function(prep.plan.task_type))

    def predict_using(self, con, stored: store.StoredModel, query: PredictQuery) -> Result:
        """Score ``query`` (the stored statement with the user's FOR / WHERE / AS OF) with a stored model."""
        if _ranking(query):
            return recommend.predict_using(self, con, stored, query)
        prep = prepare_scoring(con, query, test_anchors=False)  # scoring only: no test anchors to count
        trained = self._load(con, prep, stored)
        note = f"scored with stored model `{stored.name}` ({trained.kind}, trained {stored.created_at:%Y-%m-%d %H:%M})"
        return self._scored(con, prep, trained, [note])

    # ---- models ----------------------------------------------------------------
    def create_model(self, con, name: str, query: PredictQuery, statement: str, identity: str, replace: bool,
                     position: Position | None) -> Result:
        """Train the statement's model (GNN, GBDT, or the best of ``auto``'s) and store it in ``rdl_models``."""
        if not replace and name in store.names(con):  # checked before training, and again when writing
            raise PlanError(f"model `{name}` already exists; use CREATE OR REPLACE MODEL or DROP MODEL {name}",
                            position)
        if _ranking(query):
            return recommend.create_model(self, con, name, query, statement, identity, replace, position)
        prep = prepare(con, query)
        digest = auto.digest(con, prep)  # before training: rows written meanwhile must not count as read
        trained = auto.train(self, con, prep)
        store.save(con, self._to_stored(trained, name, statement, identity, digest), replace, position)
        self.registry.remember((identity, digest), trained)
        m = trained.metrics
        metric = prep.plan.task_type.metric
        # typed, not inferred: a GBDT has no epochs and an empty test split no test metric, and the row's
        # columns (cursor.description, DESCRIBE CREATE MODEL) must not change type with them
        fields = [("model", pa.string(), name), ("task", pa.string(), prep.plan.task_type.value),
                  (f"val_{metric}", pa.float64(), m.get(f"val_{metric}")),
                  (f"test_{metric}", pa.float64(), m.get(f"test_{metric}")),
                  *[(k, pa.int64(), m.get(k)) for k in ("train_rows", "val_rows", "test_rows", "epochs")],
                  ("train_seconds", pa.float64(), round(m.get("train_seconds", 0.0), 3))]
        row = {k: pa.array([v], t) for k, t, v in fields}
        chosen = f", chosen by auto: {m['candidate']}" if "candidate" in m else ""
        notices = (list(trained.notices) + [f"model `{name}` ({trained.kind}{chosen}) stored in {store.TABLE}"]
                   + prep.notices)
        return Result(table=pa.table(row), notices=notices, metrics=m)

    def _to_stored(self, trained: Trained, name: str, statement: str, identity: str, digest: str) -> store.StoredModel:
        """The model's ``rdl_models`` row; its metrics also record where validation and test started, so
        EVALUATE MODEL can tell when the anchors it evaluates at were the model's training anchors."""
        if trained.kind == GBDT:
            from . import gbdt  # LightGBM: loaded already, since a GBDT was trained
            stored = gbdt.to_stored(trained.prep, trained.result, name, statement, identity, digest, trained.metrics)
        else:
            from . import gnn  # torch: loaded already, since a GNN was trained
            stored = gnn.to_stored(trained.prep, trained.result, name, statement, identity, digest)
        plan = trained.prep.plan
        starts = {k: v.isoformat(sep=" ") for k in ("val_start", "test_start")
                  if isinstance(v := getattr(plan, k), dt.datetime)}
        return dataclasses.replace(stored, metrics={**trained.metrics, **starts})

    def show_models(self, con) -> Result:
        """One row per stored model: its task, its metric on validation and test, rows, threshold, statement.

        Metrics are columns (``val_metric`` / ``test_metric`` in the task's ``metric``), not a JSON blob, so
        ``SELECT * FROM (SHOW MODELS)``-style comparisons read them directly; DESCRIBE MODEL has the rest.
        """
        fields = [("name", pa.string()), ("task", pa.string()), ("model", pa.string()), ("metric", pa.string()),
                  ("val_metric", pa.float64()), ("test_metric", pa.float64()), ("train_rows", pa.int64()),
                  ("val_rows", pa.int64()), ("test_rows", pa.int64()), ("threshold", pa.float64()),
                  ("created_at", pa.timestamp("us")), ("statement", pa.string())]
        rows = []
        if store.exists_table(con):
            cols = ["name", "task", "model", "metrics", "created_at", "statement"]
            q = exp.select(*[exp.column(c) for c in cols]).from_(ident_table(store.TABLE)).order_by(exp.column("name"))
            for name, task, model, metrics, created_at, statement in run_sql(con, q):
                m = _metrics_of(metrics)
                metric = TaskType(task).metric if task in {t.value for t in TaskType} else None
                rows.append((name, task, model, metric, _number(m.get(f"val_{metric}")),
                             _number(m.get(f"test_{metric}")), m.get("train_rows"), m.get("val_rows"),
                             m.get("test_rows"), _number(m.get("threshold")), created_at, statement))
        columns = {f: pa.array([r[i] for r in rows], t) for i, (f, t) in enumerate(fields)}
        return Result(table=pa.table(columns))

    def describe_model(self, con, name: str, position: Position | None) -> Result:
        """Properties of a stored model, read from its row alone (no torch, no LightGBM)."""
        stored = store.load(con, name, position)
        rows = [("name", stored.name), ("statement", stored.statement), ("task", stored.task),
                ("model", stored.model)]
        if "candidate" in stored.metrics:  # chosen by model = 'auto'
            metric = TaskType(stored.task).metric
            # a ranking model's metric carries its k (MAP@10)
            metric = next((k[len("val_"):] for k in stored.metrics if k.startswith(f"val_{metric}@")), metric)
            suffix = f"_val_{metric}"
            tried = [f"{k.removesuffix(suffix)} {v:.4f}" for k, v in stored.metrics.items()
                     if k.endswith(suffix) and isinstance(v, float)]
            rows.append(("chosen_by", f"auto: {stored.metrics['candidate']}, the best on validation {metric} of "
                                      f"{', '.join(tried)}"))
        rows += [("created_at", str(stored.created_at)), ("weights_bytes", str(len(stored.weights))),
                 ("data_digest", stored.data_digest)]
        rows += [(k, v) for k, v in store.describe_weights(stored)]
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
        """A stored model's metrics on labels computed now, at the query's test anchor, with bootstrap intervals."""
        if _ranking(query):
            return recommend.evaluate_model(self, con, stored, query)
        from . import evaluate  # torch / LightGBM: loaded by the model's kind, only when evaluating
        prep = prepare_scoring(con, query)
        trained = self._load(con, prep, stored)
        table = evaluate.fresh(con, prep, trained, stored=stored)
        anchors = prep.plan.test_anchors
        when = f"{anchors[0]} .. {anchors[-1]}" if anchors else str(prep.plan.test_start)
        return Result(table=table, notices=[f"{trained.kind} model `{stored.name}` on fresh labels at the test anchors "
                                            f"{when}"] + prep.notices, metrics=trained.metrics)

    def evaluate_predict(self, con, query: PredictQuery) -> Result:
        """Train the statement's model (any ``model``) and report its test-window metrics with bootstrap intervals."""
        if _ranking(query):
            return recommend.evaluate_predict(self, con, query)
        from . import evaluate  # torch / LightGBM: loaded by the model's kind, only when evaluating
        prep = prepare(con, query)
        trained = auto.train(self, con, prep)
        return Result(table=evaluate.test_split(con, prep, trained),
                      notices=list(trained.notices) + [f"evaluated {trained.kind} on the test split "
                                                       f"({prep.split('test').num_rows} rows)"] + prep.notices,
                      metrics=trained.metrics)

    def explain(self, con, query: PredictQuery) -> Result:
        if _ranking(query):
            return recommend.explain(con, query)
        return explain(con, query)


def _ranking(query: PredictQuery) -> bool:
    """Whether ``query`` is a recommendation (engine/recommend.py); refuses a ranking-only model elsewhere."""
    if is_ranking(query):
        return True
    if query.options.model in RANKING_MODELS:
        raise PlanError(f"model = '{query.options.model}' ranks items for LIST_DISTINCT(...) RANK TOP k; this "
                        f"target takes 'gnn', 'gbdt' or 'auto'", query.options_position)
    return False


def _refuse_diverged(metrics: dict, lr: float) -> None:
    """A PlanError when training diverged (a NaN or infinite validation metric): its predictions would be NULLs.

    Only validation's metric tells: it is defined on every split ``prepare``
    lets train (a validation split of one class is refused there), so NaN
    there means NaN scores; a test metric may be undefined (one class) or
    absent, and the kept model is the one validation measured.
    """
    bad = [k for k, v in metrics.items() if k.startswith("val_") and isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise PlanError(f"training diverged: {bad[0]} is {metrics[bad[0]]}, so every prediction would be NULL; "
                        f"use a smaller learning rate than lr = {lr:g} (the default is 0.005)")


def _metrics_of(text) -> dict:
    """A stored model's metrics for SHOW MODELS; empty when the row was damaged by hand (DESCRIBE MODEL says how)."""
    try:
        m = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return m if isinstance(m, dict) else {}


def _number(v) -> float | None:
    """A metric as a float for SHOW MODELS; None when absent or not a number."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _nothing_to_fill(con, prep: Prepared) -> Result | None:
    """For a column target whose column has no NULL: 0 rows and a notice saying why, without training."""
    plan = prep.plan
    if plan.column is None or plan.query.entity_in is not None:
        return None
    rows = exp.Subquery(this=plan.predict_sql(), alias=exp.TableAlias(this=exp.to_identifier("__p", quoted=True)))
    if run_sql(con, exp.select(exp.Count(this=exp.Star())).from_(rows.copy()))[0][0]:
        return None
    fields = [exp.alias_(exp.cast(exp.null(), exp.DataType.build(t, dialect="duckdb")), n, quoted=True)
              for n, t in plan.output_fields]
    query = exp.select(*[exp.column(k, quoted=True) for k in plan.keys], *fields).from_(rows).where(exp.false())
    entity = sql_name(plan.entity.name)
    keys = [f"{entity}.{sql_name(k)}" for k in plan.keys]
    key = keys[0] if len(keys) == 1 else f"({', '.join(keys)})"
    return Result(query=query, notices=[
        f"`{plan.entity.name}.{plan.column}` has no NULL to fill in: 0 rows, nothing trained. A column target "
        f"predicts the rows whose column is NULL; to score chosen rows anyway use FOR {key} "
        f"IN (...), and to measure the model use EVALUATE PREDICT"])
