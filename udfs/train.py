"""Mini-batch training with early stopping, and batched scoring.

Training is a plain loop that the caller can interrupt between batches
(DuckDB cannot cancel a running UDF, so training is never run inside one).
Seeds fix initial weights, batch order and neighbour samples, so the same
statement on the same data gives the same model.
"""
from __future__ import annotations

import contextlib
import copy
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from rdl_sql.planner.options import Options
from rdl_sql.planner.query import METRIC_NAME

from .graph import TemporalGraph
from .metrics import better, metric  # noqa: F401 - part of this module's interface
from .model import RelationalGNN
from .sampler import sample


class Cancelled(KeyboardInterrupt):
    """Raised between batches when the caller's cancel event is set (as Ctrl-C would be)."""


@dataclass
class Examples:
    """Seeds with anchor times and (for training) labels, as tensors."""

    node: torch.Tensor    # [n] int64 node ids of the entity type
    anchor: torch.Tensor  # [n] int64 microseconds
    label: torch.Tensor | None = None  # [n] float

    def __len__(self) -> int:
        return self.node.numel()

    @classmethod
    def from_arrow(cls, tbl, node: str = "__node", anchor: str = "anchor_time", label: str | None = "label"):
        """From the planner's example rows: node ids, TIMESTAMP anchors, DOUBLE labels."""
        import pyarrow as pa
        import pyarrow.compute as pc
        n = torch.from_numpy(tbl.column(node).to_numpy(zero_copy_only=False).astype(np.int64))
        a = pc.cast(pc.cast(tbl.column(anchor), pa.timestamp("us")), pa.int64())
        a = torch.from_numpy(a.to_numpy(zero_copy_only=False).astype(np.int64))
        y = None
        if label is not None and label in tbl.column_names:
            y = torch.from_numpy(tbl.column(label).to_numpy(zero_copy_only=False).astype(np.float32))
        return cls(n, a, y)

    def take(self, idx: torch.Tensor) -> "Examples":
        return Examples(self.node[idx], self.anchor[idx], None if self.label is None else self.label[idx])


@contextlib.contextmanager
def torch_threads(n: int):
    """Run torch on ``n`` threads, then restore the caller's setting.

    One thread is the default: on the 2-core machines this product targets,
    any other busy process makes OpenMP's spinning barrier cost more than
    the second thread gains (a 128x128 linear layer on 2,000 rows: 1.0 ms on
    one thread, 15.6 ms on two while another process held one core).
    """
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class TrainedModel:
    model: RelationalGNN
    task_type: str
    seed_type: str
    fanouts: list[int]
    strategy: str
    seed: int
    target_mean: float = 0.0
    target_std: float = 1.0
    metrics: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    classes: list = field(default_factory=list)  # multiclass: label of each output
    threads: int = 1

    @torch.no_grad()
    def predict(self, graph: TemporalGraph, ex: Examples, batch_size: int = 2048) -> np.ndarray:
        """Probabilities (binary: [n], multiclass: [n, classes]) or values (regression: [n]), in order."""
        with torch_threads(self.threads):
            return self._predict(graph, ex, batch_size)

    def _predict(self, graph: TemporalGraph, ex: Examples, batch_size: int) -> np.ndarray:
        self.model.eval()
        out = []
        for i in range(0, len(ex), batch_size):
            part = ex.take(torch.arange(i, min(i + batch_size, len(ex))))
            batch = sample(graph, self.seed_type, part.node, part.anchor, self.fanouts, self.strategy)
            y = self.model(graph, batch)
            if self.task_type == "multiclass":
                out.append(torch.softmax(y, 1))
            elif self.task_type == "binary":
                out.append(torch.sigmoid(y.squeeze(1)))
            else:
                out.append(y.squeeze(1) * self.target_std + self.target_mean)
        if not out:
            return np.zeros((0, len(self.classes)) if self.task_type == "multiclass" else 0)
        return torch.cat(out).numpy().astype(np.float64)


def fit(graph: TemporalGraph, seed_type: str, train: Examples, val: Examples, test: Examples | None,
        task_type: str, options: Options, progress: bool = True, classes: list | None = None,
        cancel: threading.Event | None = None) -> TrainedModel:
    """Train a RelationalGNN; keep the epoch with the best validation metric.

    Multiclass labels are class indices into ``classes``.
    """
    with torch_threads(options.threads):
        tm = _fit(graph, seed_type, train, val, test, task_type, options, progress, classes, cancel)
    tm.threads = options.threads
    return tm


def _fit(graph, seed_type, train, val, test, task_type, options: Options, progress, classes, cancel) -> TrainedModel:
    seed = options.seed
    torch.manual_seed(seed)
    layers = options.layers
    fanouts = list(options.hop_fanouts)
    classes = list(classes or [])
    model = RelationalGNN(graph, options.channels, layers, len(classes) if task_type == "multiclass" else 1)
    tm = TrainedModel(model, task_type, seed_type, fanouts, options.sampler, seed, classes=classes)
    y = train.label.float()
    if task_type == "multiclass":
        y = train.label.long()
        loss_fn: nn.Module = nn.CrossEntropyLoss()
    elif task_type == "regression":
        tm.target_mean, tm.target_std = float(y.mean()), float(y.std().clamp(min=1e-6))
        y = (y - tm.target_mean) / tm.target_std
        loss_fn = nn.L1Loss()
    else:
        loss_fn = nn.BCEWithLogitsLoss()
    opt = torch.optim.Adam(model.parameters(), lr=options.lr)
    gen = torch.Generator().manual_seed(seed)
    batch_size = options.batch_size
    epochs, patience = options.epochs, options.patience
    best, best_state, since = float("nan"), None, 0
    name = METRIC_NAME[task_type]
    started = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=epochs, desc="training", unit="epoch", file=sys.stderr, leave=False)
    try:
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(train), generator=gen)
            total, t0 = 0.0, time.perf_counter()
            for i in range(0, len(train), batch_size):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("training cancelled")
                idx = order[i:i + batch_size]
                part = train.take(idx)
                batch = sample(graph, seed_type, part.node, part.anchor, fanouts, tm.strategy, gen)
                out = model(graph, batch)
                loss = loss_fn(out if task_type == "multiclass" else out.squeeze(1), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * idx.numel()
            val_metric = metric(task_type, val.label.numpy(), tm.predict(graph, val))
            tm.history.append({"epoch": epoch + 1, "loss": total / max(len(train), 1), f"val_{name}": val_metric,
                               "seconds": time.perf_counter() - t0})
            if bar is not None:
                bar.set_postfix({"loss": f"{total / max(len(train), 1):.4f}", f"val {name}": f"{val_metric:.4f}"})
                bar.update(1)
            if best_state is None or better(task_type, val_metric, best):
                best, best_state, since = val_metric, copy.deepcopy(model.state_dict()), 0
            else:
                since += 1
                if since >= patience:
                    break
    finally:
        if bar is not None:
            bar.close()
    model.load_state_dict(best_state)
    tm.metrics = {f"val_{name}": best, "epochs": len(tm.history), "train_rows": len(train), "val_rows": len(val),
                  "train_seconds": time.perf_counter() - started}
    if task_type == "binary":
        tm.metrics["train_positive_rate"] = float(train.label.float().mean())
    if test is not None and len(test):
        tm.metrics[f"test_{name}"] = metric(task_type, test.label.numpy(), tm.predict(graph, test))
        tm.metrics["test_rows"] = len(test)
    return tm
