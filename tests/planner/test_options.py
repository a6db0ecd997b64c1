"""Typed options: every default, bound and message in one place; no layer parses strings."""
from __future__ import annotations

import datetime as dt

import pytest

from rdl_sql.planner import options
from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.options import DEFAULTS, Options, threads_notices, usable_threads


def parse(**values) -> Options:
    return Options.parse([(k, v, None) for k, v in values.items()])


def test_defaults_are_typed():
    assert DEFAULTS.fanouts == (16, 8) and DEFAULTS.hop_fanouts == (16, 8)
    assert isinstance(DEFAULTS.lr, float) and DEFAULTS.model == "gnn" and DEFAULTS.given == ()


def test_values_are_converted_once_and_remembered_as_given():
    o = parse(fanouts="32, 16,8", epochs=3, val_start="2024-01-31", MODEL="GBDT")
    assert o.fanouts == (32, 16, 8) and o.hop_fanouts == (32, 16, 8) and o.layers == 3 and o.epochs == 3
    assert o.val_start == dt.datetime(2024, 1, 31) and o.model == "gbdt"
    assert o.given == ("fanouts", "epochs", "val_start", "model")
    assert parse(fanouts=[4, 2]).fanouts == (4, 2)


@pytest.mark.parametrize("key, value, message", [
    ("epochs", 0, "option `epochs` must be a whole number from 1 to 10,000, got 0"),
    ("batch_size", 0, "option `batch_size` must be a whole number from 1"),
    ("channels", 0, "option `channels` must be a whole number from 1"),
    ("lr", 1e30, "option `lr` must be a number from 1e-09 to 10"),
    ("lr", float("nan"), "option `lr` must be a number"),
    ("seed", 2 ** 63, "option `seed` must be a whole number from 0 to"),
    ("epochs", 2.5, "must be a whole number"),
    ("epochs", True, "must be a whole number"),
    ("anchor_step", 0, "option `anchor_step` must be a whole number from 1"),
    ("fanouts", "8,0", "option `fanouts` is a list of whole numbers from 1 to 10,000"),
    ("fanouts", "a,b", "option `fanouts` is a list of whole numbers"),
    ("fanouts", "\u00b2,8", "option `fanouts` is a list of whole numbers"),  # a digit to str.isdigit, not to int()
    ("sampler", "random", "option `sampler` must be one of 'uniform', 'recent'"),
    ("test_start", "soon", "option test_start = 'soon' is not a timestamp"),
    ("val_start", "0001-01-01", "outside the range rdl-sql can shift by a window"),
    ("epoch", 3, "unknown option `epoch`; did you mean `epochs`?"),
])
def test_bad_values_are_refused_with_the_bound(key, value, message):
    with pytest.raises(PlanError) as err:
        parse(**{key: value})
    assert message in err.value.message


def test_layers_need_a_fanout_each_and_validation_comes_before_test():
    with pytest.raises(PlanError, match="3 layers need 3 fanouts"):
        parse(layers=3, fanouts="4,4")
    with pytest.raises(PlanError, match=r"3 fanouts \(8,4,2\) for 2 layers: give one fan-out per layer"):
        parse(layers=2, fanouts="8,4,2")
    with pytest.raises(PlanError, match="for 1 layer: "):
        parse(layers=1, fanouts="8,8")
    assert parse(layers=0, fanouts="5").fanouts == (5,)  # a ranking tower samples the first hop of no layer
    with pytest.raises(PlanError, match="must not be after test_start"):
        parse(val_start="2024-02-01", test_start="2024-01-01")
    with pytest.raises(PlanError, match="given twice"):
        Options.parse([("epochs", 1, None), ("EPOCHS", 2, None)])


def test_layers_alone_get_the_fanouts_of_that_depth():
    assert parse(layers=3).fanouts == (16, 8, 4)
    assert parse(layers=1).hop_fanouts == (16,)
    assert parse(layers=5).fanouts == (16, 8, 4, 2, 1)  # as auto's deeper candidate extends them
    assert parse(layers=0).fanouts == DEFAULTS.fanouts  # no hop to sample; a ranking tower still samples one
    assert parse(layers=3).given == ("layers",)  # DESCRIBE MODEL shows what the user wrote
    assert parse(layers=2, fanouts="4,2").fanouts == (4, 2)  # given fan-outs are kept


def test_a_time_zone_aware_start_is_read_in_utc():
    assert parse(test_start="2024-01-01T02:00:00+02:00").test_start == dt.datetime(2024, 1, 1)


def test_stored_fanouts_past_the_stored_depth_are_dropped_on_load():
    """auto's shallower candidate was stored with one layer and the statement's two fan-outs."""
    stored = dict(DEFAULTS.as_dict(), layers=1, fanouts=[16, 8])
    assert Options.from_dict(stored).hop_fanouts == (16,) and Options.from_dict(stored).fanouts == (16,)
    assert Options.from_dict(dict(stored, layers=0)).fanouts == (16, 8)


def test_stored_options_round_trip():
    o = parse(fanouts="8,4", val_start="2024-01-31 12:00:00", lr=0.01)
    back = Options.from_dict(o.as_dict())
    assert back == o


def test_cores_are_the_process_affinity_where_the_system_has_one(monkeypatch):
    monkeypatch.setattr(options.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(options.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert options.cores() == 2
    monkeypatch.delattr(options.os, "sched_getaffinity")
    assert options.cores() == 64
    monkeypatch.setattr(options.os, "cpu_count", lambda: None)
    assert options.cores() == 1


def test_more_threads_than_cores_use_the_cores_and_say_so(monkeypatch):
    monkeypatch.setattr(options, "cores", lambda: 2)
    assert [usable_threads(n) for n in (1, 2, 3, 1000)] == [1, 2, 2, 2]
    assert threads_notices(parse(threads=1000)) == ["threads = 1000 is more than the 2 cores here; training uses 2"]
    assert threads_notices(parse(threads=2)) == threads_notices(DEFAULTS) == []
    assert threads_notices(parse(threads=1000, model="gbdt")) == [  # one LightGBM thread whatever `threads` says
        "threads = 1000 is not used by model = 'gbdt': LightGBM trains on one thread (on 2 cores it trained faster "
        "than on two, beside other work)"]
    assert threads_notices(parse(threads=1, model="gbdt")) == threads_notices(parse(model="gbdt")) == []
    assert "run on DuckDB's threads" in threads_notices(parse(threads=4, model="popular"))[0]
    monkeypatch.setattr(options, "cores", lambda: 1)
    assert threads_notices(parse(threads=4, model="auto")) == ["threads = 4 is more than the 1 core here; "
                                                               "training uses 1"]


def test_a_model_stored_with_more_threads_than_the_cores_here_keeps_them(monkeypatch):
    """Stored on a 64-core machine, loaded on a 2-core one: the option is kept, only its use is capped."""
    monkeypatch.setattr(options, "cores", lambda: 2)
    back = Options.from_dict(dict(DEFAULTS.as_dict(), threads=64))
    assert back.threads == 64 and usable_threads(back.threads) == 2
