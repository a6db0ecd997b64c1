"""``rdl-sql serve DB``: command-line options of the server."""
from __future__ import annotations

import argparse
import logging
import sys

from rdl_sql.server.server import ConfigError, Server

STORAGE_HELP = ("write the file so that older DuckDB readers open it, e.g. v1.5.0 for the DuckDB 1.x CLI and "
                "drivers (DuckDB's storage_compatibility_version; it matters when the server creates the file; "
                "default: DuckDB's own, which 1.x readers cannot open)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rdl-sql serve",
        description="Serve a database over the PostgreSQL protocol, so psql, psycopg, SQLAlchemy and BI tools "
                    "(through their PostgreSQL drivers) run SQL and PREDICT on it. The server owns the file: "
                    "connect every tool through it.")
    p.add_argument("database", help="DuckDB database file (created if missing), or :memory:")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; any other address needs "
                        "--password-file)")
    p.add_argument("--port", type=int, default=5433, help="TCP port (default 5433; 0 picks a free one)")
    p.add_argument("--read-only", action="store_true", help="open the database read-only (other processes "
                   "may read the file too; PREDICT still works, CREATE TABLE AS PREDICT does not)")
    p.add_argument("--password-file", metavar="F",
                   help="require SCRAM-SHA-256 passwords: F holds user:password lines, or one password for any "
                        "user (without it, any user name is accepted without a password)")
    p.add_argument("--storage-compatibility", metavar="VERSION", help=STORAGE_HELP)
    p.add_argument("--grace", type=float, default=10.0,
                   help="seconds that running statements get to finish at shutdown before they are cancelled "
                        "(default 10)")
    p.add_argument("-v", "--verbose", action="store_true", help="log connections and errors to stderr")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    config = {"storage_compatibility_version": args.storage_compatibility} if args.storage_compatibility else None
    try:
        server = Server(args.database, args.host, args.port, args.read_only, args.password_file, config=config,
                        grace=args.grace).start()
    except (ConfigError, ValueError, OSError) as e:
        print(f"rdl-sql serve: {e}", file=sys.stderr)
        return 2
    except Exception as e:   # the database could not be opened (locked, wrong version, ...)
        print(f"rdl-sql serve: {e}", file=sys.stderr)
        return 1
    auth = "SCRAM-SHA-256 passwords" if server.verifiers else "no password (this machine only)"
    mode = "read-only" if args.read_only else "read-write"
    print(f"rdl-sql server listening on {server.host}:{server.port}, database {args.database} ({mode}, {auth}); "
          "Ctrl-C stops it", flush=True)
    if server.verifiers is not None and server.host not in ("127.0.0.1", "::1", "localhost"):
        print("note: the connection is not encrypted (no TLS); passwords travel as SCRAM proofs only",
              file=sys.stderr, flush=True)
    server.serve_forever()
    return 0
