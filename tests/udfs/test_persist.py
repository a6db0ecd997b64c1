"""Stored models: bytes and back give identical predictions; a graph of other tables is refused."""
from __future__ import annotations

import dataclasses
import io
import re

import numpy as np
import pytest
import torch

from rdl_sql.planner.extract import extract, reachable
from rdl_sql.planner.query import TaskType
from rdl_sql.udfs import persist
from rdl_sql.udfs.graph import build_graph
from rdl_sql.udfs.model import RelationalGNN
from rdl_sql.udfs.persist import build_model, dumps, loads, specs_of
from rdl_sql.udfs.train import new_model


def test_round_trip_gives_identical_predictions(small_shop, one_thread_torch):
    g, val, tm = small_shop["graph"], small_shop["val"], small_shop["model"]
    specs, state = specs_of(dumps(tm, g, small_shop["options"].channels, small_shop["options"].layers))
    assert state["format"] == persist.FORMAT
    back = loads(state, g)
    assert (back.task_type, back.seed_type, back.fanouts, back.strategy) == \
        (tm.task_type, tm.seed_type, tm.fanouts, tm.strategy)
    assert np.array_equal(back.predict(g, val), tm.predict(g, val))
    # the scoring path: the graph rebuilt from the database with the stored encodings (and the key
    # columns they read, as engine.gnn.load_graph extracts them)
    con, s = small_shop["con"], small_shop["schema"]
    keys = {t: spec.key for t, spec in specs.items() if spec.key is not None}
    assert keys["products"] == "product_id"  # every table of at most 1,000 rows with a one-column key
    rebuilt = build_graph(extract(con, s, reachable(s, "customers", 2), None, keys=keys), specs)
    assert np.array_equal(loads(state, rebuilt).predict(rebuilt, val), tm.predict(g, val))


def test_the_model_is_rebuilt_from_stored_metadata_alone(small_shop):
    g, tm = small_shop["graph"], small_shop["model"]
    _, state = specs_of(dumps(tm, g))
    model = build_model(state)
    assert model.metadata == tm.model.metadata
    assert all(torch.equal(v, tm.model.state_dict()[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("task_type, classes", [("multiclass", ["a", "b", "c"]), ("regression", [])])
def test_round_trip_of_other_task_types(small_shop, one_thread_torch, task_type, classes):
    g, val = small_shop["graph"], small_shop["val"]
    tm = new_model(g, g.type_of("customers"), task_type, small_shop["options"], classes)
    tm.target_mean, tm.target_std = 3.5, 2.0
    back = loads(specs_of(dumps(tm, g))[1], g)
    assert back.classes == classes and (back.target_mean, back.target_std) == (3.5, 2.0)
    pred = back.predict(g, val)
    assert pred.shape == ((len(val), 3) if classes else (len(val),))
    assert np.array_equal(pred, tm.predict(g, val))


def test_a_graph_with_other_tables_is_refused(small_shop):
    g, tm = small_shop["graph"], small_shop["model"]
    con, s = small_shop["con"], small_shop["schema"]
    _, state = specs_of(dumps(tm, g))
    keys = {t: spec.key for t, spec in g.specs.items() if spec.key is not None}
    smaller = build_graph(extract(con, s, reachable(s, "customers", 1), None, keys=keys), g.specs)
    assert list(smaller.node_types.values()) != list(g.node_types.values())
    with pytest.raises(ValueError, match="tables or links differ"):
        loads(state, smaller)
    with pytest.raises(ValueError, match="tables or links differ"):
        dumps(tm, smaller)


def test_settings_that_are_not_the_models_are_refused(small_shop):
    opts = small_shop["options"]
    with pytest.raises(ValueError, match="channels"):
        dumps(small_shop["model"], small_shop["graph"], channels=opts.channels + 1, layers=opts.layers)


def test_unknown_format_is_refused(small_shop):
    _, state = specs_of(dumps(small_shop["model"], small_shop["graph"]))
    buf = io.BytesIO()
    torch.save(dict(state, format=99), buf)
    with pytest.raises(ValueError, match="format 99"):
        specs_of(buf.getvalue())


def test_format_1_models_are_still_read(small_shop, one_thread_torch):
    """A model stored before the PyG-shaped layout (one HeteroConv per layer) scores the same."""
    g, val, opts = small_shop["graph"], small_shop["val"], small_shop["options"]
    torch.manual_seed(0)
    # the architecture of formats 1-3: none of format 4's parts (calendar, windows, ...), nor format 5's
    tm = dataclasses.replace(small_shop["model"], windows_us=(),
                             model=RelationalGNN(g.node_specs(), g.edge_types, opts.channels, opts.layers,
                                                 every_type=False))
    _, state = specs_of(dumps(tm, g))
    renames = [(r"^encoder\.encoders\.", "encoders."), (r"^temporal\.", "time."),
               (r"^gnn\.convs\.(\d+)\.", r"convs.\1.convs."), (r"^gnn\.norms\.", "norms.")]
    old_weights = {}
    for k, v in state["weights"].items():
        for pattern, repl in renames:
            k = re.sub(pattern, repl, k)
        old_weights[k] = v
    v1 = {k: v for k, v in state.items() if k != "out_dim"}
    v1.update(format=1, weights=old_weights)
    buf = io.BytesIO()
    torch.save(v1, buf)
    _, upgraded = specs_of(buf.getvalue())
    assert np.array_equal(loads(upgraded, g).predict(g, val), tm.predict(g, val))


def test_a_trained_model_keeps_its_metrics_and_seed(small_shop):
    tm = dataclasses.replace(small_shop["model"], metrics={"val_AUROC": 0.7}, seed=7)
    back = loads(specs_of(dumps(tm, small_shop["graph"]))[1], small_shop["graph"])
    assert back.metrics == {"val_AUROC": 0.7} and back.seed == 7


def _before_format_6(small_shop, task_type: str = "binary"):
    """A model of ``small_shop``'s graph as formats 4 and 5 built it: no linear term from the seeds' windowed
    numbers."""
    g, tm, opts = small_shop["graph"], small_shop["model"], small_shop["options"]
    torch.manual_seed(0)
    model = RelationalGNN(g.node_specs(), g.edge_types, opts.channels, opts.layers, windows=len(tm.windows_us),
                          calendar=tm.model.calendar, direct=False)
    assert not list(model.direct)
    return dataclasses.replace(tm, model=model, task_type=TaskType(task_type))


def test_a_model_stored_before_format_5_skips_edge_types_without_edges_as_it_was_trained(small_shop):
    """Format 5 runs every edge type's convolution for every destination; a format 4 model's convolutions
    for a type that never had an edge in its batches (the edge back to the parent a row was reached from)
    were never trained, so it is rebuilt as it was trained."""
    _, state = specs_of(dumps(small_shop["model"], small_shop["graph"]))
    assert build_model(state).gnn.every_type
    _, old = specs_of(dumps(_before_format_6(small_shop), small_shop["graph"]))
    assert not build_model(dict(old, format=4)).gnn.every_type


def test_a_model_stored_before_format_6_is_rebuilt_without_the_linear_term(small_shop, one_thread_torch):
    """Format 6 gives a regression model one linear map per link into a table (``RelationalGNN.direct``); a
    regression model stored in format 5 has none and scores as it did; a classifier has none in either."""
    g, val, tm = small_shop["graph"], small_shop["val"], small_shop["model"]
    assert not list(tm.model.direct)  # small_shop's model is binary
    assert not list(build_model(specs_of(dumps(tm, g))[1]).direct)
    regression = new_model(g, tm.seed_type, "regression", small_shop["options"], windows_us=tm.windows_us)
    assert list(regression.model.direct)
    assert list(build_model(specs_of(dumps(regression, g))[1]).direct)
    old = _before_format_6(small_shop, "regression")
    _, state = specs_of(dumps(old, g))
    back = loads(dict(state, format=5), g)
    assert not list(back.model.direct)
    assert np.array_equal(back.predict(g, val), old.predict(g, val))
