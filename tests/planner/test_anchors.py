"""Anchor grids and split choice: hand-computed grids, seasonal data, sparse target tables, the time rules.

The first tests drive ``planner.anchors`` with a counting function written
here (examples per anchor given by hand); the later ones plan real
statements over small generated databases.
"""
from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow.compute as pc
import pytest
import sqlglot

from rdl_sql.planner.anchors import (
    EVAL_MIN_ROWS,
    Windows,
    choose_splits,
    shift,
    walk_back,
    walk_forward,
)
from rdl_sql.planner.options import Options
from rdl_sql.planner.query import AggRef, Aggregate, PredictQuery, Target
from rdl_sql.planner.schema import read_schema
from rdl_sql.planner.sql import arrow, run
from rdl_sql.planner.task import compile_task

D = dt.datetime
DAY = dt.timedelta(days=1)
DAYS10 = Windows(10, "DAYS", 10, ((10, "DAYS"),))


class Counter:
    """Examples per anchor from a function of the anchor; records every call (one per counting query)."""

    def __init__(self, per_anchor):
        self.per_anchor = per_anchor
        self.calls: list[tuple[int, str]] = []

    def __call__(self, anchors, split):
        self.calls.append((len(anchors), split))
        return {t: n for t in anchors if (n := self.per_anchor(t, split))}


def every(n):
    return Counter(lambda t, split: n)


# ---- the grid ------------------------------------------------------------------------------
def test_grid_arithmetic_by_hand():
    assert DAYS10.latest_before(D(2024, 1, 25)) == D(2024, 1, 15)
    # 2024-01-15, 01-05, 12-26, ..., 10-07: 11 anchors no earlier than 2023-10-01
    assert DAYS10.count_back(D(2024, 1, 15), D(2023, 10, 1)) == 11
    assert DAYS10.count_back(D(2023, 10, 1), D(2023, 10, 1)) == 1
    assert DAYS10.count_back(D(2023, 9, 30), D(2023, 10, 1)) == 0
    months = Windows(1, "MONTHS", 2, ((1, "MONTHS"),))
    # 2024-03-31, 01-31, 2023-11-30, 09-30, 07-31 (calendar months clamp to the month's end)
    assert [months.back(D(2024, 3, 31), k) for k in range(3)] == [D(2024, 3, 31), D(2024, 1, 31), D(2023, 11, 30)]
    assert months.count_back(D(2024, 3, 31), D(2023, 7, 31)) == 5
    assert months.count_back(D(2024, 3, 31), D(2023, 8, 1)) == 4
    # a training row with a 30-day ASSUMING window must stop 30 days before the limit, not 10
    both = Windows(10, "DAYS", 10, ((10, "DAYS"), (30, "DAYS")))
    assert both.latest_training_before(D(2024, 1, 31)) == D(2024, 1, 1)


def test_walk_back_skips_anchors_without_examples_and_stops_at_the_row_goal():
    # examples only at anchors in even months
    c = Counter(lambda t, split: 300 if t.month % 2 == 0 else 0)
    got = walk_back(DAYS10, D(2024, 4, 30), D(2020, 1, 1), c, "val", rows=1_000)
    assert [n for _, n in got] == [300] * 4
    assert all(t.month % 2 == 0 for t, _ in got)
    assert [t for t, _ in got] == sorted(t for t, _ in got)
    assert got[-1][0] == D(2024, 4, 30) and got[0][0] == D(2024, 2, 20)  # April holds 3, the 4th is in February
    assert c.calls[0] == (4, "val")


def test_walk_back_stops_at_the_anchor_goal_and_at_the_start_of_history():
    got = walk_back(DAYS10, D(2024, 1, 15), D(2023, 10, 1), every(5), "test", rows=1_000, anchors=2)
    assert [t for t, _ in got] == [D(2024, 1, 5), D(2024, 1, 15)]
    everything = walk_back(DAYS10, D(2024, 1, 15), D(2023, 10, 1), every(5), "train")
    assert len(everything) == 11 and everything[0][0] == D(2023, 10, 7)


def test_walk_back_counts_in_growing_chunks_not_anchor_by_anchor():
    c = every(1)
    got = walk_back(Windows(1, "DAYS", 1, ((1, "DAYS"),)), D(2024, 1, 1), D(2020, 1, 1), c, "train", rows=200)
    assert len(got) == 200
    assert [n for n, _ in c.calls] == [4, 8, 16, 32, 64, 128]  # one query per chunk, doubling


def test_walk_forward_steps_from_the_start_while_the_window_fits():
    c = Counter(lambda t, split: 0 if t == D(2024, 1, 10) else 7)
    got = walk_forward(DAYS10, D(2024, 1, 1), D(2024, 2, 1), c, "val")
    # 01-01, 01-11 (window ends 01-21), 01-21 (ends 01-31); 01-31 would end 02-10
    assert got == ((D(2024, 1, 1), 7), (D(2024, 1, 11), 7), (D(2024, 1, 21), 7))
    assert walk_forward(DAYS10, D(2024, 1, 25), D(2024, 2, 1), c, "val") == ()


# ---- choosing the splits ---------------------------------------------------------------------
def splits(count, lo=D(2020, 1, 1), end=D(2024, 1, 1), val_start=None, test_start=None, cap=0, windows=DAYS10,
           training=True):
    return choose_splits(windows, lo, end, val_start, test_start, cap, count, training=training,
                         where="exists in `t`")


def test_default_evaluation_splits_take_recent_anchors_until_they_hold_enough_examples():
    s = splits(every(300))
    # 1,000 examples need 4 anchors of 300; each split's label windows end by the next split's start
    assert [t for t, _ in s.test] == [D(2023, 11, 22), D(2023, 12, 2), D(2023, 12, 12), D(2023, 12, 22)]
    assert len(s.val) == 4 and s.val[-1][0] + 10 * DAY <= s.test_start == s.test[0][0]
    assert s.train[-1][0] + 10 * DAY <= s.val_start == s.val[0][0]
    assert s.train[0][0] >= D(2020, 1, 1) and s.empty == ()
    assert sum(n for _, n in s.test) >= EVAL_MIN_ROWS


def test_default_evaluation_splits_take_at_most_a_tenth_of_the_history():
    s = splits(every(3))  # 146 anchors of history, 3 examples each: 14 anchors, far below 1,000 examples
    assert len(s.test) == len(s.val) == 14


def test_seasonal_counts_give_multi_anchor_validation():
    # examples only from April to September: the latest anchors (winter) are skipped, not fatal
    c = Counter(lambda t, split: 120 if 4 <= t.month <= 9 else 0)
    s = splits(c)
    assert len(s.test) == 9 and len(s.val) == 9  # 1,000 examples / 120 per anchor
    assert all(4 <= t.month <= 9 for part in (s.train, s.val, s.test) for t, _ in part)
    assert s.test[-1][0] < D(2023, 10, 1) and s.empty == ()


def test_user_dates_step_forward_and_skip_empty_anchors():
    c = Counter(lambda t, split: 50 if 4 <= t.month <= 9 else 0)
    s = splits(c, val_start=D(2022, 12, 1), test_start=D(2023, 6, 1))
    assert s.val_start == D(2022, 12, 1) and s.test_start == D(2023, 6, 1)
    # validation 12-01, 12-11, ... 05-20 (05-30's window would end after 06-01): April and May hold examples
    assert [t for t, _ in s.val] == [D(2023, 4, 10), D(2023, 4, 20), D(2023, 4, 30), D(2023, 5, 10), D(2023, 5, 20)]
    assert all(t + 10 * DAY <= D(2023, 6, 1) for t, _ in s.val)
    assert s.test[0][0] == D(2023, 6, 1) and all(t.month <= 9 for t, _ in s.test)
    assert s.train[-1][0] <= D(2022, 11, 21)


def test_max_train_rows_stops_the_training_walk_once_the_cap_is_reached():
    c = every(300)
    s = splits(c, cap=1_000)
    assert len(s.train) == 4  # 900 < 1,000 <= 1,200: the 4th anchor is sampled later
    assert s.train[-1][0] + 10 * DAY <= s.val_start


def test_short_history_falls_back_to_one_anchor_per_evaluation_split():
    # 5 anchors of history, examples everywhere: a tenth of it is 1 anchor, leaving 3 to training
    s = splits(every(300), lo=D(2023, 11, 12))
    assert len(s.test) == len(s.val) == 1 and len(s.train) == 3
    # 3 anchors with examples but a 2-anchor rule would take them all: one each leaves one to train
    c = Counter(lambda t, split: 1 if t >= D(2023, 11, 30) else 0)
    s = splits(c, lo=D(2023, 11, 1))
    assert len(s.test) == len(s.val) == len(s.train) == 1


def test_empty_splits_are_named_with_the_reason_and_its_cause():
    s = splits(every(5), test_start=D(2023, 12, 25))
    (test,) = s.empty
    assert s.test == () and test.split == "test" and "leaves no room for a 10 days label window" in test.why
    assert test.cause == "dates"  # the user's test_start: EVALUATE offers a later AS OF / an earlier test_start
    assert s.val and s.train
    nothing = splits(every(0))
    why = {e.split: e for e in nothing.empty}
    assert set(why) == {"train", "val", "test"} and {e.cause for e in nothing.empty} == {"rows"}
    assert "no anchor from 2020-01-01 00:00:00 to 2024-01-01 00:00:00 has an entity" in why["train"].why
    short = splits(every(5), lo=D(2023, 12, 10))  # 2 anchors of history (12-12, 12-22): test and validation
    (train,) = short.empty
    assert short.test and short.val and "not enough history" in train.why and train.split == "train"
    tiny = splits(every(5), lo=D(2023, 12, 28))  # less history than one 10-day window
    assert {e.split: e.cause for e in tiny.empty}["test"] == "history"
    assert "longer than the history" in {e.split: e.why for e in tiny.empty}["test"]


def test_scoring_plans_choose_test_anchors_only():
    c = every(300)
    s = splits(c, training=False)
    assert s.train == () == s.val and len(s.test) == 4
    assert {split for _, split in c.calls} == {"test"}


# ---- real statements: seasonal data ------------------------------------------------------------
SEASON = """
CREATE TABLE players (player_id INTEGER PRIMARY KEY, joined_at TIMESTAMP);
CREATE TABLE games (game_id INTEGER PRIMARY KEY, player_id INTEGER REFERENCES players (player_id),
                    played_at TIMESTAMP, points DOUBLE);
INSERT INTO players SELECT i, TIMESTAMP '2020-01-01' FROM range(1, 201) t(i);
INSERT INTO games
SELECT row_number() OVER (ORDER BY d.day, p.player_id), p.player_id, d.day + INTERVAL 12 HOUR, p.player_id % 7
FROM players p, (SELECT unnest(generate_series(TIMESTAMP '2020-04-01', TIMESTAMP '2023-09-30', INTERVAL 3 DAY))
                 AS day) d
WHERE month(d.day) BETWEEN 4 AND 9 AND hash(p.player_id, d.day) % 100 < 30;
"""


@pytest.fixture
def season():
    """200 players whose games happen only from April to September, 2020 to 2023 (none in winter)."""
    c = duckdb.connect()
    try:
        c.execute(SEASON)
        yield c
    finally:
        c.close()


def agg(func, table, start, end, unit="DAYS", column=None):
    return Aggregate(func, table, column, start, end, unit)


def active_query(as_of=None, options=(), entity_in=None) -> PredictQuery:
    """PREDICT COUNT(games.*, 0, 7, DAYS) > 0 FOR EACH players.player_id WHERE COUNT(games.*, -14, 0, DAYS) > 0."""
    target, recent = agg("COUNT", "games", 0, 7), agg("COUNT", "games", -14, 0)
    where = sqlglot.exp.GT(this=AggRef(this=1), expression=sqlglot.exp.Literal.number(0))
    return PredictQuery(Target(target, ">", 0), "players", ("player_id",), where=where, aggregates=(target, recent),
                        as_of=as_of, options=Options.parse([(k, v, None) for k, v in options]),
                        entity_in=entity_in)


def plan_of(con, q):
    return compile_task(con, read_schema(con), q)


def test_seasonal_data_gives_multi_anchor_validation_and_test(season):
    p = plan_of(season, active_query())
    assert len(p.val_anchors) > 1 and len(p.test_anchors) > 1
    assert p.empty_splits == ()
    ex = arrow(season, p.examples_sql(p.split_anchors()))
    for s in ("val", "test"):
        rows = ex.filter(pc.equal(ex.column("split"), s))
        assert rows.num_rows >= EVAL_MIN_ROWS, s
        assert len(set(rows.column("anchor_time").to_pylist())) > 1, s
    # every anchor of every split holds an example: winter anchors were skipped
    assert set(ex.column("anchor_time").to_pylist()) == {t for t, _ in p.split_anchors()}
    assert all(4 <= t.month <= 10 for t, _ in p.split_anchors())


def test_seasonal_data_with_a_winter_val_start_as_a_benchmark_sets_it(season):
    p = plan_of(season, active_query(options=[("val_start", "2022-12-01"), ("test_start", "2023-06-01")]))
    assert p.empty_splits == ()
    assert p.val_anchors[0] >= D(2023, 4, 1) and len(p.val_anchors) > 5  # winter skipped, spring kept
    assert all(t + 7 * DAY <= D(2023, 6, 1) for t in p.val_anchors)
    assert p.test_anchors[0] == D(2023, 6, 1)
    assert all(t + 7 * DAY <= D(2022, 12, 1) for t in p.train_anchors)
    # no 64-anchor cut: with no cap, training reaches back to the first season
    q = plan_of(season, active_query(options=[("max_train_rows", 0)]))
    assert len(q.train_anchors) > 64 and q.train_anchors[0].year == 2020


def test_as_of_cuts_anchor_choice_and_counts_on_seasonal_data(season):
    as_of = D(2022, 8, 15)
    p = plan_of(season, active_query(as_of=as_of))
    before = arrow(season, p.examples_sql(p.split_anchors()))
    # plant a game for everyone just after AS OF and every week after it, and a late signup
    season.execute("""
        INSERT INTO players VALUES (999, TIMESTAMP '2022-08-16');
        INSERT INTO games SELECT 10000000 + row_number() OVER (), p.player_id,
                                 TIMESTAMP '2022-08-15' + d.k * INTERVAL 7 DAY + INTERVAL 1 MICROSECOND, 100
        FROM players p, range(0, 60) d(k)""")
    q = plan_of(season, active_query(as_of=as_of))
    assert q.split_anchors() == p.split_anchors() and q.anchor_rows == p.anchor_rows
    assert arrow(season, q.examples_sql(q.split_anchors())).equals(before)
    assert all(t + 7 * DAY <= as_of for t in q.test_anchors)


# ---- labels never read past the next split's start ---------------------------------------------
def test_planted_rows_after_each_split_start_change_no_earlier_split(season):
    p = plan_of(season, active_query(options=[("val_start", "2022-06-01"), ("test_start", "2022-09-01")]))

    def labels(split):
        rows = arrow(season, p.examples_sql(p.split_anchors())).to_pylist()
        return [(r["player_id"], r["anchor_time"], r["label"]) for r in rows if r["split"] == split]

    def plant(i, when):  # a game for every player just after ``when``
        season.execute("INSERT INTO games SELECT 20000000 + ? * 1000 + player_id, player_id, ?, 5 FROM players",
                       [i, when + dt.timedelta(microseconds=1)])

    train, val, test = labels("train"), labels("val"), labels("test")
    plant(0, p.test_start)
    assert labels("train") == train and labels("val") == val  # validation windows end by test_start
    assert labels("test") != test  # the rows were within reach: the test labels did change
    plant(1, p.val_start)
    assert labels("train") == train  # training windows end by val_start
    assert {(r[0], r[1]): r[2] for r in labels("val")}[(1, p.val_start)] == 1.0


# ---- the prediction anchor ---------------------------------------------------------------------
SPARSE = """
CREATE TABLE players (player_id INTEGER PRIMARY KEY, debut_at TIMESTAMP);
CREATE TABLE games (game_id INTEGER PRIMARY KEY, player_id INTEGER REFERENCES players (player_id),
                    played_at TIMESTAMP);
CREATE TABLE awards (award_id INTEGER PRIMARY KEY, player_id INTEGER REFERENCES players (player_id),
                     awarded_at TIMESTAMP);
CREATE TABLE server_log (line_id INTEGER PRIMARY KEY, logged_at TIMESTAMP);  -- reaches no player
INSERT INTO players SELECT i, TIMESTAMP '2015-01-01' + i * INTERVAL 30 DAY FROM range(1, 101) t(i);
INSERT INTO games SELECT row_number() OVER (), p.player_id, p.debut_at + k * INTERVAL 20 DAY
FROM players p, range(0, 200) g(k) WHERE p.debut_at + k * INTERVAL 20 DAY <= TIMESTAMP '2023-12-31';
-- one award a year, on January 1st, the last in 2023
INSERT INTO awards SELECT y, 1 + (y * 37) % 60, make_timestamp(2015 + y, 1, 1, 0, 0, 0) FROM range(0, 9) t(y);
INSERT INTO server_log VALUES (1, TIMESTAMP '2030-01-01');
"""


@pytest.fixture
def sparse():
    c = duckdb.connect()
    try:
        c.execute(SPARSE)
        yield c
    finally:
        c.close()


def award_query(**kw) -> PredictQuery:
    target = agg("COUNT", "awards", 0, 1, "YEARS")
    return PredictQuery(Target(target, ">", 0), "players", ("player_id",), aggregates=(target,), **kw)


def test_prediction_anchor_is_the_latest_time_the_entity_reaches_not_the_targets(sparse):
    p = plan_of(sparse, award_query())
    # the last award is 2023-01-01, the last game in late December 2023; the log (2030) reaches no player
    last_game = run(sparse, sqlglot.parse_one("SELECT max(played_at) FROM games"))[0][0]
    assert last_game > D(2023, 12, 1) and p.predict_anchor == last_game
    scored = [r["player_id"] for r in arrow(sparse, p.predict_sql()).to_pylist()]
    debuted_2023 = [i for i, in run(sparse, sqlglot.parse_one(
        "SELECT player_id FROM players WHERE debut_at > '2023-01-01' ORDER BY 1"))]
    assert debuted_2023 and set(debuted_2023) <= set(scored)
    assert len(scored) == 100
    assert {r["anchor_time"] for r in arrow(sparse, p.predict_sql()).to_pylist()} == {last_game}


def test_label_windows_end_by_the_target_tables_last_row(sparse):
    # awards stop on 2023-01-01 while games go on: a window after it would read "no award" for everyone
    p = plan_of(sparse, award_query())
    assert p.test_anchors[-1] == D(2022, 1, 1)
    assert all(shift(t, 1, "YEARS") <= D(2023, 1, 1) for t in p.val_anchors + p.test_anchors)
    labels = arrow(sparse, p.examples_sql([(t, "test") for t in p.test_anchors])).column("label").to_pylist()
    assert sum(labels) == len(p.test_anchors)  # one award a year, each inside a test window


def test_prediction_anchor_is_as_of_when_given(sparse):
    p = plan_of(sparse, award_query(as_of=D(2021, 6, 1)))
    assert p.predict_anchor == D(2021, 6, 1)
    assert all(shift(t, 1, "YEARS") <= D(2021, 6, 1) for t in p.val_anchors + p.test_anchors)


# ---- FOR ... IN -------------------------------------------------------------------------------
def test_for_in_scores_every_listed_pair_of_an_existing_entity(season):
    # player 1..3 exist from 2020; 500 does not exist; 3 is listed at a winter date (outside the WHERE population)
    listed = sqlglot.parse_one("SELECT * FROM (VALUES (1, TIMESTAMP '2023-07-01'), (2, TIMESTAMP '2023-07-01'), "
                               "(3, TIMESTAMP '2023-01-15'), (500, TIMESTAMP '2023-07-01'), "
                               "(1, TIMESTAMP '2019-06-01')) t(k, at)", read="duckdb")
    p = plan_of(season, active_query(entity_in=listed))
    rows = arrow(season, p.predict_sql()).to_pylist()
    assert [(r["player_id"], r["anchor_time"]) for r in rows] == [
        (1, D(2023, 7, 1)), (2, D(2023, 7, 1)), (3, D(2023, 1, 15))]  # 500: no such player; 1 in 2019: not yet
    assert run(season, p.in_report_sql())[0] == (5, 3, 2, 0)  # listed, scored, in the population, without a time
    # FOR EACH keeps the WHERE population: nobody played in the two weeks before a winter date
    each = plan_of(season, active_query())
    assert arrow(season, each.predict_sql(D(2023, 1, 15))).num_rows == 0


def test_for_in_population_count_never_reads_after_the_pairs_anchor(season):
    listed = sqlglot.parse_one("SELECT * FROM (VALUES (3, TIMESTAMP '2023-01-15'), (700, TIMESTAMP '2023-01-15')) "
                               "t(k, at)", read="duckdb")
    p = plan_of(season, active_query(entity_in=listed))
    before = (arrow(season, p.predict_sql()), run(season, p.in_report_sql()))
    assert before[1] == [(2, 1, 0, 0)]
    season.execute("INSERT INTO players VALUES (700, TIMESTAMP '2023-01-15 00:00:00.000001')")
    season.execute("INSERT INTO games VALUES (30000001, 3, TIMESTAMP '2023-01-15 00:00:00.000001', 1), "
                   "(30000002, 3, TIMESTAMP '2023-02-01', 1)")
    q = plan_of(season, active_query(entity_in=listed))
    after = (arrow(season, q.predict_sql()), run(season, q.in_report_sql()))
    assert after[0].equals(before[0]) and after[1] == before[1]
