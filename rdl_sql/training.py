"""From a checked PREDICT to a trained model: labelled examples, graph, training.

Kept apart from statement dispatch so that every statement that trains
(PREDICT, CREATE MODEL, model = 'auto') shares one path.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.extract import extract, reachable
from rdl_sql.planner.query import PredictQuery
from rdl_sql.planner.schema import Schema, read_schema
from rdl_sql.planner.sql import arrow
from rdl_sql.planner.task import TaskPlan, compile_task

SPLITS = ("train", "val", "test")
MAX_CLASSES = 100


@dataclass
class Prepared:
    """A planned statement with its labelled examples (Arrow, one table, column ``split``).

    Multiclass labels are replaced by their index in ``classes`` (the most
    frequent training labels); a label outside them is -1 (never predicted).
    """

    schema: Schema
    plan: TaskPlan
    examples: pa.Table
    seconds: float
    classes: list = field(default_factory=list)

    def split(self, name: str) -> pa.Table:
        return self.examples.filter(pc.equal(self.examples.column("split"), name))


@dataclass
class GnnResult:
    trained: object   # udfs.train.TrainedModel
    graph: object     # udfs.graph.TemporalGraph
    metrics: dict


def prepare(con, query: PredictQuery) -> Prepared:
    """Plan ``query`` against the database and compute its labelled examples."""
    schema = read_schema(con)
    plan = compile_task(con, schema, query)
    t0 = time.perf_counter()
    examples = cap_training_rows(arrow(con, plan.examples_sql(plan.split_anchors())),
                                 int(plan.options["max_train_rows"]))
    classes: list = []
    if plan.task_type == "multiclass":
        examples, classes = _index_classes(examples)
    prep = Prepared(plan.schema, plan, examples, 0.0, classes)
    n_train, n_val = prep.split("train").num_rows, prep.split("val").num_rows
    if n_train == 0 or n_val == 0:
        raise PlanError(f"no {'training' if not n_train else 'validation'} examples: no entity of "
                        f"`{plan.entity.name}` passes the WHERE filter at the anchor times "
                        f"{plan.train_anchors[0]} .. {plan.val_anchor}; relax the filter or move "
                        f"val_start / test_start")
    if plan.task_type != "regression" and len(pc.unique(prep.split("train").column("label"))) < 2:
        raise PlanError("every training label has the same value, so there is nothing to learn; "
                        "check the target's comparison or the time range")
    prep.seconds = time.perf_counter() - t0
    return prep


def prepare_scoring(con, query: PredictQuery) -> Prepared:
    """Plan ``query`` for scoring with a stored model: no labels, no training anchors."""
    plan = compile_task(con, read_schema(con), query, training=False)
    return Prepared(plan.schema, plan, pa.table({}), 0.0)


def _index_classes(examples: pa.Table) -> tuple[pa.Table, list]:
    train = examples.filter(pc.equal(examples.column("split"), "train"))
    counts = pc.value_counts(train.column("label")).to_pylist()
    counts.sort(key=lambda d: (-d["counts"], d["values"]))
    classes = [d["values"] for d in counts[:MAX_CLASSES]]
    idx = pc.fill_null(pc.index_in(examples.column("label"), value_set=pa.array(classes, pa.string())), -1)
    examples = examples.set_column(examples.schema.get_field_index("label"), "label", pc.cast(idx, pa.float64()))
    keep = pc.or_(pc.not_equal(examples.column("split"), "train"), pc.greater_equal(examples.column("label"), 0))
    return examples.filter(keep), classes


def graph_tables(prep: Prepared) -> list[str]:
    return reachable(prep.schema, prep.plan.entity.name, int(prep.plan.options["layers"]))


def data_digest(con, prep: Prepared) -> str:
    from rdl_sql.planner.schema import data_digest as digest
    return digest(con, graph_tables(prep))


def load_graph(con, prep: Prepared, specs=None, fingerprint: dict | None = None):
    """The temporal graph around the entity table, cut at the plan's AS OF.

    With a stored model's ``fingerprint``: exactly its tables and links, in
    its order, so tables or links added since do not change the graph it reads.
    """
    from rdl_sql.udfs.graph import build_graph
    if fingerprint is None:
        extracted = extract(con, prep.schema, graph_tables(prep), prep.plan.as_of)
    else:
        extracted = extract(con, prep.schema, list(fingerprint["tables"]), prep.plan.as_of,
                            prep.schema.links_named(fingerprint["links"]))
    return build_graph(extracted, specs)


def train_gnn(con, prep: Prepared, progress: bool) -> GnnResult:
    from rdl_sql.planner.options import Options  # bridge until the engine layer passes typed options
    from rdl_sql.udfs.train import Examples, fit
    t0 = time.perf_counter()
    graph = load_graph(con, prep)
    graph_seconds = time.perf_counter() - t0
    ex = {s: Examples.from_arrow(prep.split(s)) for s in SPLITS}
    trained = fit(graph, graph.type_of(prep.plan.entity.name), ex["train"], ex["val"], ex["test"],
                  prep.plan.task_type, Options.from_dict(prep.plan.options), progress=progress, classes=prep.classes)
    metrics = dict(trained.metrics, label_seconds=round(prep.seconds, 3), graph_seconds=round(graph_seconds, 3))
    return GnnResult(trained, graph, metrics)


def cap_training_rows(examples: pa.Table, cap: int) -> pa.Table:
    """Keep the most recent training anchors whose rows fit in ``cap``; validation and test stay whole."""
    train = examples.filter(pc.equal(examples.column("split"), "train"))
    if cap <= 0 or train.num_rows <= cap:
        return examples
    counts = train.group_by("anchor_time").aggregate([("anchor_time", "count")]).sort_by(
        [("anchor_time", "descending")])
    total, keep = 0, []
    for t, n in zip(counts.column("anchor_time").to_pylist(), counts.column("anchor_time_count").to_pylist()):
        if keep and total + n > cap:
            break
        keep.append(t)
        total += n
    kept = pc.is_in(examples.column("anchor_time"), value_set=pa.array(keep, examples.schema.field("anchor_time").type))
    return examples.filter(pc.or_(pc.not_equal(examples.column("split"), "train"), kept))


def to_stored(con, prep: Prepared, result: GnnResult, name: str, statement: str):
    """The ``rdl_models`` row of a freshly trained GNN."""
    import datetime as dt

    from rdl_sql.model_store import StoredModel
    from rdl_sql.udfs.persist import dumps
    opts = prep.plan.options
    blob = dumps(result.trained, result.graph, int(opts["channels"]), int(opts["layers"]))
    return StoredModel(name, statement, prep.plan.task_type, "gnn", dict(opts),
                       prep.schema.fingerprint(graph_tables(prep)), data_digest(con, prep),
                       dict(result.metrics), blob, dt.datetime.now())


def load_stored(con, prep: Prepared, stored) -> GnnResult:
    """A stored GNN over today's graph; refused, saying what changed, if the schema moved."""
    from rdl_sql.udfs.persist import loads, specs_of
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


def stored_query(stored, override, text: str) -> PredictQuery:
    """The stored model's PREDICT with the FOR, WHERE and AS OF of ``override`` (a Predict node) applied."""
    from rdl_sql.bind import to_query
    from rdl_sql.dialect import parse_statement
    from rdl_sql.planner.errors import Position
    from sqlglot import exp

    def keys(entity) -> list[str]:
        return [c.sql() for c in (entity.expressions if isinstance(entity, exp.Tuple) else [entity])]

    base = parse_statement(stored.statement)
    entity = override.args.get("entity")
    if entity is not None:
        mine, theirs = keys(entity), keys(base.args["entity"])
        if mine != theirs:
            raise PlanError(f"model `{stored.name}` predicts for {', '.join(theirs)}, not {', '.join(mine)}",
                            Position.of(entity))
    for key in ("entity_in", "where", "as_of"):
        if override.args.get(key) is not None:
            base.set(key, override.args[key].copy())
    return to_query(base, text)
