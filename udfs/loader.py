"""From a sampled subgraph to a batch in torch-geometric's shape.

The sampler says which rows a batch holds (global ids per node type, the
anchor time each is seen at, local edges); the loader gathers those rows'
inputs from the graph with one ``index_select`` per tensor and node type,
and hands the model plain dicts keyed by node and edge type, as PyG's
``NeighborLoader`` hands over a ``HeteroData``:

- ``x_num_dict[t] [n_t, F_t]``, ``x_cat_dict[t] [n_t, C_t]``,
  ``x_ts_dict[t] [n_t, T_t]``: the rows' encoded columns (``columns.py``);
- ``time_dict[t] [n_t]``: the rows' own times (``STATIC_TIME`` if undated);
- ``anchor_dict[t] [n_t]``: the anchor time of the seed each row hangs under;
- ``edge_index_dict[(src, rel, dst)] [2, e]``: local (source, destination)
  indices, messages flow from source to destination;
- ``num_sampled_nodes_dict[t]`` (hops 0..L) and
  ``num_sampled_edges_dict[et]`` (hops 1..L): how many nodes / edges each
  hop added, as in PyG's ``num_sampled_nodes`` / ``num_sampled_edges``.
  Nodes and edges are laid out hop by hop, so the first
  ``sum(counts[: h + 1])`` are everything up to hop ``h``; the model uses
  this to compute only the nodes a layer still needs;
- ``num_visible_dict[et] [n_dst]``: how many source rows of edge type ``et``
  each destination row has at its anchor in all, sampled or not;
- ``num_recent_dict[et] [n_dst, W]``: how many of them lie within each of
  the sampler's windows before the anchor;
- ``window_mean_dict[et] [n_dst, (W + 1) * F_src]``: the mean of the source
  rows' numbers over each window and over all the visible past.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .graph import EdgeType, NodeType, TemporalGraph
from .sampler import Subgraph


@dataclass
class Batch:
    """A sampled batch with its inputs gathered; the seeds are the first ``num_seeds`` nodes of ``seed_type``."""

    seed_type: NodeType
    num_seeds: int
    n_id_dict: dict[NodeType, torch.Tensor]      # [n_t] global node ids
    x_num_dict: dict[NodeType, torch.Tensor]     # [n_t, F_t] float32
    x_cat_dict: dict[NodeType, torch.Tensor]     # [n_t, C_t] int64
    x_ts_dict: dict[NodeType, torch.Tensor]      # [n_t, T_t] float64 seconds, NaN for NULL
    time_dict: dict[NodeType, torch.Tensor]      # [n_t] int64 microseconds
    anchor_dict: dict[NodeType, torch.Tensor]    # [n_t] int64 microseconds
    edge_index_dict: dict[EdgeType, torch.Tensor]  # [2, e] local (src, dst)
    #: nodes added per hop (0..L) / edges added per hop (1..L); None: no hop layout known
    num_sampled_nodes_dict: dict[NodeType, list[int]] | None = None
    num_sampled_edges_dict: dict[EdgeType, list[int]] | None = None
    #: [n_dst] int64 sources visible at the anchor per destination row; None: not known
    num_visible_dict: dict[EdgeType, torch.Tensor] | None = None
    #: [n_dst, W] int64 of those within each window before the anchor; None or {}: no windows
    num_recent_dict: dict[EdgeType, torch.Tensor] | None = None
    #: [n_dst, (W + 1) * F_src] float32 windowed means of the sources' numbers; None or {}: not sampled
    window_mean_dict: dict[EdgeType, torch.Tensor] | None = None

    @property
    def node_types(self) -> list[NodeType]:
        return list(self.n_id_dict)

    @property
    def num_nodes(self) -> int:
        return sum(int(ids.numel()) for ids in self.n_id_dict.values())

    @property
    def num_edges(self) -> int:
        return sum(int(e.shape[1]) for e in self.edge_index_dict.values())


def load(graph: TemporalGraph, sub: Subgraph) -> Batch:
    """Gather the inputs of the rows of ``sub`` from ``graph``."""
    x_num, x_cat, x_ts, time = {}, {}, {}, {}
    for nt, ids in sub.node.items():
        store = graph.nodes[nt]
        x_num[nt] = store.x_num.index_select(0, ids)
        x_cat[nt] = store.x_cat.index_select(0, ids)
        # a table without timestamp columns may hold an empty [0, 0] tensor
        x_ts[nt] = store.x_ts.index_select(0, ids) if store.x_ts.numel() else store.x_ts.new_zeros(ids.numel(), 0)
        time[nt] = store.time.index_select(0, ids)
    nodes = edges = None
    if sub.node_hops is not None and sub.edge_hops is not None:
        nodes = {nt: _per_hop(v) for nt, v in sub.node_hops.items()}
        edges = {et: _per_hop(v) for et, v in sub.edge_hops.items()}
    return Batch(sub.seed_type, sub.num_seeds, dict(sub.node), x_num, x_cat, x_ts, time, dict(sub.anchor),
                 dict(sub.edge_index), nodes, edges, dict(sub.visible) if sub.visible is not None else None,
                 dict(sub.recent) if sub.recent is not None else None,
                 dict(sub.means) if sub.means is not None else None)


def _per_hop(cumulative: list[int]) -> list[int]:
    """The sampler's "up to hop h" counts as "added at hop h" counts."""
    return [c - (cumulative[i - 1] if i else 0) for i, c in enumerate(cumulative)]
