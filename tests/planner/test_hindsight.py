"""Running "last time" columns (``planner.hindsight``): flagged, explained, ignored, and kept on request."""
from __future__ import annotations

import duckdb
import pytest

import rdl_sql
from rdl_sql.datasets.shop import build_shop
from rdl_sql.planner import overrides
from rdl_sql.planner.hindsight import MIN_CHILDREN, flagged
from rdl_sql.planner.schema import read_schema

MAX_ORDER = "(SELECT max(ordered_at) FROM orders o WHERE o.customer_id = customers.customer_id)"
MIN_ORDER = "(SELECT min(ordered_at) FROM orders o WHERE o.customer_id = customers.customer_id)"


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("hindsight") / "shop.duckdb")
    con = duckdb.connect(path)
    build_shop(con, customers=200, products=30, days=200, seed=1)
    for name, value in (
        ("last_order_at", MAX_ORDER),                              # a running last time: a leak
        ("last_seen", f"{MAX_ORDER} - INTERVAL 3 DAY"),            # one that trails its last row a little
        ("first_order_at", MIN_ORDER),                             # set once, at the first order
        # set once, for a fifth of the customers: NULL until it happens, so hiding it is honest
        ("closed_at", f"CASE WHEN customer_id % 5 = 0 THEN {MAX_ORDER} END"),
    ):
        con.execute(f"ALTER TABLE customers ADD COLUMN {name} TIMESTAMP")
        con.execute(f"UPDATE customers SET {name} = {value}")
    overrides.set_time_column(con, "customers", "signup_at")
    con.close()
    return path


@pytest.fixture
def shop(shop_file):
    con = duckdb.connect(shop_file, read_only=True)
    yield con
    con.close()


def test_running_last_times_are_ignored_and_set_once_dates_kept(shop):
    customers = read_schema(shop).tables["customers"]
    stypes = {c.name: c.stype for c in customers.columns}
    assert stypes["last_order_at"] == "ignored" and stypes["last_seen"] == "ignored"
    assert stypes["first_order_at"] == "timestamp" and stypes["closed_at"] == "timestamp"
    (h, *_), names = customers.hindsight, {h.column for h in customers.hindsight}
    assert names == {"last_order_at", "last_seen"}
    assert h.child == "orders" and h.follows == h.rows > 20
    assert "ALTER GRAPH UNIGNORE COLUMN customers(last_order_at)" in h.note
    assert read_schema(shop, with_counts=False).tables["customers"].column("last_order_at").stype == "timestamp"


def test_the_rule_needs_enough_rows_set_and_following():
    assert flagged(100, 95, 90)
    assert not flagged(19, 19, 19)        # too few rows with MIN_CHILDREN children to tell
    assert not flagged(100, 50, 50)       # mostly NULL: a date that has not happened yet for most
    assert not flagged(100, 100, 80)      # rows dated after it for a fifth: not the last time
    assert MIN_CHILDREN == 3              # with two, a first-order date has one child after it too


def test_unignore_keeps_a_flagged_column_and_says_why_it_was_ignored(shop_file, tmp_path):
    import shutil
    path = str(tmp_path / "k.duckdb")
    shutil.copy(shop_file, path)
    with rdl_sql.connect(path, progress=False) as con:
        cur = con.cursor()
        cur.execute("DESCRIBE GRAPH")
        assert any("customers.last_order_at` is not a feature" in n for n in cur.notices)
        cur.execute("ALTER GRAPH UNIGNORE COLUMN customers(last_order_at)")
        schema = read_schema(con.duckdb_connection)
        assert schema.tables["customers"].column("last_order_at").stype == "timestamp"
        assert schema.tables["customers"].column("last_seen").stype == "ignored"
        with pytest.raises(rdl_sql.Error, match="not ignored, so there is nothing to undo"):
            cur.execute("ALTER GRAPH UNIGNORE COLUMN customers(first_order_at)")


def test_children_are_counted_by_time_so_two_rows_of_the_last_season_are_one():
    """Lahman: a player's last game is in September; his batting rows are dated at the season's end, two of them
    when he changed teams that season. Counting rows, 12 % of the players missed the rule."""
    con = duckdb.connect()
    con.execute("CREATE TABLE players (pid INTEGER PRIMARY KEY, debut TIMESTAMP, final_game TIMESTAMP)")
    con.execute("CREATE TABLE seasons (sid INTEGER PRIMARY KEY, pid INTEGER REFERENCES players (pid), "
                "season_end TIMESTAMP, games INTEGER)")
    con.execute("INSERT INTO players SELECT i, TIMESTAMP '2000-04-01', TIMESTAMP '2003-09-20' FROM range(30) r(i)")
    # four seasons each, the last one with two teams (stints): two rows after the last game, at one time
    con.execute("INSERT INTO seasons SELECT row_number() OVER (), p.i, make_timestamp(2000 + y.y, 10, 31, 0, 0, 0), 1 "
                "FROM range(30) p(i), range(4) y(y)")
    con.execute("INSERT INTO seasons SELECT 1000 + i, i, TIMESTAMP '2003-10-31', 1 FROM range(30) r(i)")
    overrides.set_time_column(con, "players", "debut")
    players = read_schema(con).tables["players"]
    assert players.column("final_game").stype == "ignored"
    assert players.hindsight[0].follows == players.hindsight[0].rows == 30


def test_columns_of_one_name_in_two_tables_are_judged_apart():
    """One scan per link judges all of a table's columns; a verdict on `a.seen_at` settles nothing of `b.seen_at`."""
    con = duckdb.connect()
    # a and b: the last event, a leak; c: before them all
    for name, seen in (("a", "2024-01-04"), ("b", "2024-01-04"), ("c", "2023-12-31")):
        con.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, created_at TIMESTAMP, seen_at TIMESTAMP)")
        con.execute(f"INSERT INTO {name} SELECT i, TIMESTAMP '2023-01-01', TIMESTAMP '{seen}' FROM range(25) r(i)")
        con.execute(f"CREATE TABLE {name}_events (eid INTEGER PRIMARY KEY, id INTEGER REFERENCES {name} (id), "
                    f"happened TIMESTAMP)")
        con.execute(f"INSERT INTO {name}_events SELECT row_number() OVER (), i, TIMESTAMP '2024-01-01' + "
                    f"INTERVAL (d) DAY FROM range(25) r(i), range(4) e(d)")
    schema = read_schema(con)  # two timestamps each: static tables, both columns candidates
    assert schema.tables["a"].column("created_at").stype == "timestamp"
    assert schema.tables["a"].column("seen_at").stype == schema.tables["b"].column("seen_at").stype == "ignored"
    assert schema.tables["c"].column("seen_at").stype == "timestamp"
