"""Tab completion for the interactive shell (prompt_toolkit ``Completer``).

Completes, for the word before the cursor: SQL and rdl-sql keywords, table and
view names, column names (``table.`` + Tab lists that table's columns), stored
model names (from ``rdl_models``, first after ``MODEL`` / ``USING``), function
names, dot commands, ``.mode`` names and file names after ``.read`` /
``.open`` / ``.output`` / ``.once``. The catalog is read through a cursor of
the shell's connection and read again after each statement that ran.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from prompt_toolkit.completion import Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from sqlglot.dialects.duckdb import DuckDB

from rdl_sql.shell.render import MODES

# rdl-sql's own words (rdl_sql/dialect.py) and the options of WITH (...)
RDL_KEYWORDS = ("PREDICT", "FOR", "EACH", "USING", "MODEL", "MODELS", "GRAPH", "EVALUATE", "DESCRIBE",
                "SHOW", "ASSUMING", "VIA", "LINK", "IGNORE", "UNIGNORE", "COLUMN", "TIME", "EXPLAIN", "AS", "OF",
                "DAYS", "HOURS", "WEEKS", "MONTHS", "YEARS", "MINUTES", "COUNT", "SUM", "AVG", "MIN", "MAX",
                "EXISTS", "NONE", "LIST_DISTINCT", "RANK", "TOP")
SQL_KEYWORDS = ("SELECT", "FROM", "WHERE", "GROUP", "BY", "ORDER", "HAVING", "LIMIT", "OFFSET", "JOIN", "LEFT",
                "RIGHT", "INNER", "OUTER", "FULL", "CROSS", "ON", "INSERT", "INTO", "VALUES", "UPDATE", "SET",
                "DELETE", "CREATE", "TABLE", "VIEW", "DROP", "ALTER", "ADD", "WITH", "DISTINCT", "UNION",
                "ALL", "CASE", "WHEN", "THEN", "ELSE", "END", "AND", "OR", "NOT", "NULL", "IS", "IN", "LIKE",
                "BETWEEN", "ASC", "DESC", "REPLACE", "ATTACH", "DETACH", "COPY", "PRAGMA", "SUMMARIZE",
                "QUALIFY", "WINDOW", "OVER", "PARTITION", "PRIMARY", "KEY", "REFERENCES", "FOREIGN")
TABLE_BEFORE = {"FROM", "JOIN", "INTO", "UPDATE", "TABLE", "EACH", "DESCRIBE", "SUMMARIZE"}
MODEL_BEFORE = {"MODEL", "USING"}
FILE_COMMANDS = {".read", ".open", ".output", ".once", ".init"}


def _keywords() -> list[str]:
    words = {k for k in DuckDB.Tokenizer.KEYWORDS if re.fullmatch(r"[A-Z][A-Z_]*", k)}
    return sorted(words | set(SQL_KEYWORDS) | set(RDL_KEYWORDS))


class Catalog:
    """Names the shell can complete, read through a cursor of the connection ``con``."""

    def __init__(self, con):
        self.con = con
        self._cur = None
        self.stale = True
        self.tables: list[str] = []
        self.columns: dict[str, list[str]] = {}
        self.models: list[str] = []
        self.functions: list[str] = []

    def _rows(self, sql: str) -> list[tuple]:
        try:
            if self._cur is None:
                self._cur = self.con.cursor()
            self._cur.execute(sql)
            return self._cur.fetchall()
        except Exception:  # noqa: BLE001 - completion must never break the prompt
            return []

    def refresh(self) -> None:
        if not self.stale:
            return
        self.stale = False
        cols: dict[str, list[str]] = {}
        for table, column in self._rows(
                "SELECT table_name, column_name FROM duckdb_columns() "
                "WHERE database_name IN (current_database(), 'temp') AND NOT internal "
                "AND NOT starts_with(table_name, '__rdl') ORDER BY table_name, column_index"):
            cols.setdefault(table, []).append(column)
        self.columns = cols
        self.tables = sorted(cols)
        has_models = self._rows("SELECT 1 FROM duckdb_tables() WHERE table_name = 'rdl_models' "
                                "AND database_name = current_database()")
        self.models = [r[0] for r in self._rows("SELECT name FROM rdl_models ORDER BY name")] if has_models else []
        if not self.functions:
            self.functions = [r[0] for r in self._rows(
                "SELECT DISTINCT function_name FROM duckdb_functions() "
                "WHERE function_type IN ('scalar', 'aggregate', 'table') AND regexp_full_match(function_name, "
                "'[a-z][a-z0-9_]*') ORDER BY 1")]


class ShellCompleter(Completer):
    """Completions for one line of the shell; ``commands`` and ``catalog`` come from the shell."""

    def __init__(self, commands: Callable[[], Iterable[str]], catalog: Callable[[], Catalog]):
        self._commands = commands
        self._catalog = catalog
        self._keywords = _keywords()
        self._paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, complete_event):
        text = document.text_before_cursor
        if text.lstrip().startswith(".") and "\n" not in text:
            yield from self._dot(text.lstrip(), complete_event)
            return
        word = re.search(r"[\w.]*$", text).group(0)
        before = text[: len(text) - len(word)]
        previous = re.search(r"([A-Za-z_]+)\s+$", before)   # the keyword right before this word, if any
        prev = previous.group(1).upper() if previous else ""
        cat = self._catalog()
        cat.refresh()
        if "." in word:  # table.column
            table, _, part = word.rpartition(".")
            cols = next((c for t, c in cat.columns.items() if t.lower() == table.lower()), [])
            yield from _matches(part, cols, "column")
            return
        if not word:
            return
        groups: list[tuple[Iterable[str], str]] = [(self._keywords, "keyword"), (cat.tables, "table"),
                                                   (sorted({c for cs in cat.columns.values() for c in cs}), "column"),
                                                   (cat.models, "model"), (cat.functions, "function")]
        if prev in MODEL_BEFORE:      # DESCRIBE MODEL m, PREDICT ... USING m: stored models only
            groups = [groups[3]]
        elif prev in TABLE_BEFORE:    # FROM t, JOIN t, FOR EACH t.column: tables only
            groups = [groups[1]]
        seen: set[str] = set()
        for names, kind in groups:
            for c in _matches(word, names, kind):
                if c.text.lower() not in seen:
                    seen.add(c.text.lower())
                    yield c

    def _dot(self, text: str, event):
        parts = text.split(" ")
        if len(parts) == 1:
            yield from _matches(parts[0], sorted(self._commands()), "command")
            return
        command, arg = parts[0], parts[-1]
        if command == ".mode" and len(parts) == 2:
            yield from _matches(arg, MODES, "mode")
        elif command in (".headers", ".timer", ".bail") and len(parts) == 2:
            yield from _matches(arg, ("on", "off"), "")
        elif command in FILE_COMMANDS:
            yield from self._paths.get_completions(Document(arg, len(arg)), event)


def _matches(prefix: str, names: Iterable[str], kind: str):
    low = prefix.lower()
    for name in names:
        if name.lower().startswith(low) and name != prefix:
            yield Completion(name, start_position=-len(prefix), display_meta=kind)
