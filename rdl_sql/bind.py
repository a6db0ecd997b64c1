"""Turn a parsed PREDICT (sqlglot AST) into the planner's ``PredictQuery``.

Only shape is checked here (a target is an aggregate, options are known
keys with values of the right type); names are resolved by the planner
against the database schema. Query parameters (``?``, ``$1``, ``$name``)
are put into the parsed statement as literals first (``substitute``), so a
value can never become SQL source.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import math
from collections.abc import Mapping, Sequence

from sqlglot import exp

from rdl_sql.dialect import Predict, TemporalAgg, _is_int, int_value
from rdl_sql.planner.errors import PlanError, Position
from rdl_sql.planner.options import DEFAULTS, Options
from rdl_sql.planner.query import MAX_TOP_K, RANKING_FUNC, AggRef, Aggregate, PredictQuery, Target

_COMPARE = {exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
_FLIP = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_KNOWN = {f.name for f in dataclasses.fields(Options)}


def placeholders(node: exp.Expression) -> list[exp.Placeholder]:
    """The statement's parameters in the order they are written."""
    return sorted(node.find_all(exp.Placeholder), key=lambda p: p.meta.get("start", 0))


def substitute(node: exp.Expression, params) -> exp.Expression:
    """``node`` with each ``?`` / ``$n`` / ``$name`` replaced by its value as a literal (a copy).

    ``params`` is a sequence (``?`` in order, or ``$1``, ``$2`` ...) or a
    mapping (``$name``), as DuckDB's own client takes them. Every value must
    be used, and every parameter given a value.
    """
    found = placeholders(node)
    if params is None:
        if found:
            raise PlanError("this statement has parameters (`?` or `$n`) but no values were given",
                            Position.of(found[0]))
        return node
    if isinstance(params, (str, bytes)) or not isinstance(params, (Sequence, Mapping)):
        raise PlanError("parameters are a sequence of values (for `?` or `$1`) or a mapping (for `$name`)")
    if not found:
        if len(params):
            raise PlanError(f"{len(params)} parameter value{'s were' if len(params) > 1 else ' was'} given, but "
                            f"the statement has no `?` or `$n` to put {'them' if len(params) > 1 else 'it'} in")
        return node
    node = node.copy()
    found = placeholders(node)
    kinds = {"?" if p.this is None else "$n" if str(p.this).isdigit() else "$name" for p in found}
    if len(kinds) > 1:
        raise PlanError("use one kind of parameter in a statement: `?`, `$1` or `$name`", Position.of(found[0]))
    kind = kinds.pop()
    if kind == "$name":
        if not isinstance(params, Mapping):
            raise PlanError("`$name` parameters take a mapping of names to values", Position.of(found[0]))
        keys = {str(p.this) for p in found}
        missing = [k for k in sorted(keys) if k not in params]
        if missing:
            raise PlanError(f"no value given for parameter ${missing[0]}",
                            Position.of(next(p for p in found if str(p.this) == missing[0])))
        unused = [k for k in params if k not in keys]
        if unused:
            raise PlanError(f"a value was given for ${unused[0]}, which the statement does not use")
        values = [(p, params[str(p.this)], f"${p.this}") for p in found]
    else:
        if isinstance(params, Mapping):
            raise PlanError("`?` and `$n` parameters take a sequence of values, not a mapping",
                            Position.of(found[0]))
        if kind == "?":
            if len(found) != len(params):
                raise PlanError(f"the statement has {len(found)} parameter{'s' if len(found) > 1 else ''} but "
                                f"{len(params)} value{'s were' if len(params) != 1 else ' was'} given",
                                Position.of(found[0]))
            values = [(p, v, f"parameter {i}") for i, (p, v) in enumerate(zip(found, params), start=1)]
        else:
            numbers = {int(p.this) for p in found}
            if numbers != set(range(1, len(params) + 1)):
                raise PlanError(f"the statement uses ${', $'.join(map(str, sorted(numbers)))} but "
                                f"{len(params)} value{'s were' if len(params) != 1 else ' was'} given",
                                Position.of(found[0]))
            values = [(p, params[int(p.this) - 1], f"${p.this}") for p in found]
    for p, value, name in values:
        literal = _value_literal(value, name, Position.of(p))
        literal.meta.update(p.meta)
        p.replace(literal)
    node.meta["parameters"] = True  # the text holds `?`, the statement holds values (a stored model shows these)
    return node


def _value_literal(value, name: str, position: Position | None) -> exp.Expression:
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float, decimal.Decimal)):
        if isinstance(value, (float, decimal.Decimal)) and not math.isfinite(value):
            raise PlanError(f"{name} is {value}; SQL constants are finite numbers", position)
        number = exp.Literal.number(abs(value) if value < 0 else value)
        return exp.Neg(this=number) if value < 0 else number
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, dt.datetime):
        kind = "TIMESTAMPTZ" if value.tzinfo is not None else "TIMESTAMP"
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), kind)
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), "DATE")
    raise PlanError(f"{name} must be a string, a number, a boolean, a date, a timestamp or None", position)


def _window_bound(node: exp.Expression, what: str) -> int:
    if not _is_int(node):  # a parameter that held something else
        raise PlanError(f"the window {what} must be a whole number, e.g. -90 or 30", Position.of(node))
    return int_value(node)


def aggregate(node: TemporalAgg) -> Aggregate:
    column = node.args["column"]
    via = node.args.get("via")
    return Aggregate(
        func=node.this.name, table=column.table,
        column=None if isinstance(column.this, exp.Star) else column.name,
        start=_window_bound(node.args["start"], "start"), end=_window_bound(node.args["end"], "end"),
        unit=node.args["unit"].name,
        where=node.args.get("where"), via=via.name if via is not None else None,
        position=Position.of(node), table_position=Position.of(column.args.get("table")),
        column_position=Position.of(column.this) if not isinstance(column.this, exp.Star) else None,
    )


def _literal(node: exp.Expression):
    """The Python value of a constant (a number, string or boolean), None for anything else."""
    if isinstance(node, exp.Paren):
        return _literal(node.this)
    if isinstance(node, exp.Neg):
        v = _literal(node.this)
        return -v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        try:
            value = int(text) if text.isdigit() else float(text)
        except ValueError:
            return None
        if isinstance(value, float) and not math.isfinite(value):
            raise PlanError(f"the number {text} is out of the range of a DOUBLE", Position.of(node))
        return value
    if isinstance(node, exp.Boolean):
        return node.this
    if (isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal) and node.this.is_string
            and node.to.is_type(*exp.DataType.TEMPORAL_TYPES)):  # DATE '2024-01-01': the option reads its text
        return node.this.this
    return None


def _ranked_target(node: exp.Expression, top: exp.Expression | None) -> Target | None:
    """``LIST_DISTINCT(t.fk, a, b, UNIT) RANK TOP k`` as a Target; None for any other target."""
    listed = isinstance(node, TemporalAgg) and node.this.name == RANKING_FUNC
    if top is None and not listed:
        if any(a.this.name == RANKING_FUNC for a in node.find_all(TemporalAgg)):
            raise PlanError(f"{RANKING_FUNC}(...) is a list of items: predict it as it stands, followed by RANK "
                            f"TOP k, e.g. PREDICT {RANKING_FUNC}(orders.product_id, 0, 7, DAYS) RANK TOP 10",
                            Position.of(next(a for a in node.find_all(TemporalAgg) if a.this.name == RANKING_FUNC)))
        return None
    if top is None:
        raise PlanError(f"{RANKING_FUNC}(...) predicts which items come next; say how many to rank, e.g. "
                        f"{RANKING_FUNC}(orders.product_id, 0, 7, DAYS) RANK TOP 10", Position.of(node))
    if not listed:
        raise PlanError(f"RANK TOP k ranks the items of {RANKING_FUNC}(t.fk, start, end, UNIT), e.g. PREDICT "
                        f"{RANKING_FUNC}(orders.product_id, 0, 7, DAYS) RANK TOP 10", Position.of(node))
    value = _literal(top)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TOP_K:
        raise PlanError(f"RANK TOP k takes a whole number of items from 1 to {MAX_TOP_K:,}, not {top.sql()}",
                        Position.of(top))
    agg = aggregate(node)
    if agg.column is None:
        raise PlanError(f"{RANKING_FUNC} lists a foreign-key column, not `{agg.table}.*`: the column's parent "
                        f"table holds the items, e.g. {RANKING_FUNC}(orders.product_id, 0, 7, DAYS)", agg.position)
    if agg.where is not None:
        raise PlanError(f"{RANKING_FUNC}(... WHERE ...) is not supported yet: the target lists every row of "
                        f"`{agg.table}` in the window; filter the entities with WHERE after FOR EACH instead",
                        Position.of(node.args["where"]))
    return Target(agg, top_k=value)


def _target(node: exp.Expression, entity_table: str) -> Target:
    if isinstance(node, TemporalAgg):
        return Target(aggregate(node))
    if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
        if node.table and node.table.lower() != entity_table.lower():  # DuckDB names ignore case, quoted too
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
    """AS OF's time, naive: a time with a time zone or offset is converted to UTC, as ``val_start`` is."""
    inner = node
    while isinstance(inner, (exp.Cast, exp.Paren)):
        inner = inner.this
    if isinstance(inner, exp.Literal) and inner.is_string:
        try:
            value = dt.datetime.fromisoformat(inner.this.strip())
        except ValueError:
            raise PlanError(f"AS OF needs a timestamp literal between the years 1 and 9999, e.g. AS OF "
                            f"TIMESTAMP '2024-06-01'; {inner.this!r} is not one",
                            Position.of(node) or Position.of(inner)) from None
        if value.tzinfo is not None:
            try:
                value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
            except OverflowError:
                raise PlanError(f"AS OF {inner.this!r} lies outside the years 1 to 9999 in UTC",
                                Position.of(node)) from None
        return value
    raise PlanError("AS OF needs a timestamp literal, e.g. AS OF TIMESTAMP '2024-06-01'",
                    Position.of(node) or Position.of(inner))


def _first_position(node: exp.Expression) -> Position | None:
    """Where ``node`` is written: its own position, else that of what it wraps (``-5``, ``(2)``, ``DATE '...'``:
    sqlglot records the literal's)."""
    while node is not None:
        at = Position.of(node)
        if at is not None:
            return at
        node = node.this if isinstance(node.this, exp.Expression) else None
    return None


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
        at = _first_position(raw)
        items.append((item.this.name, value, at if item.this.name.lower() in _KNOWN else Position.of(item.this)))
    return Options.parse(items, Position.of(node))


def to_query(node: Predict, text: str) -> PredictQuery:
    """The planner's view of a PREDICT statement (not ``PREDICT USING``)."""
    entity = node.args.get("entity")
    keys = list(entity.expressions) if isinstance(entity, exp.Tuple) else [entity]
    entity_table = keys[0].table
    target = _ranked_target(node.this, node.args.get("top")) or _target(node.this, entity_table)
    aggs = [target.aggregate]

    def collect(n):
        if isinstance(n, TemporalAgg):
            if n.this.name == RANKING_FUNC:
                raise PlanError(f"{RANKING_FUNC}(...) is a target only; in a condition count the items, e.g. "
                                f"COUNT_DISTINCT({n.args['column'].sql()}, -30, 0, DAYS) > 2", Position.of(n))
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
