"""``rdl-sql [DB]``: an interactive SQL shell with the DuckDB CLI's look, over ``rdl_sql.connect``.

Three ways in, one path through: an interactive prompt (``rdl-sql shop.duckdb``),
``-c "SQL"``, and a script on stdin (``rdl-sql shop.duckdb < script.sql``).
All of them feed lines to ``Shell.feed``, which treats a line that starts with
``.`` on a fresh buffer as a dot command and otherwise collects lines until
the last token is a ``;`` outside strings and comments, then runs each
statement on its own so that every result is printed.

Decisions:

- Prompts are DuckDB's: ``D `` for a new statement, ``‣ `` while a
  statement is still open.
- Scripts and ``-c`` stop at the first error and exit with status 1
  (``.bail off`` continues past errors, still exiting 1); the interactive
  prompt never stops on an error.
- Errors print as ``Error: <message>`` on stderr; an exception that is not
  an ``rdl_sql.Error`` (a bug, not a SQL mistake) prints as one line too,
  with its Python traceback only when ``RDL_SQL_DEBUG`` is set.
- Notices (training metrics) follow the table on stdout, except in csv mode,
  where they go to stderr so that the output stays valid CSV.
- The training progress bar is shown whenever stderr is a terminal.
"""
from __future__ import annotations

import dataclasses

import argparse
import csv
import math
import os
import shlex
import sys
import time
import traceback
import unicodedata
from collections.abc import Callable
from decimal import Decimal
from typing import TextIO

import pyarrow as pa
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType

import rdl_sql
from rdl_sql.script import Statement, split

PROMPT = "D "
CONTINUATION = "‣ "
HISTORY_FILE = "~/.rdl_sql_history"
MAX_ROWS = 40          # DuckDB's default: past this, the first and last 20 rows are shown
MODES = ("box", "csv", "line")

_TOKENIZER = DuckDB().tokenizer_class()

# statements whose only result is DuckDB's row count, which DuckDB's CLI does not print
_COUNT_ONLY = {"INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "COPY", "ATTACH", "DETACH", "USE",
               "SET", "RESET", "LOAD", "INSTALL", "BEGIN", "COMMIT", "ROLLBACK", "ABORT", "CHECKPOINT",
               "VACUUM", "ANALYZE", "IMPORT", "EXPORT", "TRUNCATE", "COMMENT", "START", "END"}


class _Quit(Exception):
    """``.quit`` was given: leave the shell."""


def buffer_state(text: str) -> str:
    """``'empty'`` (only blanks and comments), ``'complete'`` (ends in ``;``) or ``'open'``."""
    try:
        tokens = _TOKENIZER.tokenize(text)
    except TokenError:  # an unterminated string or comment: more lines to come
        return "open"
    if not tokens:
        return "empty"
    return "complete" if tokens[-1].token_type == TokenType.SEMICOLON else "open"


# ---- rendering -------------------------------------------------------------------------

def _width(s: str) -> int:
    """Terminal columns taken by ``s`` (East Asian wide characters take two)."""
    if s.isascii():
        return len(s)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 0 if unicodedata.combining(ch) else 1
               for ch in s)


def _fit(s: str, w: int) -> str:
    """``s`` cut to ``w`` columns, ending in ``…`` when cut."""
    if _width(s) <= w:
        return s
    out, used = [], 0
    for ch in s:
        cw = _width(ch)
        if used + cw > w - 1:
            break
        out.append(ch)
        used += cw
    return "".join(out) + "…"


def _pad(s: str, w: int, align: str) -> str:
    s = _fit(s, w)
    gap = w - _width(s)
    if align == "right":
        return " " * gap + s
    if align == "center":
        return " " * (gap // 2) + s + " " * (gap - gap // 2)
    return s + " " * gap


def _interval(v) -> str:
    """An Arrow month-day-nano interval as DuckDB writes it (``1 year 2 months 3 days 04:05:06``)."""
    years, months = divmod(v.months, 12)
    parts = [f"{n} {unit}{'s' if abs(n) != 1 else ''}" for n, unit in ((years, "year"), (months, "month"),
                                                                      (v.days, "day")) if n]
    if v.nanoseconds or not parts:
        sign = "-" if v.nanoseconds < 0 else ""
        us = abs(v.nanoseconds) // 1000
        secs, us = divmod(us, 1_000_000)
        mins, secs = divmod(secs, 60)
        hours, mins = divmod(mins, 60)
        parts.append(f"{sign}{hours:02d}:{mins:02d}:{secs:02d}" + (f".{us:06d}" if us else ""))
    return " ".join(parts)


def format_value(v, null: str = "NULL", single: bool = False) -> str:
    """One value as DuckDB's CLI shows it (``single``: a float read from a REAL column)."""
    if v is None:
        return null
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if single and math.isfinite(v):
            return f"{v:.7g}" if "e" not in f"{v:.7g}" else repr(v)
        return repr(v)
    if isinstance(v, (int, Decimal, str)):
        return str(v)
    if isinstance(v, bytes):
        return "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02X}" for b in v)
    if isinstance(v, list):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"'{k}': {format_value(x)}" for k, x in v.items()) + "}"
    if type(v).__name__ == "MonthDayNano":
        return _interval(v)
    return str(v)


def _column_cells(col: pa.ChunkedArray | pa.Array, null: str = "NULL") -> list[str]:
    single = pa.types.is_float32(col.type) or pa.types.is_float16(col.type)
    return [format_value(v, null, single) for v in col.to_pylist()]


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def render_box(names: list[str], types: list[str], table: pa.Table, max_rows: int = MAX_ROWS,
               max_width: int | None = None) -> list[str]:
    """The lines of ``table`` drawn as DuckDB's box mode draws it: names and types on top, numbers
    right-aligned, and past ``max_rows`` rows the first and last half with a ``·`` row between."""
    n = table.num_rows
    truncated = n > max_rows
    head = max_rows // 2 if truncated else n
    tail = max_rows - head if truncated else 0
    shown = pa.concat_tables([table.slice(0, head), table.slice(n - tail, tail)]) if truncated else table
    cols = [_column_cells(shown.column(i)) for i in range(table.num_columns)]
    cols = [[c.replace("\n", "\\n").replace("\r", "\\r").replace("\t", " ") for c in col] for col in cols]
    aligns = ["right" if _is_number(f.type) else "left" for f in table.schema]
    widths = [max([_width(nm), _width(tp)] + [_width(c) for c in col]) for nm, tp, col in zip(names, types, cols)]

    footer = f"{n:,} rows ({head + tail} shown)" if truncated else ("0 rows" if n == 0 else None)
    if max_width is not None:  # narrow the widest columns until the table fits the terminal
        while sum(widths) + 3 * len(widths) + 1 > max_width and max(widths, default=0) > 3:
            i = widths.index(max(widths))
            widths[i] -= 1
    inner = sum(widths) + 3 * len(widths) - 1
    footer_lines = [footer] if footer else []
    if footer and truncated and _width(footer) + 2 > inner:  # a narrow table: count and shown on two lines
        footer_lines = [f"{n:,} rows", f"({head + tail} shown)"]
    need = max((_width(f) + 2 for f in footer_lines), default=0)
    if widths and need > inner:
        widths[-1] += need - inner
        inner = need

    def rule(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    def row(cells: list[str], align: list[str]) -> str:
        return "│" + "│".join(f" {_pad(c, w, a)} " for c, w, a in zip(cells, widths, align)) + "│"

    lines = [rule("┌", "┬", "┐"), row(names, ["center"] * len(names)), row(types, ["center"] * len(types))]
    if n:
        lines.append(rule("├", "┼", "┤"))
    for r in range(head):
        lines.append(row([c[r] for c in cols], aligns))
    if truncated:
        lines.extend(row(["·"] * len(cols), ["center"] * len(cols)) for _ in range(3))
        for r in range(head, head + tail):
            lines.append(row([c[r] for c in cols], aligns))
    if footer_lines:
        align = "center" if len(footer_lines) > 1 else "left"
        lines += ([rule("├", "┴", "┤")] + ["│ " + _pad(f, inner - 2, align) + " │" for f in footer_lines]
                  + ["└" + "─" * inner + "┘"])
    else:
        lines.append(rule("└", "┴", "┘"))
    return lines


def _batches(table: pa.Table, null: str):
    """Rows of ``table`` as lists of display strings, one record batch at a time."""
    for batch in table.to_batches(max_chunksize=4096):
        yield from zip(*(_column_cells(batch.column(i), null) for i in range(batch.num_columns)))


def render_csv(names: list[str], table: pa.Table, out: TextIO) -> None:
    """``table`` as CSV with a header row; NULL is the empty field, as in DuckDB's csv mode."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(names)
    for r in _batches(table, ""):
        w.writerow(r)


def render_line(names: list[str], table: pa.Table, out: TextIO) -> None:
    """``table`` as DuckDB's line mode: one ``name = value`` per line, a blank line between rows."""
    w = max((_width(nm) for nm in names), default=0)
    for i, r in enumerate(_batches(table, "NULL")):
        if i:
            out.write("\n")
        out.write("".join(f"{_pad(nm, w, 'right')} = {v}\n" for nm, v in zip(names, r)))


def _columns_layout(names: list[str], width: int) -> list[str]:
    """``names`` laid out column by column across ``width`` characters, as ``.tables`` shows them."""
    if not names:
        return []
    cw = max(_width(n) for n in names) + 2
    ncols = max(1, width // cw)
    nrows = math.ceil(len(names) / ncols)
    return ["".join(_pad(names[c * nrows + r], cw, "left") for c in range(ncols) if c * nrows + r < len(names))
            .rstrip() for r in range(nrows)]


# ---- the shell -------------------------------------------------------------------------------

class Shell:
    """One shell session over an open connection, writing results to ``out`` and errors to ``err``."""

    def __init__(self, con: rdl_sql.Connection, out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        self.con = con
        self.cur = con.cursor()
        self.out, self.err = out, err
        self.mode = "box"
        self.timer = False
        self.bail = True
        self.max_rows = MAX_ROWS
        self.failed = False   # an error was printed at some point
        self.statements = 0   # SQL statements run so far: the number messages give a statement
        self.commands: dict[str, tuple[Callable[[list[str]], bool], str, str]] = {
            ".bail": (self._bail, "on|off", "Stop a script at its first error (default: on)"),
            ".exit": (self._quit, "", "Exit this program"),
            ".graph": (self._graph, "", "Show the graph rdl-sql sees: tables, keys, links, time columns"),
            ".help": (self._help, "", "Show this message"),
            ".maxrows": (self._maxrows, "N", f"Rows shown in box mode before the middle is cut (default: {MAX_ROWS})"),
            ".mode": (self._mode, "box|csv|line", "Set the output mode"),
            ".models": (self._models, "", "List the stored models"),
            ".quit": (self._quit, "", "Exit this program"),
            ".read": (self._read, "FILE", "Run the statements and dot commands in FILE"),
            ".schema": (self._schema, "[TABLE]", "Show the CREATE statements of all tables, or of TABLE"),
            ".tables": (self._tables, "", "List the tables and views"),
            ".timer": (self._timer, "on|off", "Print the run time of each statement"),
        }

    # ---- input -------------------------------------------------------------------------
    def feed(self, text: str) -> bool:
        """Run a script of statements and dot commands; False when an error stopped it (or, with
        ``.bail off``, when any statement failed)."""
        buf: list[str] = []
        start = 1
        ok = True
        for lineno, line in enumerate(text.splitlines(), 1):
            if not buf:
                if line.lstrip().startswith("."):
                    if not self.dot(line):
                        ok = False
                        if self.bail:
                            return False
                    continue
                start = lineno
            buf.append(line)
            state = buffer_state("\n".join(buf))
            if state == "open":
                continue
            chunk, buf = "\n".join(buf), []
            if state == "complete" and not self.run_sql(chunk, start):
                ok = False
                if self.bail:
                    return False
        if buf and not self.run_sql("\n".join(buf), start):  # a last statement without its `;`
            ok = False
        return ok

    def repl(self) -> int:
        """Read statements from the terminal until ``.quit`` or Ctrl-D."""
        history = _History()
        buf: list[str] = []
        try:
            while True:
                try:
                    line = input(CONTINUATION if buf else PROMPT)
                except EOFError:
                    self.out.write("\n")
                    return 0
                except KeyboardInterrupt:  # Ctrl-C at the prompt drops what was typed
                    self.out.write("\n")
                    buf = []
                    continue
                if not buf and line.lstrip().startswith("."):
                    history.add(line.strip())
                    self.dot(line)
                    continue
                buf.append(line)
                state = buffer_state("\n".join(buf))
                if state == "open":
                    continue
                chunk, buf = "\n".join(buf), []
                if state == "complete":
                    history.add(" ".join(x.strip() for x in chunk.splitlines() if x.strip()))
                    self.run_sql(chunk)
        except _Quit:
            return 0
        finally:
            history.save()

    # ---- statements ------------------------------------------------------------------------
    def run_sql(self, chunk: str, first_line: int = 1) -> bool:
        """Run each statement of ``chunk`` (which starts on line ``first_line`` of its script) and
        print its result; stop at the first error."""
        for stmt in split(chunk):
            t0, c0 = time.perf_counter(), os.times()
            try:
                # messages name the statement's number and lines in the script it came from
                self.statements += 1
                self.cur.execute(dataclasses.replace(stmt, index=self.statements,
                                                     first_line=first_line + stmt.first_line - 1))
                self.show(stmt)
            except rdl_sql.Error as e:
                return self.error(str(e))
            except KeyboardInterrupt:
                self.cur.close()       # a fresh cursor: the interrupted one may hold a half-made result
                self.cur = self.con.cursor()
                self.out.flush()
                if _isatty(self.err):  # end the progress bar's line
                    self.err.write("\n")
                return self.error("Interrupted", prefix=False)
            except BrokenPipeError:
                raise
            except Exception as e:  # noqa: BLE001 - a bug, not a SQL mistake: still one readable line
                if os.environ.get("RDL_SQL_DEBUG"):
                    traceback.print_exc(file=self.err)
                return self.error(f"internal error ({type(e).__name__}): {e}\n"
                                  "(set RDL_SQL_DEBUG=1 to see the Python traceback)")
            if self.timer:
                c1 = os.times()
                self.out.write(f"Run Time (s): real {time.perf_counter() - t0:.3f} user {c1.user - c0.user:.6f} "
                               f"sys {c1.system - c0.system:.6f}\n")
        return True

    def show(self, stmt: Statement | None = None) -> None:
        """Print the current result of the cursor in the output mode, then its notices."""
        desc = self.cur.description
        count_only = (stmt is not None and desc is not None and len(desc) == 1 and desc[0][0] == "Count"
                      and stmt.text.split(None, 1)[0].upper() in _COUNT_ONLY)
        if desc is not None and not count_only:
            try:
                table = self.cur.fetch_arrow_table()
            except rdl_sql.ProgrammingError:  # the statement returned nothing to fetch
                table = None
            if table is not None:
                names = [d[0] for d in desc]
                if self.mode == "box":
                    types = [str(d[1]).lower() for d in desc]
                    width = os.get_terminal_size(self.out.fileno()).columns if _isatty(self.out) else None
                    self.out.write("\n".join(render_box(names, types, table, self.max_rows, width)) + "\n")
                elif self.mode == "csv":
                    render_csv(names, table, self.out)
                else:
                    render_line(names, table, self.out)
        notices = self.err if self.mode == "csv" else self.out
        for n in self.cur.notices:
            notices.write(n + "\n")
        self.out.flush()

    def error(self, message: str, prefix: bool = True) -> bool:
        """Print ``message`` on stderr; False, for the caller to return."""
        self.out.flush()
        self.err.write(("Error: " if prefix else "") + message.rstrip() + "\n")
        self.err.flush()
        self.failed = True
        return False

    # ---- dot commands ------------------------------------------------------------------------
    def dot(self, line: str) -> bool:
        """Run one dot command line; False after printing an error."""
        try:
            words = shlex.split(line.strip())
        except ValueError as e:
            return self.error(f"cannot read the arguments of {line.split()[0]}: {e}")
        name, args = words[0], words[1:]
        if name not in self.commands:
            return self.error(f"unknown command {name}; try .help")
        try:
            return self.commands[name][0](args)
        except rdl_sql.Error as e:
            return self.error(str(e))

    def _usage(self, name: str) -> bool:
        return self.error(f"usage: {name} {self.commands[name][1]}".rstrip())

    def _help(self, args: list[str]) -> bool:
        rows = [(f"{k} {usage}".rstrip(), about) for k, (_, usage, about) in self.commands.items()]
        w = max(len(r[0]) for r in rows) + 2
        self.out.write("".join(f"{u:<{w}}{about}\n" for u, about in rows))
        self.out.write("Statements end with `;` and may span lines; besides SQL, rdl-sql runs PREDICT, "
                       "ALTER GRAPH and DESCRIBE GRAPH.\n")
        return True

    def _quit(self, args: list[str]) -> bool:
        raise _Quit

    def _timer(self, args: list[str]) -> bool:
        on = _on_off(args)
        if on is None:
            return self._usage(".timer")
        self.timer = on
        return True

    def _bail(self, args: list[str]) -> bool:
        on = _on_off(args)
        if on is None:
            return self._usage(".bail")
        self.bail = on
        return True

    def _mode(self, args: list[str]) -> bool:
        if not args:
            self.out.write(f"current output mode: {self.mode}\n")
            return True
        mode = {"duckbox": "box"}.get(args[0].lower(), args[0].lower())
        if len(args) != 1 or mode not in MODES:
            return self.error(f"mode should be one of: {', '.join(MODES)}")
        self.mode = mode
        return True

    def _maxrows(self, args: list[str]) -> bool:
        if len(args) != 1 or not args[0].isdigit() or int(args[0]) < 2:
            return self._usage(".maxrows")
        self.max_rows = int(args[0])
        return True

    def _names(self, sql: str, params: list | None = None) -> list[str]:
        self.cur.execute(sql, params)
        return [r[0] for r in self.cur.fetchall()]

    def _tables(self, args: list[str]) -> bool:
        names = self._names(
            "SELECT CASE WHEN schema_name = 'main' THEN '' ELSE schema_name || '.' END || name FROM ("
            " SELECT schema_name, table_name AS name, database_name, temporary, internal FROM duckdb_tables()"
            " UNION ALL SELECT schema_name, view_name, database_name, temporary, internal FROM duckdb_views())"
            " WHERE (database_name = current_database() OR temporary) AND NOT internal"
            " AND NOT starts_with(name, '__rdl') ORDER BY 1")  # rdl-sql's own result views
        width = os.get_terminal_size(self.out.fileno()).columns if _isatty(self.out) else 80
        self.out.write("".join(line + "\n" for line in _columns_layout(names, width)))
        return True

    def _schema(self, args: list[str]) -> bool:
        if len(args) > 1:
            return self._usage(".schema")
        sql = ("SELECT sql FROM ("
               " SELECT table_name AS name, sql, database_name, temporary, internal FROM duckdb_tables()"
               " UNION ALL SELECT view_name, sql, database_name, temporary, internal FROM duckdb_views())"
               " WHERE (database_name = current_database() OR temporary) AND NOT internal"
               " AND NOT starts_with(name, '__rdl')")
        if args:
            statements = self._names(sql + " AND lower(name) = lower(?) ORDER BY name", [args[0]])
            if not statements:
                return self.error(f"no table or view named {args[0]}")
        else:
            statements = self._names(sql + " ORDER BY name")
        self.out.write("".join(s.rstrip().rstrip(";") + ";\n" for s in statements))
        return True

    def _graph(self, args: list[str]) -> bool:
        return self.run_sql("DESCRIBE GRAPH")

    def _models(self, args: list[str]) -> bool:
        exists = self._names("SELECT table_name FROM duckdb_tables() WHERE table_name = 'rdl_models' "
                             "UNION ALL SELECT view_name FROM duckdb_views() WHERE view_name = 'rdl_models'")
        if not exists:
            self.out.write("no models\n")
            return True
        return self.run_sql("SHOW MODELS")  # rdl_models without its weights column

    def _read(self, args: list[str]) -> bool:
        if len(args) != 1:
            return self._usage(".read")
        try:
            with open(os.path.expanduser(args[0]), encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            return self.error(f"cannot read {args[0]}: {getattr(e, 'strerror', None) or e}")
        return self.feed(text)


class _History:
    """Line-editing history kept in ``~/.rdl_sql_history``; silently absent where readline or a
    writable home is not."""

    def __init__(self):
        try:
            import readline
        except ImportError:
            self.readline = None
            return
        self.readline = readline
        self.path = os.path.expanduser(os.environ.get("RDL_SQL_HISTORY", HISTORY_FILE))
        readline.set_auto_history(False)   # a statement of many lines becomes one entry
        readline.set_history_length(1000)
        try:
            readline.read_history_file(self.path)
        except OSError:
            pass

    def add(self, entry: str) -> None:
        rl = self.readline
        if rl is not None and entry:
            n = rl.get_current_history_length()
            if n == 0 or rl.get_history_item(n) != entry:
                rl.add_history(entry)

    def save(self) -> None:
        if self.readline is not None:
            try:
                self.readline.write_history_file(self.path)
            except OSError:
                pass


def _on_off(args: list[str]) -> bool | None:
    """The switch ``on`` / ``off`` given as the one argument, or None."""
    if len(args) != 1 or args[0].lower() not in ("on", "off"):
        return None
    return args[0].lower() == "on"


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _banner(database: str) -> str:
    import duckdb
    where = ("Connected to a transient in-memory database." if database == ":memory:"
             else f"Connected to {database}.")
    return f"rdl-sql {rdl_sql.__version__} (DuckDB {duckdb.__version__})\nEnter \".help\" for usage hints.\n{where}\n"


def main(argv: list[str]) -> int:
    """Entry point of ``rdl-sql [DB] [-c SQL]``; the process exit status."""
    p = argparse.ArgumentParser(prog="rdl-sql", description="A SQL shell over DuckDB that also runs PREDICT. "
                                "Reads statements from the terminal, from -c, or from stdin.")
    p.add_argument("database", nargs="?", default=":memory:", help="DuckDB database file (default: in memory)")
    p.add_argument("-c", dest="command", metavar="SQL", default=None,
                   help="run these statements (and dot commands) and exit")
    args = p.parse_args(argv)
    out, err = sys.stdout, sys.stderr
    for stream in (out, err):
        if hasattr(stream, "reconfigure"):   # a terminal without UTF-8 gets `?` for box characters
            try:
                stream.reconfigure(errors="replace")
            except (ValueError, OSError):
                pass
    interactive = args.command is None and _isatty(sys.stdin)
    try:
        con = rdl_sql.connect(args.database, progress=_isatty(err))
    except rdl_sql.Error as e:
        err.write(f"Error: {e}\n")
        return 1
    shell = Shell(con, out, err)
    try:
        if interactive:
            out.write(_banner(args.database))
            return shell.repl()
        ok = shell.feed(args.command if args.command is not None else sys.stdin.read())
        return 0 if ok and not shell.failed else 1
    except _Quit:
        return 1 if shell.failed else 0
    except KeyboardInterrupt:
        err.write("Interrupted\n")
        return 130
    except BrokenPipeError:  # `rdl-sql ... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    finally:
        con.close()
