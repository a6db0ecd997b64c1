"""Serialise a trained GNN to bytes (for a BLOB in ``rdl_models``) and back.

What is stored is what the model cannot be rebuilt without: the weights,
the model's metadata (the feature encodings per table, the node and edge
types, channels, layers, outputs), and the training settings. The model is
rebuilt from that metadata alone; the graph itself is rebuilt from the
database at scoring time with the stored encodings, so a stored model scores
today's data, and ``loads`` only checks that the graph has the stored node
and edge types.

Formats: 6 adds to a regression model a linear term from the seeds' windowed
counts and means to the output (``RelationalGNN.direct``; 5 and older are
rebuilt without it; a classifier of format 6 is laid out as one of 5).
5 runs every edge type's convolution for every destination, with or without
edges in the batch (``every_type``; 4 and older skipped a type that had
none, and are rebuilt that way). 4 stores the windows the sampler counts
neighbours in (``windows_us``) and the periods of the anchor's calendar the
head reads (``calendar``, days); a format 3 model has neither. 3 stores the
model's convolution (``conv``: ``RelationalConv`` or ``SAGEConv``); 2 is the
layout of ``model.RelationalGNN`` (``encoder``, ``temporal``, ``gnn``,
``head``) with ``SAGEConv``, read as ``conv = 'sage'``;
1 (one ``HeteroConv`` per layer) is still read, its weights renamed to the
layout of 2.
"""
from __future__ import annotations

import dataclasses
import io
import re

import torch

from rdl_sql.planner.query import TaskType

from .columns import ColumnSpec
from .graph import TemporalGraph
from .model import RelationalGNN
from .train import TrainedModel

FORMAT = 6
READABLE = (1, 2, 3, 4, 5, 6)


def dumps(trained: TrainedModel, graph: TemporalGraph, channels: int | None = None,
          layers: int | None = None) -> bytes:
    """The stored form of ``trained``; ``channels`` / ``layers``, if given, must be the model's."""
    model = trained.model
    if (channels is not None and channels != model.channels) or (layers is not None and layers != model.layers):
        raise ValueError(f"the model has {model.channels} channels and {model.layers} layers, "
                         f"not {channels} and {layers}")
    node_types, edge_types = model.metadata
    if [list(et) for et in edge_types] != [list(et) for et in graph.edge_types] or node_types != list(graph.node_types):
        raise ValueError("the graph's tables or links differ from the ones the model was built for")
    state = {
        "format": FORMAT,
        "weights": model.state_dict(),
        "specs": {t: dataclasses.asdict(s) for t, s in graph.specs.items()},
        "node_types": dict(graph.node_types),
        "edge_types": [list(et) for et in edge_types],
        "channels": model.channels, "layers": model.layers, "out_dim": model.out_dim, "conv": model.conv,
        "windows_us": list(trained.windows_us),
        "calendar": list(model.calendar) if model.calendar is not None else None,
        "task_type": TaskType(trained.task_type).value, "seed_type": trained.seed_type,
        "fanouts": list(trained.fanouts), "strategy": trained.strategy, "seed": trained.seed,
        "target_mean": trained.target_mean, "target_std": trained.target_std,
        "classes": list(trained.classes), "metrics": dict(trained.metrics), "threshold": trained.threshold,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def specs_of(blob: bytes) -> tuple[dict[str, ColumnSpec], dict]:
    """The stored feature encodings by table (to build a graph with) and the whole stored state."""
    state = torch.load(io.BytesIO(blob), weights_only=True)
    if state.get("format") not in READABLE:
        raise ValueError(f"stored model format {state.get('format')} is not readable by this version")
    if state["format"] == 1:
        state = _upgrade_v1(state)
    return {t: ColumnSpec(**s) for t, s in state["specs"].items()}, state


def build_model(state: dict) -> RelationalGNN:
    """The stored model, rebuilt from its stored metadata and weights (no graph needed)."""
    specs = {nt: ColumnSpec(**state["specs"][t]) for nt, t in state["node_types"].items()}
    model = RelationalGNN(specs, [tuple(et) for et in state["edge_types"]], state["channels"], state["layers"],
                          state["out_dim"], state.get("conv", "sage"),  # formats 1 and 2: SAGEConv
                          windows=len(state.get("windows_us", ())), calendar=_calendar(state),
                          every_type=state["format"] >= 5,
                          direct=state["format"] >= 6 and state["task_type"] == TaskType.REGRESSION.value)
    model.load_state_dict(state["weights"])
    model.eval()
    return model


def loads(state: dict, graph: TemporalGraph) -> TrainedModel:
    """A TrainedModel to score ``graph`` with, which must have the stored node and edge types."""
    if [list(et) for et in graph.csr] != state["edge_types"] or dict(graph.node_types) != state["node_types"]:
        raise ValueError("the graph's tables or links differ from the ones the model was trained on")
    return TrainedModel(build_model(state), TaskType(state["task_type"]), state["seed_type"], state["fanouts"],
                        state["strategy"], state["seed"], state["target_mean"], state["target_std"],
                        dict(state["metrics"]), classes=list(state["classes"]),
                        threshold=float(state.get("threshold", 0.5)),  # models stored before thresholds: 0.5
                        windows_us=tuple(int(w) for w in state.get("windows_us", ())))


def _calendar(state: dict) -> tuple[float, ...] | None:
    """The stored calendar periods; None (no format 4 parts) for a model stored before format 4."""
    periods = state.get("calendar")
    return None if state["format"] < 4 or periods is None else tuple(float(p) for p in periods)


def _upgrade_v1(state: dict) -> dict:
    """A format 1 state (``encoders`` / ``time`` / ``convs.<i>.convs`` / ``norms`` / ``head``) in format 2."""
    rules = [(r"^encoders\.", "encoder.encoders."), (r"^time\.", "temporal."),
             (r"^convs\.(\d+)\.convs\.", r"gnn.convs.\1."), (r"^norms\.", "gnn.norms.")]
    weights = {}
    for k, v in state["weights"].items():
        for pattern, repl in rules:
            k = re.sub(pattern, repl, k)
        weights[k] = v
    multiclass = state["task_type"] == TaskType.MULTICLASS
    return dict(state, format=2, weights=weights, out_dim=max(len(state["classes"]), 1) if multiclass else 1)
