"""What must hold whatever happens: no lost or wrong data (issue 8).

A process killed at any moment leaves the file as it was; the same statement on
the same data gives the same predictions; a stored statement means what the user
wrote; a trained model is reused only on the very graph and data it read; two
connections of one process both work; hostile identifiers are only identifiers.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import duckdb
import pytest

import rdl_sql
from rdl_sql.datasets.shop import build_shop
from rdl_sql.engine import store
from rdl_sql.engine.prepare import prepare
from rdl_sql.planner import overrides
from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.query import Aggregate, PredictQuery, Target
from rdl_sql.planner.schema import data_digest

FAST = "WITH (epochs = 1, channels = 8, fanouts = '2,2', max_train_rows = 800, seed = 5)"
CHURN = ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
         "WHERE COUNT(orders.*, -90, 0, DAYS) > 0 ")
USER_TABLES = ["customers", "orders", "products", "reviews"]


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("integrity") / "shop.duckdb")
    with duckdb.connect(path) as con:
        build_shop(con, customers=300, products=40, days=300, seed=0)
    return path


@pytest.fixture
def shop_path(shop_file, tmp_path):
    """A private copy of the module's shop file."""
    path = str(tmp_path / "copy.duckdb")
    shutil.copy(shop_file, path)
    return path


def churn_query(**kw) -> PredictQuery:
    target = Aggregate("COUNT", "orders", None, 0, 30, "DAYS")
    return PredictQuery(Target(target, "=", 0), "customers", "customer_id", aggregates=(target,), **kw)


# ---- #3: a stored statement is the statement the user wrote ----------------------------------------
ODD = """CREATE MODEL odd AS
PREDICT COUNT(orders.*, 0, 30, DAYS) = 0   -- churn: no order in the next 30 days
FOR EACH customers.customer_id
WHERE customers.country = 'U  S'           -- two spaces, not one
""" + FAST


@pytest.fixture(scope="module")
def odd_model(tmp_path_factory, shop_file):
    path = str(tmp_path_factory.mktemp("odd") / "odd.duckdb")
    shutil.copy(shop_file, path)
    with duckdb.connect(path) as con:
        con.execute("UPDATE customers SET country = CASE WHEN customer_id % 2 = 0 THEN 'U  S' ELSE 'U S' END")
    with rdl_sql.connect(path, progress=False) as con:
        con.execute(ODD)
    return path


@pytest.mark.slow
def test_a_string_with_two_spaces_scores_the_same_rows_under_predict_using(odd_model):
    """Before: the stored text said 'U S', so PREDICT USING scored the other customers."""
    with rdl_sql.connect(odd_model, progress=False) as con:
        rows = con.execute("PREDICT USING odd").fetchall()
        two = {r[0] for r in con.execute("SELECT customer_id FROM customers WHERE country = 'U  S'").fetchall()}
    assert rows and {r[0] for r in rows} <= two
    assert len(rows) == len(two)  # every customer signed up before the prediction time


@pytest.mark.slow
def test_a_comment_line_inside_create_model_keeps_predict_using_and_evaluate_working(odd_model):
    """Before: the collapsed `-- comment` swallowed the rest of the stored statement (a raw ParseError)."""
    with rdl_sql.connect(odd_model, progress=False) as con:
        assert con.execute("PREDICT USING odd").fetchall()
        metrics = con.execute("EVALUATE MODEL odd").fetchall()
        described = dict(con.execute("DESCRIBE MODEL odd").fetchall())
    assert metrics
    assert "-- churn: no order in the next 30 days\n" in described["statement"]
    assert "'U  S'" in described["statement"]


# ---- #6: reuse only on the same graph and the same data --------------------------------------------
def test_data_digest_sees_a_column_named_like_its_table(con):
    """Before: hash("t") read the user's column t, so a change elsewhere in the row was not seen."""
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, t INTEGER, x VARCHAR)")
    con.execute("INSERT INTO t VALUES (1, 7, 'a'), (2, 7, 'b')")
    before = data_digest(con, ["t"])
    con.execute("UPDATE t SET x = 'changed' WHERE id = 1")
    assert data_digest(con, ["t"]) != before


def test_data_digest_sees_equal_rows_replaced_by_other_equal_rows(con):
    """Before: XOR of row hashes cancelled two equal rows, so {a, a} and {b, b} had one digest."""
    con.execute("CREATE TABLE d (v INTEGER)")
    con.execute("INSERT INTO d VALUES (1), (1)")
    before = data_digest(con, ["d"])
    con.execute("UPDATE d SET v = 2")
    assert data_digest(con, ["d"]) != before


def test_every_change_of_the_graph_definition_changes_the_reuse_digest(shop_small):
    con = shop_small
    seen = [prepare(con, churn_query()).digest(con)]

    def changed() -> None:
        d = prepare(con, churn_query()).digest(con)
        assert d not in seen
        seen.append(d)

    overrides.ignore_column(con, "customers", "age")
    changed()
    overrides.set_time_column(con, "reviews", None)
    changed()
    overrides.drop_link(con, "reviews", ("product_id",))
    changed()
    overrides.add_link(con, "reviews", ("product_id",), "products", ("product_id",))
    assert prepare(con, churn_query()).digest(con) == seen[-2]  # the graph as before the drop: same model
    con.execute("CREATE TABLE stores (store_id INTEGER PRIMARY KEY, city VARCHAR)")
    con.execute("ALTER TABLE customers ADD COLUMN store_id INTEGER")
    overrides.add_link(con, "customers", ("store_id",), "stores", ("store_id",))
    changed()


@pytest.mark.slow
def test_hiding_a_column_retrains_an_identical_predict(shop_path):
    """The issue's case: IGNORE COLUMN after a PREDICT must not reuse the model that reads the column."""
    stmt = CHURN + FAST
    with rdl_sql.connect(shop_path, progress=False) as con:
        cur = con.cursor()
        cur.execute(stmt).fetchall()
        assert cur.notices[0].startswith("trained gnn")
        cur.execute(stmt).fetchall()
        assert cur.notices[0].startswith("reused the model")
        cur.execute("ALTER GRAPH IGNORE COLUMN customers(age, country)")
        cur.execute(stmt).fetchall()
        assert cur.notices[0].startswith("trained gnn")


# ---- #7: two connections of one process -------------------------------------------------------------
@pytest.mark.slow
def test_a_second_connection_to_the_same_file_can_predict_and_outlive_the_first(shop_path):
    """Before: `Scalar Function with name "rdl_score_binary" already exists!` on the second connection."""
    stmt = CHURN + FAST
    first = rdl_sql.connect(shop_path, progress=False)
    second = rdl_sql.connect(shop_path, progress=False)
    try:
        a = first.execute(stmt).fetchall()
        b = second.execute(stmt).fetchall()
        assert a and b == a
        first.close()  # its functions leave the shared catalog; the second keeps its own
        assert second.execute(stmt).fetchall() == a
        with rdl_sql.connect(shop_path, progress=False) as third:
            assert third.execute(stmt).fetchall() == a
    finally:
        for c in (first, second):
            try:
                c.close()
            except rdl_sql.InterfaceError:  # closed already
                pass


def _stored(name: str, weights: bytes) -> store.StoredModel:
    import datetime as dt
    return store.StoredModel(name, "PREDICT ...", "binary", "gnn", {}, {"tables": {}, "links": []}, "d", {},
                             weights, dt.datetime(2024, 1, 1), "PREDICT ...")


def test_a_lost_race_for_a_model_name_is_a_plan_error_and_keeps_the_winner(tmp_path, monkeypatch):
    """Two connections check the name before training, both find it free; the second to write must get a
    PlanError (before: a raw ConstraintException), and the first one's model stays."""
    path = str(tmp_path / "race.duckdb")
    winner, loser = duckdb.connect(path), duckdb.connect(path)
    try:
        store.save(winner, _stored("other", b"x"), replace=False)  # the table exists, as in a used file
        real_names = store.names

        def names_then_the_winner_commits(c):
            out = real_names(c)  # the loser's transaction has looked: the name is free
            if c is loser:
                monkeypatch.setattr(store, "names", real_names)
                store.save(winner, _stored("m", b"winner"), replace=False)
            return out

        monkeypatch.setattr(store, "names", names_then_the_winner_commits)
        with pytest.raises(PlanError, match="stored by another connection"):
            store.save(loser, _stored("m", b"loser"), replace=False)
        assert loser.execute("SELECT weights FROM rdl_models WHERE name = 'm'").fetchall() == [(b"winner",)]
    finally:
        winner.close()
        loser.close()


# ---- kill -9 ------------------------------------------------------------------------------------------
#: the child trains a replacement of model `churn` and stops, on a signal, at one moment of the work
CHILD = textwrap.dedent("""
    import inspect, sys, threading, time
    import rdl_sql
    path, phase, statement = sys.argv[1], sys.argv[2], sys.argv[3]

    def pause():
        print(phase, flush=True)
        time.sleep(600)

    if phase == "labels":
        from rdl_sql.engine import prepare
        real_arrow = prepare.arrow
        def arrow(con, q):
            out = real_arrow(con, q)
            pause()
            return out
        prepare.arrow = arrow
    elif phase == "training":
        from rdl_sql.udfs import train
        real_step = train.train_step
        def train_step(*a, **k):
            out = real_step(*a, **k)
            pause()
            return out
        train.train_step = train_step
    elif phase == "write":  # after DELETE and INSERT, before COMMIT
        from rdl_sql.engine import store
        lines, first = inspect.getsourcelines(store.save)
        commit = first + next(i for i, line in enumerate(lines) if 'execute("COMMIT")' in line)
        def local(frame, event, arg):
            if event == "line" and frame.f_lineno == commit:
                pause()
            return local
        def tracer(frame, event, arg):
            return local if frame.f_code is store.save.__code__ else None
        sys.settrace(tracer)
        threading.settrace(tracer)
    with rdl_sql.connect(path, progress=False) as con:
        con.execute(statement).fetchall()
    print("finished", flush=True)
""")


def _models(con) -> list[tuple]:
    return con.execute("SELECT name, statement, created_at, md5(weights::VARCHAR) FROM rdl_models "
                       "ORDER BY name").fetchall()


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["labels", "training", "write"])
def test_kill_9_leaves_the_file_as_it_was(shop_path, phase):
    with rdl_sql.connect(shop_path, progress=False) as con:
        con.execute("CREATE MODEL churn AS " + CHURN + FAST).fetchall()
    with duckdb.connect(shop_path) as con:
        tables_before, models_before = data_digest(con, USER_TABLES), _models(con)
    replace = "CREATE OR REPLACE MODEL churn AS " + CHURN + FAST.replace("seed = 5", "seed = 6")
    child = subprocess.Popen([sys.executable, "-c", CHILD, shop_path, phase, replace], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = child.stdout.readline().strip()
        assert line == phase  # the child reached the moment (and did not finish)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with duckdb.connect(shop_path) as con:  # plain DuckDB opens it, replaying its log
        assert data_digest(con, USER_TABLES) == tables_before
        assert _models(con) == models_before  # the old version whole, no half of the new one
        assert con.execute("SELECT count(*) FROM rdl_models").fetchone() == (1,)


# ---- determinism -----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("model", ["gnn", "gbdt"])
def test_same_statement_same_seed_same_data_gives_the_same_predictions(shop_path, model):
    stmt = CHURN + FAST.replace("seed = 5", f"seed = 5, model = '{model}'")
    runs = []
    for _ in range(2):  # a fresh connection each time: nothing is reused from the first run
        with rdl_sql.connect(shop_path, progress=False) as con:
            cur = con.cursor()
            runs.append(cur.execute(stmt).fetchall())
            assert not any("reused" in n for n in cur.notices)
    first, second = runs
    assert first and [r[:3] for r in first] == [r[:3] for r in second]
    assert all(abs(a[3] - b[3]) <= 1e-9 for a, b in zip(first, second))


# ---- hostile identifiers -------------------------------------------------------------------------------
#: every name rdl-sql's generated SQL uses for itself, and DuckDB's rowid
INTERNAL = ["rowid", "__node", "__time", "__time_us", "__k0", "src", "dst", "anchor_time", "split", "label",
            "prediction", "score", "__s", "__e", "__x", "__p", "__q", "__r", "__n", "__in", "__anchor",
            "__anchors", "__a0", "__ent", "__rows", "__base", "__b", "__c", "__c0", "__p0", "__h0", "c", "p"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Entity `t` (2,000 rows, `rowid` all zeros) and dated child `ev`, both holding every internal name.

    ``y`` is a copy of the category ``x``, NULL on every tenth row: a model whose labels reach the right
    rows fills it in almost perfectly; labels attached to other rows' features would not.
    """
    path = str(tmp_path_factory.mktemp("hostile") / "h.duckdb")
    extra = ", ".join(f'"{n}" DOUBLE' for n in INTERNAL if n != "rowid")
    values = ", ".join(f"((i * {k + 3}) % 17)::DOUBLE" for k, n in enumerate(INTERNAL) if n != "rowid")
    with duckdb.connect(path) as con:
        con.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, rowid INTEGER, x VARCHAR, y VARCHAR, {extra})")
        con.execute(f"INSERT INTO t SELECT (i * 7919) % 2000, 0, 'k' || (i % 3), "
                    f"CASE WHEN i % 10 = 0 THEN NULL ELSE 'k' || (i % 3) END, {values} FROM range(2000) r(i)")
        con.execute(f"CREATE TABLE ev (eid INTEGER PRIMARY KEY, id INTEGER REFERENCES t (id), rowid INTEGER, "
                    f"happened TIMESTAMP, {extra})")
        con.execute(f"INSERT INTO ev SELECT i, hash(i) % 2000, 0, TIMESTAMP '2024-01-01' "
                    f"+ INTERVAL (hash(i + 1) % 200) DAY, {values} FROM range(8000) r(i)")
    return path


@pytest.mark.slow
def test_hostile_identifiers_fill_in_a_column_with_labels_on_the_right_rows(hostile):
    """Before: ORDER BY rowid read the zeros and a column `__node` broke extraction."""
    with rdl_sql.connect(hostile, progress=False) as con:
        rows = con.execute("PREDICT t.y FOR EACH t.id WITH (epochs = 4, channels = 16, fanouts = '2,2', "
                           "seed = 1)").fetchall()
        truth = dict(con.execute("SELECT id, x FROM t WHERE y IS NULL").fetchall())
    assert len(rows) == len(truth) == 200
    accuracy = sum(r[1] == truth[r[0]] for r in rows) / len(rows)
    assert accuracy >= 0.95


@pytest.mark.slow
def test_hostile_identifiers_gnn_and_gbdt_aggregate_targets(hostile):
    with rdl_sql.connect(hostile, progress=False) as con:
        for model in ("gnn", "gbdt"):
            rows = con.execute(f"PREDICT COUNT(ev.*, 0, 10, DAYS) > 0 FOR EACH t.id "
                               f"WHERE COUNT(ev.*, -30, 0, DAYS) > 0 WITH (model = '{model}', epochs = 1, "
                               f"channels = 8, fanouts = '2,2', max_train_rows = 2000)").fetchall()
            assert rows and all(0.0 <= r[3] <= 1.0 for r in rows), model
        plan = dict((r[1], r[2]) for r in con.execute("EXPLAIN PREDICT COUNT(ev.*, 0, 10, DAYS) > 0 "
                                                       "FOR EACH t.id").fetchall())
    assert plan["node t"].startswith("2,000 rows") and "__node (numerical)" in plan["node t"]


@pytest.mark.slow
def test_tables_named_like_internal_ctes_and_aliases_are_read_as_tables(tmp_path):
    """Before: the GBDT feature query's CTE `__rows` hid an entity table called `__rows`."""
    path = str(tmp_path / "names.duckdb")
    with duckdb.connect(path) as con:
        con.execute('CREATE TABLE "__rows" (id INTEGER PRIMARY KEY, v DOUBLE)')
        con.execute('CREATE TABLE "__base" (bid INTEGER PRIMARY KEY, id INTEGER REFERENCES "__rows" (id), '
                    'seen_at TIMESTAMP, amount DOUBLE)')
        con.execute('INSERT INTO "__rows" SELECT i, i % 7 FROM range(300) r(i)')
        con.execute('INSERT INTO "__base" SELECT i, hash(i) % 300, TIMESTAMP \'2024-01-01\' '
                    '+ INTERVAL (hash(i + 1) % 200) DAY, i % 11 FROM range(3000) r(i)')
    with rdl_sql.connect(path, progress=False) as con:
        for model in ("gbdt", "gnn"):
            rows = con.execute(f'PREDICT COUNT("__base".*, 0, 10, DAYS) > 0 FOR EACH "__rows".id '
                               f"WITH (model = '{model}', epochs = 1, channels = 8, fanouts = '2,2')").fetchall()
            assert len(rows) == 300, model
