"""Heterogeneous temporal GraphSAGE over sampled subgraphs, in torch-geometric's shape.

Three modules meet over ``x_dict`` / ``edge_index_dict``, as in RelBench's
``modeling/nn.py``:

- ``HeteroEncoder``: one ``TableEncoder`` per node type, the rows' columns
  to ``x_dict[t] [n_t, channels]``;
- ``RelativeTimeEncoder`` (shared by all node types): how long before the
  seed's anchor each row happened, added to its encoding;
- ``HeteroGraphSAGE``: ``layers`` rounds of a ``SAGEConv`` per edge type,
  summed per destination type (as ``HeteroConv(aggr='sum')`` does), with a
  residual connection and layer norm;

then an MLP head on the seeds. The model is built from metadata only (the
column encoding of each node type, the edge types, sizes), so it can be
built before any graph is read, and a stored model is rebuilt from its
stored metadata.

Layer trimming: given the per-hop counts of a batch, layer ``i`` of
``HeteroGraphSAGE`` computes only the nodes still needed (within
``layers - 1 - i`` hops of a seed) from the messages of one hop further out,
so a 2-layer model updates seeds and their neighbours in the first layer,
seeds alone in the second. The seeds' outputs are the ones an untrimmed pass
gives.
"""
from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import SAGEConv
from torch_geometric.nn.module_dict import ModuleDict

from .columns import ColumnSpec
from .encoders import RelativeTimeEncoder, TableEncoder
from .graph import EdgeType, NodeType
from .loader import Batch


class HeteroEncoder(nn.Module):
    """``(x_num_dict, x_cat_dict, x_ts_dict, anchor_dict) -> x_dict``: one ``TableEncoder`` per node type."""

    def __init__(self, specs: dict[NodeType, ColumnSpec], channels: int):
        super().__init__()
        self.encoders = nn.ModuleDict({nt: TableEncoder(spec, channels) for nt, spec in specs.items()})

    def reset_parameters(self) -> None:
        for enc in self.encoders.values():
            enc.reset_parameters()

    def forward(self, x_num_dict: dict[NodeType, torch.Tensor], x_cat_dict: dict[NodeType, torch.Tensor],
                x_ts_dict: dict[NodeType, torch.Tensor], anchor_dict: dict[NodeType, torch.Tensor]
                ) -> dict[NodeType, torch.Tensor]:
        return {nt: self.encoders[nt](x_num, x_cat_dict[nt], x_ts_dict.get(nt), anchor_dict[nt])
                for nt, x_num in x_num_dict.items()}


class HeteroGraphSAGE(nn.Module):
    """``(x_dict, edge_index_dict[, per-hop counts]) -> x_dict``: message passing over all edge types.

    Each layer runs a mean-aggregating ``SAGEConv`` per edge type, sums the
    results per destination type and updates ``x <- LayerNorm(x + relu(sum))``;
    a node type that receives no message keeps its embedding. With the
    per-hop counts (``Batch.num_sampled_nodes_dict`` / ``num_sampled_edges_dict``)
    the output dict holds only the seeds' hop (hop 0) of each type.
    """

    def __init__(self, node_types: list[NodeType], edge_types: list[EdgeType], channels: int, layers: int):
        super().__init__()
        self.edge_types = [tuple(et) for et in edge_types]
        # torch-geometric's ModuleDict takes edge-type tuples as keys (stored as '<src___rel___dst>', as in HeteroConv)
        self.convs = nn.ModuleList(
            ModuleDict({et: SAGEConv(channels, channels, aggr="mean") for et in self.edge_types})
            for _ in range(layers))
        self.norms = nn.ModuleList(nn.ModuleDict({nt: nn.LayerNorm(channels) for nt in node_types})
                                   for _ in range(layers))

    def reset_parameters(self) -> None:
        for layer in (*self.convs, *self.norms):
            for module in layer.values():
                module.reset_parameters()

    def forward(self, x_dict: dict[NodeType, torch.Tensor], edge_index_dict: dict[EdgeType, torch.Tensor],
                num_sampled_nodes_dict: dict[NodeType, list[int]] | None = None,
                num_sampled_edges_dict: dict[EdgeType, list[int]] | None = None) -> dict[NodeType, torch.Tensor]:
        trim = num_sampled_nodes_dict is not None and num_sampled_edges_dict is not None
        layers = len(self.convs)
        for i, (convs, norms) in enumerate(zip(self.convs, self.norms)):
            # after layer i only nodes within (layers - 1 - i) hops of a seed are read again, and
            # they only need messages from one hop further out: compute nothing else
            depth = layers - 1 - i
            out: dict[NodeType, torch.Tensor] = {}
            for et, edge_index in edge_index_dict.items():
                src, _, dst = et
                x_src, x_dst = x_dict[src], x_dict[dst]
                if trim:
                    m = _upto(num_sampled_edges_dict[et], depth)
                    x_src = x_src[: _upto(num_sampled_nodes_dict[src], depth + 1)]
                    x_dst = x_dst[: _upto(num_sampled_nodes_dict[dst], depth)]
                    edge_index = edge_index[:, :m]
                if edge_index.shape[1] == 0:
                    continue
                y = convs[et]((x_src, x_dst), edge_index)
                out[dst] = out[dst] + y if dst in out else y
            if trim:
                x_dict = {nt: x[: _upto(num_sampled_nodes_dict[nt], depth)] for nt, x in x_dict.items()}
            x_dict = {nt: norms[nt](x + torch.relu(out[nt])) if nt in out else x for nt, x in x_dict.items()}
        return x_dict


def _upto(per_hop: list[int], hop: int) -> int:
    """Nodes (edges) up to and including ``hop``, from per-hop counts."""
    return sum(per_hop[: hop + 1])


class RelationalGNN(nn.Module):
    """``Batch -> [num_seeds, out_dim]`` scores of the batch's seeds.

    ``specs``: the column encoding of each node type (its keys are the node
    types, in order); ``edge_types``: ``(src, rel, dst)`` triples. Together
    they are ``TemporalGraph.node_specs()`` and ``TemporalGraph.metadata()[1]``.
    """

    def __init__(self, specs: dict[NodeType, ColumnSpec], edge_types: list[EdgeType], channels: int = 128,
                 layers: int = 2, out_dim: int = 1):
        super().__init__()
        self.channels, self.layers, self.out_dim = channels, layers, out_dim
        self.encoder = HeteroEncoder(specs, channels)
        self.temporal = RelativeTimeEncoder(channels)
        self.gnn = HeteroGraphSAGE(list(specs), edge_types, channels, layers)
        self.head = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, out_dim))

    @property
    def metadata(self) -> tuple[list[NodeType], list[EdgeType]]:
        return list(self.encoder.encoders), list(self.gnn.edge_types)

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        self.temporal.reset_parameters()
        self.gnn.reset_parameters()
        for module in self.head:
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, batch: Batch, trim: bool = True) -> torch.Tensor:
        """Scores of the seeds; ``trim=False`` updates every node in every layer (same seed outputs, slower)."""
        x_dict = self.embed(batch)
        hops = (batch.num_sampled_nodes_dict, batch.num_sampled_edges_dict) if trim else (None, None)
        x_dict = self.gnn(x_dict, batch.edge_index_dict, *hops)
        return self.head(x_dict[batch.seed_type][: batch.num_seeds])

    def embed(self, batch: Batch) -> dict[NodeType, torch.Tensor]:
        """Input embeddings ``x_dict[t] [n_t, channels]``: the rows' columns plus their time before the anchor."""
        x_dict = self.encoder(batch.x_num_dict, batch.x_cat_dict, batch.x_ts_dict, batch.anchor_dict)
        return {nt: x + self.temporal(batch.time_dict[nt], batch.anchor_dict[nt]) for nt, x in x_dict.items()}
