"""Anchor times: when examples are taken, and how they fall into training, validation and test.

Every example is an (entity, anchor time) pair; its label window is
``(anchor + start, anchor + end]``. This module holds the time arithmetic
(months and years follow the calendar, as DuckDB's ``to_months`` does), the
queries that find the time range a statement may see, and the choice of
each split's anchors (DESIGN.md section 3).

Splits are time windows, as in RelBench. With ``T`` the last time of the
table the labels count (no later than ``AS OF``): after it that table may
not be filled in yet, so no label window reaches past it. (Predictions are
made later, at "now": ``AS OF``, else the latest time of any dated table the
entity reaches, ``latest_time``.)

* test anchors step through ``[test_start, T - window]``;
* validation anchors through ``[val_start, test_start - window]``;
* training anchors back from ``val_start - window`` through all history,
  so every training label (and ASSUMING) window ends by ``val_start``.

Anchors lie on one grid, ``step`` apart (``anchor_step``, else the window's
length). An anchor where no entity gives an example (seasonal data: no
race in winter, no order on a holiday) is skipped rather than counted.
Without ``val_start`` / ``test_start`` the planner walks back from ``T``
and gives each evaluation split the most recent anchors until it holds
``EVAL_MIN_ROWS`` examples, but never more than ``EVAL_MAX_SHARE`` of the
history's anchors, so that a long history gives a metric that is not a coin
toss while a short one still leaves most anchors to training. If that
leaves no training example, each split falls back to one anchor.
Training walks back until it holds ``max_train_rows`` examples (most recent
first), or through all history when the cap is 0.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from dateutil.relativedelta import relativedelta
from sqlglot import exp

from .errors import PlanError, sql_name
from .nodes import time_value
from .schema import Schema, TableInfo
from .sql import col, lit, run, table

_SHIFT_FUNCS = {"SECONDS": "to_seconds", "MINUTES": "to_minutes", "HOURS": "to_hours", "DAYS": "to_days",
                "WEEKS": "to_weeks", "MONTHS": "to_months", "YEARS": "to_years"}
_RELATIVE = {"SECONDS": "seconds", "MINUTES": "minutes", "HOURS": "hours", "DAYS": "days",
             "WEEKS": "weeks", "MONTHS": "months", "YEARS": "years"}
#: the anchor of a database without any time column: everything is visible
STATIC_ANCHOR = dt.datetime(9999, 12, 31)
#: a default validation or test split holds at least this many examples (AUROC's standard error ~0.02) ...
EVAL_MIN_ROWS = 1_000
#: ... unless that would take more than this share of the history's anchors
EVAL_MAX_SHARE = 0.1
_FIRST_CHUNK, _MAX_CHUNK = 4, 1_024  # anchors counted per query while walking back (doubling)

#: ``count(anchors, split)`` -> examples per anchor (anchors without examples may be absent)
Counter = Callable[[list[dt.datetime], str], dict[dt.datetime, int]]


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
    """The first and last time of ``tinfo``'s rows (no later than ``as_of``); None, None without rows."""
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


def latest_time(con, schema: Schema, as_of: dt.datetime | None, tables: list[str] | None = None) -> dt.datetime:
    """"Now" for a statement: ``as_of``, else the last time of any dated row of ``tables`` (default: all).

    Far future for data without a time column. Taken over every table the
    statement reaches, not only the target's: a sparse target table (a
    yearly award) must not move "now" back before entities active since.
    """
    if as_of is not None:
        return as_of
    infos = [schema.tables[t] for t in (tables if tables is not None else schema.tables)]
    latest = [hi for t in infos if t.time_column for _, hi in [time_bounds(con, t, None)] if hi is not None]
    return max(latest) if latest else STATIC_ANCHOR


def time_quantiles(con, entity: TableInfo, column: str, as_of, options) -> tuple[dt.datetime, dt.datetime]:
    """Validation and test start for a column target of a dated table: options, else the 80 % / 90 % times."""
    t = time_value(entity)
    q = (exp.select(exp.func("quantile_disc", t, lit(0.8)), exp.func("quantile_disc", t.copy(), lit(0.9)),
                    exp.Min(this=t.copy()), exp.Max(this=t.copy()))
         .from_(table(entity.name)).where(exp.not_(col(column).is_(exp.null()))))
    if as_of is not None:
        q = q.where(t.copy() <= lit(as_of))
    val, test, first, last = run(con, q)[0]
    if first is not None and first == last and options.val_start is None and options.test_start is None:
        raise PlanError(f"every row of `{entity.name}` with a value of `{column}` is dated {first} "
                        f"(`{entity.time_column}`), so time cannot split training from validation and test rows; "
                        f"treat the table as static with ALTER GRAPH SET TIME COLUMN {sql_name(entity.name)}(NONE) "
                        f"(its rows are then split by a hash of their key)")
    if val is None and as_of is not None:
        dated = (exp.select(exp.Count(this=exp.Star())).from_(table(entity.name))
                 .where(exp.and_(exp.not_(col(column).is_(exp.null())), exp.not_(t.copy().is_(exp.null())))))
        if run(con, dated)[0][0]:  # rows with a time exist, all after AS OF
            raise PlanError(f"no row of `{entity.name}` with a value of `{column}` is dated on or before AS OF "
                            f"{as_of}: there is nothing yet to learn from; use a later AS OF")
    if val is None:
        raise PlanError(f"every row of `{entity.name}` with a value of `{column}` has a NULL time "
                        f"(`{entity.time_column}`), so there is no time to split training from test rows by; "
                        f"treat the table as static with ALTER GRAPH SET TIME COLUMN {sql_name(entity.name)}(NONE), "
                        f"or fill in `{entity.time_column}`")
    val = options.val_start or val
    test = options.test_start or test
    if not val <= test:
        raise PlanError(f"val_start {val} must not be after test_start {test}")
    return val, test


# ---- the anchor grid ------------------------------------------------------------------------
@dataclass(frozen=True)
class Windows:
    """The time geometry of a windowed target.

    ``end`` / ``unit``: the label window ends ``end`` units after the anchor;
    ``step``: units between anchors; ``train_ends``: ``(end, unit)`` of every
    future window a training row reads (its label and ASSUMING windows).
    """

    end: int
    unit: str
    step: int
    train_ends: tuple[tuple[int, str], ...]

    def latest_before(self, limit: dt.datetime) -> dt.datetime:
        """The latest anchor whose label window ends by ``limit``."""
        return shift(limit, -self.end, self.unit)

    def latest_training_before(self, limit: dt.datetime) -> dt.datetime:
        """The latest anchor whose label and ASSUMING windows all end by ``limit``."""
        return min(shift(limit, -e, u) for e, u in self.train_ends)

    def back(self, first: dt.datetime, k: int) -> dt.datetime:
        return _shift_clamped(first, -k * self.step, self.unit)

    def ends_by(self, t: dt.datetime, limit: dt.datetime) -> bool:
        return _shift_clamped(t, self.end, self.unit) <= limit

    def count_back(self, first: dt.datetime, lo: dt.datetime) -> int:
        """How many grid anchors ``first, first - step, ...`` lie no earlier than ``lo``."""
        if first < lo:
            return 0
        if self.unit in ("MONTHS", "YEARS"):
            months = self.step * (12 if self.unit == "YEARS" else 1)
            k = ((first.year - lo.year) * 12 + first.month - lo.month) // months
            while k > 0 and self.back(first, k) < lo:
                k -= 1
            return k + 1
        return (first - lo) // dt.timedelta(**{_RELATIVE[self.unit]: self.step}) + 1

    def describe(self) -> str:
        return f"{self.end} {self.unit.lower()}"


Anchors = tuple[tuple[dt.datetime, int], ...]  # (anchor, examples), ascending, anchors with examples only


def walk_back(windows: Windows, first: dt.datetime, lo: dt.datetime, count: Counter, split: str, *,
              rows: int = 0, anchors: int = 0) -> Anchors:
    """Grid anchors from ``first`` back to ``lo`` that hold examples, latest first, counted in chunks.

    Stops once they hold ``rows`` examples or number ``anchors`` (0: no limit).
    """
    out: list[tuple[dt.datetime, int]] = []
    total, k, size = 0, 0, _FIRST_CHUNK
    while True:
        chunk = [t for t in (windows.back(first, k + i) for i in range(size)) if t >= lo]
        if not chunk:
            break
        counts = count(chunk, split)
        for t in chunk:
            n = counts.get(t, 0)
            if n:
                out.append((t, n))
                total += n
                if (rows and total >= rows) or (anchors and len(out) >= anchors):
                    return tuple(sorted(out))
        k, size = k + size, min(2 * size, _MAX_CHUNK)
    return tuple(sorted(out))


def walk_forward(windows: Windows, first: dt.datetime, limit: dt.datetime, count: Counter, split: str) -> Anchors:
    """Grid anchors ``first, first + step, ...`` whose label windows end by ``limit``, those with examples."""
    grid = []
    while windows.ends_by(t := windows.back(first, -len(grid)), limit):
        grid.append(t)
    counts: dict[dt.datetime, int] = {}
    for i in range(0, len(grid), _MAX_CHUNK):
        counts.update(count(grid[i:i + _MAX_CHUNK], split))
    return tuple((t, counts[t]) for t in grid if counts.get(t))


class EmptySplit(NamedTuple):
    """A split that planning left without examples: ``why`` for the user, ``cause`` for the fix to offer.

    ``cause`` is ``"dates"`` (the statement's val_start / test_start leave no
    room), ``"history"`` (the label window is longer than the data) or
    ``"rows"`` (the dates leave room, but no entity gives an example there).
    """

    split: str  # "train", "val" or "test"
    why: str
    cause: str


@dataclass(frozen=True)
class Splits:
    """Anchors of each split with their example counts; ``empty``: each split left without examples."""

    train: Anchors
    val: Anchors
    test: Anchors
    val_start: dt.datetime
    test_start: dt.datetime
    empty: tuple[EmptySplit, ...] = ()


def choose_splits(windows: Windows, lo: dt.datetime, end: dt.datetime, val_start: dt.datetime | None,
                  test_start: dt.datetime | None, max_train_rows: int, count: Counter, *, training: bool,
                  where: str) -> Splits:
    """Each split's anchors over the history ``[lo, end]`` (module docstring: the rules).

    A split left without examples is named in ``empty`` with the reason,
    phrased for a user (``where`` describes the entity population): the
    engine refuses to train without training or validation examples and
    skips test metrics without test examples. ``training=False`` (scoring
    a stored model) chooses test anchors only.
    """
    history = windows.count_back(windows.latest_before(end), lo)
    rules = [(EVAL_MIN_ROWS, max(1, int(EVAL_MAX_SHARE * history)))]
    if test_start is None or val_start is None:
        rules.append((1, 1))  # short history: one anchor each rather than nothing to train on
    for rows, share in rules:
        splits = _choose(windows, lo, end, val_start, test_start, max_train_rows, count, training, rows, share)
        if splits.train or not training:
            break
    empty = []
    if not splits.test:
        if test_start is not None and not windows.ends_by(test_start, end):
            why, cause = (f"test_start {test_start} leaves no room for a {windows.describe()} label window before "
                          f"{end}, the last time of the table the label counts"), "dates"
        elif test_start is None and val_start is not None and \
                not windows.ends_by(_shift_clamped(val_start, windows.end, windows.unit), end):
            why, cause = (f"val_start {val_start} leaves no room for a {windows.describe()} validation and a "
                          f"{windows.describe()} test label window before {end}, the last time of the table the "
                          f"label counts"), "dates"
        else:
            why, cause = (_no_room(windows, lo, end, end, "test") if test_start is None else None) or \
                (f"no test anchor from {splits.test_start} has an entity that {where}", "rows")
        empty.append(EmptySplit("test", why, cause))
    if training and not splits.val:
        empty.append(EmptySplit("val", *_empty_val(windows, lo, end, val_start, test_start, splits.test_start, where)))
    if training and not splits.train:
        room = _no_room(windows, lo, min(splits.val_start, end), end, "training", train=True)
        if room:
            why, cause = room
        elif not (splits.val or splits.test):
            why, cause = f"no anchor from {lo} to {end} has an entity that {where}", "rows"
        else:
            why, cause = (f"not enough history ({lo} to {end}) for a training window of {windows.describe()} before "
                          f"the validation start {splits.val_start} with an entity that {where}"), "rows"
        empty.append(EmptySplit("train", why, cause))
    return dataclasses.replace(splits, empty=tuple(empty))


def _no_room(windows: Windows, lo: dt.datetime, limit: dt.datetime, end: dt.datetime, split: str, *,
             train: bool = False) -> tuple[str, str] | None:
    """Why (and the ``EmptySplit.cause``) no anchor from the first row ``lo`` has room for its windows
    before ``limit``; None if one has.

    Dates, not entities, are then the cause: the window is longer than the
    history (``limit`` is the end), or the split's end leaves no room.
    """
    latest = windows.latest_training_before(limit) if train else windows.latest_before(limit)
    if latest >= lo:
        return None
    label = "label and ASSUMING windows" if train and len(windows.train_ends) > 1 else \
        f"{windows.describe()} label window"
    if limit >= end:
        return (f"the {label} {'are' if label.endswith('windows') else 'is'} longer than the history: the table "
                f"the label counts runs from {lo} to {end}, so no {split} anchor has a label window that ends by "
                f"{end}"), "history"
    if train:
        return (f"not enough history ({lo} to {end}) before the validation start {limit}: no training anchor "
                f"from the first row at {lo} on has its {label} end by {limit}"), "dates"
    return f"no {split} anchor from the first row at {lo} has room for a {label} before {limit}", "dates"


def _empty_val(windows: Windows, lo: dt.datetime, end: dt.datetime, val_start: dt.datetime | None,
               test_start: dt.datetime | None, chosen_test_start: dt.datetime, where: str) -> tuple[str, str]:
    """Why (and the cause) validation holds no anchor: a span without room (dates), else no entity (``where``)."""
    val_end = min(chosen_test_start, end)
    if val_start is None:
        return (_no_room(windows, lo, val_end, end, "validation")
                or (f"no anchor before {chosen_test_start} whose {windows.describe()} label window ends by "
                    f"{val_end} has an entity that {where}", "rows"))
    if test_start is not None and val_start >= test_start:
        return (f"val_start {val_start} equals test_start, so the validation span from val_start to test_start is "
                f"empty (one {windows.describe()} label window needs val_start that much before test_start)",
                "dates")
    if not windows.ends_by(val_start, val_end):
        bound = ("test_start" if val_end == test_start else "the last time of the table the label counts"
                 if val_end == end else "the first test anchor")
        return (f"no anchor from val_start {val_start} has room for a {windows.describe()} label window before "
                f"{val_end} ({bound})", "dates")
    return (f"no anchor from val_start {val_start} whose {windows.describe()} label window ends by {val_end} has "
            f"an entity that {where}", "rows")


def _choose(windows, lo, end, val_start, test_start, max_train_rows, count, training, rows, share) -> Splits:
    if test_start is not None:
        test = walk_forward(windows, test_start, end, count, "test")
    else:
        floor = shift(val_start, windows.end, windows.unit) if val_start is not None else lo
        test = walk_back(windows, windows.latest_before(end), floor, count, "test", rows=rows, anchors=share)
        test_start = test[0][0] if test else end
    if not training:
        return Splits((), (), test, val_start or test_start, test_start)
    val_end = min(test_start, end)
    if val_start is not None:
        val = walk_forward(windows, val_start, val_end, count, "val")
    else:
        val = walk_back(windows, windows.latest_before(val_end), lo, count, "val", rows=rows, anchors=share)
        val_start = val[0][0] if val else val_end
    train = walk_back(windows, windows.latest_training_before(min(val_start, end)), lo, count, "train",
                      rows=max_train_rows)
    return Splits(train, val, test, val_start, test_start)
