"""Recommendation statements (``LIST_DISTINCT(t.fk, a, b, UNIT) RANK TOP k``): train, rank, evaluate, store.

Models, chosen with ``model = ...``:

- ``popular`` and ``past``: the SQL baselines of ``planner/ranking.py``; a
  PREDICT with them is one DuckDB query;
- ``two_tower`` (also ``gnn``, the default): the graph model of
  ``udfs/ranking.py``; its top-k lists are computed in torch and handed back
  as a table;
- ``conditioned``: the two-tower plus a learnt score for the items the entity's
  own sampled subgraph reaches (``udfs/ranking.py``);
- ``auto``: the baselines, then ``conditioned`` and ``two_tower`` while
  ``time_budget`` lasts, keeping the best on validation MAP@k (the baselines
  are candidates, so ``auto`` never ends below ``past`` on validation).

Every model is scored on the same labelled examples (``RankPrepared``):
MAP@k, precision@k and recall@k over the validation and test anchors.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from rdl_sql.planner.errors import PlanError, Position
from rdl_sql.planner.extract import extract, reachable
from rdl_sql.planner.labels import ANCHOR
from rdl_sql.planner.options import threads_notices
from rdl_sql.planner.query import PredictQuery
from rdl_sql.planner.ranking import ITEM, RANK, SCORE, RankingPlan, compile_ranking
from rdl_sql.planner.schema import data_digest, read_schema
from rdl_sql.planner.sql import arrow, col, ident, table, to_sql
from rdl_sql.udfs.ranking_metrics import hits, ranking_metrics

from . import store
from .explain import _anchor_rows  # the anchors section of EXPLAIN, shared with the other targets
from .prepare import SPLITS, cap_training_rows
from .result import Result, describe_metrics

BASELINES = ("popular", "past")
TWO_TOWER = "two_tower"
CONDITIONED = "conditioned"
GRAPH_MODELS = (TWO_TOWER, CONDITIONED)
_views = itertools.count(1)


@dataclass
class RankPrepared:
    """A planned recommendation with its labelled examples (``label``: sorted item node ids)."""

    plan: RankingPlan
    examples: pa.Table
    seconds: float
    notices: list[str] = field(default_factory=list)

    def split(self, name: str) -> pa.Table:
        return self.examples.filter(pc.equal(self.examples.column("split"), name))

    @property
    def graph_tables(self) -> list[str]:
        plan = self.plan
        tables = reachable(plan.base.schema, plan.base.entity.name, max(plan.base.options.layers, 1))
        return tables + [t for t in (plan.listing.name, plan.item.name) if t not in tables]

    def digest(self, con) -> str:
        fp = json.dumps(self.plan.base.schema.fingerprint(self.graph_tables), sort_keys=True)
        return data_digest(con, self.graph_tables) + ":" + hashlib.sha256(fp.encode()).hexdigest()[:16]


@dataclass
class Ranker:
    """A trained (or chosen) recommendation model: its kind, metrics and, for the graph model, its state."""

    kind: str
    metrics: dict
    model: object | None = None  # udfs.ranking.TwoTowerModel for ``two_tower`` and ``conditioned``
    notices: list[str] = field(default_factory=list)


def prepare(con, query: PredictQuery, *, training: bool = True) -> RankPrepared:
    """Plan ``query`` and compute its labelled examples (training: every split; scoring: test anchors)."""
    plan = compile_ranking(con, read_schema(con, as_of=query.as_of), query, training=training)
    t0 = time.perf_counter()
    anchors = plan.split_anchors() if training else [(t, "test") for t in plan.base.test_anchors]
    examples = arrow(con, plan.examples_sql(anchors)) if anchors else pa.table({})
    if training:
        examples = cap_training_rows(examples, plan.base.options.max_train_rows, plan.base.options.seed)
    prep = RankPrepared(plan, examples, time.perf_counter() - t0)
    if training:
        rows = {s: prep.split(s).num_rows for s in SPLITS}
        for split, name in (("train", "training"), ("val", "validation")):
            if not rows[split]:
                raise PlanError(f"no {name} examples: no entity of `{plan.base.entity.name}` has an item in its "
                                f"window at the {name} anchors; relax the filter, use a longer window or move "
                                f"val_start / test_start")
        if not rows["test"]:
            prep.notices.append("no test examples; test metrics skipped")
        prep.notices += threads_notices(plan.base.options)
    return prep


# ---- ranking rows ----------------------------------------------------------------------------------
def rank_rows(con, prep: RankPrepared, ranker: Ranker, rows: pa.Table) -> pa.Table:
    """``(__row, rank, __item, score)``: the top k items of ``ranker`` for each row of ``rows``
    (``__node, <keys>, anchor_time``); ``__row`` is the row's index in ``rows``."""
    plan = prep.plan
    if ranker.kind in GRAPH_MODELS:
        from rdl_sql.udfs import ranking  # torch: loaded only when a graph model ranks
        from rdl_sql.udfs.train import torch_threads  # torch, as above
        with torch_threads(plan.base.options.threads):
            return ranking.top_k(ranker.model, rows.column("__node").to_numpy(),
                                 _us(rows.column(ANCHOR)), plan.k, _candidates(con, plan, rows))
    name = f"__rdl_rank_rows_{next(_views)}"
    con.register(name, rows.append_column("__row", pa.array(np.arange(rows.num_rows), pa.int64())))
    try:
        src = exp.select(*[col(k) for k in plan.keys], col(ANCHOR)).from_(table(name))
        ranked = exp.Subquery(this=plan.baseline_sql(src, ranker.kind), alias=exp.TableAlias(this=ident("__b")))
        on = exp.and_(*[col(k, "__b").eq(col(k, "__v")) for k in plan.keys],
                      col(ANCHOR, "__b").eq(col(ANCHOR, "__v")))
        q = (exp.select(col("__row", "__v"), col(RANK, "__b"), col(ITEM, "__b"), col(SCORE, "__b"))
             .from_(ranked).join(table(name, "__v"), on=on))
        return con.sql(to_sql(q)).to_arrow_table()
    finally:
        con.unregister(name)


def _us(times: pa.ChunkedArray) -> np.ndarray:
    return pc.cast(pc.cast(times, pa.timestamp("us")), pa.int64()).to_numpy()


def _candidates(con, plan: RankingPlan, rows: pa.Table) -> dict[int, np.ndarray]:
    """Anchor (us) -> the item nodes that may be recommended then (see ``RankingPlan.candidates_sql``)."""
    out = {}
    for t in np.unique(_us(rows.column(ANCHOR))):
        anchor = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(t))
        out[int(t)] = np.sort(arrow(con, plan.candidates_sql(anchor)).column(ITEM).to_numpy())
    return out


def split_metrics(con, prep: RankPrepared, ranker: Ranker, examples: pa.Table) -> dict[str, float]:
    """MAP@k, precision@k, recall@k of ``ranker`` on labelled ``examples``."""
    k = prep.plan.k
    if examples.num_rows == 0:
        return {}
    ranked = rank_rows(con, prep, ranker, examples)
    labels = examples.column("label")
    n_truth = pc.list_value_length(labels).to_numpy(zero_copy_only=False)
    truth_row = np.repeat(np.arange(examples.num_rows), n_truth)
    truth_item = pc.list_flatten(labels).to_numpy(zero_copy_only=False)
    row = ranked.column("__row").to_numpy()
    hit = hits(row, ranked.column(ITEM).to_numpy(), truth_row, truth_item)
    return ranking_metrics(row, ranked.column(RANK).to_numpy(), hit, n_truth, k)


def _with_metrics(con, prep: RankPrepared, ranker: Ranker) -> Ranker:
    for split in ("val", "test"):
        for name, v in split_metrics(con, prep, ranker, prep.split(split)).items():
            ranker.metrics[f"{split}_{name}"] = round(v, 6)
    for split in SPLITS:
        ranker.metrics[f"{split}_rows"] = prep.split(split).num_rows
    return ranker


def train(engine, con, prep: RankPrepared) -> Ranker:
    """The statement's model: a baseline, the two-tower graph model, or (``auto``) the best on validation."""
    model = prep.plan.base.options.model
    k = prep.plan.k
    if model == "gbdt":
        raise PlanError("model = 'gbdt' does not rank items; for LIST_DISTINCT(...) RANK TOP k use 'popular', "
                        "'past', 'two_tower' (or 'gnn', the same), 'conditioned' or 'auto'",
                        prep.plan.query.options_position)
    if model in BASELINES:
        t0 = time.perf_counter()
        ranker = _with_metrics(con, prep, Ranker(model, {}))
        ranker.metrics["train_seconds"] = round(time.perf_counter() - t0, 3)
        return ranker
    if model in ("gnn", TWO_TOWER):
        return _two_tower(engine, con, prep)
    if model == CONDITIONED:
        return _two_tower(engine, con, prep, conditioned=True)
    # auto: the baselines, then the graph models while the time budget lasts; the best on validation
    # MAP@k wins (ties: the simpler, tried first)
    metric = f"val_MAP@{k}"
    t0 = time.perf_counter()
    tried = [_with_metrics(con, prep, Ranker(b, {})) for b in BASELINES]
    for conditioned in (True, False):
        if time.perf_counter() - t0 < prep.plan.base.options.time_budget:
            tried.append(_two_tower(engine, con, prep, conditioned=conditioned))
    best = max(tried, key=lambda r: r.metrics.get(metric, -1.0))
    best.metrics = dict(best.metrics, candidate=best.kind,
                        **{f"{r.kind}_{metric}": r.metrics.get(metric) for r in tried})
    best.notices = best.notices + [f"auto chose {best.kind} on {metric}: "
                                   + ", ".join(f"{r.kind} {r.metrics.get(metric, float('nan')):.4f}" for r in tried)]
    return best


def _two_tower(engine, con, prep: RankPrepared, conditioned: bool = False) -> Ranker:
    from rdl_sql.udfs import ranking  # torch: loaded only when a graph model trains
    t0 = time.perf_counter()
    graph, entity_edge, item_edge = _graph(con, prep.plan, prep.graph_tables)
    model = ranking.fit(graph, prep.plan.base.entity.name, prep.plan.item.name, prep.split("train"),
                        prep.split("val"), prep.plan.k, prep.plan.base.options,
                        lambda rows: _candidates(con, prep.plan, rows), progress=engine.progress,
                        cancel=engine.cancel, conditioned=conditioned, entity_edge=entity_edge, item_edge=item_edge)
    ranker = Ranker(CONDITIONED if conditioned else TWO_TOWER, dict(model.metrics), model)
    ranker = _with_metrics(con, prep, ranker)
    ranker.metrics["train_seconds"] = round(time.perf_counter() - t0, 3)
    return ranker


def _graph(con, plan: RankingPlan, tables: list[str], links=None, specs=None):
    """The temporal graph over ``tables`` (entity, listing and item tables included), cut at the plan's AS OF,
    with the sampled edge types entity <- listing row and listing row <- item (None when not in the graph)."""
    from rdl_sql.udfs.graph import build_graph  # torch: loaded only when a graph model trains or scores
    extracted = extract(con, plan.base.schema, tables, plan.base.as_of, links)
    graph = build_graph(extracted, specs)
    order = list(extracted.edges)
    # build_graph names link i's edge types r<i> (child -> parent) and r<i>_rev (parent -> child)
    entity_edge = item_edge = None
    if plan.entity_link in order:
        entity_edge = (graph.type_of(plan.listing.name), f"r{order.index(plan.entity_link)}",
                       graph.type_of(plan.base.entity.name))
    if plan.item_link in order:
        item_edge = (graph.type_of(plan.item.name), f"r{order.index(plan.item_link)}_rev",
                     graph.type_of(plan.listing.name))
    return graph, entity_edge, item_edge


# ---- statements -------------------------------------------------------------------------------------
def _scored(con, prep: RankPrepared, ranker: Ranker, anchor=None) -> Result:
    plan = prep.plan
    rows = plan.rows_sql(anchor)
    if ranker.kind in BASELINES:
        return Result(query=plan.output_sql(plan.baseline_sql(rows, ranker.kind)))
    rows_t = arrow(con, rows)
    ranked = rank_rows(con, prep, ranker, rows_t)
    name = f"__rdl_ranked_{next(_views)}"
    keyed = rows_t.select([*plan.keys, ANCHOR]).take(ranked.column("__row"))
    for c in (RANK, ITEM, SCORE):
        keyed = keyed.append_column(c, ranked.column(c))
    con.register(name, keyed)
    try:
        return Result(table=arrow(con, plan.output_sql(exp.select("*").from_(table(name)))))
    finally:
        con.unregister(name)


def _notices(prep: RankPrepared, ranker: Ranker) -> list[str]:
    return ranker.notices + [f"{ranker.kind}: {describe_metrics(ranker.metrics)}"] + prep.notices


def predict(engine, con, query: PredictQuery, identity: str) -> Result:
    prep = prepare(con, query)
    key = (identity, prep.digest(con))
    ranker = engine.registry.trained(key)
    notices = []
    if ranker is None:
        stored = store.find_reusable(con, *key)
        if stored is not None:
            ranker = _load(con, prep, stored)
            notices.append(f"reused stored model `{stored.name}` (same statement, same data)")
        else:
            ranker = train(engine, con, prep)
        engine.registry.remember(key, ranker)
    else:
        notices.append("reused the model trained by an identical PREDICT on unchanged data")
    result = _scored(con, prep, ranker)
    result.notices = notices + _notices(prep, ranker)
    result.metrics = ranker.metrics
    return result


def create_model(engine, con, name: str, query: PredictQuery, statement: str, identity: str, replace: bool,
                 position: Position | None) -> Result:
    if not replace and name in store.names(con):
        raise PlanError(f"model `{name}` already exists; use CREATE OR REPLACE MODEL or DROP MODEL {name}", position)
    prep = prepare(con, query)
    digest = prep.digest(con)  # before training: rows written meanwhile must not count as read
    ranker = train(engine, con, prep)
    weights = b""
    if ranker.kind in GRAPH_MODELS:
        from rdl_sql.udfs import ranking  # torch: loaded already, since a graph model was trained
        weights = ranking.dumps(ranker.model)
    stored = store.StoredModel(name, statement, "ranking", ranker.kind, prep.plan.base.options.as_dict(),
                               prep.plan.base.schema.fingerprint(prep.graph_tables), digest, dict(ranker.metrics),
                               weights, dt.datetime.now(), identity)
    store.save(con, stored, replace, position)
    engine.registry.remember((identity, digest), ranker)
    k = prep.plan.k
    m = ranker.metrics
    row = {"model": [name], "task": ["ranking"], "kind": [ranker.kind],
           f"val_MAP@{k}": [m.get(f"val_MAP@{k}")], f"test_MAP@{k}": [m.get(f"test_MAP@{k}")],
           "train_rows": [m.get("train_rows")], "val_rows": [m.get("val_rows")], "test_rows": [m.get("test_rows")],
           "train_seconds": [m.get("train_seconds")]}
    return Result(table=pa.table(row), notices=ranker.notices + [f"model `{name}` ({ranker.kind}) stored in "
                                                                   f"{store.TABLE}"] + prep.notices, metrics=m)


def _load(con, prep: RankPrepared, stored: store.StoredModel) -> Ranker:
    if stored.model in BASELINES:
        return Ranker(stored.model, dict(stored.metrics))
    changes = prep.plan.base.schema.incompatibilities(stored.fingerprint)
    if changes:
        raise PlanError(f"model `{stored.name}` cannot read the database any more: " + "; ".join(changes)
                        + f"; retrain it with CREATE OR REPLACE MODEL {stored.name} AS {stored.statement}")
    from rdl_sql.udfs import ranking  # torch: loaded only when a stored graph model scores
    links = prep.plan.base.schema.links_named(stored.fingerprint["links"])
    graph, _, _ = _graph(con, prep.plan, list(stored.fingerprint["tables"]), links, ranking.specs_of(stored.weights))
    return Ranker(stored.model, dict(stored.metrics), ranking.loads(stored.weights, graph))


def predict_using(engine, con, stored: store.StoredModel, query: PredictQuery) -> Result:
    prep = prepare(con, query, training=False)
    ranker = _load(con, prep, stored)
    result = _scored(con, prep, ranker)
    result.notices = [f"scored with stored model `{stored.name}` ({ranker.kind}, trained "
                      f"{stored.created_at:%Y-%m-%d %H:%M})"] + prep.notices
    result.metrics = ranker.metrics
    return result


def _table(con, prep: RankPrepared, ranker: Ranker, splits: tuple[str, ...]) -> pa.Table:
    """Rows ``(split, metric, value, popular, past)``: the model beside both baselines."""
    out = {"split": [], "metric": [], "value": [], "popular": [], "past": []}
    for split in splits:
        ex = prep.split(split)
        if ex.num_rows == 0:
            continue
        mine = split_metrics(con, prep, ranker, ex)
        base = {b: split_metrics(con, prep, Ranker(b, {}), ex) for b in BASELINES}
        for name, v in mine.items():
            out["split"].append(split)
            out["metric"].append(name)
            out["value"].append(v)
            out["popular"].append(base["popular"][name])
            out["past"].append(base["past"][name])
        out["split"].append(split)
        out["metric"].append("rows")
        out["value"].append(float(ex.num_rows))
        out["popular"].append(float(ex.num_rows))
        out["past"].append(float(ex.num_rows))
    if not out["split"]:
        raise PlanError("no labelled rows to evaluate: no entity has an item in its window at the test anchors; "
                        "try another AS OF")
    return pa.table(out)


def evaluate_predict(engine, con, query: PredictQuery) -> Result:
    prep = prepare(con, query)
    ranker = train(engine, con, prep)
    return Result(table=_table(con, prep, ranker, ("val", "test")),
                  notices=_notices(prep, ranker), metrics=ranker.metrics)


def evaluate_model(engine, con, stored: store.StoredModel, query: PredictQuery) -> Result:
    prep = prepare(con, query, training=False)
    ranker = _load(con, prep, stored)
    anchors = prep.plan.base.test_anchors
    when = f"{anchors[0]} .. {anchors[-1]}" if anchors else str(prep.plan.base.test_start)
    return Result(table=_table(con, prep, ranker, ("test",)),
                  notices=[f"{ranker.kind} model `{stored.name}` on fresh labels at the test anchors {when}"],
                  metrics=ranker.metrics)


def explain(con, query: PredictQuery) -> Result:
    """EXPLAIN of a recommendation: task, anchors, and the SQL of labels and baselines; trains nothing."""
    plan = compile_ranking(con, read_schema(con, as_of=query.as_of), query)
    agg = plan.agg
    rows = [("task", "type", "ranking"), ("task", "entity", f"{plan.base.entity.name}({', '.join(plan.keys)})"),
            ("task", "target", f"distinct {plan.item.name} rows named by {plan.listing.name}."
                               f"{plan.item_link.child_columns[0]} in ({agg.start}, {agg.end}] {agg.unit} after the "
                               f"anchor, top {plan.k}, scored by MAP@{plan.k}"),
            ("task", "items", f"{plan.item.name}({plan.item_link.parent_columns[0]}); a candidate at an anchor "
                              f"exists then and was named at or before it"),
            ("task", "as of", str(plan.base.as_of or "latest data"))]
    rows += _anchor_rows(plan.base)
    rows += [("sql", "labels", to_sql(plan.examples_sql(plan.split_anchors()))),
             ("sql", "prediction rows", to_sql(plan.rows_sql()))]
    rows += [("sql", f"model {b}", to_sql(plan.baseline_sql(plan.rows_sql(), b))) for b in BASELINES]
    rows += [("model", k, str(v)) for k, v in plan.base.options.as_dict().items()]
    return Result(table=pa.table({"section": [r[0] for r in rows], "item": [r[1] for r in rows],
                                  "detail": [r[2] for r in rows]}))
