"""Recommendation (LIST_DISTINCT ... RANK TOP k): MAP@k of every model, and scoring speed at scale.

    python benchmarks/recommend.py accuracy [--tasks brands,flights] [--seed S]
    python benchmarks/recommend.py speed [--entities N] [--items M] [--orders R] [--k K]

``accuracy``: validation and test MAP@k of ``popular``, ``past``,
``two_tower`` and ``conditioned`` on the generated brands task (MAP@10) and
the flights next-destinations task (MAP@5), each trained through
``EVALUATE PREDICT ... WITH (model = ...)``; ``auto`` is the candidate with
the best validation MAP@k, which is what ``model = 'auto'`` keeps (it
trains the same candidates with the same seed and options, within
``time_budget``).

``speed``: a random database of N entities, M items (released over the
period) and R orders; a two-tower model trained briefly (its speed does not
depend on its weights), then ``PREDICT USING`` over every entity: entities
scored per second end to end (graph, candidates, embeddings, chunked top-k,
output rows) and in ``udfs.ranking.top_k`` alone, with the peak RSS.

Prints markdown tables headed by the machine and the commit.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

import rdl_sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GRAPH_OPTS = "epochs = 3, channels = 32, max_train_rows = 4000"
TASKS = {
    "brands": ("LIST_DISTINCT(orders.product_id, 0, 7, DAYS) RANK TOP 10 FOR EACH customers.customer_id "
               "WHERE COUNT(orders.*, -30, 0, DAYS) > 0", 10),
    "flights": ("LIST_DISTINCT(flights.dest, 0, 7, DAYS) RANK TOP 5 FOR EACH planes.tailnum "
                "WHERE COUNT(flights.*, -7, 0, DAYS) > 0", 5),
}
MODELS = ("popular", "past", "two_tower", "conditioned")


def _header() -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    load = open("/proc/loadavg").read().split()[0]
    return f"{cpu_model()}, commit {commit}, torch on 1 thread, 1-minute load {load} at the start"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _database(task: str, folder: Path) -> Path:
    path = folder / f"{task}.duckdb"
    con = duckdb.connect(str(path))
    if task == "brands":
        from rdl_sql.datasets.brands import build_brands
        build_brands(con)
    else:
        from rdl_sql.datasets.flights import build_flights
        build_flights(con)
    con.close()
    return path


def accuracy(tasks: list[str], seed: int) -> None:
    print(f"\n{_header()}\n")
    print("| task | model | val MAP@k | test MAP@k | test precision@k | test recall@k | seconds |")
    print("|---|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for task in tasks:
            target, k = TASKS[task]
            con = rdl_sql.connect(str(_database(task, Path(tmp))), progress=False)
            cur = con.cursor()
            got = {}
            for model in MODELS:
                extra = f", {GRAPH_OPTS}" if model in ("two_tower", "conditioned") else ""
                t0 = time.perf_counter()
                cur.execute(f"EVALUATE PREDICT {target} WITH (model = '{model}', seed = {seed}{extra})")
                rows = {(r[0], r[1]): r[2] for r in cur.fetchall()}
                got[model] = (rows[("val", f"MAP@{k}")], rows[("test", f"MAP@{k}")],
                              rows[("test", f"precision@{k}")], rows[("test", f"recall@{k}")],
                              time.perf_counter() - t0)
            got["auto (best on val)"] = max(got.values(), key=lambda v: v[0])
            best = max(MODELS, key=lambda m: got[m][0])
            for model, (val, test, prec, rec, secs) in got.items():
                name = f"auto: {best}" if model.startswith("auto") else model
                print(f"| {task} | {name} | {val:.4f} | {test:.4f} | {prec:.4f} | {rec:.4f} | {secs:.1f} |",
                      flush=True)
            con.close()


def _random_db(path: Path, entities: int, items: int, orders: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE customers (customer_id BIGINT PRIMARY KEY, region VARCHAR)")
    con.execute("CREATE TABLE products (product_id BIGINT PRIMARY KEY, brand VARCHAR, released_at TIMESTAMP)")
    con.execute("CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT REFERENCES customers, "
                "product_id BIGINT REFERENCES products, ordered_at TIMESTAMP)")
    con.execute(f"INSERT INTO customers SELECT i, 'r' || (i % 7) FROM range({entities}) t(i)")
    # items released over the first 60 of 90 days, so nearly all are candidates at the last anchor
    con.execute(f"INSERT INTO products SELECT i, 'b' || (i % 50), TIMESTAMP '2024-01-01' + "
                f"INTERVAL (i * 60 * 86400 // {items}) SECOND FROM range({items}) t(i)")
    con.execute("SELECT setseed(0.5)")
    con.execute(f"INSERT INTO orders SELECT o, hash(o) % {entities}, p, released_at + INTERVAL "
                f"(CAST(random() * 30 * 86400 AS BIGINT)) SECOND FROM (SELECT o, hash(o * 7 + 1) % {items} AS p "
                f"FROM range({orders}) t(o)) JOIN products ON product_id = p")
    con.close()


def speed(entities: int, items: int, orders: int, k: int) -> None:
    from rdl_sql.engine import recommend
    from rdl_sql.planner.labels import ANCHOR
    from rdl_sql.planner.sql import arrow
    from rdl_sql.udfs import ranking

    print(f"\n{_header()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "speed.duckdb"
        t0 = time.perf_counter()
        _random_db(db, entities, items, orders)
        build = time.perf_counter() - t0
        con = rdl_sql.connect(str(db), progress=False)
        cur = con.cursor()
        target = (f"LIST_DISTINCT(orders.product_id, 0, 7, DAYS) RANK TOP {k} FOR EACH customers.customer_id")
        t0, c0 = time.perf_counter(), time.process_time()
        cur.execute(f"CREATE MODEL rec AS PREDICT {target} WITH (model = 'two_tower', epochs = 1, channels = 32, "
                    f"max_train_rows = 2000)")
        cur.fetchall()
        train, train_cpu = time.perf_counter() - t0, time.process_time() - c0
        rss_trained = _peak_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        cur.execute("SELECT count(*), count(DISTINCT customer_id) FROM (PREDICT USING rec)")
        n_rows, n_entities = cur.fetchone()
        e2e, e2e_cpu = time.perf_counter() - t0, time.process_time() - c0
        rss_scored = _peak_mb()
        # the chunked top-k alone, on the same graph and candidates
        duck = con.duckdb_connection
        stored = recommend.store.load(duck, "rec")
        from rdl_sql.bind import to_query
        from rdl_sql.dialect import parse_statement
        sql = f"PREDICT {target}"
        prep = recommend.prepare(duck, to_query(parse_statement(sql), sql), training=False)
        ranker = recommend._load(duck, prep, stored)
        rows = arrow(duck, prep.plan.rows_sql())
        cands = recommend._candidates(duck, prep.plan, rows)
        n_cand = sum(len(v) for v in cands.values())
        t0, c0 = time.perf_counter(), time.process_time()
        out = ranking.top_k(ranker.model, rows.column("__node").to_numpy(), recommend._us(rows.column(ANCHOR)), k,
                            cands)
        topk, topk_cpu = time.perf_counter() - t0, time.process_time() - c0
        con.close()
    print("| stage | value (wall clock; CPU seconds of this process in brackets: the machine is shared) |")
    print("|---|---:|")
    print(f"| database: entities x items, orders | {entities:,} x {items:,}, {orders:,} (built in {build:.1f} s) |")
    print(f"| candidate items at the prediction anchor | {n_cand:,} |")
    print(f"| CREATE MODEL (two_tower, 1 epoch, 2,000 rows, 32 channels) | {train:.1f} s ({train_cpu:.1f} s) |")
    print(f"| PREDICT USING, end to end: {n_entities:,} entities, {n_rows:,} rows | {e2e:.1f} s ({e2e_cpu:.1f} s), "
          f"{n_entities / e2e:,.0f} entities/s ({n_entities / e2e_cpu:,.0f} per CPU second) |")
    print(f"| `top_k` alone (embeddings + chunked scores + top-k) | {topk:.1f} s ({topk_cpu:.1f} s), "
          f"{len(rows) / topk:,.0f} entities/s ({len(rows) / topk_cpu:,.0f} per CPU second), "
          f"{out.num_rows:,} rows |")
    print(f"| peak RSS after training / after scoring | {rss_trained:,.0f} MB / {rss_scored:,.0f} MB |")
    full = entities * n_cand * 4 / 2**30
    print(f"| largest score block held at once | {ranking.MAX_CELLS:,} floats "
          f"({ranking.MAX_CELLS * 4 / 2**20:.0f} MiB); the full matrix would be {full:.1f} GiB |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("accuracy")
    a.add_argument("--tasks", default="brands,flights")
    a.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("speed")
    s.add_argument("--entities", type=int, default=100_000)
    s.add_argument("--items", type=int, default=100_000)
    s.add_argument("--orders", type=int, default=1_000_000)
    s.add_argument("--k", type=int, default=10)
    args = p.parse_args()
    import torch
    torch.set_num_threads(1)
    if args.what == "accuracy":
        accuracy(args.tasks.split(","), args.seed)
    else:
        speed(args.entities, args.items, args.orders, args.k)


if __name__ == "__main__":
    main()
