"""Heterogeneous temporal GraphSAGE over sampled subgraphs.

One ``TableEncoder`` per node type, a shared relative-time encoding, then
``layers`` rounds of torch-geometric ``HeteroConv`` with a ``SAGEConv`` per
edge type, residual connections and layer norm, and an MLP head on the seeds.

The forward pass runs each edge type's ``SAGEConv`` of the ``HeteroConv``
itself (summing per destination type, as ``HeteroConv(aggr='sum')`` does),
so that layer ``i`` computes only the nodes still needed: a 2-layer model
updates seeds and their neighbours in the first layer, seeds alone in the
second.
"""
from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import HeteroConv, SAGEConv

from .encoders import RelativeTimeEncoder, TableEncoder
from .graph import TemporalGraph
from .sampler import Subgraph


class RelationalGNN(nn.Module):
    def __init__(self, graph: TemporalGraph, channels: int = 128, layers: int = 2, out_dim: int = 1):
        super().__init__()
        self.encoders = nn.ModuleDict({nt: TableEncoder(graph.specs[t], channels)
                                       for nt, t in graph.node_types.items()})
        self.time = RelativeTimeEncoder(channels)
        self.convs = nn.ModuleList(
            HeteroConv({et: SAGEConv(channels, channels, aggr="mean") for et in graph.edge_types}, aggr="sum")
            for _ in range(layers))
        self.norms = nn.ModuleList(nn.ModuleDict({nt: nn.LayerNorm(channels) for nt in graph.node_types})
                                   for _ in range(layers))
        self.head = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, out_dim))

    def forward(self, graph: TemporalGraph, batch: Subgraph) -> torch.Tensor:
        """Scores ``[num_seeds, out_dim]`` for the batch's seeds."""
        h = {}
        for nt, ids in batch.node.items():
            store = graph.nodes[nt]
            x_ts = store.x_ts.index_select(0, ids) if store.x_ts.numel() else None
            h[nt] = self.encode(nt, store.x_num.index_select(0, ids), store.x_cat.index_select(0, ids), x_ts,
                                store.time.index_select(0, ids), batch.anchor[nt])
        return self.propagate(batch, h)

    def encode(self, node_type: str, x_num, x_cat, x_ts, time_us, anchor_us) -> torch.Tensor:
        """Input embeddings ``[n, channels]`` of gathered rows of one node type, seen at ``anchor_us``."""
        return self.encoders[node_type](x_num, x_cat, x_ts, anchor_us) + self.time(time_us, anchor_us)

    def propagate(self, batch: Subgraph, h: dict[str, torch.Tensor]) -> torch.Tensor:
        """Message passing from input embeddings ``h`` to the seeds' outputs ``[num_seeds, out_dim]``."""
        layers = len(self.convs)
        for i, (conv, norms) in enumerate(zip(self.convs, self.norms)):
            # after layer i only nodes within (layers - 1 - i) hops of a seed are read again, and
            # they only need messages from one hop further out: compute nothing else
            depth = layers - 1 - i
            out: dict[str, torch.Tensor] = {}
            for et, ei in batch.edge_index.items():
                m = batch.edges_upto(et, depth)
                if m == 0:
                    continue
                src, _, dst = et
                y = conv.convs[et]((h[src][: batch.nodes_upto(src, depth + 1)],
                                    h[dst][: batch.nodes_upto(dst, depth)]), ei[:, :m])
                out[dst] = out[dst] + y if dst in out else y
            h = {nt: x[: batch.nodes_upto(nt, depth)] for nt, x in h.items()}
            h = {nt: norms[nt](x + torch.relu(out[nt])) if nt in out else x for nt, x in h.items()}
        return self.head(h[batch.seed_type][: batch.num_seeds])
