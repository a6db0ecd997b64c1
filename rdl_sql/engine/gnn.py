"""The graph model of a statement: load its temporal graph, train, store and reload.

Imports torch (through ``udfs``); the engine loads this module only when a
statement trains or scores, so parsing, EXPLAIN and DESCRIBE stay instant.
"""
from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass

from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.extract import extract, key_feature
from rdl_sql.planner.features import default_windows, window_microseconds
from rdl_sql.udfs.graph import TemporalGraph, build_graph
from rdl_sql.udfs.persist import dumps, loads, specs_of
from rdl_sql.udfs.train import Examples, TrainedModel, fit

from .prepare import SPLITS, Prepared
from .store import StoredModel


@dataclass
class GnnResult:
    trained: TrainedModel
    graph: TemporalGraph
    metrics: dict


def load_graph(con, prep: Prepared, specs=None, fingerprint: dict | None = None,
               fit_until_us: int | None = None) -> TemporalGraph:
    """The temporal graph around the entity table, cut at the plan's AS OF.

    With a stored model's ``fingerprint``: exactly its tables and links, in
    its order, so tables or links added since do not change the graph it reads.
    Without stored ``specs``, the encodings are fitted on the rows dated at or
    before ``fit_until_us`` (the last training anchor: what training may see).
    """
    if specs is not None:
        keys = {t: s.key for t, s in specs.items() if s.key is not None}
    else:
        keys = {t: k for t in prep.graph_tables if (k := key_feature(prep.schema.tables[t])) is not None}
    if fingerprint is None:
        extracted = extract(con, prep.schema, prep.graph_tables, prep.plan.as_of, keys=keys)
    else:
        extracted = extract(con, prep.schema, list(fingerprint["tables"]), prep.plan.as_of,
                            prep.schema.links_named(fingerprint["links"]), keys=keys)
    return build_graph(extracted, specs, fit_until_us if specs is None else None, keys)


def train(con, prep: Prepared, progress: bool, cancel: threading.Event | None = None) -> GnnResult:
    """Train the GNN on ``prep``'s examples; metrics include the time spent on labels and the graph."""
    ex = {s: Examples.from_arrow(prep.split(s)) for s in SPLITS}
    t0 = time.perf_counter()
    train_anchors = ex["train"].anchor
    key = tuple(prep.graph_tables)
    graph = prep.graphs.get(key)
    if graph is None:  # a graph depends on its tables and the examples (its encodings fit to their last anchor)
        graph = prep.graphs[key] = load_graph(con, prep, fit_until_us=int(train_anchors.max())
                                              if len(train_anchors) else None)
    graph_seconds = time.perf_counter() - t0
    trained = fit(graph, graph.type_of(prep.plan.entity.name), ex["train"], ex["val"], ex["test"],
                  prep.plan.task_type, prep.plan.options, progress=progress, classes=prep.classes, cancel=cancel,
                  windows_us=window_microseconds(default_windows(prep.plan)))
    metrics = dict(trained.metrics, label_seconds=round(prep.seconds, 3), graph_seconds=round(graph_seconds, 3))
    return GnnResult(trained, graph, metrics)


def to_stored(prep: Prepared, result: GnnResult, name: str, statement: str, canonical: str,
              digest: str) -> StoredModel:
    """The ``rdl_models`` row of a freshly trained GNN."""
    opts = prep.plan.options
    blob = dumps(result.trained, result.graph, opts.channels, opts.layers)
    return StoredModel(name, statement, prep.plan.task_type.value, "gnn", opts.as_dict(),
                       prep.schema.fingerprint(prep.graph_tables), digest, dict(result.metrics), blob,
                       dt.datetime.now(), canonical)


def load_stored(con, prep: Prepared, stored: StoredModel) -> GnnResult:
    """A stored GNN over today's graph; refused, saying what changed, if the schema moved."""
    changes = prep.schema.incompatibilities(stored.fingerprint)
    if changes:
        raise PlanError(f"model `{stored.name}` cannot read the database any more: " + "; ".join(changes)
                        + f"; retrain it with CREATE OR REPLACE MODEL {stored.name} AS {stored.statement}")
    specs, state = specs_of(stored.weights)
    graph = load_graph(con, prep, specs, stored.fingerprint)
    try:
        trained = loads(state, graph)
    except ValueError as e:
        raise PlanError(f"model `{stored.name}` cannot be loaded: {e}") from None
    return GnnResult(trained, graph, dict(stored.metrics))
