"""From a checked PREDICT to labelled examples: the first step of every statement that trains.

Kept apart from the models so that GNN, GBDT and ``auto`` train on the very
same example rows, splits and time rules.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.extract import reachable
from rdl_sql.planner.labels import TaskPlan
from rdl_sql.planner.query import PredictQuery, TaskType
from rdl_sql.planner.schema import Schema, read_schema
from rdl_sql.planner.schema import data_digest as schema_digest
from rdl_sql.planner.sql import arrow
from rdl_sql.planner.task import compile_task

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

    @property
    def graph_tables(self) -> list[str]:
        """The tables the model reads: those within ``layers`` links of the entity."""
        return reachable(self.schema, self.plan.entity.name, self.plan.options.layers)

    def digest(self, con) -> str:
        """Identity of the data and the graph definition the model would read.

        Any change to a row of a read table, or to the tables, columns, keys,
        links and time columns as the model sees them, changes it.
        """
        return schema_digest(con, self.graph_tables) + ":" + _fingerprint_digest(self)


def _fingerprint_digest(prep: Prepared) -> str:
    text = json.dumps(prep.schema.fingerprint(prep.graph_tables), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepare(con, query: PredictQuery) -> Prepared:
    """Plan ``query`` against the database and compute its labelled examples."""
    schema = read_schema(con, as_of=query.as_of)  # column types as of the statement's AS OF
    plan = compile_task(con, schema, query)
    t0 = time.perf_counter()
    examples = cap_training_rows(arrow(con, plan.examples_sql(plan.split_anchors())), plan.options.max_train_rows)
    classes: list = []
    if plan.task_type is TaskType.MULTICLASS:
        examples, classes = index_classes(examples)
    prep = Prepared(plan.schema, plan, examples, 0.0, classes)
    n_train, n_val = prep.split("train").num_rows, prep.split("val").num_rows
    if n_train == 0 or n_val == 0:
        raise PlanError(f"no {'training' if not n_train else 'validation'} examples: no entity of "
                        f"`{plan.entity.name}` passes the WHERE filter at the anchor times "
                        f"{plan.train_anchors[0]} .. {plan.val_anchor}; relax the filter or move "
                        f"val_start / test_start")
    if plan.task_type is not TaskType.REGRESSION and len(pc.unique(prep.split("train").column("label"))) < 2:
        raise PlanError("every training label has the same value, so there is nothing to learn; "
                        "check the target's comparison or the time range")
    prep.seconds = time.perf_counter() - t0
    return prep


def prepare_scoring(con, query: PredictQuery) -> Prepared:
    """Plan ``query`` for scoring with a stored model: no labels, no training anchors."""
    plan = compile_task(con, read_schema(con), query, training=False)
    return Prepared(plan.schema, plan, pa.table({}), 0.0)


def index_classes(examples: pa.Table, classes: list | None = None) -> tuple[pa.Table, list]:
    """Labels as class indices; the classes are the most frequent training labels unless given.

    Without ``classes``, training rows whose label is outside them are
    dropped (they cannot be learnt); with them (a stored model's), the rows
    stay with index -1.
    """
    given = classes is not None
    if not given:
        train = examples.filter(pc.equal(examples.column("split"), "train"))
        counts = pc.value_counts(train.column("label")).to_pylist()
        counts.sort(key=lambda d: (-d["counts"], d["values"]))
        classes = [d["values"] for d in counts[:MAX_CLASSES]]
    idx = pc.fill_null(pc.index_in(examples.column("label"), value_set=pa.array(classes, pa.string())), -1)
    examples = examples.set_column(examples.schema.get_field_index("label"), "label", pc.cast(idx, pa.float64()))
    if given:
        return examples, classes
    keep = pc.or_(pc.not_equal(examples.column("split"), "train"), pc.greater_equal(examples.column("label"), 0))
    return examples.filter(keep), classes


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
