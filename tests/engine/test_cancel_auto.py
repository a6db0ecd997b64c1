"""A cancelled statement stops whatever candidate trains, GBDT included, and keeps no earlier candidate.

``Connection.cancel()`` sets the engine's event and interrupts DuckDB: a GNN
stops between batches, LightGBM before its next boosting round, a DuckDB
query with ``duckdb.InterruptException``; each ends the statement as a cancel
(``OperationalError``, nothing stored), never as a failed candidate that
lets ``auto`` go on and keep the one before it.
"""
from __future__ import annotations

import threading
from types import SimpleNamespace

import duckdb
import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pytest

import rdl_sql
from rdl_sql.engine import auto, runner
from rdl_sql.planner.options import Options
from rdl_sql.planner.query import TaskType
from rdl_sql.udfs import gbdt as udfs_gbdt

CHURN = ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
         "WHERE COUNT(orders.*, -90, 0, DAYS) > 0")


class SetAfter(threading.Event):
    """An event that reads as set from its ``n``-th check on: a cancel that comes after ``n - 1`` checks."""

    def __init__(self, n: int):
        super().__init__()
        self.checks, self.n = 0, n

    def is_set(self) -> bool:
        self.checks += 1
        return self.checks >= self.n or super().is_set()


# ---- LightGBM ------------------------------------------------------------------------------------
def rows(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    label = (rng.random(n) < 1 / (1 + np.exp(-2 * x))).astype(np.float64)
    return pa.table({"__node": np.arange(n), "split": ["x"] * n, "label": label, "x": x,
                     "noise": rng.normal(size=n)})


def test_boosting_stops_before_the_round_after_the_event_is_set():
    cancel = SetAfter(4)
    with pytest.raises(udfs_gbdt.Cancelled, match="training cancelled"):
        udfs_gbdt.fit_gbdt(rows(1000, 0), rows(300, 1), None, "binary", Options(seed=0), ["x", "noise"],
                           cancel=cancel)
    assert cancel.checks == 4  # once before the data set is built, then before each round: two rounds ran
    assert issubclass(udfs_gbdt.Cancelled, KeyboardInterrupt)


def test_a_cancel_while_the_frames_are_built_stops_before_lightgbm_builds_its_data_set(monkeypatch):
    """The frames take seconds on a large table; the first round's check came only after LightGBM built its data."""
    built = []
    monkeypatch.setattr(udfs_gbdt.lgb, "Dataset", lambda *a, **k: built.append(1))
    cancel = SetAfter(1)
    with pytest.raises(udfs_gbdt.Cancelled):
        udfs_gbdt.fit_gbdt(rows(1000, 0), rows(300, 1), None, "binary", Options(seed=0), ["x", "noise"],
                           cancel=cancel)
    assert cancel.checks == 1 and built == []


def test_an_event_never_set_changes_nothing():
    train, val = rows(1000, 0), rows(300, 1)
    plain = udfs_gbdt.fit_gbdt(train, val, None, "binary", Options(seed=0), ["x", "noise"])
    watched = udfs_gbdt.fit_gbdt(train, val, None, "binary", Options(seed=0), ["x", "noise"],
                                 cancel=threading.Event())
    assert watched.booster.model_to_string() == plain.booster.model_to_string()


# ---- auto.train with candidates that stand in for GBDT and the GNNs --------------------------------
def fake_prep(**given) -> SimpleNamespace:
    options = Options.parse([(k, v, None) for k, v in {"model": "auto", **given}.items()])
    return SimpleNamespace(schema=None, plan=SimpleNamespace(options=options, task_type=TaskType.BINARY,
                                                             entity=SimpleNamespace(name="customers")))


@pytest.fixture
def fake(monkeypatch):
    """``auto.train`` whose candidates run ``state["do"][name](engine)`` (if any) and then report AUROC 0.7."""
    state = {"do": {}, "calls": []}

    def fit(engine, con, prep, candidate):
        state["calls"].append(candidate.name)
        if candidate.name in state["do"]:
            state["do"][candidate.name](engine)
        return SimpleNamespace(metrics={"val_AUROC": 0.7})

    monkeypatch.setattr(auto, "fit_candidate", fit)
    monkeypatch.setattr(auto, "with_options", lambda prep, o: fake_prep(**{k: getattr(o, k) for k in o.given}))
    return state


def engine() -> SimpleNamespace:
    return SimpleNamespace(cancel=threading.Event())


def cancel_and_raise(error: Exception):
    def run(engine):
        engine.cancel.set()
        raise error
    return run


@pytest.mark.parametrize("error", [duckdb.InterruptException("INTERRUPT Error: Interrupted!"),
                                   duckdb.InvalidInputException("Attempting to execute an unsuccessful query"),
                                   RuntimeError("the feature query was cut short")],
                         ids=["interrupt", "a_query_cut_short", "any_error"])
def test_an_error_raised_once_the_statement_is_cancelled_is_the_cancel_not_a_failed_candidate(fake, error):
    fake["do"]["gnn"] = cancel_and_raise(error)  # gbdt trained first; the cancel came while the GNN ran
    with pytest.raises(auto.Cancelled) as info:
        auto.train(engine(), None, fake_prep())
    assert info.value.__cause__ is error
    assert fake["calls"] == ["gbdt", "gnn"]


def test_a_duckdb_interrupt_is_a_cancel_even_without_the_event(fake):
    """DuckDB's own interrupt stopped the candidate's query: never a candidate that cannot train."""
    def interrupted(engine):
        raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")
    fake["do"]["gnn"] = interrupted
    with pytest.raises(auto.Cancelled):
        auto.train(engine(), None, fake_prep())
    assert fake["calls"] == ["gbdt", "gnn"]


def test_no_candidate_starts_once_the_statement_is_cancelled(fake):
    fake["do"]["gbdt"] = lambda engine: engine.cancel.set()  # the cancel came as GBDT finished
    with pytest.raises(auto.Cancelled):
        auto.train(engine(), None, fake_prep())
    assert fake["calls"] == ["gbdt"]


def test_a_cancel_as_the_last_candidate_ends_keeps_nothing(fake):
    fake["do"]["gnn"] = lambda engine: engine.cancel.set()
    with pytest.raises(auto.Cancelled):
        auto.train(engine(), None, fake_prep(fanouts="4,4"))  # gbdt and gnn only: gnn is the last
    assert fake["calls"] == ["gbdt", "gnn"]


@pytest.mark.parametrize("model", ["auto", "gbdt"])
def test_a_statement_cancelled_before_its_training_trains_nothing(fake, model):
    e = engine()
    e.cancel.set()
    with pytest.raises(auto.Cancelled):
        auto.train(e, None, fake_prep(model=model))
    assert fake["calls"] == []


# ---- through Connection.cancel(), LightGBM training for real ---------------------------------------
@pytest.fixture
def cancel_in_boosting(shop, monkeypatch):
    """While ``armed``, LightGBM calls ``shop.cancel()`` after its third round, as a cancel from another
    thread would come; ``rounds`` lists the rounds LightGBM finished."""
    state = {"armed": True, "rounds": []}
    real = lgb.train

    def train(*args, callbacks=None, **kwargs):
        def after_round(env):
            state["rounds"].append(env.iteration)
            if state["armed"] and env.iteration == 2:
                shop.cancel()
        after_round.order = 100  # LightGBM sorts callbacks by it
        return real(*args, callbacks=[*(callbacks or ()), after_round], **kwargs)

    monkeypatch.setattr(lgb, "train", train)
    return state


def models(con) -> list[str]:
    if "rdl_models" not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}:
        return []
    return [r[0] for r in con.execute("SELECT name FROM rdl_models").fetchall()]


def test_cancelling_a_gbdt_create_model_stops_its_boosting_and_stores_nothing(shop, cancel_in_boosting):
    with pytest.raises(rdl_sql.OperationalError, match="cancelled"):
        shop.execute(f"CREATE MODEL m AS {CHURN} WITH (model = 'gbdt')")
    assert cancel_in_boosting["rounds"] == [0, 1, 2]
    assert models(shop) == []
    cancel_in_boosting["armed"] = False  # the event does not outlive its statement: the next one runs to its end
    shop.execute(f"CREATE MODEL m AS {CHURN} WITH (model = 'gbdt')")
    assert models(shop) == ["m"] and len(cancel_in_boosting["rounds"]) > 10


def test_cancelling_auto_while_gbdt_trains_keeps_no_earlier_candidate(shop, cancel_in_boosting, monkeypatch):
    """The GNN goes first (GBDT's feature query looks costly) and trains; the cancel comes during GBDT."""
    gnn = []

    def train_gnn(self, con, prep):  # stands in for a GNN that trained, the earlier candidate, and loses
        gnn.append(prep.plan.options.fanouts)
        return SimpleNamespace(metrics={"val_AUROC": 0.0})

    monkeypatch.setattr(runner.Engine, "train_gnn", train_gnn)
    monkeypatch.setattr(auto, "gbdt_seconds", lambda prep: prep.plan.options.time_budget / 3)
    with pytest.raises(rdl_sql.OperationalError, match="cancelled"):
        shop.execute(f"CREATE MODEL m AS {CHURN} WITH (model = 'auto', fanouts = '4,4')")
    assert gnn == [(4, 4)] and cancel_in_boosting["rounds"] == [0, 1, 2]
    assert models(shop) == []
