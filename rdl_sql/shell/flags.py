"""The shell's command line, read as the DuckDB CLI reads its own: ``rdl-sql [OPTIONS] [DB] [SQL]``.

Options take one dash (two work too) and act in the order given: ``-csv -c "SELECT 1" -json -c "SELECT 2"``
prints CSV and then JSON. ``-c`` / ``-s`` / ``-f`` run and then exit (every one of them, in order; the first
error stops them unless ``-bail`` is off via ``-cmd .bail off``); ``-cmd`` runs before the prompt or stdin.
"""
from __future__ import annotations

import dataclasses

from rdl_sql.shell.render import MODES

MODE_FLAGS = {f"-{m}": m for m in MODES} | {"-column": "box", "-ascii": "list"}
VALUE_FLAGS = {"-c", "-s", "-cmd", "-f", "-init", "-nullvalue", "-separator", "-storage-compatibility"}
SWITCH_FLAGS = {"-readonly", "-no-stdin", "-bail", "-header", "-noheader", "-no-init", "-batch", "-interactive",
                "-version", "-help", "-h"}

USAGE = """\
Usage: rdl-sql [OPTIONS] [FILENAME [SQL]]

FILENAME is a DuckDB database (default: a transient in-memory database); it is created if missing.
SQL, when given, is run as with -c. Statements are read from the terminal, or from stdin when it is not one.
Also: `rdl-sql demo --help` (build an example database and run PREDICTs).

OPTIONS (run in the order given):
  -c COMMAND        run COMMAND (SQL and dot commands) and exit; several -c run in order
  -s COMMAND        same as -c
  -f FILENAME       run the statements in FILENAME and exit
  -cmd COMMAND      run COMMAND before reading the terminal or stdin
  -init FILENAME    run FILENAME first
  -no-stdin         exit after the options instead of reading stdin
  -readonly         open the database read-only: other processes can read it at the same time
  -storage-compatibility VERSION
                    create the file so that DuckDB VERSION and later open it (v1.5.0: DuckDB 1.x readers,
                    the duckdb-cli on PyPI); only a new file is affected (default: DuckDB's newest format)
  -bail             stop at the first error (the default for scripts and -c)
  -header / -noheader  turn the header row of csv, list and tabs output on / off
  -nullvalue TEXT   show NULL as TEXT
  -separator SEP    column separator of list mode (default: |)
  -duckbox -box -table -markdown -csv -json -jsonlines -line -list -tabs
                    set the output mode (default: duckbox)
  -batch / -interactive  read stdin as a script / as a terminal
  -version          show the version and exit
  -help             show this message and exit
"""


class UsageError(Exception):
    pass


@dataclasses.dataclass
class Options:
    database: str = ":memory:"
    read_only: bool = False
    storage_compatibility: str | None = None  # DuckDB's storage_compatibility_version for a file it creates
    init: str | None = None
    no_stdin: bool = False
    interactive: bool | None = None   # None: when stdin is a terminal
    version: bool = False
    help: bool = False
    actions: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)  # (flag, value) in order


def parse(argv: list[str]) -> Options:
    """The options of ``argv``; raises UsageError for an unknown option or a missing value."""
    opts = Options()
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        flag = arg[1:] if arg.startswith("--") else arg
        if arg == "--":
            positional += argv[i + 1:]
            break
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
        elif flag in VALUE_FLAGS:
            if i + 1 >= len(argv):
                raise UsageError(f"missing argument to {arg}")
            value = argv[i + 1]
            i += 1
            if flag == "-init":
                opts.init = value
            elif flag == "-storage-compatibility":
                opts.storage_compatibility = value
            else:
                opts.actions.append(("-c" if flag == "-s" else flag, value))
        elif flag in MODE_FLAGS or flag in ("-bail", "-header", "-noheader"):
            opts.actions.append((flag, None))
        elif flag == "-readonly":
            opts.read_only = True
        elif flag == "-no-stdin":
            opts.no_stdin = True
        elif flag in ("-batch", "-interactive"):
            opts.interactive = flag == "-interactive"
        elif flag == "-version":
            opts.version = True
        elif flag in ("-help", "-h"):
            opts.help = True
        elif flag == "-no-init":
            opts.init = None
        else:
            raise UsageError(f"unknown option: {arg}")
        i += 1
    if len(positional) > 2:
        raise UsageError(f"too many arguments: {' '.join(positional[2:])}")
    if positional:
        opts.database = positional[0]
    if len(positional) == 2:
        opts.actions.append(("-c", positional[1]))
    return opts
