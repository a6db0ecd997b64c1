"""The gradient-boosted baseline: LightGBM on the feature rows of ``planner.features``.

Kept free of torch, so ``model = 'gbdt'`` never pays for importing it.
String columns are categorical features: their categories are fixed from the
training rows and reused at scoring time (an unseen or NULL value is
missing), so a category means the same split in every table the model reads.
Seeds, one thread and LightGBM's deterministic mode make the same statement
on the same data give the same model. Boosting checks a ``cancel`` event
before each round, as GNN training checks it between batches.

A trained model is stored (``dumps`` / ``loads``) as versioned JSON around
LightGBM's own text format: the booster's ``model_to_string`` plus what
scoring needs beside it (feature names in order, training categories,
class labels, the training label mean for EVALUATE's trivial predictor).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rdl_sql.planner.options import Options
from rdl_sql.planner.query import METRIC_NAME
from rdl_sql.udfs.cancel import Cancelled
from rdl_sql.udfs.metrics import defined, metric
from rdl_sql.udfs.predictions import choose_threshold

#: columns of an example row that are never features
RESERVED = ("__node", "anchor_time", "split", "label")

#: the stored layout ``dumps`` writes, and those ``loads`` reads
FORMAT = 1
READABLE = (1,)

MAX_ROUNDS = 1000
EARLY_STOP = 50
# one thread: on the 2-core machines this project targets, the shop task (25k rows x 67
# features) trained in 1.3 s with one thread and 4.0 s with two, beside other work
THREADS = 1


class _StopWhenSet:
    """A LightGBM callback, run before each boosting round, that raises ``Cancelled`` once ``cancel`` is set:
    ``lgb.train`` runs its rounds in Python, so the exception leaves it at once, with no booster returned."""

    before_iteration = True
    order = 0  # LightGBM sorts callbacks by it

    def __init__(self, cancel: threading.Event):
        self.cancel = cancel

    def __call__(self, env) -> None:
        if self.cancel.is_set():
            raise Cancelled("training cancelled")


@dataclass
class GbdtModel:
    """A trained booster with the feature layout it was trained on."""

    booster: object           # lightgbm.Booster
    task_type: str            # binary | regression | multiclass
    features: list[str]       # column names, in training order
    categories: dict[str, pa.Array] = field(default_factory=dict)  # string feature -> training categories
    metrics: dict = field(default_factory=dict)
    classes: list = field(default_factory=list)  # multiclass: label of each output
    #: mean training label (binary: the positive rate), the trivial predictor EVALUATE shows beside the model
    train_mean: float = 0.0
    #: binary: a score at or above it predicts true; chosen on validation (``predictions.choose_threshold``)
    threshold: float = 0.5

    def frame(self, tbl: pa.Table) -> pd.DataFrame:
        """The model's input for ``tbl``: float columns and categoricals with the training categories."""
        data = {}
        for i, name in enumerate(self.features):
            c = tbl.column(name)
            key = f"f{i}"  # LightGBM refuses some characters in feature names; positions are safe
            if name in self.categories:
                cats = self.categories[name]
                codes = pc.index_in(pc.cast(c, pa.string()), value_set=cats)
                codes = pc.fill_null(codes, -1).to_numpy(zero_copy_only=False).astype(np.int32)
                data[key] = pd.Categorical.from_codes(codes, categories=pd.Index(cats.to_pylist(), dtype=object))
            else:
                data[key] = pc.cast(c, pa.float64()).to_numpy(zero_copy_only=False)
        return pd.DataFrame(data, index=pd.RangeIndex(tbl.num_rows))

    def predict(self, tbl: pa.Table) -> np.ndarray:
        """Probabilities (binary: [n], multiclass: [n, classes]) or values (regression: [n]) for ``tbl``."""
        if tbl.num_rows == 0:
            return np.zeros((0, self.booster.num_model_per_iteration()) if self.task_type == "multiclass" else 0)
        return np.asarray(self.booster.predict(self.frame(tbl), num_threads=THREADS), dtype=np.float64)

    def importance(self, top: int = 10) -> dict[str, float]:
        """The ``top`` features by total gain, largest first (DESCRIBE MODEL shows them)."""
        gain = self.booster.feature_importance(importance_type="gain")
        order = sorted(range(len(gain)), key=lambda i: -gain[i])[:top]
        return {self.features[i]: float(gain[i]) for i in order if gain[i] > 0}

    def dumps(self) -> bytes:
        """The stored form: JSON holding LightGBM's model text (best iteration) and the feature layout."""
        state = {"format": FORMAT, "kind": "gbdt", "task_type": self.task_type, "features": list(self.features),
                 "categories": {k: v.to_pylist() for k, v in self.categories.items()},
                 "classes": [str(c) for c in self.classes], "train_mean": float(self.train_mean),
                 "threshold": float(self.threshold),
                 "metrics": self.metrics, "importance": self.importance(),
                 "booster": self.booster.model_to_string()}
        return json.dumps(state).encode()

    @classmethod
    def loads(cls, blob: bytes) -> "GbdtModel":
        """A model back from ``dumps``; ValueError, saying why, for bytes of another kind or format."""
        try:
            state = json.loads(bytes(blob).decode())
        except (UnicodeDecodeError, ValueError):
            raise ValueError("the stored bytes are not a gbdt model") from None
        if not isinstance(state, dict) or state.get("kind") != "gbdt":
            raise ValueError("the stored bytes are not a gbdt model")
        if state.get("format") not in READABLE:
            raise ValueError(f"stored gbdt format {state.get('format')!r} is not readable by this version "
                             f"(it reads {', '.join(map(str, READABLE))})")
        booster = lgb.Booster(model_str=state["booster"])
        categories = {k: pa.array(v, pa.string()) for k, v in state["categories"].items()}
        return cls(booster, state["task_type"], list(state["features"]), categories, dict(state["metrics"]),
                   list(state["classes"]), float(state["train_mean"]),
                   float(state.get("threshold", 0.5)))  # models stored before thresholds: 0.5


def feature_columns(tbl: pa.Table, exclude: tuple[str, ...] = ()) -> list[str]:
    """Every column of ``tbl`` but the reserved ones and ``exclude`` (e.g. the entity key)."""
    return [n for n in tbl.column_names if n not in RESERVED and n not in exclude]


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def fit_gbdt(train: pa.Table, val: pa.Table, test: pa.Table | None, task_type: str, options: Options,
             features: list[str] | None = None, num_classes: int = 0,
             cancel: threading.Event | None = None) -> GbdtModel:
    """Train LightGBM on ``train`` with early stopping on ``val``; metrics on val (and test).

    Multiclass labels are class indices ``0 .. num_classes - 1``; -1 marks a
    validation or test label outside the training classes (always wrong).
    ``cancel`` is checked before each boosting round: once set, ``Cancelled``
    is raised.
    """
    started = time.perf_counter()
    features = list(features) if features is not None else feature_columns(train)
    categories = {}
    for name in features:
        if _is_string(train.schema.field(name).type):
            cats = pc.unique(pc.drop_null(pc.cast(train.column(name), pa.string())))
            categories[name] = cats.take(pc.array_sort_indices(cats))  # sorted: independent of row order
    y_train = _labels(train)
    train_mean = float(np.mean(y_train)) if len(y_train) else 0.0
    model = GbdtModel(None, task_type, features, categories, train_mean=train_mean)
    y_val = _labels(val)
    seed = options.seed
    objective, stop_metric = {"binary": ("binary", "binary_logloss"), "regression": ("l1", "l1"),
                              "multiclass": ("multiclass", "multi_logloss")}[task_type]
    params = {
        # early stopping on log loss, not AUROC: AUROC peaks after a handful of rounds, while the
        # probabilities are still near the base rate (and ``prediction`` thresholds them at 0.5)
        "objective": objective, "metric": stop_metric,
        # small leaves, large minimum: on the shop task as accurate as 31 leaves / 20 rows, and it
        # stops later and more steadily; the minimum shrinks with the training set
        "learning_rate": 0.05, "num_leaves": 15, "min_data_in_leaf": min(100, max(10, train.num_rows // 200)),
        "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
        "cat_smooth": 10.0, "max_cat_to_onehot": 8,
        "seed": seed, "deterministic": True, "force_row_wise": True,
        "num_threads": THREADS, "verbose": -1,
    }
    stop_val = val
    if task_type == "multiclass":
        params["num_class"] = int(num_classes)
        stop_val = val.filter(pc.greater_equal(val.column("label"), 0))  # LightGBM refuses unknown classes
    stops = [] if cancel is None else [_StopWhenSet(cancel)]
    frame = model.frame(train)
    for stop in stops:  # the frames take seconds on large tables: a cancel meanwhile need not wait for round 1
        stop(None)
    dtrain = lgb.Dataset(frame, y_train, free_raw_data=True)
    if stop_val.num_rows:
        dval = lgb.Dataset(model.frame(stop_val), _labels(stop_val), reference=dtrain)
        booster = lgb.train(params, dtrain, num_boost_round=MAX_ROUNDS, valid_sets=[dval],
                            callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False), *stops])
    else:  # nothing to stop on: LightGBM's default number of rounds
        booster = lgb.train(params, dtrain, num_boost_round=100, callbacks=stops)
    model.booster = booster  # predicts with its best iteration
    name = METRIC_NAME[task_type]
    val_scores = model.predict(val)
    model.metrics = {f"val_{name}": metric(task_type, y_val, val_scores),
                     "rounds": int(booster.best_iteration or booster.current_iteration()), "features": len(features),
                     "train_rows": train.num_rows, "val_rows": val.num_rows,
                     "train_seconds": time.perf_counter() - started}
    if task_type == "binary":
        model.threshold = choose_threshold(y_val, val_scores)
        model.metrics["threshold"] = model.threshold
    if test is not None and test.num_rows:
        if defined(task_type, _labels(test)):  # else left out: a test split of one class has no AUROC
            model.metrics[f"test_{name}"] = metric(task_type, _labels(test), model.predict(test))
        model.metrics["test_rows"] = test.num_rows
    return model


def _labels(tbl: pa.Table) -> np.ndarray:
    y = pc.cast(tbl.column("label"), pa.float64()).to_numpy(zero_copy_only=False)
    if np.isnan(y).any():
        raise ValueError("label column holds NULLs")
    return y


__all__ = ["Cancelled", "GbdtModel", "fit_gbdt", "feature_columns", "metric", "RESERVED"]
