"""Which model a statement trains: ``model = 'gnn'``, ``'gbdt'``, or ``'auto'``, the best of a few on validation.

``auto`` tries, in this order, GBDT (LightGBM on SQL aggregates: seconds,
and a strong baseline), the GNN with the statement's options, a GNN of
another depth (one layer deeper when that reaches tables the first cannot;
else, when the first already reaches every linked table, one layer
shallower: far cheaper, and the farthest hop is often noise) and a wider one
(twice the neighbours on the first hop, where recency and counts live), and
keeps the best validation metric. A candidate that would change an option
the user wrote is not tried: the statement's own options always hold.

GBDT goes first unless its feature query is estimated to take more than a
quarter of the budget (it joins every past row of each child table to each
example and computes every feature over them: the flights carrier task
joins about 5 * 10^8 rows for 374 features),
then the GNN goes first and GBDT only if its estimate fits what is left.

``time_budget`` (seconds) bounds the search. A candidate starts only while
the time spent is under the budget; a GNN variant starts only if its
estimated time also fits: the first GNN's seconds scaled by the sampled
nodes per seed (the variant's fan-outs against the first GNN's), which is
what a GNN's time grows with. A candidate that has started is never cut
short by the budget, so every candidate compared is a whole model, and the
search may end past the budget by one candidate's time (more when an
estimate was low).
Every candidate trains on the very same labelled examples (``Prepared``),
so their validation metrics compare.

A cancel (``Engine.cancel``, set by ``Connection.cancel()`` or a server's
CancelRequest) stops the whole search, whatever candidate runs: it raises
``Cancelled`` and nothing is kept, never an earlier candidate.

Torch and LightGBM are imported only when a candidate of that kind trains.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import pyarrow.compute as pc

from rdl_sql.planner.depth import link_distances
from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.features import HOPS, default_windows, feature_names, feature_sql, window_microseconds
from rdl_sql.planner.labels import ANCHOR
from rdl_sql.planner.options import Options, fanouts_for, threads_notices
from rdl_sql.udfs.cancel import Cancelled
from rdl_sql.udfs.metrics import better

from .prepare import Prepared
from .result import describe_metrics

GNN, GBDT, DEEPER, SHALLOWER, WIDER = "gnn", "gbdt", "gnn_deeper", "gnn_shallower", "gnn_wider"
_MAX_LAYERS = 8
_MAX_FANOUT = 10_000
#: rows x feature columns a second that GBDT's feature query computes, on the slow side (about half of what
#: was measured on the 2 cores): its running all-past aggregates go through every row of each child table
#: once (the carrier task: 1.7 M rows x 334 features in 13 s), its windowed GROUP BY joins each example with
#: the rows of its longest window (18.8 M rows x about 260 features in 34-40 s)
GBDT_STREAM_CELLS_PER_SECOND = 16_000_000
GBDT_CELLS_PER_SECOND = 90_000_000


@dataclass(frozen=True)
class Candidate:
    """One model ``auto`` may train: a name for notices and metrics, its kind and its options."""

    name: str
    kind: str  # gnn | gbdt
    options: Options

    def describe(self) -> str:
        if self.kind == GBDT:
            return "LightGBM on SQL aggregates"
        return f"layers {self.options.layers}, fanouts {','.join(map(str, self.options.hop_fanouts))}"


@dataclass
class Trial:
    """A candidate that trained: its preparation (with its options), result and validation metric."""

    candidate: Candidate
    prep: Prepared
    result: object
    value: float


@dataclass
class Trained:
    """The model a statement trained (or reused), with what it says about itself.

    ``result`` is an ``engine.gnn.GnnResult`` or an ``engine.gbdt.GbdtResult``;
    ``prep`` is the preparation it trained on, with the candidate's options
    (what storing it needs: the tables its depth reaches).
    """

    kind: str
    result: object
    prep: Prepared
    metrics: dict
    notices: list[str] = field(default_factory=list)


def candidates(options: Options, schema=None, entity: str | None = None) -> list[Candidate]:
    """The models ``options.model`` asks for; for ``auto`` the variations that keep every option the user gave.

    With the ``schema`` and ``entity``, the second GNN is deeper only if that reaches a table the
    first cannot, and else shallower; without them, deeper.
    """
    if options.model != "auto":
        return [Candidate(options.model, options.model, options)]
    given = set(options.given)
    out = [Candidate(GBDT, GBDT, options), Candidate(GNN, GNN, options)]
    layers = options.layers + 1
    farthest = max(link_distances(schema, entity).values()) if schema is not None else layers
    if given & {"layers", "fanouts"}:  # fan-outs are one per layer: either sets the depth
        pass
    elif farthest < layers and options.layers > 1:
        out.append(Candidate(SHALLOWER, GNN, options.replace(layers=options.layers - 1,
                                                             fanouts=options.fanouts[: options.layers - 1])))
    elif layers <= _MAX_LAYERS:
        out.append(Candidate(DEEPER, GNN, options.replace(layers=layers, fanouts=fanouts_for(layers))))
    if "fanouts" not in given and options.layers > 0 and options.fanouts:
        wide = (min(_MAX_FANOUT, 2 * options.fanouts[0]), *options.fanouts[1:])
        out.append(Candidate(WIDER, GNN, options.replace(fanouts=wide)))
    return out


def not_tried(options: Options) -> list[str]:
    """What ``auto`` leaves out because the statement wrote the option it would vary, as one notice (or none)."""
    if options.model != "auto":
        return []
    given = set(options.given)
    parts = []
    if "layers" in given:
        parts.append("no GNN of another depth (you set `layers`)")
    elif "fanouts" in given:
        parts.append("no GNN of another depth (you set `fanouts`: one fan-out per layer)")
    if "fanouts" in given:
        parts.append("no wider GNN (you set `fanouts`)")
    return [f"auto: {' and '.join(parts)}"] if parts else []


def sampled_nodes(options: Options) -> int:
    """Neighbours a GNN samples per seed (16,8: 16 + 16 * 8): what its training time grows with."""
    total, width = 0, 1
    for f in options.hop_fanouts:
        width *= f
        total += width
    return total


def gbdt_rows(prep: Prepared) -> tuple[float, float]:
    """About how many rows GBDT's feature query reads (``planner.features``): (the child rows its running
    aggregates go through, each with its own parents; the rows its windowed GROUP BY joins to the examples,
    the linked rows of each child inside the longest window, all of them for a child without time)."""
    schema = prep.schema
    if schema is None:
        return 0.0, 0.0
    entity = prep.plan.entity.name
    share = _window_share(prep)
    stream = windowed = 0.0
    for lk in schema.links:
        if lk.parent != entity:
            continue
        child = schema.tables[lk.child]
        parents = 1 + sum(1 for up in schema.links if up.child == lk.child and up != lk)
        per_entity = child.rows / max(1, schema.tables[entity].rows) * parents
        if child.time_column is not None:
            stream += child.rows * parents
            windowed += prep.examples.num_rows * per_entity * share
        else:
            windowed += prep.examples.num_rows * per_entity
    return stream, windowed


def _window_share(prep: Prepared) -> float:
    """The longest feature window as a share of the time the examples' anchors span (1 when unknown)."""
    if ANCHOR not in getattr(prep.examples, "column_names", ()):
        return 1.0
    anchors = prep.examples.column(ANCHOR)
    lo, hi = pc.min(anchors).as_py(), pc.max(anchors).as_py()
    windows = window_microseconds(default_windows(prep.plan))
    if lo is None or hi is None or hi <= lo or not windows:
        return 1.0
    return min(1.0, max(windows) / ((hi - lo).total_seconds() * 1e6))


def gbdt_seconds(prep: Prepared) -> float:
    """About how long GBDT's feature query takes: rows read times feature columns, at the rates above."""
    stream, windowed = gbdt_rows(prep)
    if not stream + windowed:
        return 0.0
    try:
        features = len(feature_names(feature_sql(prep.plan, prep.plan.predict_sql())))  # builds the SQL only
    except PlanError:  # a statement GBDT cannot take (a composite key): its candidate fails and says why
        return 0.0
    return features * (stream / GBDT_STREAM_CELLS_PER_SECOND + windowed / GBDT_CELLS_PER_SECOND)


def reach(options: Options, schema=None, entity: str | None = None) -> int:
    """How many links from the entity any candidate reads: the depth the data digest must cover."""
    return max(c.options.layers if c.kind == GNN else HOPS for c in candidates(options, schema, entity))


def with_options(prep: Prepared, options: Options) -> Prepared:
    """``prep`` with other training options: the same examples, the graph tables of the new depth."""
    if options == prep.plan.options:
        return prep
    return dataclasses.replace(prep, plan=dataclasses.replace(prep.plan, options=options))


def digest(con, prep: Prepared) -> str:
    """Identity of the data every candidate of the statement reads (reuse keys on it)."""
    options = prep.plan.options
    return with_options(prep, options.replace(layers=reach(options, prep.schema, prep.plan.entity.name))).digest(con)


def fit_candidate(engine, con, prep: Prepared, candidate: Candidate):
    """Train one candidate on ``prep`` (already carrying its options); returns its result.

    ``engine`` (an ``Engine``) gives a GNN its progress bar and either kind its cancel event; None trains
    quietly (the benchmarks).
    """
    if candidate.kind == GBDT:
        from . import gbdt  # LightGBM: loaded only when a GBDT candidate trains
        return gbdt.fit(con, prep, cancel=None if engine is None else engine.cancel)
    if engine is None:
        from . import gnn  # torch: loaded only when a GNN candidate trains
        return gnn.train(con, prep, progress=False)
    return engine.train_gnn(con, prep)


def _cancelled(engine) -> bool:
    return engine is not None and engine.cancel.is_set()


def _stop_if_cancelled(engine) -> None:
    if _cancelled(engine):
        raise Cancelled("training cancelled")


def _fit(engine, con, prep: Prepared, candidate: Candidate):
    """``fit_candidate``, raising ``Cancelled`` when the statement is cancelled before or while it trains.

    A cancel also interrupts DuckDB, so a candidate it stops may fail with
    ``duckdb.InterruptException`` (an ``Exception``) or any error of a query cut
    short; taken for a candidate that cannot train, it would let the search go
    on and keep an earlier candidate. Any error raised once the event is set is
    the cancel's doing. A KeyboardInterrupt without the event (Ctrl-C) passes
    unchanged.
    """
    _stop_if_cancelled(engine)
    try:
        return fit_candidate(engine, con, prep, candidate)
    except Cancelled:
        raise
    except (Exception, KeyboardInterrupt) as e:
        if _cancelled(engine) or isinstance(e, duckdb.InterruptException):
            raise Cancelled("training cancelled") from e
        raise


def train(engine, con, prep: Prepared, clock: Callable[[], float] = time.perf_counter) -> Trained:
    """Train what the statement's ``model`` option asks for; for ``auto``, every candidate the budget allows."""
    options = prep.plan.options
    if options.model not in (GNN, GBDT, "auto"):  # popular / past / two_tower rank items
        raise PlanError(f"model = '{options.model}' ranks items, so it needs a LIST_DISTINCT(...) RANK TOP k target; "
                        f"for this target use 'gnn', 'gbdt' or 'auto'", prep.plan.query.options_position)
    cands = candidates(options, prep.schema, prep.plan.entity.name)
    if options.model == "auto":
        gbdt_guess = gbdt_seconds(prep)
        if gbdt_guess > options.time_budget / 4:  # GBDT would eat the budget: the GNN goes first
            cands[0], cands[1] = cands[1], cands[0]
    threads = threads_notices(options)  # said when a model trains, not when an identical statement reuses it
    if options.model != "auto":
        (c,) = cands
        result = _fit(engine, con, prep, c)
        metrics = dict(result.metrics) if c.kind == GNN else dict(result.metrics, model=GBDT)
        return Trained(c.kind, result, prep, metrics,
                       threads + [f"trained {c.kind}: {describe_metrics(result.metrics)}"])
    key = f"val_{prep.plan.task_type.metric}"
    started = clock()
    notices: list[str] = threads + not_tried(options)
    tried: list[Trial] = []
    errors: list[Exception] = []
    per_node: tuple[str, float, float] | None = None  # (first GNN, its seconds, seconds per sampled node)
    budget = options.time_budget
    for i, c in enumerate(cands):
        _stop_if_cancelled(engine)  # before the budget's checks: a cancel never ends in "not tried"
        spent = clock() - started
        if i and spent >= budget:
            notices.append(f"auto: {c.name} ({c.describe()}) not tried: the time budget of {budget:g} s is spent "
                           f"({spent:.1f} s)")
            continue
        if c.kind == GBDT and i and spent + gbdt_guess > budget:
            notices.append(f"auto: {c.name} ({c.describe()}) not tried: its feature query reads about "
                           f"{sum(gbdt_rows(prep)):,.0f} rows, about {gbdt_guess:.0f} s, which would pass the time "
                           f"budget of {budget:g} s ({spent:.1f} s spent); WITH (model = 'gbdt') trains it alone")
            continue
        if c.kind == GNN and per_node is not None:
            guess = per_node[2] * max(1, sampled_nodes(c.options))
            if spent + guess > budget:
                notices.append(f"auto: {c.name} ({c.describe()}) not tried: about {guess:.0f} s (from {per_node[0]}'s "
                               f"{per_node[1]:.1f} s) would pass the time budget of {budget:g} s "
                               f"({spent:.1f} s spent)")
                continue
        cprep = with_options(prep, c.options)
        t0 = clock()
        try:
            result = _fit(engine, con, cprep, c)
        except Exception as e:  # a candidate that cannot train here (e.g. GBDT on a composite key)
            notices.append(f"auto: {c.name} ({c.describe()}) failed: {e}")
            errors.append(e)
            continue
        value = float(result.metrics.get(key, math.nan))
        seconds = clock() - t0
        notices.append(f"auto: {c.name} ({c.describe()}): {key} {value:.4f} in {seconds:.1f} s")
        if c.kind == GNN and per_node is None:
            per_node = (c.name, seconds, seconds / max(1, sampled_nodes(c.options)))
        tried.append(Trial(c, cprep, result, value))
    _stop_if_cancelled(engine)  # a cancel as the last candidate ended, or while the rest were not tried
    if not tried:
        raise errors[0]
    task = prep.plan.task_type.value
    best = _best(task, tried)
    c, metric = best.candidate, prep.plan.task_type.metric
    others = [t for t in tried if t is not best]
    if others:
        second = _best(task, others)
        notices.append(f"auto: {c.name} won on validation {metric} {best.value:.4f} vs {second.candidate.name} "
                       f"{second.value:.4f} ({best.value - second.value:+.4f})")
    else:
        notices.append(f"auto: {c.name} won on validation {metric} {best.value:.4f}, the only candidate trained")
    metrics = dict(best.result.metrics, model=c.kind, candidate=c.name,
                   **{f"{t.candidate.name}_{key}": t.value for t in tried}, auto_seconds=round(clock() - started, 3))
    return Trained(c.kind, best.result, best.prep, metrics, notices)


def _best(task_type: str, trials: list[Trial]) -> Trial:
    """The trial with the best validation metric; on a tie (or NaN) the earlier one."""
    best = trials[0]
    for t in trials[1:]:
        if better(task_type, t.value, best.value):
            best = t
    return best
