"""Minimal shell entry point (a full DuckDB-style shell comes with its own issue)."""
from __future__ import annotations

import argparse
import sys

import rdl_sql
from rdl_sql.demo import print_table


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rdl-sql")
    p.add_argument("database", nargs="?", default=":memory:")
    p.add_argument("-c", dest="command", default=None, help="run this SQL and exit")
    args = p.parse_args(argv)
    text = args.command if args.command is not None else sys.stdin.read()
    with rdl_sql.connect(args.database) as con:
        try:
            cur = con.execute(text)
        except rdl_sql.Error as e:
            print(f"Error: {e}", file=sys.stderr)
            return 1
        if cur.description:
            print_table(cur, limit=40)
        for n in cur.notices:
            print(n)
    return 0
