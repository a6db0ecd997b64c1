"""A binary yes/no uses a threshold chosen on validation, kept with the stored model and used when scoring."""
from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import torch

from rdl_sql.planner.query import TaskType
from rdl_sql.udfs import scoring
from rdl_sql.udfs.persist import dumps, loads, specs_of
from rdl_sql.udfs.predictions import choose_threshold, shape
from rdl_sql.udfs.sampler import sample
from rdl_sql.udfs.train import Examples


def test_the_threshold_predicts_true_as_often_as_validation_was_true():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.05, 0.45, 1000)          # an uncalibrated model: every score under 0.5
    labels = (scores + rng.normal(0, 0.05, 1000) > 0.33).astype(float)
    t = choose_threshold(labels, scores)
    assert t < 0.5
    assert abs(float((scores >= t).mean()) - float(labels.mean())) < 0.002
    yes = shape(TaskType.BINARY, scores, threshold=t).field("prediction").to_numpy(zero_copy_only=False)
    assert abs(yes.mean() - labels.mean()) < 0.002


def test_threshold_edge_cases():
    assert choose_threshold(np.zeros(3), np.array([0.1, 0.2, 0.3])) > 0.3    # nothing true: nothing predicted
    assert choose_threshold(np.ones(3), np.array([0.1, 0.2, 0.3])) == 0.1    # all true: everything predicted
    assert choose_threshold(np.array([]), np.array([])) == 0.5
    assert choose_threshold(np.array([1.0, 0.0]), np.array([np.nan, np.nan])) == 0.5


def test_the_threshold_is_stored_and_used_by_the_scoring_udf(small_shop):
    g, val = small_shop["graph"], small_shop["val"]
    tm = dataclasses.replace(small_shop["model"], threshold=0.3125)
    _, state = specs_of(dumps(tm, g))
    back = loads(state, g)
    assert back.threshold == 0.3125
    del state["threshold"]                                   # a model stored before thresholds existed
    assert loads(state, g).threshold == 0.5
    scoring.hold("threshold-test", back, g)
    try:
        n = 50
        out = scoring.score_chunk(TaskType.BINARY, pa.array(["threshold-test"] * n), pa.array(val.node[:n].numpy()),
                                  pa.array(val.anchor[:n].numpy()))
    finally:
        scoring.release("threshold-test")
    score = out.field("score").to_numpy(zero_copy_only=False)
    assert out.field("prediction").to_pylist() == [bool(s >= 0.3125) for s in score]


def test_gbdt_chooses_stores_and_uses_its_threshold():
    from rdl_sql.planner.options import Options
    from rdl_sql.udfs.gbdt import GbdtModel, fit_gbdt

    def rows(n, seed):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=n)
        y = (x + rng.normal(0, 1.0, n) > 1.0).astype(float)          # about 24 % true
        return pa.table({"x": x, "label": y})

    m = fit_gbdt(rows(2000, 0), rows(800, 1), None, "binary", Options(seed=0), ["x"])
    val = rows(800, 1)
    share = float((m.predict(val) >= m.threshold).mean())
    assert m.metrics["threshold"] == m.threshold
    assert abs(share - float(np.mean(val.column("label").to_numpy()))) < 0.01
    assert GbdtModel.loads(m.dumps()).threshold == m.threshold


def test_a_score_does_not_depend_on_the_rows_scored_beside_it(small_shop):
    """Before: a batch where no seed had a neighbour of some type skipped that type's convolution, bias and
    root term included, so a customer scored alone (FOR ... IN one key) got another score than in FOR EACH."""
    g, tm, val = small_shop["graph"], small_shop["model"], small_shop["val"]
    # as of 1970 no customer has an order: every edge type into the seeds is empty when they are alone
    lonely = Examples(torch.tensor([0, 1]), torch.tensor([0, 0]))
    sub = sample(g, tm.seed_type, lonely.node, lonely.anchor, tm.fanouts, tm.strategy)
    assert all(ei.shape[1] == 0 for ei in sub.edge_index.values())
    together = tm.predict(g, Examples(torch.cat([lonely.node, val.node]), torch.cat([lonely.anchor, val.anchor])))
    np.testing.assert_allclose(tm.predict(g, lonely), together[:2], rtol=1e-5, atol=1e-6)
