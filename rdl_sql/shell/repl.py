"""The shell session: scripts, the interactive prompt, dot commands and command-line flags.

Three ways in, one path through: an interactive prompt (``rdl-sql shop.duckdb``),
``-c "SQL"`` (each ``-c`` in turn), and a script on stdin or in a file
(``.read``, ``-init``, ``-f``). Each is a *script* given to ``Shell.feed``,
which treats a line that starts with ``.`` on a fresh buffer as a dot command
and otherwise collects lines until the last token is a ``;`` outside strings
and comments, then runs each statement on its own so that every result is
printed. Messages number statements within the script at hand: each ``-c``,
each buffer typed at the prompt, and each file (stdin, ``.read``) counts
from 1.

Decisions:

- Prompts are DuckDB's: ``D `` for a new statement, ``‣ `` while a statement
  is still open. The prompt is prompt_toolkit's: one buffer per statement
  (Enter runs it once it ends in ``;``, otherwise adds a line), Tab completion,
  history in ``~/.rdl_sql_history`` (one statement a line).
- Scripts and ``-c`` stop at the first error and exit with status 1
  (``.bail off`` continues past errors, still exiting 1); the interactive
  prompt never stops on an error. ``.exit N`` exits with status N.
- Errors print as ``Error: <message>`` on stderr; an exception that is not an
  ``rdl_sql.Error`` (a bug, not a SQL mistake) prints as one line too, with its
  Python traceback only when ``RDL_SQL_DEBUG`` is set.
- Notices (training metrics) follow the table on the output in the drawn
  modes; in the modes a program reads (csv, json, list ...) they go to
  stderr. ``.timer`` lines always go to stderr.
- The training progress bar is shown whenever stderr is a terminal.
"""
from __future__ import annotations

import dataclasses
import gc
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TextIO

from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType

import rdl_sql
from rdl_sql.script import Statement, split
from rdl_sql.shell import render
from rdl_sql.shell.render import MACHINE_MODES, MAX_ROWS, MODES, Style

PROMPT = "D "
CONTINUATION = "‣ "
HISTORY_FILE = "~/.rdl_sql_history"
HISTORY_LENGTH = 1000

_TOKENIZER = DuckDB().tokenizer_class()

# statements whose only result is DuckDB's row count, which DuckDB's CLI does not print
_COUNT_ONLY = {"INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "COPY", "ATTACH", "DETACH", "USE",
               "SET", "RESET", "LOAD", "INSTALL", "BEGIN", "COMMIT", "ROLLBACK", "ABORT", "CHECKPOINT",
               "VACUUM", "ANALYZE", "IMPORT", "EXPORT", "TRUNCATE", "COMMENT", "START", "END"}


class Quit(Exception):
    """``.quit`` or ``.exit [N]`` was given: leave the shell (``code`` None: the usual status)."""

    def __init__(self, code: int | None = None):
        super().__init__(code)
        self.code = code


def buffer_state(text: str) -> str:
    """``'empty'`` (only blanks and comments), ``'complete'`` (ends in ``;``) or ``'open'``."""
    try:
        tokens = _TOKENIZER.tokenize(text)
    except TokenError:  # an unterminated string or comment: more lines to come
        return "open"
    if not tokens:
        return "empty"
    return "complete" if tokens[-1].token_type == TokenType.SEMICOLON else "open"


class Shell:
    """One shell session over an open connection, writing results to ``out`` and errors to ``err``."""

    def __init__(self, con: rdl_sql.Connection, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
                 database: str = ":memory:"):
        self.con = con
        self.database = database
        self.cur = con.cursor()
        self._stuck = False   # a second Ctrl-C came: the cancelled statement did not stop
        self.stdout, self.err = out, err
        self.out = out                 # where results go now (.output / .once change it)
        self._redirect: tuple[TextIO, subprocess.Popen | None] | None = None
        self._once = False
        self.style = Style()
        self.timer = False
        self.bail = True
        self.failed = False   # an error was printed at some point
        self.on_change: Callable[[], None] = lambda: None   # told when the catalog may have changed
        self.commands: dict[str, tuple[Callable[[list[str]], bool], str, str]] = {
            ".bail": (self._bail, "on|off", "Stop a script at its first error (default: on)"),
            ".databases": (self._databases, "", "List the attached databases and their files"),
            ".exit": (self._exit, "?CODE?", "Exit this program with status CODE"),
            ".graph": (self._graph, "", "Show the graph rdl-sql sees: tables, keys, links, time columns"),
            ".headers": (self._headers, "on|off", "Show the header row in csv, list and tabs modes"),
            ".help": (self._help, "", "Show this message"),
            ".maxrows": (self._maxrows, "N", f"Rows shown in duckbox before the middle is cut (default: {MAX_ROWS})"),
            ".maxwidth": (self._maxwidth, "N", "Width of duckbox tables; 0: the terminal's width (default)"),
            ".mode": (self._mode, "MODE", "Set the output mode: " + ", ".join(MODES)),
            ".models": (self._models, "", "List the stored models"),
            ".nullvalue": (self._nullvalue, "TEXT", "Show NULL as TEXT"),
            ".once": (self._once_cmd, "FILE", "Write the output of the next SQL only to FILE"),
            ".open": (self._open, "?--readonly? ?FILE?", "Close this database and open FILE (default: in memory)"),
            ".output": (self._output, "?FILE?", "Write output to FILE (|CMD: to a command), or to stdout"),
            ".print": (self._print, "TEXT...", "Print TEXT"),
            ".quit": (self._quit, "", "Exit this program"),
            ".read": (self._read, "FILE", "Run the statements and dot commands in FILE"),
            ".schema": (self._schema, "?TABLE?", "Show the CREATE statements of all tables, or of TABLE"),
            ".separator": (self._separator, "SEP", "Column separator of list mode (default: |)"),
            ".shell": (self._shell, "CMD ARGS...", "Run CMD ARGS... in a system shell"),
            ".system": (self._shell, "CMD ARGS...", "Same as .shell"),
            ".tables": (self._tables, "", "List the tables and views"),
            ".timer": (self._timer, "on|off", "Print the run time of each statement (on stderr)"),
        }

    # ---- input -------------------------------------------------------------------------
    def feed(self, text: str) -> bool:
        """Run one script of statements and dot commands, numbering its statements from 1; False
        when an error stopped it (or, with ``.bail off``, when any statement failed)."""
        numbering = [0]
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
            if state == "complete":
                ran = self.run_sql(chunk, start, numbering)
                self._end_once()   # .once FILE covers the next SQL only
                if not ran:
                    ok = False
                    if self.bail:
                        return False
        if buf:  # a last statement without its `;`
            ran = self.run_sql("\n".join(buf), start, numbering)
            self._end_once()
            ok = ok and ran
        return ok

    # ---- statements ------------------------------------------------------------------------
    def run_sql(self, chunk: str, first_line: int = 1, numbering: list[int] | None = None) -> bool:
        """Run each statement of ``chunk`` (which starts on line ``first_line`` of its script, whose
        statements so far ``numbering`` counts) and print its result; stop at the first error."""
        numbering = [0] if numbering is None else numbering
        for stmt in split(chunk):
            t0, c0 = time.perf_counter(), os.times()
            interrupted = False
            try:
                numbering[0] += 1
                self._execute(dataclasses.replace(stmt, index=numbering[0],
                                                  first_line=first_line + stmt.first_line - 1))
                self.show(stmt)
            except rdl_sql.Error as e:
                return self.error(str(e))
            except KeyboardInterrupt:
                interrupted = True
            except BrokenPipeError:
                raise
            except Exception as e:  # noqa: BLE001 - a bug, not a SQL mistake: still one readable line
                if os.environ.get("RDL_SQL_DEBUG"):
                    traceback.print_exc(file=self.err)
                return self.error(f"internal error ({type(e).__name__}): {e}\n"
                                  "(set RDL_SQL_DEBUG=1 to see the Python traceback)")
            finally:
                self.on_change()
            if interrupted:
                return self._interrupted()
            if self.timer:
                c1 = os.times()
                self.err.write(f"Run Time (s): real {time.perf_counter() - t0:.3f} user {c1.user - c0.user:.6f} "
                               f"sys {c1.system - c0.system:.6f}\n")
                self.err.flush()
        return True

    def _execute(self, stmt: Statement) -> None:
        """Run ``stmt`` on the cursor; a Ctrl-C cancels it as ``Connection.cancel()`` does and raises
        KeyboardInterrupt once it stopped, keeping the cursor and the transaction it may hold.

        The cancel stops a training between batches and interrupts a DuckDB
        query. Python runs its SIGINT handler only between bytecodes, which a
        DuckDB query holds off to its end; the signal's wakeup fd, written by
        the C handler at once, lets a thread cancel the query meanwhile. A
        second Ctrl-C raises KeyboardInterrupt at once, for a statement that
        does not stop (the cursor is then replaced).
        """
        if threading.current_thread() is not threading.main_thread():
            self.cur.execute(stmt)
            return
        sigints = [0]

        def on_sigint(signum, frame) -> None:
            sigints[0] += 1
            if sigints[0] > 1:
                self._stuck = True
                raise KeyboardInterrupt
            self.con.cancel()

        read, write = os.pipe()
        os.set_blocking(write, False)
        woken = threading.Event()

        def watch() -> None:
            while os.read(read, 64):
                if not woken.is_set():
                    woken.set()
                    self.con.cancel()

        watcher = threading.Thread(target=watch, name="rdl-sql Ctrl-C", daemon=True)
        old_handler = signal.signal(signal.SIGINT, on_sigint)
        old_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        watcher.start()
        try:
            try:
                self.cur.execute(stmt)
            except rdl_sql.Error:
                if not (sigints[0] or woken.is_set()):
                    raise
        finally:
            signal.set_wakeup_fd(old_fd)
            signal.signal(signal.SIGINT, old_handler)
            os.close(write)
            watcher.join()
            os.close(read)
        if sigints[0] or woken.is_set():  # its error, or a result that came as it was cancelled, is dropped
            raise KeyboardInterrupt

    def _interrupted(self) -> bool:
        """Report a Ctrl-C, once the interrupted statement's frames are gone: a progress bar that the
        interrupt caught half-made is cleared when it is collected, and must clear its line before the
        message, not over the next prompt."""
        gc.collect()
        state = self._after_interrupt()
        self.out.flush()
        if _isatty(self.err):  # end the progress bar's line
            self.err.write("\n")
        return self.error("Interrupted" + state, prefix=False)

    def _after_interrupt(self) -> str:
        """Make the cursor usable again after a Ctrl-C and say what became of an open transaction.

        The cursor is kept: each cursor is a DuckDB connection of its own, so
        closing it would roll back the transaction the user opened with BEGIN.
        A small statement drops what the interrupted one left (a result fetched
        in part: the cursor aborts it before its next statement) and shows
        whether DuckDB aborted the transaction. Only when that fails otherwise
        (a cursor the interrupt left unusable) is it replaced by a fresh one.
        """
        stuck, self._stuck = self._stuck, False
        try:
            if stuck:  # a second Ctrl-C: the cancelled statement did not stop, and may have left anything
                raise KeyboardInterrupt
            self.cur.execute("SELECT 1")
            return ""
        except rdl_sql.Error as e:
            if "transaction is aborted" in str(e).lower():
                return ("; the open transaction was aborted by DuckDB and keeps none of its changes: "
                        "ROLLBACK to end it")
            reason = str(e)
        except Exception as e:  # noqa: BLE001 - any failure: the cursor is replaced below
            reason = str(e)
        except KeyboardInterrupt:  # a second Ctrl-C, during the statement or while the cursor is checked
            reason = "Ctrl-C again"
        try:
            self.cur.close()
        except Exception:  # noqa: BLE001, S110 - it is dropped anyway
            pass
        self.cur = self.con.cursor()
        return f"; the cursor was replaced ({reason.splitlines()[0] if reason else 'unusable'}): " \
               "an open transaction was rolled back"

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
                types = [str(d[1]).lower() for d in desc]
                style = self.style
                if style.mode == "duckbox" and style.max_width is None and _isatty(self.out):
                    style = dataclasses.replace(style, max_width=os.get_terminal_size(self.out.fileno()).columns)
                render.render(names, types, table, self.out, style)
        notices = self.err if self.style.mode in MACHINE_MODES else self.out
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

    # ---- output redirection ------------------------------------------------------------------
    def _redirect_to(self, target: str) -> bool:
        self._end_redirect()
        try:
            if target.startswith("|"):
                proc = subprocess.Popen(target[1:], shell=True, stdin=subprocess.PIPE, text=True)
                self.out, self._redirect = proc.stdin, (proc.stdin, proc)
            else:
                f = open(os.path.expanduser(target), "w", encoding="utf-8")  # noqa: SIM115 - kept open
                self.out, self._redirect = f, (f, None)
        except OSError as e:
            return self.error(f"cannot open {target}: {e.strerror or e}")
        return True

    def _end_redirect(self) -> None:
        self._once = False
        if self._redirect is not None:
            stream, proc = self._redirect
            self._redirect = None
            self.out = self.stdout
            try:
                stream.close()
            except OSError:
                pass
            if proc is not None:
                proc.wait()

    def _end_once(self) -> None:
        if self._once:
            self._end_redirect()

    def close(self) -> None:
        self._end_redirect()
        self.con.close()

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
        once = self._once
        try:
            return self.commands[name][0](args)
        except rdl_sql.Error as e:
            return self.error(str(e))
        finally:
            if once and name != ".once":   # .once FILE covers the next command only
                self._end_once()

    def _usage(self, name: str) -> bool:
        return self.error(f"usage: {name} {self.commands[name][1]}".rstrip())

    def _help(self, args: list[str]) -> bool:
        rows = [(f"{k} {usage}".rstrip(), about) for k, (_, usage, about) in self.commands.items()]
        w = max(len(r[0]) for r in rows) + 2
        self.out.write("".join(f"{u:<{w}}{about}\n" for u, about in rows))
        self.out.write("Statements end with `;` and may span lines; besides SQL, rdl-sql runs PREDICT, "
                       "ALTER GRAPH and DESCRIBE GRAPH. Tab completes keywords, tables, columns and models.\n")
        return True

    def _quit(self, args: list[str]) -> bool:
        raise Quit

    def _exit(self, args: list[str]) -> bool:
        if len(args) > 1 or (args and not args[0].lstrip("-").isdigit()):
            return self._usage(".exit")
        raise Quit(int(args[0]) if args else None)

    def _switch(self, name: str, args: list[str], attr: str, target=None) -> bool:
        on = _on_off(args)
        if on is None:
            return self._usage(name)
        setattr(target if target is not None else self, attr, on)
        return True

    def _timer(self, args: list[str]) -> bool:
        return self._switch(".timer", args, "timer")

    def _bail(self, args: list[str]) -> bool:
        return self._switch(".bail", args, "bail")

    def _headers(self, args: list[str]) -> bool:
        return self._switch(".headers", args, "headers", self.style)

    def _mode(self, args: list[str]) -> bool:
        if not args:
            self.out.write(f"current output mode: {self.style.mode}\n")
            return True
        mode = {"ndjson": "jsonlines", "tab": "tabs"}.get(args[0].lower(), args[0].lower())
        if len(args) != 1 or mode not in MODES:
            return self.error(f"mode should be one of: {', '.join(MODES)}")
        self.style.mode = mode
        return True

    def _maxrows(self, args: list[str]) -> bool:
        if len(args) != 1 or not args[0].isdigit() or int(args[0]) < 2:
            return self._usage(".maxrows")
        self.style.max_rows = int(args[0])
        return True

    def _maxwidth(self, args: list[str]) -> bool:
        if len(args) != 1 or not args[0].isdigit() or 0 < int(args[0]) < 8:
            return self.error("usage: .maxwidth N (0: the terminal's width; at least 8 otherwise)")
        self.style.max_width = int(args[0]) or None
        return True

    def _nullvalue(self, args: list[str]) -> bool:
        if len(args) != 1:
            return self._usage(".nullvalue")
        self.style.nullvalue = args[0]
        return True

    def _separator(self, args: list[str]) -> bool:
        if len(args) not in (1, 2):
            return self._usage(".separator")
        self.style.separator = args[0].encode().decode("unicode_escape")   # `\t` as a tab, as in DuckDB
        return True

    def _print(self, args: list[str]) -> bool:
        self.out.write(" ".join(args) + "\n")
        return True

    def _output(self, args: list[str]) -> bool:
        if len(args) > 1:
            return self._usage(".output")
        if not args or args[0] in ("stdout", "-"):
            self._end_redirect()
            return True
        return self._redirect_to(args[0])

    def _once_cmd(self, args: list[str]) -> bool:
        if len(args) != 1:
            return self._usage(".once")
        if not self._redirect_to(args[0]):
            return False
        self._once = True
        return True

    def _open(self, args: list[str]) -> bool:
        read_only = "--readonly" in args
        rest = [a for a in args if a != "--readonly"]
        if len(rest) > 1 or any(a.startswith("--") for a in rest):
            return self._usage(".open")
        database = rest[0] if rest else ":memory:"
        try:
            con = rdl_sql.connect(database, read_only=read_only, progress=_isatty(self.err))
        except rdl_sql.Error as e:
            return self.error(str(e))
        self.con.close()
        self.con, self.cur, self.database = con, con.cursor(), database
        self.on_change()
        return True

    def _databases(self, args: list[str]) -> bool:
        rows = self._rows("SELECT database_name, coalesce(path, '(memory)'), readonly FROM duckdb_databases() "
                          "WHERE NOT internal ORDER BY database_oid")
        w = max((len(r[0]) for r in rows), default=0)
        self.out.write("".join(f"{name:<{w}}  {path}{'  (read-only)' if ro else ''}\n" for name, path, ro in rows))
        return True

    def _shell(self, args: list[str]) -> bool:
        if not args:
            return self._usage(".shell")
        self.out.flush()
        cmd = " ".join(args)
        try:
            fd = self.out.fileno()
            proc = subprocess.run(cmd, shell=True, stdout=fd, check=False)
        except (AttributeError, OSError, ValueError):   # an output without a file descriptor
            proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False)
            self.out.write(proc.stdout)
            self.err.write(proc.stderr)
        if proc.returncode:
            self.err.write(f"System command returns {proc.returncode}\n")
        return True

    def _rows(self, sql: str, params: list | None = None) -> list[tuple]:
        self.cur.execute(sql, params)
        return self.cur.fetchall()

    def _names(self, sql: str, params: list | None = None) -> list[str]:
        return [r[0] for r in self._rows(sql, params)]

    def _tables(self, args: list[str]) -> bool:
        names = self._names(
            "SELECT CASE WHEN schema_name = 'main' THEN '' ELSE schema_name || '.' END || name FROM ("
            " SELECT schema_name, table_name AS name, database_name, temporary, internal FROM duckdb_tables()"
            " UNION ALL SELECT schema_name, view_name, database_name, temporary, internal FROM duckdb_views())"
            " WHERE (database_name = current_database() OR temporary) AND NOT internal"
            " AND NOT starts_with(name, '__rdl') ORDER BY 1")  # rdl-sql's own result views
        width = os.get_terminal_size(self.out.fileno()).columns if _isatty(self.out) else 80
        self.out.write("".join(line + "\n" for line in render.columns_layout(names, width)))
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
        text = self.read_file(args[0])
        return False if text is None else self.feed(text)

    def read_file(self, path: str) -> str | None:
        try:
            with open(os.path.expanduser(path), encoding="utf-8") as f:
                return f.read()
        except (OSError, UnicodeDecodeError) as e:
            self.error(f"cannot read {path}: {getattr(e, 'strerror', None) or e}")
            return None


def _on_off(args: list[str]) -> bool | None:
    """The switch ``on`` / ``off`` given as the one argument, or None."""
    if len(args) != 1 or args[0].lower() not in ("on", "off", "1", "0", "true", "false", "yes", "no"):
        return None
    return args[0].lower() in ("on", "1", "true", "yes")


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
