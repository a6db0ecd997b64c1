"""End-to-end benchmark of the rdl-sql pipeline on a generated shop database.

    python benchmarks/pipeline.py [--customers N] [--products P] [--repeats R]
                                  [--train-rows N] [--score-rows N] [--threads T]

Builds ``rdl_sql.datasets.shop`` (60,000 customers give ~1.75M rows) in an
in-memory DuckDB, then times each stage of the churn task "no order in the
next 30 days, among customers with an order in the last 90":

* extraction (``extract`` of the tables within 2 hops) and ``build_graph``;
* the label query (``compile_task`` + ``examples_sql`` over the split anchors);
* sampler throughput (sampled edges/s), fanouts [32, 16], uniform and recent,
  over batches of 512 seeds and one batch of 10,000 seeds;
* the sampler against the same sampling written as one DuckDB query (one hop
  customers <- orders, 32 most recent orders at or before each seed's anchor),
  on the same 10,000 seeds; both must return the same number of edges;
* one training epoch (``fit`` with epochs=1, default options);
* scoring: ``TrainedModel.predict`` and the ``rdl_score`` UDF through
  ``TaskPlan.score_sql``;
* peak RSS after each stage.

Times are medians over ``--repeats`` runs, except the training epoch and the
one-off stages marked "x1". Prints one markdown table plus the targets.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from sqlglot import exp

from rdl_sql.datasets.shop import build_shop
from rdl_sql.planner.extract import extract, reachable
from rdl_sql.planner.options import DEFAULTS
from rdl_sql.planner.query import AggRef, Aggregate, PredictQuery, Target
from rdl_sql.planner.schema import read_schema
from rdl_sql.planner.sql import arrow, to_sql
from rdl_sql.planner.task import compile_task
from rdl_sql.udfs import scoring
from rdl_sql.udfs.graph import TemporalGraph, build_graph
from rdl_sql.udfs.sampler import sample
from rdl_sql.udfs.train import Examples, fit

ROOT = Path(__file__).resolve().parent.parent
TARGET_SAMPLER_X = 10.0       # our sampler at least 10x faster than the SQL query
TARGET_SCORE_PER_S = 50_000   # entities scored per second


# ---- helpers -------------------------------------------------------------------
from machine import cpu_model  # noqa: E402 - benchmarks/ is the script's own folder


def peak_rss_mib() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2 ** 20


def timed(fn, repeats: int):
    """(median seconds, all seconds, last result) of ``repeats`` calls of ``fn``."""
    secs, out = [], None
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        out = fn()
        secs.append(time.perf_counter() - t0)
    return statistics.median(secs), secs, out


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return sha + (" (+ uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fmt(x: float, digits: int = 3) -> str:
    if x >= 1e6:
        return f"{x / 1e6:,.2f} M"
    if x >= 1e3:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def secs_note(secs: list[float]) -> str:
    return "x1" if len(secs) == 1 else "median of " + ", ".join(f"{s:.3f}" for s in secs)


def one_hop_graph(g: TemporalGraph, et) -> TemporalGraph:
    """The same graph with a single edge type, so ``sample`` does exactly one hop along ``et``."""
    return TemporalGraph(g.node_types, g.nodes, {et: g.csr[et]}, g.times, g.specs)


SQL_ONE_HOP = """
SELECT s.seed, o.order_id
FROM bench_seeds AS s
JOIN orders AS o
  ON o.customer_id = s.customer_id AND o.ordered_at <= s.anchor
QUALIFY row_number() OVER (PARTITION BY s.seed ORDER BY o.ordered_at DESC) <= {k}
"""


# ---- benchmark -----------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=60_000)
    ap.add_argument("--products", type=int, default=2_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-rows", type=int, default=20_000, help="example rows for the training epoch")
    ap.add_argument("--val-rows", type=int, default=5_000, help="validation rows scored at the end of the epoch")
    ap.add_argument("--score-rows", type=int, default=20_000, help="minimum entities to score")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for every stage (default: the plan's option 'threads')")
    args = ap.parse_args(argv)
    threads = int(args.threads or DEFAULTS.threads)
    torch.set_num_threads(threads)
    R = args.repeats
    rows: list[tuple[str, str, str, str]] = []   # stage, value, unit, note
    rss: list[tuple[str, float]] = []
    checks: list[tuple[str, str, str, bool]] = []

    def add(stage, value, unit, note=""):
        rows.append((stage, value, unit, note))
        print(f"  {stage}: {value} {unit} {note}", file=sys.stderr, flush=True)

    def mark(stage):
        rss.append((stage, peak_rss_mib()))

    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    con = duckdb.connect()
    mark("start")

    # -- database -------------------------------------------------------------
    t0 = time.perf_counter()
    counts = build_shop(con, customers=args.customers, products=args.products)
    total_rows = sum(counts.values())
    add("build_shop (generate database)", f"{time.perf_counter() - t0:.2f}", "s",
        f"x1; {total_rows:,} rows (" + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + ")")
    mark("database")
    schema = read_schema(con)
    duckdb_threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]

    # -- extraction and graph -------------------------------------------------
    tables = reachable(schema, "customers", 2)
    med, secs, extracted = timed(lambda: extract(con, schema, tables, None), R)
    n_edges_rows = sum(t.num_rows for t in extracted.edges.values())
    add("extract (2 hops from customers)", f"{med:.3f}", "s",
        f"{secs_note(secs)}; {len(tables)} tables, {sum(t.num_rows for t in extracted.nodes.values()):,} rows, "
        f"{n_edges_rows:,} link rows")
    mark("extract")
    med, secs, graph = timed(lambda: build_graph(extracted), R)
    add("build_graph", f"{med:.3f}", "s", f"{secs_note(secs)}; {len(graph.csr)} CSR edge types")
    mark("build_graph")

    # -- labels ----------------------------------------------------------------
    tgt = Aggregate("COUNT", "orders", None, 0, 30, "DAYS")
    flt = Aggregate("COUNT", "orders", None, -90, 0, "DAYS")
    query = PredictQuery(Target(tgt, "=", 0), "customers", "customer_id",
                         where=exp.GT(this=AggRef(this=1), expression=exp.Literal.number(0)),
                         aggregates=(tgt, flt))

    def labels():
        p = compile_task(con, schema, query)
        return p, arrow(con, p.examples_sql(p.split_anchors()))

    med, secs, (plan, ex) = timed(labels, R)
    split_counts = {s: int(pc.sum(pc.equal(ex.column("split"), s)).as_py() or 0) for s in ("train", "val", "test")}
    add("label query (compile_task + examples_sql)", f"{med:.3f}", "s",
        f"{secs_note(secs)}; {ex.num_rows:,} rows ({len(plan.split_anchors())} anchors; "
        + ", ".join(f"{k} {v:,}" for k, v in split_counts.items()) + ")")
    mark("labels")

    def split(name: str, limit: int | None = None) -> Examples:
        part = ex.filter(pc.equal(ex.column("split"), name))
        if limit is not None and part.num_rows > limit:
            idx = np.random.default_rng(0).choice(part.num_rows, limit, replace=False)
            part = part.take(pa.array(np.sort(idx)))
        return Examples.from_arrow(part)

    # -- sampler throughput ---------------------------------------------------
    cust = graph.type_of("customers")
    pool = split("train", 200_000)
    gen = torch.Generator().manual_seed(0)
    perm = torch.from_numpy(np.random.default_rng(2).permutation(len(pool)))  # same seeds on any torch build
    n_small_batches = 20
    dflt_fanouts = list(DEFAULTS.fanouts)
    dflt_bs, dflt_strategy = DEFAULTS.batch_size, DEFAULTS.sampler
    configs = [(st, bs, [32, 16]) for st in ("uniform", "recent") for bs in (512, 10_000)]
    if (dflt_strategy, dflt_bs, dflt_fanouts) not in configs:
        configs.append((dflt_strategy, dflt_bs, dflt_fanouts))  # what training uses by default
    for strategy, bs, fanouts in configs:
        nb = 1 if bs >= 10_000 else n_small_batches
        batches = [pool.take(perm[i * bs:(i + 1) * bs]) for i in range(nb)]

        def run_batches(batches=batches, fanouts=fanouts, strategy=strategy):
            return sum(sample(graph, cust, b.node, b.anchor, fanouts, strategy, gen).num_edges
                       for b in batches)

        run_batches()  # warm-up
        med, secs, n_edges = timed(run_batches, R)
        add(f"sampler {strategy}, [{','.join(map(str, fanouts))}], batch {bs:,}"
            + (" (training default)" if fanouts == dflt_fanouts and bs == dflt_bs else ""),
            fmt(n_edges / med), "edges/s",
            f"{secs_note(secs)}; {nb} batch(es), {n_edges:,} edges, {med / nb * 1e3:.1f} ms/batch")
    mark("sampler")

    # -- sampler vs SQL on the same seeds ---------------------------------------
    orders_t = graph.type_of("orders")
    et = next(k for k in graph.csr if k[0] == orders_t and k[2] == cust)  # orders -> customers (in-neighbours)
    g1 = one_hop_graph(graph, et)
    seeds_tbl = ex.filter(pc.equal(ex.column("split"), "train"))
    pick_idx = np.sort(np.random.default_rng(1).choice(seeds_tbl.num_rows, 10_000, replace=False))
    seeds_tbl = seeds_tbl.take(pa.array(pick_idx))
    K = 32

    def compare(tbl: pa.Table, reps: int) -> tuple[float, float, int]:
        """(sampler s, SQL s, edges): medians, the two interleaved so load changes hit both alike."""
        seeds = Examples.from_arrow(tbl)
        sql_seeds = pa.table({"seed": pa.array(np.arange(tbl.num_rows, dtype=np.int64)),
                              "customer_id": tbl.column("customer_id"), "anchor": tbl.column("anchor_time")})

        def ours():
            return sample(g1, cust, seeds.node, seeds.anchor, [K], "recent").num_edges

        def in_sql():
            con.register("bench_seeds", sql_seeds)
            try:
                return con.sql(SQL_ONE_HOP.format(k=K)).to_arrow_table().num_rows
            finally:
                con.unregister("bench_seeds")

        ours(), in_sql()  # warm-up
        secs_ours, secs_sql = [], []
        for _ in range(reps):
            _, s1, e_ours = timed(ours, 1)
            _, s2, e_sql = timed(in_sql, 1)
            secs_ours += s1
            secs_sql += s2
        assert e_ours == e_sql, f"sampler returned {e_ours:,} edges, SQL {e_sql:,}"
        return statistics.median(secs_ours), statistics.median(secs_sql), e_ours

    reps = max(R, 5)
    med_ours, med_sql, n_e = compare(seeds_tbl, reps)
    ratio = med_sql / med_ours
    add("one hop, 10,000 seeds, 32 most recent orders: sampler", f"{med_ours * 1e3:.1f}", "ms",
        f"median of {reps}, interleaved with the query; {n_e:,} edges ({fmt(n_e / med_ours)} edges/s)")
    add("same seeds as one DuckDB query (QUALIFY row_number)", f"{med_sql * 1e3:.1f}", "ms",
        f"median of {reps}; {n_e:,} edges, equal count checked; Arrow seeds, result fetched as Arrow")
    add("sampler vs SQL, 10,000 seeds", f"{ratio:.1f}", "x faster", "")
    sub = np.sort(np.random.default_rng(3).choice(seeds_tbl.num_rows, 512, replace=False))
    m512_ours, m512_sql, n512 = compare(seeds_tbl.take(pa.array(sub)), reps)
    add("same comparison, 512 of those seeds (a training batch)", f"{m512_sql / m512_ours:.1f}", "x faster",
        f"sampler {m512_ours * 1e3:.2f} ms, SQL {m512_sql * 1e3:.2f} ms, {n512:,} edges")
    checks.append(("sampler >= 10x the SQL query (10,000 seeds)", f"{ratio:.1f}x", f">= {TARGET_SAMPLER_X:.0f}x",
                   ratio >= TARGET_SAMPLER_X))
    mark("sampler vs SQL")

    # -- training -----------------------------------------------------------------
    train = split("train", args.train_rows)
    val = split("val", args.val_rows)
    opts = plan.options.replace(epochs=1, threads=threads)
    t0 = time.perf_counter()
    trained = fit(graph, cust, train, val, None, plan.task_type, opts, progress=False)
    fit_s = time.perf_counter() - t0
    epoch_s = trained.history[0]["seconds"]
    n_batches = -(-len(train) // opts.batch_size)
    add("training epoch (fit, epochs=1)", f"{epoch_s:.2f}", "s",
        f"x1; {len(train):,} train rows, {n_batches} batches of {opts.batch_size}, channels {opts.channels}, "
        f"layers {opts.layers}, fanouts {opts.fanouts}, sampler {opts.sampler}; includes scoring "
        f"{len(val):,} val rows; fit total {fit_s:.2f} s; "
        f"val AUROC {trained.metrics.get('val_AUROC', float('nan')):.3f}")
    mark("training")

    # -- scoring ------------------------------------------------------------------
    med_q, secs_q, ents = timed(lambda: arrow(con, plan.predict_sql()), R)
    add("predict_sql alone (entities to score, WHERE filter)", f"{med_q:.3f}", "s",
        f"{secs_note(secs_q)}; {ents.num_rows:,} entities; the UDF query below runs this too")
    score_ex = Examples.from_arrow(ents, label=None)
    if len(score_ex) < args.score_rows:  # pad with example rows up to the minimum
        extra = split("train", args.score_rows - len(score_ex))
        score_ex = Examples(torch.cat([score_ex.node, extra.node]), torch.cat([score_ex.anchor, extra.anchor]))
    trained.predict(graph, score_ex.take(torch.arange(min(2048, len(score_ex)))))  # warm-up
    med, secs, _ = timed(lambda: trained.predict(graph, score_ex), R)
    predict_rate = len(score_ex) / med
    add("TrainedModel.predict", fmt(predict_rate), "entities/s",
        f"{secs_note(secs)}; {len(score_ex):,} entities in {med:.2f} s, batch 2048")
    mark("predict")

    scoring.register(con)
    scoring.hold("bench", trained, graph)
    score_q = to_sql(plan.score_sql("bench"))
    med, secs, scored = timed(lambda: con.sql(score_q).to_arrow_table(), R)
    udf_rate = scored.num_rows / med
    add("rdl_score UDF (score_sql -> Arrow)", fmt(udf_rate), "entities/s",
        f"{secs_note(secs)}; {scored.num_rows:,} entities in {med:.2f} s (query includes the WHERE filter)")
    add("rdl_score UDF, scoring part only", fmt(scored.num_rows / max(med - med_q, 1e-9)), "entities/s",
        "UDF query time minus predict_sql alone")
    scoring.release("bench")
    for name, rate in (("TrainedModel.predict", predict_rate), ("rdl_score UDF", udf_rate)):
        checks.append((f"scoring >= 50,000 entities/s ({name})", fmt(rate), f">= {TARGET_SCORE_PER_S:,}",
                       rate >= TARGET_SCORE_PER_S))
    mark("UDF scoring")
    con.close()

    # -- report -------------------------------------------------------------------
    out = []
    out.append("# rdl-sql pipeline benchmark\n")
    out.append(f"- machine: {cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()} "
               f"(every stage; --threads, default the plan option threads = {DEFAULTS.threads})")
    out.append(f"- commit: {git_commit()}")
    out.append(f"- python {platform.python_version()}, duckdb {duckdb.__version__}, torch {torch.__version__}")
    load_end = os.getloadavg()[0]
    busy = max(load_start, load_end) > (os.cpu_count() or 1)
    out.append(f"- duckdb threads {duckdb_threads}; 1-min load average {load_start:.2f} at start, {load_end:.2f} at end"
               + (" (above the core count: other processes competed for the CPU, times are noisy)" if busy else ""))
    out.append(f"- database: shop, {args.customers:,} customers, {args.products:,} products, {total_rows:,} rows; "
               f"repeats {R}; total wall time {time.perf_counter() - started:.0f} s\n")
    out.append("| stage | value | unit | notes |")
    out.append("|---|---:|---|---|")
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    out.append("\n| peak RSS after | MiB |")
    out.append("|---|---:|")
    out += [f"| {s} | {m:,.0f} |" for s, m in rss]
    out.append("\n| target | measured | goal | status |")
    out.append("|---|---:|---|---|")
    out += [f"| {a} | {b} | {c} | {'met' if ok else 'not met'} |" for a, b, c, ok in checks]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
