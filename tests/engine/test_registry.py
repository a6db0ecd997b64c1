"""Models held in the process: scoring keys, their release, and the reuse cache."""
from __future__ import annotations

from types import SimpleNamespace

import duckdb

from rdl_sql.engine.registry import ModelRegistry
from rdl_sql.udfs import scoring


def fake(i: int):
    return SimpleNamespace(trained=f"model{i}", graph=f"graph{i}")


def test_hold_keeps_the_newest_models_and_releases_the_oldest():
    con = duckdb.connect()
    reg = ModelRegistry(con)
    keys = [reg.hold(fake(i)) for i in range(ModelRegistry.MAX_HELD + 2)]
    assert len(set(keys)) == len(keys)
    held = [k for k in keys if k in scoring._held]
    assert held == keys[-ModelRegistry.MAX_HELD:]
    reg.close()
    assert not any(k in scoring._held for k in keys)
    con.close()


def test_the_scoring_functions_are_installed_once_on_first_hold():
    con = duckdb.connect()
    reg = ModelRegistry(con)
    names = lambda: {r[0] for r in con.execute(  # noqa: E731
        "SELECT function_name FROM duckdb_functions() WHERE function_name LIKE 'rdl_score_%'").fetchall()}
    assert names() == set()
    reg.hold(fake(0))
    reg.hold(fake(1))
    assert names() == {"rdl_score_binary", "rdl_score_regression", "rdl_score_multiclass"}
    reg.close()
    con.close()


def test_reuse_cache_is_keyed_by_statement_and_digest_and_forgets_the_least_recent():
    reg = ModelRegistry(duckdb.connect())
    reg.remember(("stmt", "d1"), "a")
    assert reg.trained(("stmt", "d1")) == "a"
    assert reg.trained(("stmt", "d2")) is None and reg.trained(("other", "d1")) is None
    for i in range(ModelRegistry.MAX_HELD):
        reg.remember(("s", str(i)), i)
    assert reg.trained(("stmt", "d1")) is None
    assert reg.trained(("s", "0")) == 0
