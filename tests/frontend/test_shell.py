"""The ``rdl-sql [DB]`` shell, driven as a user drives it: ``-c``, a script on stdin, and a real
pseudo-terminal (pexpect), plus the table renderers on their own."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import duckdb
import pexpect
import pyarrow as pa
import pytest

from rdl_sql import shell

SQL = "CREATE TABLE t (a INTEGER, b VARCHAR); INSERT INTO t VALUES (1, 'x'), (22, NULL);"
# a small model asked to train for long, so that Ctrl-C lands while it trains
LONG_PREDICT = ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
                "WITH (model = 'gnn', epochs = 1000, channels = 8, fanouts = '2,2', max_train_rows = 500);")


def rdl_sql(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The ``rdl-sql`` command run in a new interpreter, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "rdl_sql.cli", *args], input=stdin, capture_output=True,
                          check=False, text=True, timeout=60)


@pytest.fixture
def in_process(capsys, monkeypatch):
    """``shell.main`` called in this process (faster than a new interpreter), stdin given as text."""
    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = shell.main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)
    return run


def spawn(db, tmp_path, **env) -> pexpect.spawn:
    child = pexpect.spawn(sys.executable, ["-m", "rdl_sql.cli", str(db)], cwd=str(tmp_path), encoding="utf-8",
                          timeout=30, dimensions=(40, 200),
                          env=dict(os.environ, TERM="dumb", HOME=str(tmp_path), **env))
    child.expect_exact(shell.PROMPT)
    return child


def command(child: pexpect.spawn, line: str) -> str:
    """Send ``line``, wait for the next fresh prompt, return what the shell printed."""
    child.sendline(line)
    child.expect(r"\r\nD $")
    return child.before.replace("\r\n", "\n") + "\n"


# ---- -c ---------------------------------------------------------------------------------------

def test_c_prints_each_result_as_a_duckdb_box(tmp_path):
    r = rdl_sql(str(tmp_path / "a.duckdb"), "-c", SQL + " SELECT * FROM t ORDER BY a; SELECT 42 AS answer")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "┌─────────┬─────────┐",
        "│    a    │    b    │",
        "│ integer │ varchar │",
        "├─────────┼─────────┤",
        "│       1 │ x       │",
        "│      22 │ NULL    │",
        "└─────────┴─────────┘",
        "┌─────────┐",
        "│ answer  │",
        "│ integer │",
        "├─────────┤",
        "│      42 │",
        "└─────────┘",
    ]


def test_c_with_broken_sql_prints_one_error_with_a_caret_and_exits_1(tmp_path):
    r = rdl_sql(str(tmp_path / "a.duckdb"), "-c", "SELECT 1; SELEC 2; SELECT 3")
    assert r.returncode == 1
    assert r.stderr.startswith("Error: statement 2: Parser Error: syntax error at or near \"SELEC\"")
    assert "^^^^^" in r.stderr
    assert "│       1 │" in r.stdout
    assert "│       3 │" not in r.stdout  # stopped at the error
    assert "Traceback" not in r.stdout + r.stderr


def test_c_with_a_predict_mistake_points_at_the_column(tmp_path):
    r = rdl_sql(str(tmp_path / "a.duckdb"), "-c",
                "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY);\n"
                "PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.nope;")
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0].startswith("Error: ") and "`nope`" in lines[0]
    assert lines[1].strip().startswith("PREDICT")
    assert lines[2].index("^") == lines[1].index("nope")
    assert "Traceback" not in r.stdout + r.stderr


def test_c_runs_dot_commands(tmp_path, in_process):
    db = tmp_path / "a.duckdb"
    assert in_process(str(db), "-c", SQL + "CREATE VIEW v AS SELECT a FROM t;").returncode == 0
    r = in_process(str(db), "-c", ".tables\n.schema t\n.models\n.mode line\nSELECT * FROM t ORDER BY a;")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("t  v\n"
                        "CREATE TABLE t(a INTEGER, b VARCHAR);\n"
                        "no models\n"
                        "a = 1\nb = x\n\na = 22\nb = NULL\n")


def test_graph_notices_follow_the_table_and_leave_csv_output_clean(tmp_path, in_process):
    # two timestamp columns make DESCRIBE GRAPH add a notice about the table's time column
    r = in_process(":memory:", "-c", "CREATE TABLE t (id INTEGER PRIMARY KEY, a TIMESTAMP, b TIMESTAMP);\n"
                ".graph\n.mode csv\n.graph")
    assert r.returncode == 0, r.stderr
    box, csv_part = r.stdout.split("table_name,column_name")
    assert box.splitlines()[-2].startswith("└") and "time column" in box.splitlines()[-1]
    assert "time column" not in csv_part and "time column" in r.stderr


def test_unknown_dot_command_is_an_error(tmp_path, in_process):
    r = in_process(":memory:", "-c", ".foo")
    assert (r.returncode, r.stderr) == (1, "Error: unknown command .foo; try .help\n")


def test_unopenable_database_is_one_error_line(tmp_path, in_process):
    r = in_process(str(tmp_path / "missing" / "a.duckdb"), "-c", "SELECT 1")
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ") and "Traceback" not in r.stderr


# ---- a script on stdin ----------------------------------------------------------------------------

def test_script_on_stdin_prints_every_result(tmp_path):
    script = SQL + "\nSELECT count(*) AS n\nFROM t;\n-- a comment\nSELECT max(a) AS top FROM t;\n"
    r = rdl_sql(str(tmp_path / "a.duckdb"), stdin=script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("┌") == 2  # CREATE and INSERT print nothing, as in DuckDB
    assert "│   n    │" in r.stdout and "│      2 │" in r.stdout
    assert "│   top   │" in r.stdout and "│      22 │" in r.stdout


def test_script_stops_at_the_first_error_with_its_line(tmp_path):
    script = "SELECT 1 AS one;\n\nCREATE TABLE customers (customer_id INTEGER PRIMARY KEY);\n" \
             "PREDICT COUNT(orders.*, 0, 30, DAYS) = 0\nFOR EACH customers.nope;\nSELECT 'never' AS s;\n"
    r = rdl_sql(str(tmp_path / "a.duckdb"), stdin=script)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0].startswith("Error: statement 3, line 5, column ")
    assert "one" in r.stdout and "never" not in r.stdout


def test_bail_off_runs_past_errors_but_still_exits_1(tmp_path, in_process):
    r = in_process(":memory:", stdin=".bail off\nSELECT nope;\nSELECT 'reached' AS s;\n")
    assert r.returncode == 1
    assert "reached" in r.stdout and r.stderr.startswith("Error: ")


def test_read_runs_a_file_and_csv_mode_prints_csv(tmp_path, in_process, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "part.sql").write_text(".mode csv\nSELECT 1 AS a, NULL AS b, 'x,y' AS c;\n")
    r = in_process(":memory:", "-c", ".read part.sql")
    assert (r.returncode, r.stdout) == (0, 'a,b,c\n1,,"x,y"\n')
    r = in_process(":memory:", "-c", ".read nowhere.sql")
    assert r.returncode == 1 and r.stderr.startswith("Error: cannot read nowhere.sql")


# ---- the interactive shell in a pseudo-terminal ------------------------------------------------------

def test_interactive_session(tmp_path):
    child = spawn(tmp_path / "i.duckdb", tmp_path)
    try:
        # CREATE prints nothing but its own echo, as in DuckDB
        assert command(child, "CREATE TABLE t (a INTEGER, b VARCHAR);") == "CREATE TABLE t (a INTEGER, b VARCHAR);\n"
        command(child, "INSERT INTO t VALUES (1, 'x'), (2, 'y');")

        child.sendline("SELECT sum(a) AS total")   # a statement over three lines
        child.expect_exact(shell.CONTINUATION)
        child.sendline("FROM t")
        child.expect_exact(shell.CONTINUATION)
        out = command(child, "WHERE a > 0;")
        assert out.splitlines()[1:] == ["┌─────────┐", "│  total  │", "│ hugeint │", "├─────────┤",
                                        "│       3 │", "└─────────┘"]

        assert command(child, ".tables").splitlines()[1:] == ["t"]

        command(child, ".mode csv")
        assert command(child, "SELECT a, b FROM t ORDER BY a;").endswith("a,b\n1,x\n2,y\n")

        command(child, ".timer on")
        out = command(child, "SELECT 1 AS one;")
        assert "one\n1\n" in out and "Run Time (s): real " in out
        command(child, ".timer off")

        out = command(child, "SELECT nope FROM t;")
        assert "Error: statement 1: Binder Error" in out and "^" in out and "Traceback" not in out
        assert command(child, "SELECT 'still here' AS s;").endswith("s\nstill here\n")

        child.sendline("SELECT 'dropped'")          # Ctrl-C at the prompt drops the open statement
        child.expect_exact(shell.CONTINUATION)
        child.sendintr()
        child.expect(r"\r\nD $")
        command(child, ".mode duckbox")   # `box` is now DuckDB's box mode (no types)
        assert "│       7 │" in command(child, "SELECT 7 AS x;")

        assert "unknown command .foo; try .help" in command(child, ".foo")
        assert ".graph" in command(child, ".help")

        child.sendline(".quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    history = (tmp_path / ".rdl_sql_history").read_text().splitlines()
    assert "SELECT sum(a) AS total FROM t WHERE a > 0;" in history
    assert "SELECT 'dropped'" not in history


def test_ctrl_c_aborts_training_and_ctrl_d_exits(tmp_path):
    db = _shop(tmp_path)
    # a history file that cannot be written is skipped without a word
    child = spawn(db, tmp_path, RDL_SQL_HISTORY=str(tmp_path / "no" / "such" / "dir" / "history"))
    try:
        child.sendline(LONG_PREDICT)
        child.expect(r"\d+%\|")              # the progress bar, on the terminal's stderr
        child.sendintr()
        child.expect_exact("Interrupted")
        child.expect(r"\r\nD $")
        assert "customers" in command(child, ".tables")
        child.sendeof()
        child.expect(pexpect.EOF)
        assert "Error" not in child.before
    finally:
        child.close()
    assert child.exitstatus == 0


def test_an_interrupt_is_reported_after_a_half_made_progress_bar_clears_its_line():
    """The CI failure of stop 14: Ctrl-C landed while the training bar was being made, so nothing closed it,
    and it cleared its line when collected, over the next prompt. The message must come after the clearing."""
    import rdl_sql as api
    err = io.StringIO()

    class HalfMadeBar:           # what an interrupted tqdm constructor leaves: only a finaliser
        def __del__(self):
            err.write("<cleared>")

    con = api.connect(":memory:")

    class Interrupting:          # the shell's own cursor, whose first statement is interrupted
        real = con.cursor()
        interrupted = False

        def execute(self, stmt):
            if not self.interrupted:
                self.interrupted = True
                bar = HalfMadeBar()  # noqa: F841 - held by this frame, which the traceback keeps alive
                raise KeyboardInterrupt
            return self.real.execute(stmt)

        def __getattr__(self, name):
            return getattr(self.real, name)

    try:
        sh = shell.Shell(con, out=io.StringIO(), err=err)
        sh.cur = Interrupting()
        assert sh.run_sql("SELECT 1;") is False
        assert err.getvalue() == "<cleared>Interrupted\n"
        assert sh.run_sql("SELECT 1;") is True     # the interrupted cursor runs the next statement
    finally:
        con.close()


def _committed_rows(db) -> list:
    """Table ``t`` as another connection reads it once the shell has closed the file."""
    check = duckdb.connect(str(db), read_only=True)
    try:
        return check.execute("SELECT x FROM t").fetchall()
    finally:
        check.close()


def _shop(tmp_path):
    from rdl_sql.datasets.shop import build_shop
    db = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(db))
    try:
        build_shop(con, customers=200, products=30, days=200)
    finally:
        con.close()
    return db


def test_ctrl_c_while_a_model_trains_keeps_the_open_transaction(tmp_path, monkeypatch):
    """The third hunt's bug: the shell closed its cursor on Ctrl-C, and as each cursor is a DuckDB
    connection of its own, that rolled back the transaction the user had opened, without a word;
    COMMIT then failed with "no transaction is active" and the INSERT was gone."""
    import rdl_sql as api
    from rdl_sql.engine import gnn

    def interrupted_training(*args, **kwargs):   # Ctrl-C lands while the model trains
        raise KeyboardInterrupt

    monkeypatch.setattr(gnn, "train", interrupted_training)
    db = _shop(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    con = api.connect(str(db))
    try:
        sh = shell.Shell(con, out=out, err=err, database=str(db))
        assert sh.feed("CREATE TABLE t (x INTEGER); BEGIN; INSERT INTO t VALUES (3);")
        cursor = sh.cur
        assert sh.feed(LONG_PREDICT) is False
        assert err.getvalue() == "Interrupted\n"
        assert sh.cur is cursor                     # kept, with its transaction
        assert sh.feed("COMMIT;"), err.getvalue()
    finally:
        con.close()
    assert _committed_rows(db) == [(3,)]


def test_ctrl_c_cancels_training_between_batches_and_keeps_the_open_transaction(tmp_path, monkeypatch):
    """A real SIGINT while a model trains: the shell cancels the statement as Connection.cancel() does
    (the training sees the cancel event and stops), says "Interrupted", and COMMIT keeps the INSERT."""
    import signal
    import threading

    import rdl_sql as api
    from rdl_sql.engine import auto, gnn

    def training(con, prep, progress, cancel):   # trains until cancelled, as gnn.train does between batches
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        assert cancel.wait(20)
        raise auto.Cancelled("training cancelled")

    monkeypatch.setattr(gnn, "train", training)
    db = _shop(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    con = api.connect(str(db))
    try:
        sh = shell.Shell(con, out=out, err=err, database=str(db))
        assert sh.feed("CREATE TABLE t (x INTEGER); BEGIN; INSERT INTO t VALUES (3);")
        assert sh.feed("CREATE MODEL m AS " + LONG_PREDICT) is False
        assert err.getvalue() == "Interrupted\n"
        assert sh.feed("COMMIT;"), err.getvalue()
    finally:
        con.close()
    assert _committed_rows(db) == [(3,)]


def test_a_real_ctrl_c_interrupts_a_running_duckdb_query():
    """SIGINT reaches Python only between bytecodes, so a DuckDB query used to hold it to its end: the
    statement runs in a thread of its own, and the shell interrupts DuckDB. Here the interrupted query
    aborted the transaction, and the message says so."""
    import signal
    import threading

    import rdl_sql as api
    con = api.connect(":memory:")
    err = io.StringIO()
    try:
        sh = shell.Shell(con, out=io.StringIO(), err=err)
        assert sh.feed("CREATE TABLE t (x INTEGER); BEGIN; INSERT INTO t VALUES (3);")
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        assert sh.run_sql("SELECT count(*) FROM range(10000000000) a, range(1000) b;") is False
        assert err.getvalue().startswith("Interrupted; the open transaction was aborted")
        assert sh.feed("ROLLBACK; SELECT 1;")
    finally:
        con.close()


def test_ctrl_c_says_when_duckdb_aborted_the_open_transaction(tmp_path):
    """An interrupted DuckDB query inside a transaction may leave it aborted: the shell says so
    rather than only "Interrupted", and the transaction stays for the user to ROLLBACK."""
    import threading

    import rdl_sql as api
    con = api.connect(":memory:")
    err = io.StringIO()
    try:
        sh = shell.Shell(con, out=io.StringIO(), err=err)
        assert sh.feed("CREATE TABLE t (x INTEGER); BEGIN; INSERT INTO t VALUES (3);")
        real = sh.cur

        class InterruptedQuery:  # Ctrl-C lands in a long DuckDB query: DuckDB interrupts it
            interrupted = False

            def execute(self, stmt):
                if not self.interrupted:
                    self.interrupted = True
                    timer = threading.Timer(0.3, con.cancel)
                    timer.start()
                    try:
                        real.execute("SELECT count(*) FROM range(10000000000) a, range(1000) b")
                    except api.Error:
                        raise KeyboardInterrupt from None
                    finally:
                        timer.cancel()
                return real.execute(stmt)

            def __getattr__(self, name):
                return getattr(real, name)

        sh.cur = InterruptedQuery()
        assert sh.run_sql("SELECT 1;") is False
        assert "Interrupted; the open transaction was aborted" in err.getvalue()
        assert "ROLLBACK" in err.getvalue()
        assert sh.feed("ROLLBACK; SELECT 1;")
    finally:
        con.close()


# ---- rendering ---------------------------------------------------------------------------------------

def test_box_cuts_long_results_to_first_and_last_rows_with_a_footer():
    table = pa.table({"i": pa.array(range(100), pa.int64())})
    lines = shell.render_box(["i"], ["bigint"], table)
    body = [ln for ln in lines if ln.startswith("│")][2:]
    assert body[:2] == ["│          0 │", "│          1 │"]
    assert body[20:23] == ["│     ·      │"] * 3
    assert body[23] == "│         80 │"
    assert body[-2:] == ["│  100 rows  │", "│ (40 shown) │"]
    assert len(body) == 40 + 3 + 2


def test_box_shows_nulls_and_left_aligns_text():
    table = pa.table({"n": pa.array([1.5, None]), "s": pa.array([None, "abc"])})
    assert shell.render_box(["n", "s"], ["double", "varchar"], table)[4:6] == [
        "│    1.5 │ NULL    │",
        "│   NULL │ abc     │",
    ]


def test_box_narrows_wide_columns_to_fit_the_terminal():
    table = pa.table({"s": ["x" * 100]})
    lines = shell.render_box(["s"], ["varchar"], table, max_width=30)
    assert all(shell._width(ln) <= 30 for ln in lines)
    assert lines[4].endswith("… │")


def test_buffer_is_complete_only_at_a_semicolon_outside_strings_and_comments():
    assert shell.buffer_state("SELECT 1;") == "complete"
    assert shell.buffer_state("SELECT ';'") == "open"
    assert shell.buffer_state("SELECT 1 -- ;") == "open"
    assert shell.buffer_state("SELECT 'a;\nb';  -- done") == "complete"
    assert shell.buffer_state("SELECT 'unterminated;") == "open"
    assert shell.buffer_state("  -- just a comment") == "empty"
