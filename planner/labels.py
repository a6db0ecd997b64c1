"""The SQL of a planned PREDICT: labelled examples, rows to score, and the scoring query.

Time rules (DESIGN.md section 3): for an example (entity, anchor t) the label
reads only rows in ``(t + start, t + end]``; filters read only the past;
with ``AS OF`` nothing dated after it is read at all.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlglot import exp

from .anchors import EmptySplit, shift_sql
from .nodes import NODE, node_name, node_select, time_name, time_value
from .options import Options
from .query import AggRef, PredictQuery, TaskType
from .resolve import ResolvedAggregate
from .schema import ZONED_TIME_TYPES, Schema, TableInfo, as_timestamp
from .sql import alias, col, ident, lit, table

ENTITY = "__e"
IN = "__in"
IN_ANCHOR = "__anchor"
ANCHORS = "__anchors"
ANCHOR = "anchor_time"
SPLIT = "split"
LABEL = "label"
#: the predicted value's column (``TaskType.output_fields``)
PREDICTION = "prediction"
#: aggregates with a value over an empty window (0, false), so every example of theirs has a label
_DEFINED_OVER_NO_ROWS = ("COUNT", "EXISTS", "COUNT_DISTINCT", "SUM")
_OPS = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}


@dataclass(frozen=True)
class TaskPlan:
    """A checked PREDICT: every name resolved, every anchor time chosen.

    Two kinds of target: a windowed aggregate (examples at several anchor
    times, split by time: ``train_anchors``, ``val_anchors``,
    ``test_anchors``, ascending, each holding at least one example when
    planned; planner/anchors.py has the rules), or a column of the entity
    table (``column`` set; rows with a value train, split by their own time
    at ``val_start`` / ``test_start`` when the table is dated, else by a
    hash of the key; rows with NULL are predicted).
    """

    query: PredictQuery
    schema: Schema  # as the model sees it (a column target is not a feature)
    entity: TableInfo
    task_type: TaskType
    aggregates: tuple[ResolvedAggregate, ...]
    options: Options
    as_of: dt.datetime | None  # cut-off: nothing after it is read (None: read everything)
    predict_anchor: dt.datetime  # "now": AS OF, else the latest time of any table the entity reaches
    val_start: dt.datetime | None  # first validation anchor (None: a column target split by a hash)
    test_start: dt.datetime | None  # first test anchor, or where test would start when it is empty
    train_anchors: tuple[dt.datetime, ...] = ()
    val_anchors: tuple[dt.datetime, ...] = ()
    test_anchors: tuple[dt.datetime, ...] = ()
    column: str | None = None
    #: FOR ... IN (query): the DuckDB types of the columns the query returns (the key, then maybe a time)
    in_types: tuple[str, ...] = ()
    #: examples at each anchor of ``split_anchors()``, in its order, as counted while planning
    #: (before ``max_train_rows`` cuts the oldest training anchor)
    anchor_rows: tuple[int, ...] = ()
    #: each split that planning found without examples (training and validation must have some to
    #: train; an empty test split skips test metrics)
    empty_splits: tuple[EmptySplit, ...] = ()

    def why_empty(self, split: str) -> EmptySplit | None:
        """Why planning left ``split`` ("train", "val" or "test") without examples; None if it did not."""
        return next((e for e in self.empty_splits if e.split == split), None)

    @property
    def in_columns(self) -> int:
        """FOR ... IN (query): how many columns the query returns."""
        return len(self.in_types)

    def _in_anchor(self) -> exp.Expression:
        """The FOR ... IN query's anchor time as a naive UTC TIMESTAMP; NULL where it is NULL or no time."""
        value = col(IN_ANCHOR, IN)
        dtype = self.in_types[len(self.keys)]
        if dtype.upper() in ZONED_TIME_TYPES:
            return as_timestamp(value, dtype)
        return exp.TryCast(this=value, to=exp.DataType.build("TIMESTAMP"))

    @property
    def target(self) -> ResolvedAggregate:
        return self.aggregates[0]

    @property
    def keys(self) -> tuple[str, ...]:
        return self.query.entity_columns

    @property
    def output_columns(self) -> list[str]:
        """Columns of the prediction table, in order."""
        return list(self.keys) + ([] if self.column else [ANCHOR]) + [n for n, _ in self.task_type.output_fields]

    @property
    def class_type(self) -> str | None:
        """Multiclass: the DuckDB type of the column whose value is predicted (a key's BIGINT, a DATE, a
        category's VARCHAR or ENUM); None for other tasks.

        Labels and classes travel as text (``_label``, a stored model's class list); the predicted class
        is cast back to this type so that it compares and joins with its column like the column's values.
        """
        if self.task_type is not TaskType.MULTICLASS:
            return None
        c = (self.entity.column(self.column) if self.column is not None
             else self.target.table.column(self.target.agg.column))
        return c.dtype if c is not None else None

    @property
    def output_fields(self) -> tuple[tuple[str, str], ...]:
        """The prediction columns and their DuckDB types: ``task_type.output_fields``, the class in ``class_type``."""
        return tuple((n, self.class_type if n == PREDICTION and self.class_type else t)
                     for n, t in self.task_type.output_fields)

    # ---- SQL -----------------------------------------------------------------
    def entity_rows(self) -> exp.Select:
        """Entity rows visible at the cut-off, numbered as graph nodes, all columns kept."""
        return node_select(self.entity, self.as_of, [exp.Column(this=exp.Star(), table=ident(self.entity.name))])

    def _entities(self) -> exp.Subquery:
        return exp.Subquery(this=self.entity_rows(), alias=exp.TableAlias(this=ident(ENTITY)))

    def _node(self) -> exp.Expression:
        """The entity row's node id, as ``__node`` (inside ``__e`` it is named apart from every user column)."""
        return alias(col(node_name(self.entity), ENTITY), NODE)

    def _key_columns(self, src: str = ENTITY) -> list[exp.Expression]:
        return [alias(col(k, src), k) for k in self.keys]

    def _aggregate_sql(self, i: int, anchor: exp.Expression) -> exp.Expression:
        ra = self.aggregates[i]
        agg, tinfo, link = ra.agg, ra.table, ra.link
        a = f"__a{i}"
        value = col(agg.column, a) if agg.column else None
        t = time_value(tinfo, a)
        conds = [col(c, a).eq(col(p, ENTITY)) for c, p in zip(link.child_columns, link.parent_columns)]
        conds += [t > shift_sql(anchor.copy(), agg.start, agg.unit),
                  t.copy() <= shift_sql(anchor.copy(), agg.end, agg.unit)]
        if self.as_of is not None:
            conds.append(t.copy() <= lit(self.as_of))
        if agg.where is not None:
            conds.append(exp.paren(_rebind(agg.where, {agg.table: a}, None)))
        f = agg.func
        if f == "COUNT":
            e = exp.Count(this=value or exp.Star())
        elif f == "EXISTS":
            e = exp.Count(this=value or exp.Star()) > 0
        elif f == "COUNT_DISTINCT":
            e = exp.Count(this=exp.Distinct(expressions=[value]))
        elif f == "SUM":
            e = exp.Coalesce(this=exp.Sum(this=value), expressions=[lit(0)])
        elif f == "AVG":
            e = exp.Avg(this=value)
        elif f == "MIN":
            e = exp.Min(this=value)
        elif f == "MAX":
            e = exp.Max(this=value)
        elif f == "FIRST":
            e = exp.func("arg_min", value, t.copy())
        else:  # LAST
            e = exp.func("arg_max", value, t.copy())
        sub = exp.select(e).from_(table(tinfo.name, a)).where(exp.and_(*conds))
        return exp.Subquery(this=sub)

    def _predicate(self, pred: exp.Expression | None, anchor: exp.Expression) -> exp.Expression | None:
        if pred is None:
            return None
        out = _rebind(pred, {self.entity.name: ENTITY}, None)
        out = out.transform(lambda n: self._aggregate_sql(n.this, anchor) if isinstance(n, AggRef) else n)
        return exp.paren(out)

    def _label(self, anchor: exp.Expression) -> exp.Expression:
        target = self.query.target
        value = col(self.column, ENTITY) if self.column is not None else self._aggregate_sql(0, anchor)
        if target.op is not None:
            value = _OPS[target.op](this=value, expression=lit(target.value))
        return exp.cast(value, "VARCHAR" if self.task_type is TaskType.MULTICLASS else "DOUBLE")

    def _exists_at(self, anchor: exp.Expression) -> exp.Expression:
        t = col(time_name(self.entity), ENTITY)
        return exp.or_(t.is_(exp.null()), t.copy() <= anchor.copy())

    def examples_sql(self, anchors: list[tuple[dt.datetime, str]], *, labels: bool = True) -> exp.Select:
        """Labelled rows ``(__node, <keys>, anchor_time, split, label)`` for the given anchors.

        Entities must exist at the anchor, pass the WHERE filter (past only)
        and the ASSUMING condition; rows whose label is undefined (an AVG over
        no rows, a NULL target column) are dropped. A column target has one
        anchor and a split drawn from a hash of the key (80/10/10).
        ``labels=False`` (for counting rows) skips computing a label that is
        defined over any window (COUNT, SUM, ...), so the label is 1 there.
        """
        if self.column is not None:
            return self._column_examples_sql()
        tuples = [[lit(t), lit(s)] for t, s in anchors] or [[exp.cast(exp.null(), "TIMESTAMP"), lit("none")]]
        values = exp.values([exp.Tuple(expressions=t) for t in tuples], alias=ANCHORS, columns=[ANCHOR, SPLIT])
        anchor = col(ANCHOR, ANCHORS)
        conds = [self._exists_at(anchor)] + ([] if anchors else [exp.false()])  # no anchors: no rows, same columns
        p = self._predicate(self.query.where, anchor)
        if p is not None:
            conds.append(p)
        p = self._predicate(self.query.assuming, anchor)
        if p is not None:  # ASSUMING shapes the training population; validation and test stay whole
            conds.append(exp.or_(col(SPLIT, ANCHORS).neq(lit("train")), p))
        label = self._label(anchor) if labels or self.target.agg.func not in _DEFINED_OVER_NO_ROWS else lit(1.0)
        inner = (exp.select(self._node(), *self._key_columns(), anchor.copy(), col(SPLIT, ANCHORS),
                            alias(label, LABEL))
                 .from_(self._entities())
                 .join(values, join_type="CROSS")
                 .where(exp.and_(*conds)))
        return _labelled(inner)

    def count_sql(self, anchors: list[tuple[dt.datetime, str]]) -> exp.Select:
        """``(anchor_time, n)``: how many rows ``examples_sql(anchors)`` gives at each anchor."""
        rows = self.examples_sql(anchors, labels=False).order_by(None)
        return (exp.select(col(ANCHOR), exp.Count(this=exp.Star()))
                .from_(exp.Subquery(this=rows, alias=exp.TableAlias(this=ident("__n"))))
                .group_by(col(ANCHOR)))

    def _row_anchor(self) -> exp.Expression:
        """A column target's anchor: the row's own time (what was known when it appeared), or the plan's."""
        if self.entity.time_column is None:
            return lit(self.predict_anchor)
        return exp.Coalesce(this=col(time_name(self.entity), ENTITY), expressions=[lit(self.predict_anchor)])

    def _column_examples_sql(self) -> exp.Select:
        """Rows whose target column has a value; split by time (dated tables) or by a hash of the key."""
        anchor = self._row_anchor()
        if self.entity.time_column is not None:
            split = exp.Case(ifs=[exp.If(this=anchor.copy() <= lit(self.val_start), true=lit("train")),
                                  exp.If(this=anchor.copy() <= lit(self.test_start), true=lit("val"))],
                             default=lit("test"))
        else:
            bucket = exp.Mod(this=exp.func("hash", *[col(k, ENTITY) for k in self.keys],
                                           lit(self.options.seed)), expression=lit(10))
            split = exp.Case(ifs=[exp.If(this=bucket.copy() < lit(8), true=lit("train")),
                                  exp.If(this=bucket.copy().eq(lit(8)), true=lit("val"))], default=lit("test"))
        conds = [self._exists_at(anchor)]
        p = self._predicate(self.query.where, anchor)
        if p is not None:
            conds.append(p)
        inner = (exp.select(self._node(), *self._key_columns(), alias(anchor.copy(), ANCHOR),
                            alias(split, SPLIT), alias(self._label(anchor), LABEL))
                 .from_(self._entities()).where(exp.and_(*conds)))
        return _labelled(inner)

    def predict_sql(self, anchor: dt.datetime | None = None, *, population: bool = False) -> exp.Select:
        """Rows ``(__node, <keys>, anchor_time)`` to score.

        FOR EACH: every entity at ``anchor`` (default: the prediction time)
        that passes the WHERE filter. FOR t.pk IN (query): one row per
        listed pair whose entity exists at the pair's anchor time (the
        query's second column when it has one, else ``anchor``), whether or
        not it passes WHERE: a user who lists pairs wants a score for each;
        ``population=True`` applies WHERE anyway (to count those outside it).
        A column target scores the rows whose column is NULL.
        """
        source = self._entities()
        if self.in_columns > len(self.keys):
            anchor_expr: exp.Expression = self._in_anchor()
        elif self.column is not None and anchor is None:
            anchor_expr = self._row_anchor()
        else:
            anchor_expr = lit(anchor or self.predict_anchor)
        q = exp.select(self._node(), *self._key_columns(), alias(anchor_expr.copy(), ANCHOR)).from_(source)
        if self.query.entity_in is not None:
            on = exp.and_(*[col(k, ENTITY).eq(self._in_key(k, f"__k{i}")) for i, k in enumerate(self.keys)])
            q = q.join(self._in_source(), on=on)
        conds = [self._exists_at(anchor_expr)]
        if self.in_columns > len(self.keys):  # a pair without a time has no anchor to score at
            conds.append(anchor_expr.copy().is_(exp.null()).not_())
        p = self._predicate(self.query.where, anchor_expr)
        if p is not None and (self.query.entity_in is None or population):
            conds.append(p)
        if self.column is not None and self.query.entity_in is None:
            conds.append(col(self.column, ENTITY).is_(exp.null()))
        return q.where(exp.and_(*conds)).order_by(*[col(k) for k in self.keys], col(ANCHOR))

    def _in_source(self) -> exp.Subquery:
        """The FOR ... IN query as ``__in(__k0, ..., [anchor])``: its key columns, then its time if it has one."""
        names = [f"__k{i}" for i in range(len(self.keys))] + ([IN_ANCHOR] if self.in_columns > len(self.keys) else [])
        return exp.Subquery(this=self.query.entity_in.copy(),
                            alias=exp.TableAlias(this=ident(IN), columns=[ident(n) for n in names]))

    def _in_key(self, key: str, name: str) -> exp.Expression:
        """A FOR ... IN key column, read as the entity key's type: a value of no such key ('abc' for an
        INTEGER key) matches nothing instead of failing the whole statement with DuckDB's cast error."""
        c = self.entity.column(key)
        value = col(name, IN)
        return exp.TryCast(this=value, to=exp.DataType.build(c.dtype, dialect="duckdb")) if c is not None else value

    def in_report_sql(self, anchor: dt.datetime | None = None) -> exp.Select:
        """FOR ... IN: ``(listed, scored, in_population, no_time)``: pairs the query lists, pairs whose entity
        exists at the pair's anchor (each is scored), those of them that pass WHERE, and listed pairs
        whose time is NULL or not a time."""
        def n(q: exp.Expression) -> exp.Subquery:
            sub = exp.Subquery(this=q, alias=exp.TableAlias(this=ident("__c")))
            return exp.Subquery(this=exp.select(exp.Count(this=exp.Star())).from_(sub))
        no_time: exp.Expression = lit(0)
        if self.in_columns > len(self.keys):
            no_time = n(exp.select(exp.Star()).from_(self._in_source()).where(self._in_anchor().is_(exp.null())))
        return exp.select(alias(n(self.query.entity_in.copy()), "listed"),
                          alias(n(self.predict_sql(anchor).order_by(None)), "scored"),
                          alias(n(self.predict_sql(anchor, population=True).order_by(None)), "in_population"),
                          alias(no_time, "no_time"))

    def score_sql(self, model_key: str, anchor: dt.datetime | None = None, *,
                  function: str | None = None) -> exp.Select:
        """One DuckDB query that scores every row of ``predict_sql`` through the task's scoring UDF.

        The UDF returns the prediction already shaped (``TaskType.output_fields``),
        so this query only spreads the struct into ``output_columns``. ``function``
        names the UDF when the connection installed it under another name.
        """
        call = exp.Anonymous(this=function or self.task_type.score_function,
                             expressions=[lit(model_key), col(NODE), exp.func("epoch_us", col(ANCHOR))])
        inner = exp.select(*[col(k) for k in self.keys], col(ANCHOR), alias(call, "__s")).from_(
            exp.Subquery(this=self.predict_sql(anchor), alias=exp.TableAlias(this=ident("__p"))))
        outs = [alias(exp.func("struct_extract", col("__s"), lit(name)), name)
                for name, _ in self.task_type.output_fields]
        spread = (exp.select(*[col(k) for k in self.keys], col(ANCHOR), *outs)
                  .from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=ident("__q")))))
        return (self.typed_sql(exp.Subquery(this=spread, alias=exp.TableAlias(this=ident("__r"))))
                .order_by(*[col(k) for k in self.keys], col(ANCHOR)))

    def typed_sql(self, rows: exp.Expression) -> exp.Select:
        """``output_columns`` of ``rows`` (a table or subquery holding them as the model shapes them, the
        class as text) in the types of ``output_fields``, the keys in the entity's: where a GNN's
        (``score_sql``) or a GBDT's predicted class gets its column's type back, and a GBDT's key, which
        passed through Arrow (a UUID as text), its key's."""
        def typed(name: str, dtype: str | None) -> exp.Expression:
            if dtype is None:
                return col(name)
            return alias(exp.Cast(this=col(name), to=exp.DataType.build(dtype, dialect="duckdb")), name)
        key_types = {k: c.dtype for k in self.keys if (c := self.entity.column(k)) is not None}
        outs = [typed(n, self.class_type if n == PREDICTION else key_types.get(n)) for n in self.output_columns]
        return exp.select(*outs).from_(rows)

    def split_anchors(self) -> list[tuple[dt.datetime, str]]:
        """Every ``(anchor, split)`` of the plan, training first (a column target: one row, split by row)."""
        if self.column is not None:
            return [(self.predict_anchor, "hash")]
        return ([(t, "train") for t in self.train_anchors] + [(t, "val") for t in self.val_anchors]
                + [(t, "test") for t in self.test_anchors])


def _labelled(rows: exp.Select) -> exp.Select:
    """``rows`` without those whose label is undefined, in (anchor, node) order."""
    return (exp.select("*").from_(exp.Subquery(this=rows, alias=exp.TableAlias(this=ident("__x"))))
            .where(exp.not_(col(LABEL).is_(exp.null())))
            .order_by(col(ANCHOR), col(NODE)))


def _rebind(pred: exp.Expression, aliases: dict[str, str], default: str | None) -> exp.Expression:
    """Point qualified columns of ``pred`` at query aliases (``orders.x`` -> ``__a0.x``)."""
    def fix(n):
        if isinstance(n, exp.Column) and not isinstance(n.this, exp.Star):
            target = aliases.get(n.table) if n.table else default
            if n.table and target is None:
                return n
            if target is None and len(aliases) == 1:
                target = next(iter(aliases.values()))
            return exp.Column(this=ident(n.name), table=ident(target) if target else None)
        return n
    return pred.copy().transform(fix)

