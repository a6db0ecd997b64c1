"""The shell's DuckDB-CLI habits without a terminal: output modes (as ``duckdb-cli`` 1.5.6 draws them),
flags in the order given, dot commands, output redirection, exit statuses and how errors number
statements."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import duckdb
import pytest

from rdl_sql import shell

Q = "SELECT 1 AS a, 'x' AS b, NULL AS c UNION ALL SELECT 22, 'y\"z', 2.5 ORDER BY a"
BAD_PREDICT = ("CREATE TABLE customers (customer_id INTEGER PRIMARY KEY);\n"
               "PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.nope;")


@pytest.fixture
def run(capsys, monkeypatch):
    """``shell.main`` in this process, stdin given as text; (status, stdout, stderr)."""
    def go(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = shell.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err
    return go


# ---- modes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, expected", [
    ("box", ["┌────┬─────┬──────┐", "│ a  │  b  │  c   │", "├────┼─────┼──────┤",
             "│ 1  │ x   │ NULL │", "│ 22 │ y\"z │ 2.5  │", "└────┴─────┴──────┘"]),
    ("table", ["+----+-----+------+", "| a  |  b  |  c   |", "+----+-----+------+",
               "| 1  | x   | NULL |", "| 22 | y\"z | 2.5  |", "+----+-----+------+"]),
    ("markdown", ["| a  |  b  |  c   |", "|---:|-----|-----:|", "| 1  | x   | NULL |", "| 22 | y\"z | 2.5  |"]),
    ("json", ['[{"a":1,"b":"x","c":null},', '{"a":22,"b":"y\\"z","c":"2.5"}]']),
    ("jsonlines", ['{"a":1,"b":"x","c":null}', '{"a":22,"b":"y\\"z","c":"2.5"}']),
    ("list", ["a|b|c", "1|x|NULL", '22|y"z|2.5']),
    ("tabs", ["a\tb\tc", "1\tx\tNULL", '22\ty"z\t2.5']),
    ("csv", ["a,b,c", "1,x,", '22,"y""z",2.5']),
    ("line", ["a = 1", "b = x", "c = NULL", "", "a = 22", 'b = y"z', "c = 2.5"]),
    ("duckbox", ["┌─────────┬─────────┬──────────────┐", "│    a    │    b    │      c       │",
                 "│ integer │ varchar │ decimal(2,1) │", "├─────────┼─────────┼──────────────┤",
                 "│       1 │ x       │         NULL │", "│      22 │ y\"z     │          2.5 │",
                 "└─────────┴─────────┴──────────────┘"]),
])
def test_each_mode_draws_as_the_duckdb_cli(run, mode, expected):
    code, out, err = run(":memory:", "-c", f".mode {mode}", "-c", Q)
    assert (code, err) == (0, "")
    assert out.splitlines() == expected


def test_duckbox_is_the_default_and_mode_without_argument_names_it(run):
    assert run(":memory:", "-c", ".mode")[1] == "current output mode: duckbox\n"
    assert run(":memory:", "-c", ".mode nonsense")[2].startswith("Error: mode should be one of: duckbox, box")


def test_json_keeps_types_and_reads_back(run):
    code, out, _ = run(":memory:", "-json", "-c", "SELECT 1.5::DOUBLE AS d, true AS t, DATE '2020-01-02' AS dt, "
                                                   "[1, 2] AS l, {'k': 'v'} AS s, 'a\nb' AS nl, NULL AS n")
    assert code == 0
    assert json.loads(out) == [{"d": 1.5, "t": True, "dt": "2020-01-02", "l": [1, 2], "s": {"k": "v"},
                                "nl": "a\nb", "n": None}]
    assert run(":memory:", "-json", "-c", "SELECT 1 AS a WHERE false")[1] == "[]\n"


def test_headers_nullvalue_and_separator(run):
    code, out, _ = run(":memory:", "-c", ".headers off\n.nullvalue -\n.mode csv", "-c", Q,
                       "-c", ".separator ;\n.mode list", "-c", Q)
    assert code == 0
    assert out.splitlines() == ["1,x,-", '22,"y""z",2.5', "1;x;-", '22;y"z;2.5']
    # the header switch is for csv / list / tabs only: duckbox keeps its names, as in DuckDB
    assert "│    a    │" in run(":memory:", "-noheader", "-c", Q)[1]


def test_maxwidth_and_maxrows_shape_duckbox(run):
    code, out, _ = run(":memory:", "-c", ".maxwidth 20\n.maxrows 4", "-c",
                       "SELECT repeat('x', 50) AS s FROM range(10)")
    lines = out.splitlines()
    assert code == 0 and all(shell._width(ln) <= 20 for ln in lines)
    assert "x…" in lines[4] and "10 rows" in out and "(4 shown)" in out


# ---- flags -----------------------------------------------------------------------------------------

def test_flags_act_in_order_and_every_c_runs(run):
    code, out, _ = run(":memory:", "-csv", "-c", "SELECT 1 AS a", "-json", "-c", "SELECT 2 AS b", "-c", "SELECT 3 AS c")
    assert code == 0
    assert out == 'a\n1\n[{"b":2}]\n[{"c":3}]\n'


def test_first_failing_c_stops_the_rest_and_exits_1(run):
    code, out, err = run(":memory:", "-csv", "-c", "SELECT 1 AS a", "-c", "SELECT nope", "-c", "SELECT 3 AS c")
    assert code == 1 and out == "a\n1\n" and err.startswith("Error: statement 1: Binder Error")


def test_mode_flags(run):
    for flag, first in (("-csv", "a,b,c"), ("-markdown", "| a  |  b  |  c   |"), ("-box", "┌────┬─────┬──────┐"),
                        ("-line", "a = 1"), ("-table", "+----+-----+------+"), ("-list", "a|b|c")):
        code, out, _ = run(":memory:", flag, "-c", Q)
        assert (code, out.splitlines()[0]) == (0, first), flag


def test_cmd_runs_before_stdin_and_no_stdin_skips_it(run):
    assert run(":memory:", "-cmd", ".mode csv", stdin="SELECT 1 AS a;\n") == (0, "a\n1\n", "")
    assert run(":memory:", "-cmd", ".mode csv", "-cmd", "SELECT 0 AS z;", "-no-stdin",
               stdin="SELECT 1 AS a;\n") == (0, "z\n0\n", "")


def test_init_file_runs_first_and_f_runs_a_file(run, tmp_path):
    (tmp_path / "init.sql").write_text(".mode csv\nCREATE TABLE t AS SELECT 7 AS x;\n")
    (tmp_path / "q.sql").write_text("SELECT x + 1 AS y FROM t;\n")
    assert run(":memory:", "-init", str(tmp_path / "init.sql"), "-f", str(tmp_path / "q.sql")) == (0, "y\n8\n", "")
    code, _, err = run(":memory:", "-init", str(tmp_path / "missing.sql"), "-c", "SELECT 1")
    assert code == 1 and err.startswith("Error: cannot read")


def test_sql_after_the_database_runs_as_c(run, tmp_path):
    assert run(str(tmp_path / "a.duckdb"), "SELECT 41 + 1 AS v", "-csv")[1] == "v\n42\n"


def test_help_version_and_unknown_options(run):
    code, out, _ = run("-help")
    assert code == 0
    for flag in ("-readonly", "-cmd", "-init", "-no-stdin", "-json", "-markdown", "-c COMMAND"):
        assert flag in out
    assert run("-version")[1].startswith("rdl-sql ")
    code, _, err = run("-nope")
    assert code == 1 and err.startswith("Error: unknown option: -nope")
    assert run("-c")[0] == 1   # -c without its argument


# ---- exit statuses -----------------------------------------------------------------------------------

def test_exit_with_a_code(run):
    assert run(":memory:", "-c", "SELECT 1", "-c", ".exit 4")[0] == 4
    assert run(":memory:", stdin=".exit 3\nSELECT 'never';\n") == (3, "", "")
    assert run(":memory:", stdin=".bail off\nSELECT nope;\n.exit\n")[0] == 1    # errors before a bare .exit: 1
    assert run(":memory:", stdin="SELECT 1 AS a;\n.quit\nSELECT 'never';\n")[0] == 0
    assert run(":memory:", "-c", ".exit x")[0] == 1                               # not a number: usage error


# ---- where output goes ---------------------------------------------------------------------------

def test_timer_goes_to_stderr_so_csv_stays_csv(run):
    code, out, err = run(":memory:", "-csv", "-c", ".timer on", "-c", "SELECT 1 AS a")
    assert (code, out) == (0, "a\n1\n")
    assert err.startswith("Run Time (s): real ")


def test_notices_leave_json_output_clean(run):
    code, out, err = run(":memory:", "-c", "CREATE TABLE t (id INTEGER PRIMARY KEY, a TIMESTAMP, b TIMESTAMP);",
                         "-json", "-c", "DESCRIBE GRAPH")
    assert code == 0
    json.loads(out)
    assert "time column" in err and "time column" not in out


def test_output_and_once_redirect_results(run, tmp_path):
    f, g, h = tmp_path / "all.txt", tmp_path / "once.txt", tmp_path / "piped.txt"
    code, out, _ = run(":memory:", "-csv", "-c",
                       f".output {f}\nSELECT 1 AS a;\nSELECT 2 AS b;\n.output\nSELECT 3 AS c;",
                       "-c", f".once {g}", "-c", "SELECT 4 AS d", "-c", "SELECT 5 AS e",
                       "-c", f".output '|cat > {h}'\nSELECT 6 AS f;\n.output stdout")
    assert code == 0
    assert f.read_text() == "a\n1\nb\n2\n"
    assert g.read_text() == "d\n4\n"
    assert h.read_text() == "f\n6\n"
    assert out == "c\n3\ne\n5\n"
    code, _, err = run(":memory:", "-c", f".output {tmp_path / 'no' / 'dir' / 'x'}")
    assert code == 1 and err.startswith("Error: cannot open")


def test_shell_print_and_databases(run, tmp_path):
    db = tmp_path / "a.duckdb"
    code, out, _ = run(str(db), "-c", ".shell echo from-the-shell\n.print hello world\n.databases")
    assert code == 0
    lines = out.splitlines()
    assert lines[:2] == ["from-the-shell", "hello world"]
    assert lines[2].split() == ["a", str(db)]
    assert run(":memory:", "-c", ".shell exit 3")[2] == "System command returns 3\n"


def test_open_switches_database(run, tmp_path):
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    code, out, err = run(str(a), "-csv", "-c", f"CREATE TABLE in_a AS SELECT 1 AS x;\n.open {b}\n"
                         "CREATE TABLE in_b AS SELECT 2 AS y;\n.tables\n.open --readonly " + str(a) + "\n.tables")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["in_b", "in_a"]
    code, _, err = run(":memory:", "-c", f".open {tmp_path / 'no' / 'dir' / 'c.duckdb'}\nSELECT 1;")
    assert code == 1 and err.startswith("Error: ")


def test_readonly_flag_refuses_writes(run, tmp_path):
    db = tmp_path / "a.duckdb"
    assert run(str(db), "-c", "CREATE TABLE t AS SELECT 1 AS x")[0] == 0
    code, out, err = run("-readonly", str(db), "-csv", "-c", "SELECT x FROM t", "-c", "INSERT INTO t VALUES (2)")
    assert code == 1 and out == "x\n1\n"
    assert "read-only" in err


# ---- statement numbers in messages -----------------------------------------------------------------

def test_each_c_numbers_its_own_statements(run):
    code, _, err = run(":memory:", "-c", "SELECT 1; SELECT 2; SELECT 3;", "-c", BAD_PREDICT)
    assert code == 1
    assert err.startswith("Error: statement 2, line 2, column ")


def test_a_read_file_numbers_its_own_statements(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.sql").write_text("\n" + BAD_PREDICT + "\n")
    code, _, err = run(":memory:", stdin="SELECT 1;\nSELECT 2;\nSELECT 3;\n.read bad.sql\n")
    assert code == 1
    assert err.startswith("Error: statement 2, line 3, column ")


def test_the_command_line_runs_a_real_process(tmp_path):
    """Through ``python -m rdl_sql.cli``, as a user runs it: flags, stdin and the exit status."""
    r = subprocess.run([sys.executable, "-m", "rdl_sql.cli", "-json", str(tmp_path / "a.duckdb")],
                       input="SELECT 1 AS a;\n.exit 5\n", capture_output=True, text=True, timeout=60, check=False)
    assert (r.returncode, r.stdout) == (5, '[{"a":1}]\n'), r.stderr
    con = duckdb.connect(str(tmp_path / "a.duckdb"))   # the process let the file go
    con.close()
