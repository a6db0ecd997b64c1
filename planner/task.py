"""Compile a PREDICT into a ``TaskPlan``: names resolved, task type and anchor times chosen.

The pieces live in their own modules: ``resolve`` (names, links, task
type), ``anchors`` (time arithmetic, the data's time range and the choice
of each split's anchors) and ``labels`` (the SQL derived from a plan).
This module only puts them together, once for every statement that trains,
scores or explains.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import duckdb

from .anchors import Windows, choose_splits, latest_time, time_bounds, time_quantiles
from .depth import default_depth
from .errors import PlanError, sql_name
from .extract import reachable
from .labels import TaskPlan
from .query import PredictQuery
from .resolve import (
    aggregate_task_type,
    check_columns,
    check_entity,
    column_target,
    in_types,
    in_where,
    normalize,
    resolve_aggregate,
    strip_aggs,
)
from .schema import Schema
from .sql import run


def compile_task(con: duckdb.DuckDBPyConnection, schema: Schema, query: PredictQuery,
                 *, training: bool = True, test: bool = True) -> TaskPlan:
    """Resolve names against ``schema``, check the time rules and choose each split's anchors.

    Choosing anchors reads the data: how many examples each candidate anchor
    gives (planner/anchors.py). ``training=False`` plans scoring with a
    stored model: test anchors only (for EVALUATE), and a short history is
    no error; with ``test=False`` as well (scoring only) no anchor is chosen
    and no example counted.
    """
    query = normalize(schema, query)  # names as the catalog spells them (DuckDB ignores case)
    entity = check_entity(schema, query)
    options = query.options.with_depth(default_depth(schema, entity.name))  # layers unless the user set them
    target_column = query.target.column if query.target.aggregate is None else None
    resolved = []
    if target_column is None:
        resolved.append(resolve_aggregate(schema, entity, query.target.aggregate, role="target"))
    for i, agg in enumerate(query.aggregates[1:], start=1):
        resolved.append(resolve_aggregate(schema, entity, agg, role="filter" if in_where(query, i) else "assuming"))
    check_columns(strip_aggs(query.where), {entity.name: entity}, entity)
    check_columns(strip_aggs(query.assuming), {entity.name: entity}, entity)
    types_in = in_types(con, query)
    # "now": the latest time of any table the entity reaches, so a sparse target table cannot hide it
    now = latest_time(con, schema, query.as_of, reachable(schema, entity.name, len(schema.tables)))

    if target_column is not None:
        schema, task_type = column_target(schema, entity, query.target)
        entity = schema.tables[entity.name]
        if query.assuming is not None:
            raise PlanError("ASSUMING conditions on future rows; a column target has no future window")
        val = test = None
        if entity.time_column is not None:  # dated rows: train on the oldest 80 %, test on the newest 10 %
            val, test = time_quantiles(con, entity, target_column, query.as_of, options)
        elif training:
            _refuse_split_dates(entity.name, query)
        return TaskPlan(query, schema, entity, task_type, tuple(resolved), options, query.as_of, now, val, test,
                        column=target_column, in_types=types_in)

    target = resolved[0]
    agg = target.agg
    task_type = aggregate_task_type(query.target, target)
    lo, hi = time_bounds(con, target.table, query.as_of)
    if hi is None:
        raise PlanError(f"table `{target.table.name}` has no dated rows"
                        + (f" on or before {query.as_of}" if query.as_of else ""), agg.table_position)
    # a training row reads its label window and its ASSUMING windows: all must end by the validation start
    future = [agg] + [ra.agg for i, ra in enumerate(resolved) if i > 0 and not in_where(query, i)]
    windows = Windows(agg.end, agg.unit, options.anchor_step or (agg.end - agg.start),
                      tuple((a.end, a.unit) for a in future))
    base = TaskPlan(query, schema, entity, task_type, tuple(resolved), options, query.as_of, now, None, None,
                    in_types=types_in)

    def count(anchors: list[dt.datetime], split: str) -> dict[dt.datetime, int]:
        return dict(run(con, base.count_sql([(t, split) for t in anchors])))

    if not training and not test:
        return base
    population = f"exists in `{entity.name}`" + (" and passes the WHERE filter" if query.where is not None else "")
    # labels read the target table, so their windows end by its last row: after it the table may simply not
    # be filled in yet (Lahman's awards stop in 2017, its batting goes on to 2020), and labels there would
    # all say "nothing happened"; predictions are still made at "now"
    splits = choose_splits(windows, lo, hi, options.val_start, options.test_start, options.max_train_rows, count,
                           training=training, where=population)
    return dataclasses.replace(
        base, val_start=splits.val_start, test_start=splits.test_start,
        train_anchors=tuple(t for t, _ in splits.train), val_anchors=tuple(t for t, _ in splits.val),
        test_anchors=tuple(t for t, _ in splits.test),
        anchor_rows=tuple(n for part in (splits.train, splits.val, splits.test) for _, n in part),
        empty_splits=splits.empty)


def _refuse_split_dates(table: str, query: PredictQuery) -> None:
    """A static table's column target is split by a hash of its key, so a val_start / test_start would be ignored.

    Refused only when training: a stored model whose statement carries one
    (from before this check) still scores and evaluates.
    """
    given = [k for k in ("val_start", "test_start") if getattr(query.options, k) is not None]
    if given:
        raise PlanError(f"{' and '.join(given)} cannot apply: `{table}` has no time column, so the rows of "
                        f"`{table}.{query.target.column}` are split by a hash of their key (about 80 % training, "
                        f"10 % validation, 10 % test), not by date; drop {' and '.join(given)}, or give "
                        f"`{table}` a time column with ALTER GRAPH SET TIME COLUMN {sql_name(table)}(...)",
                        query.options_position)
