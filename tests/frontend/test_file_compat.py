"""Files that DuckDB 1.x readers open: ``storage_compatibility`` on connect, the shell and the demo.

The reader is the real ``duckdb-cli`` 1.5.6 binary from PyPI (the last CLI
there), installed into this test's temporary folder; without a package
registry the tests skip and say why. (A second process reading while a shell
runs ``-readonly`` is tested in test_shell_terminal.py.)
"""
from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

import rdl_sql
from rdl_sql import demo, shell
from rdl_sql.cli import demo_parser
from rdl_sql.datasets.shop import build_shop

FAST = "WITH (epochs = 1, channels = 16, fanouts = '4,4', max_train_rows = 1500)"
CHURN = ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
         "WHERE COUNT(orders.*, -90, 0, DAYS) > 0 " + FAST)


@pytest.fixture(scope="module")
def duckdb_cli(tmp_path_factory) -> Path:
    """The duckdb-cli 1.5.6 executable, pip-installed into a temporary folder (skip when that cannot be done)."""
    target = tmp_path_factory.mktemp("duckdb_cli")
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                               "--no-deps", "--target", str(target), "duckdb-cli==1.5.6"],
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot install duckdb-cli 1.5.6 with pip: {e}")
    binary = target / "duckdb_cli" / "duckdb"
    if done.returncode != 0 or not binary.exists():
        pytest.skip("cannot install duckdb-cli 1.5.6 from PyPI (no registry?): "
                    + (done.stderr.strip().splitlines() or ["no duckdb_cli/duckdb in the wheel"])[-1])
    version = subprocess.run([str(binary), "-version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.startswith("v1.5.6"), version.stdout + version.stderr
    return binary


def cli_rows(binary: Path, db: Path, sql: str) -> tuple[int, list[list[str]], str]:
    """``duckdb -readonly DB -csv -c SQL``: (exit status, rows without the header, stderr)."""
    done = subprocess.run([str(binary), "-readonly", str(db), "-csv", "-c", sql],
                          capture_output=True, text=True, timeout=120)
    rows = list(csv.reader(io.StringIO(done.stdout)))
    return done.returncode, rows[1:], done.stderr


@pytest.fixture(scope="module")
def compat_file(tmp_path_factory) -> tuple[Path, list[tuple]]:
    """A shop file created for DuckDB 1.5, with a stored model and a prediction table; and that table's rows."""
    path = tmp_path_factory.mktemp("compat") / "shop.duckdb"
    with rdl_sql.connect(str(path), progress=False, storage_compatibility="v1.5.0") as con:
        build_shop(con.duckdb_connection, customers=300, products=40, days=300, seed=2)
        con.execute("CREATE MODEL churn AS " + CHURN)
        con.execute("CREATE TABLE churn_scores AS PREDICT USING churn")
        rows = con.execute("SELECT customer_id, prediction, score FROM churn_scores ORDER BY customer_id").fetchall()
    assert rows
    return path, rows


def test_duckdb_1_5_cli_reads_a_prediction_table_written_for_it(duckdb_cli, compat_file):
    path, rows = compat_file
    code, got, err = cli_rows(duckdb_cli, path, "SELECT customer_id, prediction, score FROM churn_scores "
                                                "ORDER BY customer_id")
    assert code == 0, err
    assert len(got) == len(rows)
    for (cid, pred, score), (c, p, s) in zip(rows, got):
        assert (str(cid), str(pred).lower()) == (c, p.lower())
        assert abs(float(s) - score) < 1e-6
    code, got, err = cli_rows(duckdb_cli, path, "SELECT name, task FROM rdl_models")
    assert (code, got) == (0, [["churn", "binary"]]), err


def test_a_file_stays_readable_after_a_session_without_the_option_writes_to_it(duckdb_cli, compat_file, tmp_path):
    path, rows = compat_file
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(path.read_bytes())
    with rdl_sql.connect(str(copy), progress=False) as con:  # no option: the file keeps the format it was made in
        con.execute("CREATE TABLE again AS PREDICT USING churn")
    code, got, err = cli_rows(duckdb_cli, copy, "SELECT count(*) FROM again")
    assert (code, got) == (0, [[str(len(rows))]]), err


def test_without_the_option_duckdb_1_5_cannot_open_the_file(duckdb_cli, tmp_path):
    """The contrast that makes the tests above mean something."""
    path = tmp_path / "new.duckdb"
    with rdl_sql.connect(str(path), progress=False) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    code, _, err = cli_rows(duckdb_cli, path, "SELECT x FROM t")
    assert code != 0 and "version number" in err


def test_shell_flag_writes_a_file_duckdb_1_5_opens(duckdb_cli, tmp_path, capsys):
    path = tmp_path / "shell.duckdb"
    code = shell.main(["-storage-compatibility", "v1.5.0", str(path), "-c",
                       "CREATE TABLE t AS SELECT range AS x, [range, 1] AS l FROM range(3)"])
    assert code == 0, capsys.readouterr().err
    code, got, err = cli_rows(duckdb_cli, path, "SELECT x, l FROM t ORDER BY x")
    assert (code, got) == (0, [["0", "[0, 1]"], ["1", "[1, 1]"], ["2", "[2, 1]"]]), err


def test_shell_flag_refuses_an_unknown_version(tmp_path, capsys):
    path = tmp_path / "bad.duckdb"
    code = shell.main(["-storage-compatibility", "v9.9", str(path), "-c", "SELECT 1"])
    err = capsys.readouterr().err
    assert code == 1 and "not a known DuckDB version" in err and "v1.5.0" in err
    assert not path.exists()
    assert shell.main(["-storage-compatibility"]) == 1
    assert "missing argument to -storage-compatibility" in capsys.readouterr().err


def test_connect_option_refuses_an_unknown_version(tmp_path):
    with pytest.raises(rdl_sql.OperationalError, match="not a known DuckDB version"):
        rdl_sql.connect(str(tmp_path / "x.duckdb"), storage_compatibility="1.5")


def test_demo_takes_the_option_and_refuses_an_unknown_version(tmp_path):
    args = demo_parser().parse_args(["--dataset", "shop", "--storage-compatibility", "v1.5.0"])
    assert args.storage_compatibility == "v1.5.0"
    out, err = io.StringIO(), io.StringIO()
    path = tmp_path / "demo.duckdb"
    assert demo.run("shop", str(path), out=out, err=err, storage_compatibility="v0.0") == 2
    assert "not a known DuckDB version" in err.getvalue() and not path.exists()


@pytest.mark.slow
def test_demo_with_the_option_writes_a_file_duckdb_1_5_opens(duckdb_cli, tmp_path):
    path = tmp_path / "demo.duckdb"
    out, err = io.StringIO(), io.StringIO()
    assert demo.run("shop", str(path), out=out, err=err, customers=300, storage_compatibility="v1.5.0") == 0, \
        err.getvalue()
    code, got, stderr = cli_rows(duckdb_cli, path, "SELECT name FROM rdl_models ORDER BY name")
    assert code == 0 and ["churn"] in got, stderr
    code, got, stderr = cli_rows(duckdb_cli, path, "SELECT count(*) FROM customers")
    assert (code, got) == (0, [["300"]]), stderr
