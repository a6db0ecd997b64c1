"""Serialise a trained GNN to bytes (for a BLOB in ``rdl_models``) and back.

What is stored is what the model cannot be rebuilt without: the weights,
the feature encodings (vocabularies, means and deviations), the graph's node
and edge types, and the training settings. The graph itself is rebuilt from
the database at scoring time, with the stored encodings, so a stored model
scores today's data.
"""
from __future__ import annotations

import dataclasses
import io

import torch

from .graph import ColumnSpec, TemporalGraph
from .model import RelationalGNN
from .train import TrainedModel

FORMAT = 1


def dumps(trained: TrainedModel, graph: TemporalGraph, channels: int, layers: int) -> bytes:
    state = {
        "format": FORMAT,
        "weights": trained.model.state_dict(),
        "specs": {t: dataclasses.asdict(s) for t, s in graph.specs.items()},
        "node_types": dict(graph.node_types),
        "edge_types": [list(et) for et in graph.csr],
        "channels": channels, "layers": layers,
        "task_type": str(trained.task_type), "seed_type": trained.seed_type, "fanouts": list(trained.fanouts),
        "strategy": trained.strategy, "seed": trained.seed,
        "target_mean": trained.target_mean, "target_std": trained.target_std,
        "classes": list(trained.classes), "metrics": dict(trained.metrics),
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def specs_of(blob: bytes) -> tuple[dict[str, ColumnSpec], dict]:
    """The stored feature encodings (to build a graph with) and the whole stored state."""
    state = torch.load(io.BytesIO(blob), weights_only=True)
    if state.get("format") != FORMAT:
        raise ValueError(f"stored model format {state.get('format')} is not readable by this version")
    return {t: ColumnSpec(**s) for t, s in state["specs"].items()}, state


def loads(state: dict, graph: TemporalGraph) -> TrainedModel:
    """A TrainedModel over ``graph``, which must have the stored node and edge types."""
    if [list(et) for et in graph.csr] != state["edge_types"] or dict(graph.node_types) != state["node_types"]:
        raise ValueError("the graph's tables or links differ from the ones the model was trained on")
    out_dim = max(len(state["classes"]), 1) if state["task_type"] == "multiclass" else 1
    model = RelationalGNN(graph, state["channels"], state["layers"], out_dim)
    model.load_state_dict(state["weights"])
    model.eval()
    return TrainedModel(model, state["task_type"], state["seed_type"], state["fanouts"], state["strategy"],
                        state["seed"], state["target_mean"], state["target_std"], dict(state["metrics"]),
                        classes=list(state["classes"]))
