"""From a checked PREDICT to labelled examples: the first step of every statement that trains.

Kept apart from the models so that GNN, GBDT and ``auto`` train on the very
same example rows, splits and time rules.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rdl_sql.planner.anchors import EVAL_MIN_ROWS
from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.extract import reachable
from rdl_sql.planner.features import tables_read
from rdl_sql.planner.labels import TaskPlan
from rdl_sql.planner.query import PredictQuery, TaskType
from rdl_sql.planner.schema import Schema, read_schema
from rdl_sql.planner.schema import data_digest as schema_digest
from rdl_sql.planner.sql import arrow, run
from rdl_sql.planner.task import compile_task

SPLITS = ("train", "val", "test")
SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}
#: fewer validation examples than this get a notice (AUROC's standard error passes ~0.04)
THIN_VALIDATION = EVAL_MIN_ROWS // 4
MAX_CLASSES = 100


@dataclass
class Prepared:
    """A planned statement with its labelled examples (Arrow, one table, column ``split``).

    Multiclass labels are replaced by their index in ``classes`` (the most
    frequent training labels); a label outside them is -1 (never predicted).
    ``notices`` are what the user should hear about the examples (an empty
    test split, FOR ... IN pairs left out); the engine adds them to its Result.
    """

    schema: Schema
    plan: TaskPlan
    examples: pa.Table
    seconds: float
    classes: list = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    #: temporal graphs already loaded for these examples, by the tables they hold (``engine.gnn.train``):
    #: ``dataclasses.replace`` passes the same dict on, so auto's GNN candidates of one depth load one graph
    graphs: dict = field(default_factory=dict, compare=False, repr=False)
    #: the notice (one of ``notices``) that a binary test split of one class skips the test metric;
    #: EVALUATE, which still measures accuracy there, says what it measured instead
    one_class_test: str | None = None

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
    for split, name in (("train", "training"), ("val", "validation")):  # known before any label is computed
        empty = plan.why_empty(split)
        if empty:
            raise PlanError(f"no {name} examples: {empty.why}; {_fixes(plan)}")
    t0 = time.perf_counter()
    examples = cap_training_rows(arrow(con, plan.examples_sql(plan.split_anchors())), plan.options.max_train_rows,
                                 plan.options.seed)
    examples, dropped = _finite_labels(examples)
    classes: list = []
    if plan.task_type is TaskType.MULTICLASS:
        examples, classes = index_classes(examples)
    prep = Prepared(plan.schema, plan, examples, 0.0, classes)
    rows = {s: prep.split(s).num_rows for s in SPLITS}
    for split, name in (("train", "training"), ("val", "validation")):
        if not rows[split]:
            raise PlanError(f"no {name} examples: {_why_empty(plan, split, examples.num_rows)}; "
                            f"{_fixes(plan, examples.num_rows)}")
    if not rows["test"]:
        prep.notices.append(f"no test examples: {_why_empty(plan, 'test', examples.num_rows)}; test metrics skipped")
    if rows["val"] < THIN_VALIDATION and plan.column is None:
        n = len(plan.val_anchors)
        prep.notices.append(f"validation holds only {rows['val']:,} examples ({n} anchor{'s' if n != 1 else ''} "
                            f"from {plan.val_start}): the metric that early stopping and model choice use is "
                            f"noisy; more history, an earlier val_start or a looser WHERE gives more")
    if plan.task_type is not TaskType.REGRESSION and len(pc.unique(prep.split("train").column("label"))) < 2:
        value = pc.unique(prep.split("train").column("label"))[0].as_py()
        shown = (("True" if value >= 0.5 else "False") if plan.task_type is TaskType.BINARY
                 else repr(classes[int(value)]))
        if is_static(plan):
            fix = (f"check the target's comparison, or fill in more values of `{plan.entity.name}.{plan.column}` "
                   f"(`{plan.entity.name}` has no time column, so its rows are split by a hash of their key)")
        else:
            fix = "check the target's comparison or the time range"
        raise PlanError(f"every one of the {rows['train']:,} training labels is {shown}, so there is nothing to "
                        f"learn; {fix}")
    if plan.task_type is TaskType.BINARY:
        one = one_class(prep.split("val"))
        if one is not None:
            raise PlanError(f"every one of the {rows['val']:,} validation examples ({_span(plan, 'val')}) is {one}: "
                            f"AUROC needs both classes, so validation cannot choose an epoch or a model; "
                            f"{_one_class_fixes(plan)}")
        one = one_class(prep.split("test"))
        if one is not None:
            prep.one_class_test = (f"test metrics skipped: every test example is {one}; AUROC needs both classes "
                                   f"({rows['test']:,} examples, {_span(plan, 'test')})")
            prep.notices.append(prep.one_class_test)
    if dropped:
        table, column = ((plan.entity.name, plan.column) if plan.column is not None
                         else (plan.target.table.name, plan.target.agg.column))
        source = f"`{table}.{column}`" if column else f"`{table}`"
        prep.notices.append(f"{dropped:,} example{'s' if dropped != 1 else ''} left out: the label is NaN or "
                            f"infinite (from a NaN or ±inf "
                            f"value in {source}); a model cannot learn or be scored against it; clean those "
                            f"values (or filter them out) to use them")
    prep.notices += in_notices(con, plan) + hindsight_notices(prep)
    prep.seconds = time.perf_counter() - t0
    return prep


def hindsight_notices(prep: Prepared) -> list[str]:
    """Why a timestamp column of a table the model may read is not one of its features (``hindsight``)."""
    read = set(prep.graph_tables) | set(tables_read(prep.schema, prep.plan.entity.name))  # GNN's, GBDT's
    return [h.note for t in prep.schema.tables.values() if t.name in read for h in t.hindsight]


def _fixes(plan: TaskPlan, labelled: int = 1) -> str:
    """What may give a split examples: only what the statement has (a WHERE, a window) can be changed.

    A static table's rows are split by a hash of their key, so no date moves
    a row into a split: only more labelled rows fill one (``labelled``: how
    many it has).
    """
    where = ["relax the WHERE filter"] if plan.query.where is not None else []
    if is_static(plan):
        more = "more " if labelled else ""
        return either([f"fill in {more}values of `{plan.entity.name}.{plan.column}`"] + where)
    return either(where + (["use a shorter window"] if plan.column is None else []) + ["move val_start / test_start"])


def _one_class_fixes(plan: TaskPlan) -> str:
    """What may give validation both classes: more of its rows, or rows from another time.

    More history helps only where validation's anchors are chosen from it
    (no val_start: the latest anchors, up to a tenth of the history's).
    """
    where = ["relax the WHERE filter"] if plan.query.where is not None else []
    if is_static(plan):
        return either([f"fill in more values of `{plan.entity.name}.{plan.column}` (`{plan.entity.name}` has no "
                       f"time column, so its rows are split by a hash of their key: only more labelled rows give "
                       f"validation both classes)"] + where)
    history = ["load more history"] if plan.column is None and plan.options.val_start is None else []
    return either(["use an earlier val_start"] + history + where)


def is_static(plan: TaskPlan) -> bool:
    """A column target of a table without a time column: its rows are split by a hash of their key, not by time."""
    return plan.column is not None and plan.entity.time_column is None


def one_class(examples: pa.Table) -> str | None:
    """'True' or 'False' when every (binary) label of ``examples`` is that class; None for both classes or none."""
    labels = pc.unique(examples.column("label")).to_pylist()
    return ("True" if labels[0] >= 0.5 else "False") if len(labels) == 1 else None


def either(fixes: list[str]) -> str:
    """``['a', 'b', 'c']`` as 'a, b or c', for a message that offers several fixes."""
    return ", ".join(fixes[:-1]) + (" or " if len(fixes) > 1 else "") + fixes[-1]


def _finite_labels(examples: pa.Table) -> tuple[pa.Table, int]:
    """``examples`` without rows whose label is NaN or infinite (an AVG over a NaN amount), and how many.

    SQL drops undefined labels (NULL); a float NaN is a value to DuckDB, but no loss, metric or tree takes it.
    """
    if "label" not in examples.column_names or not pa.types.is_floating(examples.column("label").type):
        return examples, 0
    finite = pc.fill_null(pc.is_finite(examples.column("label")), True)
    kept = examples.filter(finite)
    return kept, examples.num_rows - kept.num_rows


def _why_empty(plan: TaskPlan, split: str, labelled: int) -> str:
    """Why a split holds no example: planning's reason, else where its examples would have come from.

    ``labelled``: the examples of every split, which tell a static table's
    column with no value from one with too few values to fill each split.
    """
    empty = plan.why_empty(split)
    return empty.why if empty else _where_examples(plan, split, labelled)


def _where_examples(plan: TaskPlan, split: str, labelled: int) -> str:
    """Where a split's examples would have come from, for a message about an empty split."""
    if is_static(plan):
        target = f"`{plan.entity.name}.{plan.column}`"
        among = " among the rows that pass the WHERE filter" if plan.query.where is not None else ""
        if not labelled:
            return (f"{target} has no non-NULL value{among}, and a column target learns from the rows where it "
                    f"has one")
        few = (", too few for training and validation splits" if split != "test" else "")
        return (f"{target} has only {labelled:,} non-NULL value{'s' if labelled != 1 else ''}{among}{few}: "
                f"`{plan.entity.name}` has no time column, so its rows are split by a hash of their key (about "
                f"80 % training, 10 % validation, 10 % test), and none fell in {SPLIT_NAMES[split]}")
    if plan.column is not None:
        return f"no row of `{plan.entity.name}` with a value of `{plan.column}` {_dated(plan, split)}"
    return f"no entity of `{plan.entity.name}` has a defined label {_at_anchors(plan, split)}"


def _dated(plan: TaskPlan, split: str) -> str:
    """Which rows of a dated table's column target fall in ``split``."""
    return "dated " + {"train": f"on or before {plan.val_start}", "val": f"after {plan.val_start} up to "
                       f"{plan.test_start}", "test": f"after {plan.test_start}"}[split]


def _at_anchors(plan: TaskPlan, split: str) -> str:
    """The anchors of a windowed target's split, for a message."""
    anchors = {"train": plan.train_anchors, "val": plan.val_anchors, "test": plan.test_anchors}[split]
    if not anchors:
        return "at any anchor"
    return f"at the anchors {anchors[0]} .. {anchors[-1]}" if len(anchors) > 1 else f"at the anchor {anchors[0]}"


def _span(plan: TaskPlan, split: str) -> str:
    """Where a split's examples come from, for a message about what they hold."""
    if is_static(plan):
        return f"the rows of `{plan.entity.name}` whose key hashes to {SPLIT_NAMES[split]}"
    if plan.column is not None:
        return f"rows of `{plan.entity.name}` {_dated(plan, split)}"
    return _at_anchors(plan, split)


def in_notices(con, plan: TaskPlan) -> list[str]:
    """FOR ... IN: how many listed pairs are not scored (no entity yet) or lie outside the WHERE population."""
    if plan.query.entity_in is None:
        return []
    listed, scored, inside, no_time = run(con, plan.in_report_sql())[0]
    parts = []
    if no_time:
        parts.append(f"{no_time:,} dropped because their anchor time is NULL or not a time (list the key alone "
                     f"to score it as of {plan.predict_anchor})")
    if listed - no_time > scored:
        parts.append(f"{listed - no_time - scored:,} dropped because their key is NULL or no `{plan.entity.name}` "
                     f"row has it at the pair's anchor time (not yet, or never)")
    if plan.query.where is not None and scored > inside:
        parts.append(f"{scored - inside:,} fall outside the WHERE population the model learnt from "
                     f"(scored all the same)")
    if not parts:
        return []
    return [f"FOR ... IN listed {listed:,} pairs, {scored:,} scored: " + "; ".join(parts)]


def prepare_scoring(con, query: PredictQuery, *, test_anchors: bool = True) -> Prepared:
    """Plan ``query`` for scoring with a stored model: no labels, no training anchors.

    ``test_anchors=False`` (PREDICT USING) chooses no anchor at all, so scoring counts no examples.
    """
    plan = compile_task(con, read_schema(con, as_of=query.as_of), query, training=False, test=test_anchors)
    return Prepared(plan.schema, plan, pa.table({}), 0.0, notices=in_notices(con, plan))


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


def cap_training_rows(examples: pa.Table, cap: int, seed: int = 0) -> pa.Table:
    """Exactly ``cap`` training rows (0: no cap): the most recent anchors whole, then a seeded sample
    of the next older anchor; validation and test stay whole, and row order is kept."""
    train = pc.equal(examples.column("split"), "train").to_numpy(zero_copy_only=False)
    if cap <= 0 or int(train.sum()) <= cap:
        return examples
    t = examples.column("anchor_time").to_numpy()
    anchors, counts = np.unique(t[train], return_counts=True)
    anchors, taken = anchors[::-1], np.cumsum(counts[::-1])  # latest first
    whole = int(np.searchsorted(taken, cap, side="right"))  # the latest anchors that fit entirely
    oldest = anchors[whole]
    keep = ~train | (t > oldest)
    need = cap - int(taken[whole - 1] if whole else 0)
    keep[np.random.default_rng(seed).choice(np.flatnonzero(train & (t == oldest)), need, replace=False)] = True
    return examples.filter(pa.array(keep))
