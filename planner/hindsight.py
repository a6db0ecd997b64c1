"""Timestamp columns written in hindsight: a running "last time" that the database holds as of its end.

A column such as ``people.finalGame`` or ``customers.last_order_at`` is kept
up to date as rows arrive, so a snapshot of the database shows only its final
value. The time rules hide a timestamp that lies after an example's anchor, as
if it were NULL; that is honest for a value set once (``delivered_at``,
``churned_at``: before it happens the real column *is* NULL), but not for a
running last time: on the anchor date every active player had a last game,
yet the snapshot shows a value only for the players who never played again.
"Known" then means "retired", and the model learns the future.

No type tells the two apart; the data does. A running last time follows the
last of the row's dated children and is set for nearly every row that has
children; a set-once date is NULL for most rows that have not reached it.
``hindsight_columns`` flags a timestamp column of a parent table when, over
its rows with children at ``MIN_CHILDREN`` distinct times or more through one
link,

* it is set for at least ``SHARE`` of them, and
* for at least ``SHARE`` of those set, the children dated after it share at
  most one time (one, not none: a season's rows may be dated at the season's
  end, after the last game; distinct times, not rows: a player's two teams of
  his last season are one season).

Three times, not two: with two, a first-order date has one time after it
too. On the Lahman database (players since 1980), ``people.finalGame``
follows the last batting season of all 5,837 players with three seasons or
more, and ``debut`` of none (counting rows instead of times: 88 %, missed).
The reader turns a flagged column into an ignored one, with a note; ``ALTER
GRAPH UNIGNORE COLUMN`` keeps it where the user knows better.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

from .sql import alias, col, lit, run, table

#: ``(table, column, alias)`` -> that column under that alias as a naive UTC TIMESTAMP (``schema.as_timestamp``,
#: which knows the column's type: a TIMESTAMPTZ is not cast as a naive TIMESTAMP is)
TimeOf = Callable[[str, str, str], exp.Expression]

#: distinct times of its children a parent row needs before its column is compared with them
MIN_CHILDREN = 3
#: parent rows with that many children needed before anything is concluded
MIN_ROWS = 20
#: share of rows set, and of set rows followed by at most one child, that flags a column
SHARE = 0.9


@dataclass(frozen=True)
class Hindsight:
    """Why ``table.column`` was flagged: it follows the last ``child`` row in ``follows`` of ``rows`` rows."""

    table: str
    column: str
    child: str
    rows: int
    follows: int

    @property
    def note(self) -> str:
        return (f"column `{self.table}.{self.column}` is not a feature: it follows the last of its `{self.child}` "
                f"rows for {self.follows:,} of {self.rows:,} {self.table} rows, a running last time that the "
                f"database holds as of its end (hidden after each anchor, it would tell which rows have a future); "
                f"ALTER GRAPH UNIGNORE COLUMN {self.table}({self.column}) keeps it")


def follow_counts_sql(parent: str, columns: list[str], parent_columns: tuple[str, ...], child: str,
                      child_columns: tuple[str, ...], child_time: str, as_of: dt.datetime | None,
                      time_of: TimeOf) -> exp.Select:
    """``rows``, then ``set<i>`` and ``follows<i>`` per column of ``columns``, over the parent rows whose
    children span ``MIN_CHILDREN`` distinct times or more: one scan of the link for all of a table's columns."""
    p, c = "__p", "__c"
    on = exp.and_(*[col(pc, p).eq(col(cc, c)) for pc, cc in zip(parent_columns, child_columns)])
    t = time_of(child, child_time, c)
    where = t.copy().is_(exp.null()).not_()
    if as_of is not None:
        where = exp.and_(where, t.copy() <= lit(as_of))
    per_row, outer = [], [alias(exp.Count(this=exp.Star()), "rows")]
    for i, column in enumerate(columns):
        v = time_of(parent, column, p)
        # distinct times, not rows: a player's two teams in his last season are one season after his last game
        after = exp.Filter(this=exp.Count(this=exp.Distinct(expressions=[t.copy()])),
                           expression=exp.Where(this=t.copy() > v.copy()))
        per_row += [alias(exp.func("any_value", v), f"v{i}"), alias(after, f"after{i}")]
        is_set = col(f"v{i}").is_(exp.null()).not_()
        outer += [alias(exp.func("count_if", is_set), f"set{i}"),
                  alias(exp.func("count_if", exp.and_(is_set.copy(), col(f"after{i}") <= lit(1))), f"follows{i}")]
    rows = (exp.select(*per_row).from_(table(parent, p)).join(table(child, c), on=on).where(where)
            .group_by(*[col(pc, p) for pc in parent_columns])
            .having(exp.Count(this=exp.Distinct(expressions=[t.copy()])) >= lit(MIN_CHILDREN)))
    return exp.select(*outer).from_(rows.subquery("__r"))


def flagged(rows: int, set_: int, follows: int) -> bool:
    return rows >= MIN_ROWS and set_ >= SHARE * rows and follows >= SHARE * set_


def hindsight_columns(con, candidates: dict[str, list[str]], links, time_columns: dict[str, str | None],
                      as_of: dt.datetime | None, time_of: TimeOf) -> list[Hindsight]:
    """The columns of ``candidates`` (table -> its timestamp feature columns) that are running last times.

    ``links`` are the schema's links, ``time_columns`` each table's time column (None: static),
    ``time_of`` reads a column as a time.
    """
    out, found = [], set()
    for parent, columns in candidates.items():
        for lk in links:
            child_time = time_columns.get(lk.child)
            todo = [c for c in columns if (parent, c) not in found]
            if lk.parent != parent or child_time is None or lk.child == parent or not todo:
                continue
            rows, *counts = run(con, follow_counts_sql(parent, todo, lk.parent_columns, lk.child, lk.child_columns,
                                                       child_time, as_of, time_of))[0]
            for column, set_, follows in zip(todo, counts[0::2], counts[1::2]):
                if flagged(rows, set_, follows):
                    out.append(Hindsight(parent, column, lk.child, rows, follows))
                    found.add((parent, column))
    return out
