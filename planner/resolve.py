"""Resolve a PREDICT against the schema: tables, columns, links and the task type.

Every name the user wrote is checked here, with an error that names the
position and the fix; what comes out is only what the SQL compiler needs.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from sqlglot import exp

from .errors import PlanError, Position, did_you_mean, sql_name
from .query import AggRef, Aggregate, PredictQuery, Target, TaskType
from .schema import NUMERIC_TYPES, TIME_TYPES, ZONED_TIME_TYPES, Link, Schema, TableInfo
from .sql import ident, to_sql

#: columns that example and prediction rows hold beside the entity's key (lower case: DuckDB ignores case)
KEY_NAMES_TAKEN = frozenset({"__node", "anchor_time", "split", "label", "prediction", "score", "probabilities",
                             "__s"})


@dataclass(frozen=True)
class ResolvedAggregate:
    agg: Aggregate
    table: TableInfo
    link: Link




#: the largest window bound per unit: about 10,000 years (the calendar's span), at most DuckDB's INTEGER
MAX_WINDOW = {"SECONDS": 2 ** 31 - 1, "MINUTES": 2 ** 31 - 1, "HOURS": 87_660_000, "DAYS": 3_652_500,
              "WEEKS": 521_786, "MONTHS": 120_000, "YEARS": 10_000}


def normalize(schema: Schema, query: PredictQuery) -> PredictQuery:
    """``query`` with every table and column name spelt as the catalog spells it.

    DuckDB compares names without case (``Orders`` is table ``orders``), so
    rdl-sql does too; later stages then compare names exactly.
    """
    def table_name(name: str) -> str:
        return _catalog_name(schema, name) or name

    def column_name(tname: str, name: str | None) -> str | None:
        tinfo = schema.tables.get(table_name(tname))
        c = tinfo.column(name) if tinfo is not None and name is not None else None
        return c.name if c is not None else name

    entity = table_name(query.entity_table)

    def fix_predicate(pred, default: str):
        if pred is None:
            return None
        pred = pred.copy()
        for c in pred.find_all(exp.Column):
            tbl = c.args.get("table")
            owner = table_name(tbl.name) if tbl is not None else default
            if tbl is not None and isinstance(tbl, exp.Identifier):
                tbl.set("this", owner)  # in place: the identifier keeps its position
            if isinstance(c.this, exp.Identifier):
                c.this.set("this", column_name(owner, c.this.name))
        return pred

    aggs = []
    for agg in query.aggregates:
        if agg is None:
            aggs.append(agg)
            continue
        tname = table_name(agg.table)
        aggs.append(dataclasses.replace(agg, table=tname, column=column_name(tname, agg.column),
                                        via=column_name(tname, agg.via), where=fix_predicate(agg.where, tname)))
    target = query.target
    target = dataclasses.replace(target, aggregate=aggs[0] if target.aggregate is not None else None,
                                 column=column_name(entity, target.column))
    return dataclasses.replace(
        query, target=target, entity_table=entity,
        entity_columns=tuple(column_name(entity, k) for k in query.entity_columns),
        where=fix_predicate(query.where, entity), assuming=fix_predicate(query.assuming, entity),
        aggregates=tuple(aggs))


def _catalog_name(schema: Schema, name: str) -> str | None:
    if name in schema.tables:
        return name
    return next((n for n in schema.tables if n.lower() == name.lower()), None)


def check_constant(kind: str, value, what: str, position) -> None:
    """A PlanError unless ``value`` (the target's constant) can be compared with a ``kind`` value.

    ``kind``: number, string, time or boolean. DuckDB would otherwise fail
    mid-query on ``COUNT(...) = 'abc'`` with a conversion error.
    """
    if value is None:
        return
    if kind == "number" and isinstance(value, str):
        raise PlanError(f"{what} is a number; compare it with a number, not the string {value!r}", position)
    if kind == "time":
        if not isinstance(value, str):
            raise PlanError(f"{what} is a time; compare it with a timestamp string, e.g. '2024-06-01'", position)
        try:
            dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise PlanError(f"{what} is a time, and {value!r} is not a timestamp; write e.g. '2024-06-01'",
                            position) from None
    if kind == "boolean" and not isinstance(value, bool):
        raise PlanError(f"{what} is true or false; compare it with TRUE or FALSE, not {value!r}", position)
    if kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
        raise PlanError(f"{what} is text; compare it with a string, e.g. '{value}'", position)


def _value_kind(c) -> str:
    """What a constant compared with column ``c`` must be: number, string, time or boolean (``other``: any)."""
    base = c.dtype.split("(")[0].upper()
    if base == "BOOLEAN":
        return "boolean"
    if base in TIME_TYPES:
        return "time"
    if base in NUMERIC_TYPES or base.startswith("DECIMAL"):
        return "number"
    if base == "VARCHAR" or base.startswith("ENUM"):
        return "string"
    return "other"


def resolve_aggregate(schema: Schema, entity: TableInfo, agg: Aggregate, *, role: str) -> ResolvedAggregate:
    tinfo = schema.table(agg.table, agg.table_position)
    if agg.column is not None and tinfo.column(agg.column) is None:
        raise PlanError(f"column `{agg.column}` not found in table `{agg.table}`"
                        f"{did_you_mean(agg.column, [c.name for c in tinfo.columns])}", agg.column_position)
    limit = MAX_WINDOW[agg.unit]
    for what, n in (("start", agg.start), ("end", agg.end)):
        if not -limit <= n <= limit:
            raise PlanError(f"the window {what} {n:,} {agg.unit} is out of range: a window bound lies between "
                            f"{-limit:,} and {limit:,} {agg.unit} (about 10,000 years, or DuckDB's INTEGER); "
                            f"use a larger unit", agg.position)
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
        times = [c.name for c in tinfo.columns if c.stype == "timestamp"]
        if len(times) > 1:  # never chosen alone: which one dates a row is the user's call
            raise PlanError(f"table `{agg.table}` has several time columns ({', '.join(times)}) and none is its time "
                            f"column, so a window over it has no meaning; say which dates a row, e.g. ALTER GRAPH "
                            f"SET TIME COLUMN {sql_name(agg.table)}({sql_name(times[0])})", agg.table_position)
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
    check_columns(agg.where, {agg.table: tinfo}, tinfo)
    return ResolvedAggregate(agg, tinfo, links[0])


def check_columns(pred: exp.Expression | None, tables: dict[str, TableInfo], default: TableInfo | None) -> None:
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
    _check_comparisons(pred, tables, default)


_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)


def _check_comparisons(pred: exp.Expression, tables: dict[str, TableInfo], default: TableInfo | None) -> None:
    """``column <op> constant`` whose constant DuckDB could not convert to the column's type: a PlanError
    at the constant, instead of a conversion error from the middle of the label query."""
    for cmp in pred.find_all(*_COMPARISONS):
        for column, const in ((cmp.this, cmp.expression), (cmp.expression, cmp.this)):
            if not isinstance(column, exp.Column) or isinstance(column.this, exp.Star):
                continue
            value = _constant(const)
            tinfo = tables.get(column.table) if column.table else default
            c = tinfo.column(column.name) if tinfo is not None else None
            if c is None or value is _NOT_CONSTANT:
                continue
            kind = _value_kind(c)
            what = f"`{tinfo.name}.{c.name}`"
            if kind == "number" and isinstance(value, str):
                try:
                    float(value)
                except ValueError:
                    raise PlanError(f"{what} is a number; compare it with a number, not the string {value!r}",
                                    Position.of(const) or Position.of(column)) from None
            elif kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
                raise PlanError(f"{what} is text; compare it with a string, e.g. '{value}'",
                                Position.of(const) or Position.of(column))
            elif kind == "time" and isinstance(value, str):
                check_constant("time", value, what, Position.of(const) or Position.of(column))


_NOT_CONSTANT = object()


def _constant(node: exp.Expression):
    """A literal's Python value (str, int or float), ``_NOT_CONSTANT`` for anything else."""
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        try:
            return float(node.this)
        except ValueError:
            return _NOT_CONSTANT
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        value = _constant(node.this)
        return -value if isinstance(value, float) else _NOT_CONSTANT
    return _NOT_CONSTANT


def aggregate_task_type(target: Target, resolved: ResolvedAggregate) -> TaskType:
    """Binary for a comparison or EXISTS, multiclass for FIRST/LAST of a category or key, else regression."""
    agg = resolved.agg
    value_type = resolved.table.column(agg.column).stype if agg.column else None
    if target.op is not None:
        if agg.func in ("COUNT", "COUNT_DISTINCT", "SUM", "AVG"):
            kind = "number"
        elif agg.func == "EXISTS":
            kind = "boolean"
        else:
            kind = _value_kind(resolved.table.column(agg.column))
        if agg.func == "EXISTS" and not isinstance(target.value, bool):
            raise PlanError(f"EXISTS(...) is true or false; predict it as it is, or compare it with TRUE or "
                            f"FALSE, not {target.value!r}", agg.position)
        check_constant(kind, target.value, f"{agg.func}(...)", agg.position)
    if target.op is not None or agg.func == "EXISTS":
        return TaskType.BINARY
    if agg.func in ("FIRST", "LAST") and value_type in ("categorical", "id"):
        return TaskType.MULTICLASS  # which category (or which linked row: a key) comes first / last
    if agg.func in ("FIRST", "LAST") and value_type in ("time", "timestamp"):
        raise PlanError(f"{agg.func} of `{agg.table}.{agg.column}` (a time) cannot be predicted as a time; "
                        f"predict whether there is a row (EXISTS({agg.table}.*, {agg.start}, {agg.end}, "
                        f"{agg.unit})) or compare it with a time, e.g. {agg.func}(...) > DATE '2024-01-01'",
                        agg.column_position)
    if agg.func in ("FIRST", "LAST") and value_type != "numerical":
        raise PlanError(f"{agg.func} of `{agg.table}.{agg.column}` ({value_type}) cannot be predicted; "
                        f"compare it with a constant, e.g. {agg.func}(...) = 'x'", agg.column_position)
    return TaskType.REGRESSION


def check_entity(schema: Schema, query: PredictQuery) -> TableInfo:
    entity = schema.table(query.entity_table, query.entity_position)
    for k in query.entity_columns:
        if entity.column(k) is None:
            raise PlanError(f"column `{k}` not found in table `{entity.name}`"
                            f"{did_you_mean(k, [c.name for c in entity.columns])}", query.entity_position)
    for k in query.entity_columns:
        if k.lower() in KEY_NAMES_TAKEN:
            raise PlanError(f"the key column `{k}` has the name of a column that every prediction or example row "
                            f"carries beside the key ({', '.join(sorted(KEY_NAMES_TAKEN))}), so the two would be "
                            f"confused; rename it, e.g. ALTER TABLE {sql_name(entity.name)} RENAME COLUMN "
                            f"{sql_name(k)} TO {sql_name(k + '_id')}", query.entity_position)
    if entity.primary_key != tuple(query.entity_columns):
        pk = ", ".join(entity.primary_key)
        hint = f"its primary key is ({pk})" if pk else "it has no primary key; declare one in CREATE TABLE"
        raise PlanError(f"FOR EACH needs the primary key of `{entity.name}`: {hint}", query.entity_position)
    return entity


def column_target(schema: Schema, entity: TableInfo, target: Target) -> tuple[Schema, TaskType]:
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
    if target.op is not None:
        check_constant(_value_kind(c), target.value, f"`{entity.name}.{c.name}`", target.column_position)
    if target.op is not None or c.dtype.upper() == "BOOLEAN":
        task = TaskType.BINARY
    else:
        task = TaskType.MULTICLASS if c.stype == "categorical" else TaskType.REGRESSION
    hidden = dataclasses.replace(entity, columns=tuple(
        dataclasses.replace(x, stype="ignored") if x.name == c.name else x for x in entity.columns))
    return dataclasses.replace(schema, tables={**schema.tables, entity.name: hidden}), task



def in_types(con, query: PredictQuery) -> tuple[str, ...]:
    """The DuckDB types of the columns a FOR ... IN query returns (none without one): the key, then maybe a time.

    An anchor time must be a time (or text read as one): a number is no time, and DuckDB's own error for
    it quotes rdl-sql's generated SQL.
    """
    if query.entity_in is None:
        return ()
    probe = exp.select("*").from_(exp.Subquery(this=query.entity_in.copy(), alias=exp.TableAlias(this=ident("__q"))))
    try:
        types = tuple(str(t) for t in con.sql(to_sql(probe.limit(0))).types)
    except Exception as e:  # DuckDB's own message names the problem in the user's query
        raise PlanError(f"the FOR ... IN query fails: {str(e).splitlines()[0]}", Position.of(query.entity_in)) from None
    k = len(query.entity_columns)
    if len(types) not in (k, k + 1):
        raise PlanError(f"the FOR ... IN query returns {len(types)} columns; it must return the key ({k} column"
                        f"{'s' if k > 1 else ''}), optionally followed by an anchor time", Position.of(query.entity_in))
    if len(types) == k + 1 and types[k].upper() not in (*TIME_TYPES, *ZONED_TIME_TYPES, "VARCHAR", '"NULL"', "NULL"):
        raise PlanError(f"the FOR ... IN query's anchor time (column {k + 1}) is {types[k]}; it must be a "
                        f"TIMESTAMP, TIMESTAMPTZ or DATE (or text such as '2024-03-01 12:00')",
                        Position.of(query.entity_in))
    return types



def in_where(query: PredictQuery, index: int) -> bool:
    return query.where is not None and any(r.this == index for r in query.where.find_all(AggRef))


def strip_aggs(pred):
    if pred is None:
        return None
    return pred.copy().transform(lambda n: exp.null() if isinstance(n, AggRef) else n)

