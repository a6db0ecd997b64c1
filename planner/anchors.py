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
    """``t + n UNIT`` with calendar months and years, as DuckDB's ``to_months`` does.

    A PlanError, not Python's OverflowError, when the result leaves the years 1 to 9999.
    """
    try:
        return t + relativedelta(**{_RELATIVE[unit]: n})
    except (OverflowError, ValueError):
        raise PlanError(f"{t} {'+' if n >= 0 else '-'} {abs(n):,} {unit} lies outside the years 1 to 9999 that "
                        f"times can hold; use a shorter window or step, or another AS OF / val_start / "
                        f"test_start") from None


def _shift_clamped(t: dt.datetime, n: int, unit: str) -> dt.datetime:
    """``shift``, but the earliest / latest representable time past the calendar's ends (anchor grids stop there)."""
    try:
        return t + relativedelta(**{_RELATIVE[unit]: n})
    except (OverflowError, ValueError):
        return dt.datetime.min if n < 0 else dt.datetime.max


def shift_sql(t: exp.Expression, n: int, unit: str) -> exp.Expression:
    return exp.Add(this=t, expression=exp.func(_SHIFT_FUNCS[unit], lit(n)))


def time_bounds(con, tinfo: TableInfo, as_of: dt.datetime | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    t = time_value(tinfo)
    q = exp.select(exp.Min(this=t), exp.Max(this=t.copy())).from_(table(tinfo.name))
    if as_of is not None:
        q = q.where(t.copy() <= lit(as_of))
    lo, hi = run(con, q)[0]
    for v in (lo, hi):
        if v is not None and not isinstance(v, dt.datetime):  # DuckDB hands BC or year > 9999 times over as text
            raise PlanError(f"table `{tinfo.name}` has a row dated {v} (`{tinfo.time_column}`); times before the "
                            f"year 1 or after 9999 cannot be planned with: set such times to NULL (an undated row "
                            f"is static), or declare another time column with ALTER GRAPH SET TIME COLUMN")
    if hi is not None and hi.year >= PLACEHOLDER_YEAR:
        _refuse_placeholder_dates(con, tinfo, hi, as_of)
    return lo, hi


#: rows dated this late, a century after the table's other rows, are placeholders ("never", "unknown")
PLACEHOLDER_YEAR = 2200


def _refuse_placeholder_dates(con, tinfo: TableInfo, hi: dt.datetime, as_of: dt.datetime | None) -> None:
    """A PlanError when ``tinfo``'s latest time (``hi``) lies a century after all its other rows.

    Anchors are placed at the end of the data, so a row dated 9999-12-31
    would put every anchor in year 9999, where no other row lies, and every
    label would be the same; saying why is better than saying that.
    """
    t = time_value(tinfo)
    gap = _shift_clamped(hi, -100, "YEARS")
    q = exp.select(exp.Max(this=t), exp.Count(this=exp.Star())).from_(table(tinfo.name)).where(t.copy() < lit(gap))
    if as_of is not None:
        q = q.where(t.copy() <= lit(as_of))
    before, n = run(con, q)[0]
    if before is None:
        return  # every row is that late: the data's own time, not a placeholder
    raise PlanError(f"table `{tinfo.name}` has rows dated up to {hi}, more than 100 years after its other "
                    f"{n:,} rows (the latest {before}): anchors would be placed there, where no other row lies. "
                    f"Such dates are usually placeholders for 'unknown' or 'never': set them to NULL "
                    f"(undated rows are static), or predict as of a real date with AS OF TIMESTAMP '...'")



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
        raise PlanError(f"every row of `{entity.name}` with a value of `{column}` has a NULL time "
                        f"(`{entity.time_column}`), so there is no time to split training from test rows by; "
                        f"treat the table as static with ALTER GRAPH SET TIME COLUMN {entity.name}(NONE), "
                        f"or fill in `{entity.time_column}`")
    val = options.val_start or val
    test = options.test_start or test
    if not val <= test:
        raise PlanError(f"val_start {val} must not be after test_start {test}")
    return val, test


