"""Turn a parsed PREDICT (sqlglot AST) into the planner's ``PredictQuery``.

Only shape is checked here (a target is an aggregate, options are known
keys with values of the right type); names are resolved by the planner
against the database schema.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

from sqlglot import exp

from rdl_sql.dialect import Predict, TemporalAgg, int_value
from rdl_sql.planner.errors import PlanError, Position
from rdl_sql.planner.options import DEFAULTS, Options
from rdl_sql.planner.query import AggRef, Aggregate, PredictQuery, Target

_COMPARE = {exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
_FLIP = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_KNOWN = {f.name for f in dataclasses.fields(Options)}


def aggregate(node: TemporalAgg) -> Aggregate:
    column = node.args["column"]
    via = node.args.get("via")
    return Aggregate(
        func=node.this.name, table=column.table,
        column=None if isinstance(column.this, exp.Star) else column.name,
        start=int_value(node.args["start"]), end=int_value(node.args["end"]), unit=node.args["unit"].name,
        where=node.args.get("where"), via=via.name if via is not None else None,
        position=Position.of(node), table_position=Position.of(column.args.get("table")),
        column_position=Position.of(column.this) if not isinstance(column.this, exp.Star) else None,
    )


def _literal(node: exp.Expression):
    if isinstance(node, exp.Neg):
        v = _literal(node.this)
        return -v if isinstance(v, (int, float)) else None
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        return int(node.this) if node.this.isdigit() else float(node.this)
    if isinstance(node, exp.Boolean):
        return node.this
    return None


def _target(node: exp.Expression, entity_table: str) -> Target:
    if isinstance(node, TemporalAgg):
        return Target(aggregate(node))
    if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
        if node.table and node.table != entity_table:
            raise PlanError(f"a column target must be a column of the entity table `{entity_table}`; to predict "
                            f"from `{node.table}`, aggregate it over a window, e.g. "
                            f"LAST({node.table}.{node.name}, 0, 30, DAYS)", Position.of(node))
        return Target(None, column=node.name, column_position=Position.of(node))
    for cls, op in _COMPARE.items():
        if isinstance(node, cls):
            left, right = node.this, node.expression
            if isinstance(right, (TemporalAgg, exp.Column)) and not isinstance(left, (TemporalAgg, exp.Column)):
                left, right, op = right, left, _FLIP[op]
            value = _literal(right)
            if isinstance(left, TemporalAgg) and value is not None:
                return Target(aggregate(left), op, value)
            if isinstance(left, exp.Column) and value is not None:
                column = _target(left, entity_table)
                return Target(None, op, value, column=column.column, column_position=column.column_position)
    raise PlanError("the PREDICT target must be a windowed aggregate, optionally compared with a constant, "
                    "e.g. COUNT(orders.*, 0, 30, DAYS) = 0 or SUM(orders.amount, 0, 30, DAYS), or a column of the "
                    "entity table to fill in, e.g. PREDICT customers.segment", Position.of(node))


def _timestamp(node: exp.Expression) -> dt.datetime:
    inner = node.this if isinstance(node, exp.Cast) else node
    if isinstance(inner, exp.Literal) and inner.is_string:
        try:
            return dt.datetime.fromisoformat(inner.this)
        except ValueError:
            pass
    raise PlanError("AS OF needs a timestamp literal, e.g. AS OF TIMESTAMP '2024-06-01'", Position.of(inner))


def options(node: exp.Tuple | None) -> Options:
    """``WITH (key = value, ...)`` as typed options; the planner's ``Options`` checks keys and values."""
    if node is None:
        return DEFAULTS
    items = []
    for item in node.expressions:
        if not isinstance(item, exp.EQ) or not isinstance(item.this, exp.Column):
            raise PlanError("WITH takes key = value pairs, e.g. WITH (epochs = 20)", Position.of(item))
        raw = item.expression
        if isinstance(raw, exp.Array):
            value = [_literal(e) for e in raw.expressions]
            value = None if any(v is None for v in value) else value
        elif isinstance(raw, exp.Column):
            value = raw.name
        else:
            value = _literal(raw)
        if value is None:
            raise PlanError(f"option `{item.this.name.lower()}` needs a constant value", Position.of(raw))
        items.append((item.this.name, value, Position.of(raw) if item.this.name.lower() in _KNOWN
                      else Position.of(item.this)))
    return Options.parse(items, Position.of(node))


def to_query(node: Predict, text: str) -> PredictQuery:
    """The planner's view of a PREDICT statement (not ``PREDICT USING``)."""
    entity = node.args.get("entity")
    keys = list(entity.expressions) if isinstance(entity, exp.Tuple) else [entity]
    entity_table = keys[0].table
    target = _target(node.this, entity_table)
    aggs = [target.aggregate]

    def collect(n):
        if isinstance(n, TemporalAgg):
            aggs.append(aggregate(n))
            return AggRef(this=len(aggs) - 1)
        return n

    where = node.args.get("where")
    assuming = node.args.get("assuming")
    where = where.copy().transform(collect) if where is not None else None
    assuming = assuming.copy().transform(collect) if assuming is not None else None
    as_of = node.args.get("as_of")
    options_node = node.args.get("options")
    return PredictQuery(
        target=target, entity_table=entity_table, entity_columns=tuple(k.name for k in keys), where=where,
        assuming=assuming, aggregates=tuple(aggs), as_of=_timestamp(as_of) if as_of is not None else None,
        options=options(options_node), text=text, entity_in=node.args.get("entity_in"),
        entity_position=Position.of(entity), as_of_position=Position.of(as_of),
        options_position=Position.of(options_node),
    )
