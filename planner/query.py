"""The parsed predictive query: the contract between front-end and planner.

The front-end builds these from its sqlglot AST; the planner compiles them to
SQL. They hold sqlglot expressions only for user predicates (``WHERE`` of a
filter, ``AGG(t.* WHERE ...)``), where each temporal aggregate is replaced by
an :class:`AggRef` pointing into ``PredictQuery.aggregates``.
"""
from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field

from sqlglot import exp

from .errors import PlanError, Position
from .options import DEFAULTS, Options

AGGREGATES = ("COUNT", "SUM", "AVG", "MIN", "MAX", "COUNT_DISTINCT", "EXISTS", "FIRST", "LAST")
UNITS = ("SECONDS", "MINUTES", "HOURS", "DAYS", "WEEKS", "MONTHS", "YEARS")
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
#: ``LIST_DISTINCT(t.fk, a, b, UNIT) RANK TOP k``: the recommendation target (planner/ranking.py)
RANKING_FUNC = "LIST_DISTINCT"
MAX_TOP_K = 1000


class TaskType(str, enum.Enum):
    """What a PREDICT learns; compares equal to its name (``TaskType.BINARY == "binary"``)."""

    BINARY = "binary"
    REGRESSION = "regression"
    MULTICLASS = "multiclass"
    RANKING = "ranking"

    def __str__(self) -> str:
        return self.value

    @property
    def metric(self) -> str:
        """The validation metric that early stopping and model choice use."""
        return METRIC_NAME[self.value]

    @property
    def lower_is_better(self) -> bool:
        return self is TaskType.REGRESSION

    @property
    def output_fields(self) -> tuple[tuple[str, str], ...]:
        """The prediction columns of this task and their DuckDB types: the one contract that GNN
        scoring, GBDT scoring and the planner's SQL all follow.

        binary: ``prediction`` (BOOLEAN, the score against the model's threshold)
        and ``score`` (the probability of the positive class); multiclass: the
        class, its probability and a MAP of class to probability; regression:
        the predicted value.
        """
        return _OUTPUT_FIELDS[self.value]

    @property
    def score_function(self) -> str:
        """Name of the UDF that scores this task type inside a DuckDB query."""
        return f"rdl_score_{self.value}"


_OUTPUT_FIELDS = {
    "binary": (("prediction", "BOOLEAN"), ("score", "DOUBLE")),
    "multiclass": (("prediction", "VARCHAR"), ("score", "DOUBLE"), ("probabilities", "MAP(VARCHAR, DOUBLE)")),
    "regression": (("prediction", "DOUBLE"),),
    # one row per (entity, rank); the item's key sits between these two, named and typed as the
    # listed column (planner/ranking.py), so it is no fixed field here
    "ranking": (("rank", "INTEGER"), ("score", "DOUBLE")),
}


TASK_TYPES = tuple(t.value for t in TaskType)
#: the validation metric that early stopping and model choice use, per task type
METRIC_NAME = {"binary": "AUROC", "regression": "MAE", "multiclass": "accuracy", "ranking": "MAP"}


class AggRef(exp.Expression):
    """Placeholder in a predicate for ``PredictQuery.aggregates[this]``."""

    arg_types = {"this": True}


@dataclass(frozen=True)
class Aggregate:
    """``FUNC(table.column [WHERE pred] [VIA fk], start, end, UNIT)``.

    The window is half-open ``(anchor + start, anchor + end]``. ``column`` is
    None for ``table.*``. ``via`` names the foreign-key column of ``table``
    that leads to the entity when ``table`` links to it more than once.
    """

    func: str
    table: str
    column: str | None
    start: int
    end: int
    unit: str
    where: exp.Expression | None = None
    via: str | None = None
    position: Position | None = field(default=None, compare=False)
    table_position: Position | None = field(default=None, compare=False)
    column_position: Position | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Target:
    """What to predict: an aggregate, optionally compared to a constant (binary task),
    or (``aggregate`` None) a column of the entity table whose NULLs are to be filled."""

    aggregate: Aggregate | None
    op: str | None = None
    value: float | str | None = None
    column: str | None = None
    column_position: Position | None = field(default=None, compare=False)
    top_k: int | None = None  # LIST_DISTINCT(...) RANK TOP k: a recommendation of k items


@dataclass(frozen=True)
class PredictQuery:
    target: Target
    entity_table: str
    entity_columns: tuple[str, ...]
    where: exp.Expression | None = None
    assuming: exp.Expression | None = None
    aggregates: tuple[Aggregate, ...] = ()
    as_of: dt.datetime | None = None
    options: Options = DEFAULTS
    text: str = ""
    entity_in: exp.Expression | None = None  # FOR t.pk IN (query): keys, or keys and anchor times
    entity_position: Position | None = field(default=None, compare=False)
    as_of_position: Position | None = field(default=None, compare=False)
    options_position: Position | None = field(default=None, compare=False)

    def __post_init__(self):
        if isinstance(self.entity_columns, str):
            object.__setattr__(self, "entity_columns", (self.entity_columns,))

    @property
    def entity_column(self) -> str:
        """The entity key, for code paths that handle single-column keys only."""
        if len(self.entity_columns) != 1:
            raise PlanError(f"composite keys ({', '.join(self.entity_columns)}) work with model = 'gnn' only",
                            self.entity_position)
        return self.entity_columns[0]
