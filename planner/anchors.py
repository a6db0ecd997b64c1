"""Anchor times: when examples are taken, and the calendar arithmetic of windows.

Every example is an (entity, anchor time) pair; its label window is
``(anchor + start, anchor + end]``. This module holds the time arithmetic
(months and years follow the calendar, as DuckDB's ``to_months`` does) and
the queries that find the time range of the data a statement may see.
"""
from __future__ import annotations

import datetime as dt

from dateutil.relativedelta import relativedelta
from sqlglot import exp

from .errors import PlanError
from .nodes import time_value
from .schema import Schema, TableInfo
from .sql import col, lit, run, table

_SHIFT_FUNCS = {"SECONDS": "to_seconds", "MINUTES": "to_minutes", "HOURS": "to_hours", "DAYS": "to_days",
                "WEEKS": "to_weeks", "MONTHS": "to_months", "YEARS": "to_years"}
_RELATIVE = {"SECONDS": "seconds", "MINUTES": "minutes", "HOURS": "hours", "DAYS": "days",
             "WEEKS": "weeks", "MONTHS": "months", "YEARS": "years"}
MAX_TRAIN_ANCHORS = 64
#: the anchor of a database without any time column: everything is visible
STATIC_ANCHOR = dt.datetime(9999, 12, 31)


def shift(t: dt.datetime, n: int, unit: str) -> dt.datetime:
    """``t + n UNIT`` with calendar months and years, as DuckDB's ``to_months`` does."""
    return t + relativedelta(**{_RELATIVE[unit]: n})


def shift_sql(t: exp.Expression, n: int, unit: str) -> exp.Expression:
    return exp.Add(this=t, expression=exp.func(_SHIFT_FUNCS[unit], lit(n)))


def time_bounds(con, tinfo: TableInfo, as_of: dt.datetime | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    t = time_value(tinfo)
    q = exp.select(exp.Min(this=t), exp.Max(this=t.copy())).from_(table(tinfo.name))
    if as_of is not None:
        q = q.where(t.copy() <= lit(as_of))
    lo, hi = run(con, q)[0]
    return lo, hi



def latest_time(con, schema: Schema, as_of: dt.datetime | None) -> dt.datetime:
    """The last time of any dated row (no later than ``as_of``); far future for a static database."""
    latest = [hi for t in schema.tables.values() if t.time_column for _, hi in [time_bounds(con, t, as_of)]
              if hi is not None]
    return as_of or (max(latest) if latest else STATIC_ANCHOR)


def time_quantiles(con, entity: TableInfo, column: str, as_of, options) -> tuple[dt.datetime, dt.datetime]:
    """Validation and test start for a column target of a dated table: options, else the 80 % / 90 % times."""
    t = time_value(entity)
    q = (exp.select(exp.func("quantile_disc", t, lit(0.8)), exp.func("quantile_disc", t.copy(), lit(0.9)))
         .from_(table(entity.name)).where(exp.not_(col(column).is_(exp.null()))))
    if as_of is not None:
        q = q.where(t.copy() <= lit(as_of))
    val, test = run(con, q)[0]
    if val is None:
        raise PlanError(f"`{entity.name}.{column}` has no dated row with a value to learn from")
    val = options.val_start or val
    test = options.test_start or test
    if not val <= test:
        raise PlanError(f"val_start {val} must not be after test_start {test}")
    return val, test


