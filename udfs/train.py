"""Mini-batch training with early stopping, and batched scoring.

One training step is one function, ``train_step`` (sample -> load -> forward
-> loss -> backward -> optimizer step); ``fit`` runs it over shuffled batches
for each epoch and keeps the epoch with the best validation metric, and the
benchmarks call the same function to time it.

Training is a plain loop that the caller can interrupt between batches, with
Ctrl-C or a ``threading.Event`` (DuckDB cannot cancel a running UDF, so
training is never run inside one). Seeds fix initial weights, batch order and
neighbour samples, so the same statement on the same data gives the same model.
"""
from __future__ import annotations

import contextlib
import copy
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn
from tqdm.auto import tqdm  # a widget in Jupyter, text in a terminal

from rdl_sql.planner.options import Options, usable_threads
from rdl_sql.planner.query import TaskType

from .cancel import Cancelled
from .encoders import CalendarEncoder
from .graph import TemporalGraph
from .loader import Batch, load
from .metrics import better, defined, metric
from .model import RelationalGNN
from .predictions import choose_threshold
from .sampler import sample

#: ``timer(phase)`` returns a context manager that times the phase (benchmarks/speed.py's profile)
Timer = Callable[[str], contextlib.AbstractContextManager]


def _untimed(_phase: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


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
        n = torch.from_numpy(tbl.column(node).to_numpy(zero_copy_only=False).astype(np.int64))
        a = pc.cast(pc.cast(tbl.column(anchor), pa.timestamp("us")), pa.int64())
        a = torch.from_numpy(a.to_numpy(zero_copy_only=False).astype(np.int64))
        y = None
        if label is not None and label in tbl.column_names:
            y = torch.from_numpy(tbl.column(label).to_numpy(zero_copy_only=False).astype(np.float32))
        return cls(n, a, y)

    def take(self, idx: torch.Tensor) -> Examples:
        return Examples(self.node[idx], self.anchor[idx], None if self.label is None else self.label[idx])


@contextlib.contextmanager
def torch_threads(n: int):
    """Run torch on ``n`` threads, then restore the caller's setting.

    One thread is the default: on the 2-core machines this product targets,
    any other busy process makes OpenMP's spinning barrier cost more than
    the second thread gains (a 128x128 linear layer on 2,000 rows: 1.0 ms on
    one thread, 15.6 ms on two while another process held one core). More
    than the cores here run as many as there are (``usable_threads``).
    """
    old = torch.get_num_threads()
    torch.set_num_threads(usable_threads(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class TrainedModel:
    """A model with what it needs to score: the seed type, how neighbours are sampled, the label scale."""

    model: RelationalGNN
    task_type: TaskType
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
    #: binary: a score at or above it predicts true; chosen on validation (``predictions.choose_threshold``)
    threshold: float = 0.5
    #: the windows (microseconds before the anchor) the sampler counts neighbours in (``sampler.sample``)
    windows_us: tuple[int, ...] = ()

    @torch.no_grad()
    def predict(self, graph: TemporalGraph, ex: Examples, batch_size: int = 2048,
                timer: Timer | None = None) -> np.ndarray:
        """Probabilities (binary: [n], multiclass: [n, classes]) or values (regression: [n]), in order."""
        with torch_threads(self.threads):
            return self._predict(graph, ex, batch_size, timer or _untimed)

    def _predict(self, graph: TemporalGraph, ex: Examples, batch_size: int, timer: Timer) -> np.ndarray:
        self.model.eval()
        out = []
        for i in range(0, len(ex), batch_size):
            part = ex.take(torch.arange(i, min(i + batch_size, len(ex))))
            with timer("sampling"):
                sub = sample(graph, self.seed_type, part.node, part.anchor, self.fanouts, self.strategy,
                             windows_us=self.windows_us)
            with timer("gather"):
                batch = load(graph, sub)
            with timer("forward"):
                y = self.model(batch)
            with timer("head/activation"):
                out.append(self.activate(y))
        if not out:
            return np.zeros((0, len(self.classes)) if self.task_type == TaskType.MULTICLASS else 0)
        return torch.cat(out).numpy().astype(np.float64)

    def activate(self, y: torch.Tensor) -> torch.Tensor:
        """The model's raw output ``[n, out_dim]`` as probabilities or values on the label's scale."""
        if self.task_type == TaskType.MULTICLASS:
            return torch.softmax(y, 1)
        if self.task_type == TaskType.BINARY:
            return torch.sigmoid(y.squeeze(1))
        return y.squeeze(1) * self.target_std + self.target_mean


class Objective(NamedTuple):
    """What a training step fits: the targets of all training rows and the loss."""

    target: torch.Tensor  # [n] float (binary; regression, standardised) or int64 class (multiclass)
    loss_fn: nn.Module


class Step(NamedTuple):
    loss: float
    batch: Batch


class WeightAverage:
    """An exponential moving average of a model's weights over the optimiser's steps (Polyak averaging).

    With Adam at the default learning rate the weights jump from batch to
    batch: on the shop and ski-trip tasks the validation AUROC of successive
    epochs swung by 0.01-0.04, so early stopping picked whichever epoch the
    noise favoured. The average over the last half epoch or so of steps
    moves smoothly and generalises better; it is what is validated, kept and
    stored. Its horizon is half an epoch, at least 10 and at most 200 steps,
    and it warms up (``min(decay, (1 + t) / (10 + t))``) so the random
    initial weights fade out within the first steps.
    """

    def __init__(self, model: nn.Module, steps_per_epoch: int):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.avg = [p.detach().clone() for p in self.params]
        horizon = min(200, max(10, steps_per_epoch // 2))
        self.decay = 1.0 - 1.0 / horizon
        self.steps = 0
        self.saved: list[torch.Tensor] | None = None

    @torch.no_grad()
    def update(self) -> None:
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        self.steps += 1
        for a, p in zip(self.avg, self.params):
            a.lerp_(p.detach(), 1.0 - decay)

    @torch.no_grad()
    def swap_in(self) -> None:
        """Put the averaged weights into the model (``swap_out`` restores the trained ones)."""
        self.saved = [p.detach().clone() for p in self.params]
        for p, a in zip(self.params, self.avg):
            p.copy_(a)

    @torch.no_grad()
    def swap_out(self) -> None:
        for p, s in zip(self.params, self.saved):
            p.copy_(s)
        self.saved = None


def new_model(graph: TemporalGraph, seed_type: str, task_type: TaskType | str, options: Options,
              classes: list | None = None, windows_us: tuple[int, ...] = (),
              calendar: tuple[float, ...] = CalendarEncoder.PERIODS_DAYS) -> TrainedModel:
    """A freshly initialised model (seeded by ``options.seed``) for ``graph``'s node and edge types.

    ``windows_us``: the spans before the anchor in which ``RelationalConv``
    counts neighbours (the engine passes the task's windows); ``conv =
    'sage'`` reads no counts. ``calendar``: the periods of the anchor's
    calendar the head reads (``fit`` passes those its training anchors cover).
    """
    task_type = TaskType(task_type)
    classes = list(classes or [])
    windows_us = tuple(int(w) for w in windows_us) if options.conv == "relational" else ()
    torch.manual_seed(options.seed)
    out_dim = len(classes) if task_type == TaskType.MULTICLASS else 1
    model = RelationalGNN(graph.node_specs(), graph.edge_types, options.channels, options.layers, out_dim,
                          options.conv, windows=len(windows_us), calendar=tuple(calendar),
                          direct=task_type == TaskType.REGRESSION)
    return TrainedModel(model, task_type, seed_type, list(options.hop_fanouts), options.sampler, options.seed,
                        classes=classes, threads=options.threads, windows_us=windows_us)


def objective(trained: TrainedModel, labels: torch.Tensor) -> Objective:
    """Targets and loss for ``labels``; a regression model's label scale is set from them."""
    y = labels.float()
    if trained.task_type == TaskType.MULTICLASS:
        return Objective(labels.long(), nn.CrossEntropyLoss())
    if trained.task_type == TaskType.REGRESSION:
        trained.target_mean, trained.target_std = float(y.mean()), float(y.std().clamp(min=1e-6))
        return Objective((y - trained.target_mean) / trained.target_std, nn.L1Loss())
    return Objective(y, nn.BCEWithLogitsLoss())


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Row indices of each training batch of one epoch, in a shuffled order."""
    order = torch.randperm(n, generator=generator)
    for i in range(0, n, batch_size):
        yield order[i:i + batch_size]


def train_step(trained: TrainedModel, optimizer: torch.optim.Optimizer, loss_fn: nn.Module, graph: TemporalGraph,
               ex: Examples, target: torch.Tensor, generator: torch.Generator | None = None,
               timer: Timer | None = None) -> Step:
    """One optimisation step on the seeds ``ex`` with targets ``target [len(ex)]``.

    sample -> load -> forward -> loss -> backward -> step; ``timer`` times each
    phase. Returns the batch's mean loss and the batch.
    """
    timer = timer or _untimed
    trained.model.train()
    with timer("sampling"):
        sub = sample(graph, trained.seed_type, ex.node, ex.anchor, trained.fanouts, trained.strategy, generator,
                     windows_us=trained.windows_us)
    with timer("gather"):
        batch = load(graph, sub)
    with timer("forward"):
        out = trained.model(batch)
    with timer("loss"):
        loss = loss_fn(out if trained.task_type == TaskType.MULTICLASS else out.squeeze(1), target)
    with timer("backward"):
        optimizer.zero_grad()
        loss.backward()
    with timer("optimizer step"):
        optimizer.step()
    with timer("loss.item"):
        value = float(loss.detach())
    return Step(value, batch)


def fit(graph: TemporalGraph, seed_type: str, train: Examples, val: Examples, test: Examples | None,
        task_type: TaskType | str, options: Options, progress: bool = True, classes: list | None = None,
        cancel: threading.Event | None = None, windows_us: tuple[int, ...] = ()) -> TrainedModel:
    """Train a RelationalGNN; keep the epoch with the best validation metric.

    Multiclass labels are class indices into ``classes``. ``cancel`` is
    checked between batches: once set, ``Cancelled`` is raised.
    ``windows_us``: see ``new_model``.
    """
    with torch_threads(options.threads):
        return _fit(graph, seed_type, train, val, test, TaskType(task_type), options, progress, classes, cancel,
                    windows_us)


def _fit(graph, seed_type, train, val, test, task_type: TaskType, options: Options, progress, classes,
         cancel, windows_us) -> TrainedModel:
    tm = new_model(graph, seed_type, task_type, options, classes, windows_us,
                   CalendarEncoder.periods_seen(train.anchor))
    model = tm.model
    y, loss_fn = objective(tm, train.label)
    opt = torch.optim.Adam(model.parameters(), lr=options.lr)
    gen = torch.Generator().manual_seed(options.seed)
    best, best_state, best_scores, since = float("nan"), None, None, 0
    name = task_type.metric
    started = time.perf_counter()
    bar = None

    def check_cancel():
        if cancel is not None and cancel.is_set():
            raise Cancelled("training cancelled")

    average = WeightAverage(model, steps_per_epoch=-(-len(train) // options.batch_size))
    try:
        if progress:  # made inside the try: an interrupt right after it appears still clears its line
            bar = tqdm(total=options.epochs, desc="training", unit="epoch", file=sys.stderr, leave=False)
        for epoch in range(options.epochs):
            total, t0 = 0.0, time.perf_counter()
            for idx in batches(len(train), options.batch_size, gen):
                check_cancel()
                step = train_step(tm, opt, loss_fn, graph, train.take(idx), y[idx], gen)
                average.update()
                total += step.loss * idx.numel()
            check_cancel()
            average.swap_in()  # the averaged weights are the ones validated, kept and stored
            val_scores = tm.predict(graph, val)
            val_metric = metric(task_type, val.label.numpy(), val_scores)
            tm.history.append({"epoch": epoch + 1, "loss": total / max(len(train), 1), f"val_{name}": val_metric,
                               "seconds": time.perf_counter() - t0})
            if bar is not None:
                bar.set_postfix({"loss": f"{total / max(len(train), 1):.4f}", f"val {name}": f"{val_metric:.4f}"})
                bar.update(1)
            improved = best_state is None or better(task_type, val_metric, best)
            if improved:
                best, best_state, best_scores, since = val_metric, copy.deepcopy(model.state_dict()), val_scores, 0
            average.swap_out()
            if not improved:
                since += 1
                if since >= options.patience:
                    break
    finally:
        if bar is not None:
            bar.close()
    model.load_state_dict(best_state)
    tm.metrics = {f"val_{name}": best, "epochs": len(tm.history), "train_rows": len(train), "val_rows": len(val),
                  "train_seconds": time.perf_counter() - started}
    if task_type == TaskType.BINARY:
        tm.metrics["train_positive_rate"] = float(train.label.float().mean())
        tm.threshold = 0.5 if best_scores is None else choose_threshold(val.label.numpy(), best_scores)
        tm.metrics["threshold"] = tm.threshold
    if test is not None and len(test):
        if defined(task_type, test.label.numpy()):  # else left out: a test split of one class has no AUROC
            tm.metrics[f"test_{name}"] = metric(task_type, test.label.numpy(), tm.predict(graph, test))
        tm.metrics["test_rows"] = len(test)
    return tm
