"""Compile a PREDICT into SQL: anchor times, entity filters, labels and splits.

Time rules (DESIGN.md section 3): for an example (entity, anchor t) the label
reads only rows in ``(t + start, t + end]``; filters read only the past;
validation and test anchors come after every training label window; with
``AS OF`` nothing dated after it is read at all.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import duckdb
from dateutil.relativedelta import relativedelta
from sqlglot import exp

from .errors import PlanError, Position, did_you_mean, sql_name
from .nodes import NODE, TIME, node_select, time_value
from .query import AggRef, Aggregate, PredictQuery, Target
from .schema import Link, Schema, TableInfo
from .sql import alias, col, ident, lit, run, table

ENTITY = "__e"
IN = "__in"
IN_ANCHOR = "__anchor"
ANCHORS = "__anchors"
ANCHOR = "anchor_time"
SPLIT = "split"
LABEL = "label"

_SHIFT_FUNCS = {"SECONDS": "to_seconds", "MINUTES": "to_minutes", "HOURS": "to_hours", "DAYS": "to_days",
                "WEEKS": "to_weeks", "MONTHS": "to_months", "YEARS": "to_years"}
_RELATIVE = {"SECONDS": "seconds", "MINUTES": "minutes", "HOURS": "hours", "DAYS": "days",
             "WEEKS": "weeks", "MONTHS": "months", "YEARS": "years"}
_OPS = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}

#: options this slice understands, with their defaults (the front-end validates keys)
DEFAULT_OPTIONS: dict[str, object] = {
    "model": "gnn", "epochs": 10, "channels": 128, "layers": 2, "fanouts": "16,8",
    "batch_size": 256, "lr": 0.005, "seed": 0, "val_start": None, "test_start": None,
    "anchor_step": None, "max_train_rows": 20_000, "sampler": "recent", "patience": 3, "threads": 1,
}
MAX_TRAIN_ANCHORS = 64
#: the anchor of a database without any time column: everything is visible
STATIC_ANCHOR = dt.datetime(9999, 12, 31)


def shift(t: dt.datetime, n: int, unit: str) -> dt.datetime:
    """``t + n UNIT`` with calendar months and years, as DuckDB's ``to_months`` does."""
    return t + relativedelta(**{_RELATIVE[unit]: n})


def shift_sql(t: exp.Expression, n: int, unit: str) -> exp.Expression:
    return exp.Add(this=t, expression=exp.func(_SHIFT_FUNCS[unit], lit(n)))


@dataclass(frozen=True)
class ResolvedAggregate:
    agg: Aggregate
    table: TableInfo
    link: Link


@dataclass(frozen=True)
class TaskPlan:
    """A checked PREDICT: every name resolved, every anchor time chosen.

    Two kinds of target: a windowed aggregate (examples at several anchor
    times, split by time), or a column of the entity table (``column``
    set; one anchor, rows with a value train, split by a hash of the key,
    rows with NULL are predicted).
    """

    query: PredictQuery
    schema: Schema  # as the model sees it (a column target is not a feature)
    entity: TableInfo
    task_type: str  # binary | regression | multiclass
    aggregates: tuple[ResolvedAggregate, ...]
    options: dict
    as_of: dt.datetime | None  # cut-off: nothing after it is read (None: read everything)
    predict_anchor: dt.datetime
    test_anchor: dt.datetime
    val_anchor: dt.datetime
    train_anchors: tuple[dt.datetime, ...]
    column: str | None = None
    in_columns: int = 0  # FOR ... IN (query): columns the query returns

    @property
    def target(self) -> ResolvedAggregate:
        return self.aggregates[0]

    @property
    def keys(self) -> tuple[str, ...]:
        return self.query.entity_columns

    @property
    def output_columns(self) -> list[str]:
        """Columns of the prediction table, in order."""
        out = list(self.keys) + ([] if self.column else [ANCHOR]) + ["prediction"]
        if self.task_type != "regression":
            out.append("score")
        if self.task_type == "multiclass":
            out.append("probabilities")
        return out

    # ---- SQL -----------------------------------------------------------------
    def entity_rows(self) -> exp.Select:
        """Entity rows visible at the cut-off, numbered as graph nodes, all columns kept."""
        return node_select(self.entity, self.as_of, [exp.Column(this=exp.Star(), table=ident(self.entity.name))])

    def _entities(self) -> exp.Subquery:
        return exp.Subquery(this=self.entity_rows(), alias=exp.TableAlias(this=ident(ENTITY)))

    def _key_columns(self, src: str = ENTITY) -> list[exp.Expression]:
        return [alias(col(k, src), k) for k in self.keys]

    def _aggregate_sql(self, i: int, anchor: exp.Expression) -> exp.Expression:
        ra = self.aggregates[i]
        agg, tinfo, link = ra.agg, ra.table, ra.link
        a = f"__a{i}"
        value = col(agg.column, a) if agg.column else None
        t = time_value(tinfo, a)
        conds = [col(c, a).eq(col(p, ENTITY)) for c, p in zip(link.child_columns, link.parent_columns)]
        conds += [t > shift_sql(anchor.copy(), agg.start, agg.unit), t.copy() <= shift_sql(anchor.copy(), agg.end, agg.unit)]
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
        return exp.cast(value, "VARCHAR" if self.task_type == "multiclass" else "DOUBLE")

    def _exists_at(self, anchor: exp.Expression) -> exp.Expression:
        return exp.or_(col(TIME, ENTITY).is_(exp.null()), col(TIME, ENTITY) <= anchor.copy())

    def examples_sql(self, anchors: list[tuple[dt.datetime, str]]) -> exp.Select:
        """Labelled rows ``(__node, <keys>, anchor_time, split, label)`` for the given anchors.

        Entities must exist at the anchor, pass the WHERE filter (past only)
        and the ASSUMING condition; rows whose label is undefined (an AVG over
        no rows, a NULL target column) are dropped. A column target has one
        anchor and a split drawn from a hash of the key (80/10/10).
        """
        if self.column is not None:
            return self._column_examples_sql()
        values = exp.values([exp.Tuple(expressions=[lit(t), lit(s)]) for t, s in anchors],
                            alias=ANCHORS, columns=[ANCHOR, SPLIT])
        anchor = col(ANCHOR, ANCHORS)
        conds = [self._exists_at(anchor)]
        p = self._predicate(self.query.where, anchor)
        if p is not None:
            conds.append(p)
        p = self._predicate(self.query.assuming, anchor)
        if p is not None:  # ASSUMING shapes the training population; validation and test stay whole
            conds.append(exp.or_(col(SPLIT, ANCHORS).neq(lit("train")), p))
        inner = (exp.select(col(NODE, ENTITY), *self._key_columns(), anchor.copy(), col(SPLIT, ANCHORS),
                            alias(self._label(anchor), LABEL))
                 .from_(self._entities())
                 .join(values, join_type="CROSS")
                 .where(exp.and_(*conds)))
        return _labelled(inner)

    def _row_anchor(self) -> exp.Expression:
        """A column target's anchor: the row's own time (what was known when it appeared), or the plan's."""
        if self.entity.time_column is None:
            return lit(self.predict_anchor)
        return exp.Coalesce(this=col(TIME, ENTITY), expressions=[lit(self.predict_anchor)])

    def _column_examples_sql(self) -> exp.Select:
        """Rows whose target column has a value; split by time (dated tables) or by a hash of the key."""
        anchor = self._row_anchor()
        if self.entity.time_column is not None:
            split = exp.Case(ifs=[exp.If(this=anchor.copy() <= lit(self.val_anchor), true=lit("train")),
                                  exp.If(this=anchor.copy() <= lit(self.test_anchor), true=lit("val"))],
                             default=lit("test"))
        else:
            bucket = exp.Mod(this=exp.func("hash", *[col(k, ENTITY) for k in self.keys],
                                           lit(int(self.options["seed"]))), expression=lit(10))
            split = exp.Case(ifs=[exp.If(this=bucket.copy() < lit(8), true=lit("train")),
                                  exp.If(this=bucket.copy().eq(lit(8)), true=lit("val"))], default=lit("test"))
        conds = [self._exists_at(anchor)]
        p = self._predicate(self.query.where, anchor)
        if p is not None:
            conds.append(p)
        inner = (exp.select(col(NODE, ENTITY), *self._key_columns(), alias(anchor.copy(), ANCHOR),
                            alias(split, SPLIT), alias(self._label(anchor), LABEL))
                 .from_(self._entities()).where(exp.and_(*conds)))
        return _labelled(inner)

    def predict_sql(self, anchor: dt.datetime | None = None) -> exp.Select:
        """Rows ``(__node, <keys>, anchor_time)`` to score, WHERE applied.

        FOR EACH: every entity at ``anchor`` (default: the prediction time).
        FOR t.pk IN (query): the query's entities, at the query's second
        column when it has one (per-row anchor times), else at ``anchor``.
        A column target scores the rows whose column is NULL.
        """
        source = self._entities()
        if self.in_columns > len(self.keys):
            anchor_expr: exp.Expression = exp.cast(col(IN_ANCHOR, IN), "TIMESTAMP")
        elif self.column is not None and anchor is None:
            anchor_expr = self._row_anchor()
        else:
            anchor_expr = lit(anchor or self.predict_anchor)
        q = exp.select(col(NODE, ENTITY), *self._key_columns(), alias(anchor_expr.copy(), ANCHOR)).from_(source)
        if self.query.entity_in is not None:
            names = [f"__k{i}" for i in range(len(self.keys))] + ([IN_ANCHOR] if self.in_columns > len(self.keys)
                                                                  else [])
            sub = exp.Subquery(this=self.query.entity_in.copy(),
                               alias=exp.TableAlias(this=ident(IN), columns=[ident(n) for n in names]))
            on = exp.and_(*[col(k, ENTITY).eq(col(n, IN)) for k, n in zip(self.keys, names)])
            q = q.join(sub, on=on)
        conds = [self._exists_at(anchor_expr)]
        p = self._predicate(self.query.where, anchor_expr)
        if p is not None:
            conds.append(p)
        if self.column is not None and self.query.entity_in is None:
            conds.append(col(self.column, ENTITY).is_(exp.null()))
        return q.where(exp.and_(*conds)).order_by(*[col(k) for k in self.keys], col(ANCHOR))

    def score_sql(self, model_key: str, anchor: dt.datetime | None = None,
                  function: str = "rdl_score", classes: list[str] | None = None) -> exp.Select:
        """One DuckDB query that scores every row of ``predict_sql`` through the UDF.

        Output (``output_columns``): keys, anchor_time (aggregate targets),
        prediction (BOOLEAN for binary, the class for multiclass, a number
        for regression), score (the probability of the prediction), and for
        multiclass a MAP of class to probability.
        """
        call = exp.Anonymous(this=function, expressions=[lit(model_key), col(NODE),
                                                          exp.func("epoch_us", col(ANCHOR))])
        inner = exp.select(*[col(k) for k in self.keys], col(ANCHOR), alias(call, "__s")).from_(
            exp.Subquery(this=self.predict_sql(anchor), alias=exp.TableAlias(this=ident("__p"))))
        field = lambda name: exp.func("struct_extract", col("__s"), lit(name))
        if self.task_type == "binary":
            outs = [alias(exp.cast(field("prediction"), "BOOLEAN"), "prediction"), alias(field("score"), "score")]
        elif self.task_type == "multiclass":
            names = exp.Array(expressions=[lit(c) for c in classes or []])
            index = exp.cast(field("prediction"), "BIGINT") + lit(1)
            outs = [alias(exp.func("list_extract", names, index), "prediction"), alias(field("score"), "score"),
                    alias(exp.func("map", names.copy(), field("probabilities")), "probabilities")]
        else:
            outs = [alias(field("prediction"), "prediction")]
        front = [col(k) for k in self.keys] + ([] if self.column else [col(ANCHOR)])
        return (exp.select(*front, *outs)
                .from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=ident("__q"))))
                .order_by(*[col(k) for k in self.keys], col(ANCHOR)))

    def split_anchors(self) -> list[tuple[dt.datetime, str]]:
        if self.column is not None:
            return [(self.predict_anchor, "hash")]
        return ([(t, "train") for t in self.train_anchors]
                + [(self.val_anchor, "val"), (self.test_anchor, "test")])


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


# ---- binding and validation ----------------------------------------------------
def _resolve_aggregate(schema: Schema, entity: TableInfo, agg: Aggregate, *, role: str) -> ResolvedAggregate:
    tinfo = schema.table(agg.table, agg.table_position)
    if agg.column is not None and tinfo.column(agg.column) is None:
        raise PlanError(f"column `{agg.column}` not found in table `{agg.table}`"
                        f"{did_you_mean(agg.column, [c.name for c in tinfo.columns])}", agg.column_position)
    if agg.start >= agg.end:
        raise PlanError(f"empty window ({agg.start}, {agg.end}]: the start must be before the end", agg.position)
    if role == "target" and agg.end <= 0:
        raise PlanError(f"the target window ({agg.start}, {agg.end}] {agg.unit} lies in the past; a prediction "
                        f"needs a window ending after the anchor time, e.g. {agg.func}({agg.table}.*, 0, 30, DAYS)",
                        agg.position)
    if role == "filter" and agg.end > 0:
        raise PlanError(f"WHERE reads only the past, but ({agg.start}, {agg.end}] {agg.unit} reaches into the "
                        f"future; use a window ending at 0 or earlier (e.g. {-(agg.end - agg.start)}, 0), "
                        f"or move the condition to ASSUMING", agg.position)
    if tinfo.time_column is None:
        raise PlanError(f"table `{agg.table}` has no time column, so a window over it has no meaning; declare one "
                        f"with ALTER GRAPH SET TIME COLUMN {sql_name(agg.table)}(<column>)", agg.table_position)
    if agg.func in ("SUM", "AVG", "MIN", "MAX") and tinfo.column(agg.column or "") is None:
        raise PlanError(f"{agg.func} needs a column, not `{agg.table}.*`", agg.position)
    if agg.func in ("SUM", "AVG", "MIN", "MAX") and tinfo.column(agg.column).stype not in ("numerical", "id", "time"):
        c = tinfo.column(agg.column)
        raise PlanError(f"{agg.func} needs a numeric column; `{agg.table}.{agg.column}` is {c.dtype}",
                        agg.column_position)
    if agg.func in ("FIRST", "LAST", "COUNT_DISTINCT") and agg.column is None:
        raise PlanError(f"{agg.func} needs a column, not `{agg.table}.*`", agg.position)
    links = schema.links_from(agg.table, entity.name)
    if agg.via is not None:
        links = [lk for lk in links if agg.via in lk.child_columns]
    elif len(links) > 1 and agg.column is not None:
        by_col = [lk for lk in links if agg.column in lk.child_columns]
        links = by_col or links
    if not links:
        raise PlanError(
            f"table `{agg.table}` is not linked to `{entity.name}`: {agg.func} over `{agg.table}` needs a foreign key "
            f"from `{agg.table}` to `{entity.name}`; declare one with ALTER GRAPH ADD LINK "
            f"{sql_name(agg.table)}(<column>) REFERENCES {sql_name(entity.name)}"
            f"({', '.join(map(sql_name, entity.primary_key)) or '<key>'})",
            agg.table_position)
    if len(links) > 1:
        options = ", ".join(lk.child_columns[0] for lk in links)
        raise PlanError(f"table `{agg.table}` links to `{entity.name}` in {len(links)} ways ({options}); "
                        f"name one with VIA, e.g. {agg.func}({sql_name(agg.table)}."
                        f"{sql_name(agg.column) if agg.column else '*'} VIA {sql_name(links[0].child_columns[0])}, "
                        f"{agg.start}, {agg.end}, {agg.unit})", agg.table_position)
    _check_columns(agg.where, {agg.table: tinfo}, tinfo)
    return ResolvedAggregate(agg, tinfo, links[0])


def _check_columns(pred: exp.Expression | None, tables: dict[str, TableInfo], default: TableInfo | None) -> None:
    if pred is None:
        return
    for c in pred.find_all(exp.Column):
        if isinstance(c.this, exp.Star):
            continue
        tinfo = tables.get(c.table) if c.table else default
        if c.table and tinfo is None:
            raise PlanError(f"`{c.table}.{c.name}` cannot be used here: only columns of "
                            f"{' or '.join(f'`{t}`' for t in tables)} are in scope; aggregate other tables "
                            f"with a window, e.g. COUNT({c.table}.*, -30, 0, DAYS)", Position.of(c))
        if tinfo is not None and tinfo.column(c.name) is None:
            raise PlanError(f"column `{c.name}` not found in table `{tinfo.name}`"
                            f"{did_you_mean(c.name, [x.name for x in tinfo.columns])}", Position.of(c))


def _time_bounds(con, tinfo: TableInfo, as_of: dt.datetime | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    t = time_value(tinfo)
    q = exp.select(exp.Min(this=t), exp.Max(this=t.copy())).from_(table(tinfo.name))
    if as_of is not None:
        q = q.where(t.copy() <= lit(as_of))
    lo, hi = run(con, q)[0]
    return lo, hi


def _as_datetime(v, name: str) -> dt.datetime:
    if isinstance(v, dt.datetime):
        return v
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day)
    try:
        return dt.datetime.fromisoformat(str(v))
    except ValueError:
        raise PlanError(f"option {name} = {v!r} is not a timestamp; write e.g. {name} = '2024-01-31'") from None


def _check_entity(schema: Schema, query: PredictQuery) -> TableInfo:
    entity = schema.table(query.entity_table, query.entity_position)
    for k in query.entity_columns:
        if entity.column(k) is None:
            raise PlanError(f"column `{k}` not found in table `{entity.name}`"
                            f"{did_you_mean(k, [c.name for c in entity.columns])}", query.entity_position)
    if entity.primary_key != tuple(query.entity_columns):
        pk = ", ".join(entity.primary_key)
        hint = f"its primary key is ({pk})" if pk else "it has no primary key; declare one in CREATE TABLE"
        raise PlanError(f"FOR EACH needs the primary key of `{entity.name}`: {hint}", query.entity_position)
    return entity


def _column_target(schema: Schema, entity: TableInfo, target: Target) -> tuple[Schema, str]:
    """Check a column target; return the schema without it as a feature, and the task type."""
    c = entity.column(target.column)
    if c is None:
        raise PlanError(f"column `{target.column}` not found in table `{entity.name}`"
                        f"{did_you_mean(target.column, [x.name for x in entity.columns])}", target.column_position)
    if c.stype in ("id", "time", "text", "timestamp", "ignored"):
        what = {"id": "a key", "time": "the time column", "text": "free text", "timestamp": "a timestamp",
                "ignored": "an ignored column"}[c.stype]
        raise PlanError(f"`{entity.name}.{c.name}` is {what}; a column target must be categorical or numeric",
                        target.column_position)
    if target.op is not None or c.dtype.upper() == "BOOLEAN":
        task = "binary"
    else:
        task = "multiclass" if c.stype == "categorical" else "regression"
    hidden = dataclasses.replace(entity, columns=tuple(
        dataclasses.replace(x, stype="ignored") if x.name == c.name else x for x in entity.columns))
    return dataclasses.replace(schema, tables={**schema.tables, entity.name: hidden}), task


def _latest_time(con, schema: Schema, as_of: dt.datetime | None) -> dt.datetime:
    """The last time of any dated row (no later than ``as_of``); far future for a static database."""
    latest = [hi for t in schema.tables.values() if t.time_column for _, hi in [_time_bounds(con, t, as_of)]
              if hi is not None]
    return as_of or (max(latest) if latest else STATIC_ANCHOR)


def _time_quantiles(con, entity: TableInfo, column: str, as_of, options) -> tuple[dt.datetime, dt.datetime]:
    """Validation and test start for a column target of a dated table: options, else the 80 % / 90 % times."""
    t = time_value(entity)
    q = (exp.select(exp.func("quantile_disc", t, lit(0.8)), exp.func("quantile_disc", t.copy(), lit(0.9)))
         .from_(table(entity.name)).where(exp.not_(col(column).is_(exp.null()))))
    if as_of is not None:
        q = q.where(t.copy() <= lit(as_of))
    val, test = run(con, q)[0]
    if val is None:
        raise PlanError(f"`{entity.name}.{column}` has no dated row with a value to learn from")
    val = _as_datetime(options["val_start"], "val_start") if options["val_start"] else val
    test = _as_datetime(options["test_start"], "test_start") if options["test_start"] else test
    if not val <= test:
        raise PlanError(f"val_start {val} must not be after test_start {test}")
    return val, test


def _in_columns(con, query: PredictQuery) -> int:
    if query.entity_in is None:
        return 0
    from .sql import to_sql
    probe = exp.select("*").from_(exp.Subquery(this=query.entity_in.copy(), alias=exp.TableAlias(this=ident("__q"))))
    try:
        n = len(con.sql(to_sql(probe.limit(0))).columns)
    except Exception as e:  # DuckDB's own message names the problem in the user's query
        raise PlanError(f"the FOR ... IN query fails: {str(e).splitlines()[0]}", Position.of(query.entity_in)) from None
    k = len(query.entity_columns)
    if n not in (k, k + 1):
        raise PlanError(f"the FOR ... IN query returns {n} columns; it must return the key ({k} column"
                        f"{'s' if k > 1 else ''}), optionally followed by an anchor time", Position.of(query.entity_in))
    return n


def compile_task(con: duckdb.DuckDBPyConnection, schema: Schema, query: PredictQuery,
                 *, training: bool = True) -> TaskPlan:
    """Resolve names against ``schema``, check the time rules and choose anchor times.

    ``training=False`` plans scoring only (a stored model): no training
    anchors are needed, so a short history is no error.
    """
    entity = _check_entity(schema, query)
    options = dict(DEFAULT_OPTIONS)
    options.update(query.option_dict)
    target_column = query.target.column if query.target.aggregate is None else None
    resolved = []
    if target_column is None:
        resolved.append(_resolve_aggregate(schema, entity, query.target.aggregate, role="target"))
    for i, agg in enumerate(query.aggregates[1:], start=1):
        resolved.append(_resolve_aggregate(schema, entity, agg, role="filter" if _in_where(query, i) else "assuming"))
    _check_columns(_strip_aggs(query.where), {entity.name: entity}, entity)
    _check_columns(_strip_aggs(query.assuming), {entity.name: entity}, entity)
    in_columns = _in_columns(con, query)

    if target_column is not None:
        schema, task_type = _column_target(schema, entity, query.target)
        entity = schema.tables[entity.name]
        if query.assuming is not None:
            raise PlanError("ASSUMING conditions on future rows; a column target has no future window")
        t = _latest_time(con, schema, query.as_of)
        val_anchor = test_anchor = t
        if entity.time_column is not None:  # dated rows: train on the oldest 80 %, test on the newest 10 %
            val_anchor, test_anchor = _time_quantiles(con, entity, target_column, query.as_of, options)
        return TaskPlan(query, schema, entity, task_type, tuple(resolved), options, query.as_of, t, test_anchor,
                        val_anchor, (val_anchor,), column=target_column, in_columns=in_columns)

    target = resolved[0]
    agg = target.agg
    value_type = target.table.column(agg.column).stype if agg.column else None
    if query.target.op is not None or agg.func == "EXISTS":
        task_type = "binary"
    elif agg.func in ("FIRST", "LAST") and value_type in ("categorical", "id"):
        task_type = "multiclass"  # which category (or which linked row: a key) comes first / last
    elif agg.func in ("FIRST", "LAST") and value_type not in ("numerical", "time", "timestamp"):
        raise PlanError(f"{agg.func} of `{agg.table}.{agg.column}` ({value_type}) cannot be predicted; "
                        f"compare it with a constant, e.g. {agg.func}(...) = 'x'", agg.column_position)
    else:
        task_type = "regression"
    lo, hi = _time_bounds(con, target.table, query.as_of)
    if hi is None:
        raise PlanError(f"table `{target.table.name}` has no dated rows"
                        + (f" on or before {query.as_of}" if query.as_of else ""), agg.table_position)
    end_time = query.as_of or hi
    test_anchor = (_as_datetime(options["test_start"], "test_start") if options["test_start"]
                   else shift(end_time, -agg.end, agg.unit))
    val_anchor = (_as_datetime(options["val_start"], "val_start") if options["val_start"]
                  else shift(test_anchor, -agg.end, agg.unit))
    train: list[dt.datetime] = []
    if training:
        if shift(test_anchor, agg.end, agg.unit) > end_time:
            raise PlanError(f"test_start {test_anchor} leaves no room for the label window before {end_time}")
        if shift(val_anchor, agg.end, agg.unit) > test_anchor:
            raise PlanError(f"val_start {val_anchor}: its label window must end by the test anchor {test_anchor}")
        step = int(options["anchor_step"] or (agg.end - agg.start))
        if step <= 0:
            raise PlanError(f"anchor_step must be a positive number of {agg.unit}")
        # a training row reads its label window and its ASSUMING windows: all must end by the validation anchor
        horizon = [agg] + [ra.agg for i, ra in enumerate(resolved) if i > 0 and not _in_where(query, i)]
        t = min(shift(val_anchor, -a.end, a.unit) for a in horizon)
        while t >= lo and len(train) < MAX_TRAIN_ANCHORS:
            train.append(t)
            t = shift(t, -step, agg.unit)
        if not train:
            raise PlanError(f"not enough history in `{target.table.name}` ({lo} to {hi}) for a training window of "
                            f"{agg.end} {agg.unit} before the validation anchor {val_anchor}; use a shorter window "
                            f"or set val_start / test_start")
    return TaskPlan(query, schema, entity, task_type, tuple(resolved), options, query.as_of, end_time,
                    test_anchor, val_anchor, tuple(sorted(train)), in_columns=in_columns)


def _in_where(query: PredictQuery, index: int) -> bool:
    return query.where is not None and any(r.this == index for r in query.where.find_all(AggRef))


def _strip_aggs(pred):
    if pred is None:
        return None
    return pred.copy().transform(lambda n: exp.null() if isinstance(n, AggRef) else n)
