"""Compile a PREDICT into a ``TaskPlan``: names resolved, task type and anchor times chosen.

The pieces live in their own modules: ``resolve`` (names, links, task
type), ``anchors`` (time arithmetic and the data's time range) and
``labels`` (the SQL derived from a plan). This module only puts them
together, once for every statement that trains, scores or explains.
"""
from __future__ import annotations

import datetime as dt

import duckdb

from .anchors import MAX_TRAIN_ANCHORS, latest_time, shift, time_bounds, time_quantiles
from .errors import PlanError
from .labels import TaskPlan
from .query import PredictQuery
from .resolve import (
    aggregate_task_type,
    check_columns,
    check_entity,
    column_target,
    in_columns,
    in_where,
    normalize,
    resolve_aggregate,
    strip_aggs,
)
from .schema import Schema


def compile_task(con: duckdb.DuckDBPyConnection, schema: Schema, query: PredictQuery,
                 *, training: bool = True) -> TaskPlan:
    """Resolve names against ``schema``, check the time rules and choose anchor times.

    ``training=False`` plans scoring only (a stored model): no training
    anchors are needed, so a short history is no error.
    """
    query = normalize(schema, query)  # names as the catalog spells them (DuckDB ignores case)
    entity = check_entity(schema, query)
    options = query.options
    target_column = query.target.column if query.target.aggregate is None else None
    resolved = []
    if target_column is None:
        resolved.append(resolve_aggregate(schema, entity, query.target.aggregate, role="target"))
    for i, agg in enumerate(query.aggregates[1:], start=1):
        resolved.append(resolve_aggregate(schema, entity, agg, role="filter" if in_where(query, i) else "assuming"))
    check_columns(strip_aggs(query.where), {entity.name: entity}, entity)
    check_columns(strip_aggs(query.assuming), {entity.name: entity}, entity)
    n_in = in_columns(con, query)

    if target_column is not None:
        schema, task_type = column_target(schema, entity, query.target)
        entity = schema.tables[entity.name]
        if query.assuming is not None:
            raise PlanError("ASSUMING conditions on future rows; a column target has no future window")
        t = latest_time(con, schema, query.as_of)
        val_anchor = test_anchor = t
        if entity.time_column is not None:  # dated rows: train on the oldest 80 %, test on the newest 10 %
            val_anchor, test_anchor = time_quantiles(con, entity, target_column, query.as_of, options)
        return TaskPlan(query, schema, entity, task_type, tuple(resolved), options, query.as_of, t, test_anchor,
                        val_anchor, (val_anchor,), column=target_column, in_columns=n_in)

    target = resolved[0]
    agg = target.agg
    task_type = aggregate_task_type(query.target, target)
    lo, hi = time_bounds(con, target.table, query.as_of)
    if hi is None:
        raise PlanError(f"table `{target.table.name}` has no dated rows"
                        + (f" on or before {query.as_of}" if query.as_of else ""), agg.table_position)
    end_time = query.as_of or hi
    test_anchor = options.test_start or shift(end_time, -agg.end, agg.unit)
    val_anchor = options.val_start or shift(test_anchor, -agg.end, agg.unit)
    train: list[dt.datetime] = []
    if training:
        if shift(test_anchor, agg.end, agg.unit) > end_time:
            raise PlanError(f"test_start {test_anchor} leaves no room for the label window before {end_time}")
        if shift(val_anchor, agg.end, agg.unit) > test_anchor:
            raise PlanError(f"val_start {val_anchor}: its label window must end by the test anchor {test_anchor}")
        step = options.anchor_step or (agg.end - agg.start)
        # a training row reads its label window and its ASSUMING windows: all must end by the validation anchor
        horizon = [agg] + [ra.agg for i, ra in enumerate(resolved) if i > 0 and not in_where(query, i)]
        t = min(shift(val_anchor, -a.end, a.unit) for a in horizon)
        while t >= lo and len(train) < MAX_TRAIN_ANCHORS:
            train.append(t)
            t = shift(t, -step, agg.unit)
        if not train:
            raise PlanError(f"not enough history in `{target.table.name}` ({lo} to {hi}) for a training window of "
                            f"{agg.end} {agg.unit} before the validation anchor {val_anchor}; use a shorter window "
                            f"or set val_start / test_start")
    return TaskPlan(query, schema, entity, task_type, tuple(resolved), options, query.as_of, end_time,
                    test_anchor, val_anchor, tuple(sorted(train)), in_columns=n_in)
