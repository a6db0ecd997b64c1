"""Load on ``rdl-sql serve`` over loopback: N clients x M queries each, reads and writes mixed.

Each client (its own psycopg connection and thread) runs M statements: a
point read with a parameter, an aggregate read, and an INSERT of a row only it
writes, in turn. At the end every inserted row must be in the table (no lost
writes) and no statement may have failed. Prints latency percentiles per
statement kind and in all, with the machine and the commit.

    python benchmarks/server_load.py [--clients 20] [--queries 200]
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_model  # noqa: E402

SETUP = """
CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, country VARCHAR, age INTEGER);
CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id INTEGER, amount DOUBLE);
INSERT INTO customers SELECT i, ['DE', 'FR', 'US'][1 + i % 3], 20 + i % 50 FROM range(1, 10001) t(i);
INSERT INTO orders SELECT i, 1 + (i * 7) % 10000, (i % 17) * 3.5 FROM range(1, 100001) t(i);
"""


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def run(clients: int, queries: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "load.duckdb"
        con = duckdb.connect(str(db))
        con.execute(SETUP)
        con.close()
        proc = subprocess.Popen([sys.executable, "-m", "rdl_sql.cli", "serve", str(db), "--port", "0"],
                                stdout=subprocess.PIPE, text=True)
        port = int(re.search(r":(\d+),", proc.stdout.readline()).group(1))
        dsn = f"host=127.0.0.1 port={port} user=bench dbname=load"
        latencies: dict[str, list[float]] = {"point read": [], "aggregate": [], "insert": []}
        errors: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(clients)

        def client(k: int) -> None:
            mine: dict[str, list[float]] = {name: [] for name in latencies}
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=60) as c:
                    barrier.wait(120)
                    for i in range(queries):
                        kind = ("point read", "aggregate", "insert")[i % 3]
                        t = time.perf_counter()
                        if kind == "point read":
                            c.execute("SELECT country, age FROM customers WHERE customer_id = %s",
                                      [1 + (k * 7919 + i) % 10000]).fetchall()
                        elif kind == "aggregate":
                            c.execute("SELECT country, count(*), avg(amount) FROM orders JOIN customers "
                                      "USING (customer_id) WHERE age = %s GROUP BY 1", [20 + i % 50]).fetchall()
                        else:
                            c.execute("INSERT INTO orders VALUES (%s, %s, %s)",
                                      [1_000_000 + k * queries + i, 1 + i % 10000, float(i)])
                        mine[kind].append(time.perf_counter() - t)
            except Exception as e:   # noqa: BLE001 - counted and printed
                errors.append(f"client {k}: {type(e).__name__}: {e}")
                barrier.abort()
            with lock:
                for name, values in mine.items():
                    latencies[name].extend(values)

        start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        inserts = sum(1 for i in range(queries) if i % 3 == 2) * clients
        with psycopg.connect(dsn, autocommit=True) as c:
            written = c.execute("SELECT count(*) FROM orders WHERE order_id >= 1000000").fetchone()[0]
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        con = duckdb.connect(str(db), read_only=True)   # after shutdown: everything is in the file
        on_disk = con.execute("SELECT count(*) FROM orders WHERE order_id >= 1000000").fetchone()[0]
        con.close()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip() or "unknown"
    print(f"rdl-sql serve, loopback load: {clients} clients x {queries} statements "
          f"(point read, aggregate over 100k orders, insert; in turn)")
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; duckdb {duckdb.__version__}; commit {commit}")
    print(f"{'statement':<12} {'count':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    everything = [v for values in latencies.values() for v in values]
    for name, values in list(latencies.items()) + [("all", everything)]:
        if values:
            print(f"{name:<12} {len(values):>6} {percentile(values, 50) * 1e3:>8.2f} "
                  f"{percentile(values, 95) * 1e3:>8.2f} {percentile(values, 99) * 1e3:>8.2f} "
                  f"{max(values) * 1e3:>8.2f}")
    mean = statistics.mean(everything) * 1e3
    print(f"wall {wall:.2f} s, {len(everything) / wall:.0f} statements/s; mean {mean:.2f} ms")
    print(f"errors: {len(errors)}; inserts sent {inserts}, in the table {written}, in the file after shutdown "
          f"{on_disk}; server exit status {rc}")
    for e in errors[:5]:
        print("  " + e)
    ok = not errors and written == inserts == on_disk and rc == 0
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--queries", type=int, default=200)
    a = p.parse_args()
    sys.exit(run(a.clients, a.queries))
