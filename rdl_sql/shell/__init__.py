"""``rdl-sql [DB]``: an interactive SQL shell with the DuckDB CLI's look and habits, over ``rdl_sql.connect``.

- ``render``: results in each output mode (duckbox, box, table, markdown, csv, json, jsonlines, line, list, tabs);
- ``repl``: the session: scripts, statements, dot commands, output redirection;
- ``prompt``: the interactive prompt (prompt_toolkit), history; ``complete``: Tab completion;
- ``flags``: the command line, read as DuckDB's CLI reads it.

The shell reaches the database only through the public DB-API (``rdl_sql.connect``, cursors).
"""
from __future__ import annotations

import os
import sys

import duckdb

import rdl_sql
from rdl_sql.shell import flags, prompt
from rdl_sql.shell.render import (  # noqa: F401
    MAX_ROWS,
    MODES,
    Style,
    _width,
    format_value,
    render_box,
)
from rdl_sql.shell.repl import CONTINUATION, PROMPT, Quit, Shell, _isatty, buffer_state

__all__ = ["CONTINUATION", "MODES", "PROMPT", "Shell", "buffer_state", "format_value", "main", "render_box"]


def _banner(database: str, read_only: bool) -> str:
    where = ("Connected to a transient in-memory database." if database == ":memory:"
             else f"Connected to {database}{' (read-only)' if read_only else ''}.")
    return f"rdl-sql {rdl_sql.__version__} (DuckDB {duckdb.__version__})\nEnter \".help\" for usage hints.\n{where}\n"


def main(argv: list[str]) -> int:
    """Entry point of ``rdl-sql [OPTIONS] [DB] [SQL]``; the process exit status."""
    out, err, stdin = sys.stdout, sys.stderr, sys.stdin
    try:
        opts = flags.parse(argv)
    except flags.UsageError as e:
        err.write(f"Error: {e}\nUse -help for a list of options.\n")
        return 1
    if opts.help:
        out.write(flags.USAGE)
        return 0
    if opts.version:
        out.write(f"rdl-sql {rdl_sql.__version__} (DuckDB {duckdb.__version__})\n")
        return 0
    for stream in (out, err):
        if hasattr(stream, "reconfigure"):   # a terminal without UTF-8 gets `?` for box characters
            try:
                stream.reconfigure(errors="replace")
            except (ValueError, OSError):
                pass
    runs = any(flag in ("-c", "-f") for flag, _ in opts.actions)
    interactive = (not runs and not opts.no_stdin
                   and (opts.interactive if opts.interactive is not None else _isatty(stdin)))
    try:
        con = rdl_sql.connect(opts.database, read_only=opts.read_only, progress=_isatty(err),
                              storage_compatibility=opts.storage_compatibility)
    except rdl_sql.Error as e:
        err.write(f"Error: {e}\n")
        return 1
    shell = Shell(con, out, err, opts.database)
    try:
        ok = True
        if opts.init is not None:
            if interactive:
                err.write(f"-- Loading resources from {opts.init}\n")
            text = shell.read_file(opts.init)
            ok = text is not None and shell.feed(text)
            if not ok and shell.bail and not interactive:
                return 1
        for flag, value in opts.actions:
            if not _apply(shell, flag, value):
                ok = False
                if shell.bail and not interactive:
                    return 1
        if runs or opts.no_stdin:
            return 0 if ok and not shell.failed else 1
        if interactive:
            out.write(_banner(opts.database, opts.read_only))
            return prompt.repl(shell)
        ok = shell.feed(stdin.read()) and ok
        return 0 if ok and not shell.failed else 1
    except Quit as q:
        return q.code if q.code is not None else (1 if shell.failed else 0)
    except KeyboardInterrupt:
        err.write("Interrupted\n")
        return 130
    except BrokenPipeError:  # `rdl-sql ... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    finally:
        shell.close()


def _apply(shell: Shell, flag: str, value: str | None) -> bool:
    """One option of the command line, in its turn; False when it failed."""
    style = shell.style
    if flag in flags.MODE_FLAGS:
        style.mode = flags.MODE_FLAGS[flag]
    elif flag in ("-header", "-noheader"):
        style.headers = flag == "-header"
    elif flag == "-bail":
        shell.bail = True
    elif flag == "-nullvalue":
        style.nullvalue = value
    elif flag == "-separator":
        style.separator = value
    elif flag == "-f":
        text = shell.read_file(value)
        return text is not None and shell.feed(text)
    else:  # -c, -cmd: each one a script of its own
        return shell.feed(value)
    return True
