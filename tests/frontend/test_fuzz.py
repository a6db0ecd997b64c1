"""Fuzzing: grammar-aware mutations of valid statements fail only with located rdl_sql errors.

The mutations (``benchmarks/fuzz.py``: tokens dropped, repeated, swapped,
replaced by extreme values, misspelt names and keywords of the language,
clauses added, parentheses nested past DuckDB's depth, statements cut) are
drawn by hypothesis, bounded to about a minute; the larger run is
``python benchmarks/fuzz.py``. Training is replaced by a stub here (it is
what takes time, and the benchmark covers it); planning, EXPLAIN, scoring
with a stored model and every error path run for real.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rdl_sql
from rdl_sql.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("rdl_fuzz", ROOT / "benchmarks" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)


_REAL_TRAIN = Engine.train_gnn
_TRAINING = {"allowed": True}


@pytest.fixture(scope="module")
def con():
    c = fuzz.shop()  # trains the stored model `churn` for real, once
    mp = pytest.MonkeyPatch()

    def no_training(self, con, prep):
        if _TRAINING["allowed"]:  # restoring model `churn` after a mutated DROP MODEL
            return _REAL_TRAIN(self, con, prep)
        raise rdl_sql.OperationalError("training is not run in the fuzz test")

    mp.setattr(Engine, "train_gnn", no_training)
    _TRAINING["allowed"] = False
    yield c
    mp.undo()
    c.close()


def restore(con) -> None:
    _TRAINING["allowed"] = True
    try:
        fuzz.restore(con)
    finally:
        _TRAINING["allowed"] = False


class _Draw:
    """The fuzzer's choices, drawn by hypothesis (so failures shrink to a small statement)."""

    def __init__(self, data):
        self.data = data

    def choice(self, seq):
        return self.data.draw(st.sampled_from(list(seq)))

    def randint(self, lo, hi):
        return self.data.draw(st.integers(lo, hi))


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_statements_fail_only_with_located_rdl_errors(con, data):
    text = fuzz.statement(_Draw(data))
    kind, message = fuzz.outcome(con, text)
    if kind == "ok" and con.description is not None:
        con.fetchall()
    assert kind not in fuzz.DEFECTS, f"{kind}: {text!r}\n{message}"
    restore(con)


@pytest.mark.parametrize("text", fuzz.SEEDS)
def test_every_seed_statement_is_valid(con, text):
    kind, message = fuzz.outcome(con, text)
    assert kind in ("ok", "OperationalError"), f"{text}\n{message}"  # OperationalError: the training stub
    if kind == "OperationalError":
        assert "not run in the fuzz test" in message


@pytest.mark.parametrize("message, has_class_name", [
    ("Required keyword: 'expression' missing for <class 'sqlglot.expressions.core.EQ'>", True),
    ("RecursionError: maximum recursion depth exceeded", True),
    ("'TaskPlan' object has no attribute 'notices'", True),
    ("Catalog Error: Table with name MODEL does not exist!", False),
    ("statement 1, line 1, column 8: did you mean CREATE MODEL?", False),
])
def test_the_class_name_check_catches_what_the_issue_saw(message, has_class_name):
    assert bool(fuzz.CLASS_NAME.search(message)) is has_class_name
