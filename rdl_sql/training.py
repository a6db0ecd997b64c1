"""From a checked PREDICT to a trained model: labelled examples, graph, training.

Kept apart from statement dispatch so that every statement that trains
(PREDICT, CREATE MODEL, model = 'auto') shares one path.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.extract import extract, reachable
from rdl_sql.planner.query import PredictQuery
from rdl_sql.planner.schema import Schema, read_schema
from rdl_sql.planner.sql import arrow
from rdl_sql.planner.task import TaskPlan, compile_task

SPLITS = ("train", "val", "test")


@dataclass
class Prepared:
    """A planned statement with its labelled examples (Arrow, one table, column ``split``)."""

    schema: Schema
    plan: TaskPlan
    examples: pa.Table
    seconds: float

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
    prep = Prepared(schema, plan, examples, 0.0)
    n_train, n_val = prep.split("train").num_rows, prep.split("val").num_rows
    if n_train == 0 or n_val == 0:
        raise PlanError(f"no {'training' if not n_train else 'validation'} examples: no entity of "
                        f"`{plan.entity.name}` passes the WHERE filter at the anchor times "
                        f"{plan.train_anchors[0]} .. {plan.val_anchor}; relax the filter or move "
                        f"val_start / test_start")
    if plan.task_type == "binary" and len(pc.unique(prep.split("train").column("label"))) < 2:
        raise PlanError("every training label has the same value, so there is nothing to learn; "
                        "check the target's comparison or the time range")
    prep.seconds = time.perf_counter() - t0
    return prep


def load_graph(con, prep: Prepared, specs=None):
    """The temporal graph around the entity table, cut at the plan's AS OF."""
    from rdl_sql.udfs.graph import build_graph
    layers = int(prep.plan.options["layers"])
    tables = reachable(prep.schema, prep.plan.entity.name, layers)
    return build_graph(extract(con, prep.schema, tables, prep.plan.as_of), specs)


def train_gnn(con, prep: Prepared, progress: bool) -> GnnResult:
    from rdl_sql.udfs.train import Examples, fit
    t0 = time.perf_counter()
    graph = load_graph(con, prep)
    graph_seconds = time.perf_counter() - t0
    ex = {s: Examples.from_arrow(prep.split(s)) for s in SPLITS}
    trained = fit(graph, graph.type_of(prep.plan.entity.name), ex["train"], ex["val"], ex["test"],
                  prep.plan.task_type, prep.plan.options, progress=progress)
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
