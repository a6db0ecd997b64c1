"""The interactive shell in a pseudo-terminal (pexpect): Tab completion, exit statuses, multi-line
editing with prompt_toolkit's full screen rendering, and ``-readonly`` next to another reader."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import duckdb
import pexpect
import pytest

from rdl_sql import shell

SETUP = ("CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name VARCHAR);"
         "CREATE TABLE orders (order_id INTEGER, customer_id INTEGER);"
         "INSERT INTO customers VALUES (1, 'ann'), (2, 'bob');"
         "INSERT INTO orders VALUES (10, 1), (11, 1), (12, 2);"
         "CREATE TABLE rdl_models (name VARCHAR);"          # stored models are listed by name
         "INSERT INTO rdl_models VALUES ('churn_model');")


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(path))
    con.execute(SETUP)
    con.close()
    return path


def spawn(tmp_path, *args: str, term: str = "dumb") -> pexpect.spawn:
    child = pexpect.spawn(sys.executable, ["-m", "rdl_sql.cli", *args], cwd=str(tmp_path), encoding="utf-8",
                          timeout=30, dimensions=(40, 200),
                          env=dict(os.environ, TERM=term, HOME=str(tmp_path), PROMPT_TOOLKIT_NO_CPR="1"))
    return child


def type_keys(child: pexpect.spawn, keys: str) -> None:
    """Type ``keys``, pausing after each Tab as a person does: completion runs in the background and
    is dropped when more keys arrive before it is done."""
    parts = keys.split("\t")
    for part in parts[:-1]:
        child.send(part + "\t")
        time.sleep(0.6)
    child.send(parts[-1])


def command(child: pexpect.spawn, keys: str) -> str:
    """Type ``keys`` and Enter, wait for the next fresh prompt, return what the shell printed."""
    type_keys(child, keys + "\r")
    child.expect(r"\r\nD $")
    return child.before.replace("\r\n", "\n")


def history(tmp_path) -> list[str]:
    return (tmp_path / ".rdl_sql_history").read_text().splitlines()


def test_tab_completes_keywords_tables_columns_models_and_dot_commands(db, tmp_path):
    child = spawn(tmp_path, str(db))
    try:
        child.expect_exact(shell.PROMPT)
        assert "│ 42 │" in command(child, ".mode box")  + command(child, "sel\t 42 AS x;")     # keyword
        assert "│ 3            │" in command(child, "SELECT count(*) AS orders_count FROM orde\t;")     # table
        assert "│ ann  │" in command(child, "SELECT customers.na\t FROM customers ORDER BY 1;")   # column
        command(child, "DESCRIBE MODEL chu\t;")                                                     # model
        # a dot command
        assert (command(child, ".mo\t csv") + command(child, "SELECT 1 AS a, 2 AS b;")).endswith("a,b\n1,2")
        command(child, "PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EA\t custo\t.customer_id;")
        child.sendline(".quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    # the history keeps each statement as it ran, completions inserted
    lines = history(tmp_path)
    assert "SELECT 42 AS x;" in lines
    assert "SELECT count(*) AS orders_count FROM orders;" in lines
    assert "SELECT customers.name FROM customers ORDER BY 1;" in lines
    assert "DESCRIBE MODEL churn_model;" in lines
    assert ".mode csv" in lines
    assert "PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id;" in lines


def test_exit_code_from_the_prompt(tmp_path):
    child = spawn(tmp_path, ":memory:")
    try:
        child.expect_exact(shell.PROMPT)
        command(child, "SELECT nope;")        # an error at the prompt does not change the status
        child.sendline(".exit 3")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 3


def test_cmd_and_init_run_before_the_prompt(tmp_path):
    (tmp_path / "init.sql").write_text(".mode csv\n")
    child = spawn(tmp_path, "-init", "init.sql", "-cmd", "CREATE TABLE t AS SELECT 5 AS v;", ":memory:")
    try:
        child.expect_exact("-- Loading resources from init.sql")
        child.expect_exact(shell.PROMPT)
        assert command(child, "SELECT v FROM t;").endswith("v\n5")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_full_screen_prompt_edits_one_statement_over_lines(db, tmp_path):
    """A real terminal (not TERM=dumb): prompt_toolkit draws the prompt; Enter inside an open statement
    adds a line, Enter after its `;` runs it; Tab completes there too; Up brings the statement back."""
    ready = r"\x1b\[\?2004h"   # bracketed paste switched on: prompt_toolkit is reading keys
    child = spawn(tmp_path, str(db), term="xterm")
    try:
        child.expect(ready)
        child.send("SELECT name\r")
        child.expect_exact(shell.CONTINUATION.strip())
        type_keys(child, "FROM custom\t\rWHERE customer_id = 2;\r")
        child.expect_exact("│ bob     │")
        child.expect(ready)
        child.send("\x1b[A")                  # Up: the whole statement comes back as one entry
        time.sleep(0.5)
        child.send("\r")
        child.expect_exact("│ bob     │")
        child.expect(ready)
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert history(tmp_path).count("SELECT name FROM customers WHERE customer_id = 2;") == 1


READER = ("import sys, duckdb\n"
          "con = duckdb.connect(sys.argv[1], read_only=True)\n"
          "print(con.execute('SELECT count(*) FROM orders').fetchone()[0])\n")


def _read_in_another_process(db) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", READER, str(db)], capture_output=True, text=True, timeout=60,
                          check=False)


def test_readonly_shell_lets_another_process_read_the_file(db, tmp_path):
    child = spawn(tmp_path, "-readonly", str(db))
    try:
        child.expect_exact("(read-only)")
        child.expect_exact(shell.PROMPT)
        r = _read_in_another_process(db)       # while the shell holds the file open
        assert (r.returncode, r.stdout) == (0, "3\n"), r.stderr
        assert "│ 3 │" in command(child, ".mode box") + command(child, "SELECT count(*) AS n FROM orders;")
        assert "read-only" in command(child, "INSERT INTO orders VALUES (13, 2);")
        child.sendline(".quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()


def test_writable_shell_holds_the_file_alone(db, tmp_path):
    """The contrast that makes the test above mean something: without -readonly, DuckDB's lock
    keeps the other process out."""
    child = spawn(tmp_path, str(db))
    try:
        child.expect_exact(shell.PROMPT)
        r = _read_in_another_process(db)
        assert r.returncode != 0 and re.search(r"lock", r.stderr, re.IGNORECASE)
        child.sendline(".quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
