"""Tensors of a temporal heterogeneous graph, built from the planner's Arrow tables.

Each table becomes a node type with encoded features (``columns.py``) and a
time per row;
each link becomes two edge types (child -> parent and back), stored as CSR
arrays grouped by destination and sorted by the source's time, so the
sampler finds the neighbours visible at an anchor time with one
``searchsorted``.

Node and edge type names are ``n<i>`` / ``r<i>`` / ``r<i>_rev``: torch-geometric
keys modules by them, and user table names may hold dots or spaces.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from rdl_sql.planner.extract import DST, NODE, SRC, ExtractedGraph, time_name

from .columns import ColumnSpec, encode_features, encode_timestamps, fit_spec

NodeType = str
EdgeType = tuple[str, str, str]

#: time of a row of a static table: older than any anchor
STATIC_TIME = -(2 ** 62)


@dataclass
class NodeStore:
    time: torch.Tensor   # [N] int64 microseconds, STATIC_TIME for undated rows
    rank: torch.Tensor   # [N] int64 position of time among all graph times (0 = static)
    x_num: torch.Tensor  # [N, F]
    x_cat: torch.Tensor  # [N, C]
    x_ts: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0, dtype=torch.float64))  # [N, T]

    @property
    def num_nodes(self) -> int:
        return self.time.numel()


@dataclass
class CSR:
    """In-neighbours of each destination node, sorted by the neighbour's time rank."""

    rowptr: torch.Tensor  # [N_dst + 1]
    col: torch.Tensor     # [E] source node ids
    key: torch.Tensor     # [E] dst * stride + rank(src), ascending


@dataclass
class TemporalGraph:
    node_types: dict[str, str]           # type name -> table
    nodes: dict[str, NodeStore]
    csr: dict[tuple[str, str, str], CSR]
    times: torch.Tensor                   # sorted distinct times of all dated rows
    specs: dict[str, ColumnSpec]          # table -> feature encoding
    _sums: dict = field(default_factory=dict, repr=False, compare=False)  # src_sums, built on first use

    @property
    def stride(self) -> int:
        return self.times.numel() + 2

    def type_of(self, table: str) -> str:
        return next(k for k, v in self.node_types.items() if v == table)

    def src_sums(self, et: EdgeType) -> torch.Tensor | None:
        """``[E + 1, F_src]`` running sums of the sources' numbers in ``et``'s CSR order (``running_sums``).

        So the mean over any time range of a row's neighbours is one
        subtraction (``sampler.sample``'s windowed means). Built on first use
        and kept: a model that reads no windows costs no memory for them.
        None for a link read from parent to child (``_rev``: each child has
        one parent) and for sources without numbers.
        """
        if et[1].endswith("_rev"):
            return None
        if et not in self._sums:
            x_num = self.nodes[et[0]].x_num
            self._sums[et] = running_sums(x_num, self.csr[et].col) if x_num.shape[1] else None
        return self._sums[et]

    def anchor_rank(self, anchor_us: torch.Tensor) -> torch.Tensor:
        """Rank that a node's rank must not exceed to be visible at ``anchor_us``."""
        return torch.searchsorted(self.times, anchor_us, right=True)

    @property
    def edge_types(self) -> list[EdgeType]:
        return list(self.csr)

    def metadata(self) -> tuple[list[NodeType], list[EdgeType]]:
        """``(node types, edge types)``, as torch-geometric's ``HeteroData.metadata()``."""
        return list(self.node_types), self.edge_types

    def node_specs(self) -> dict[NodeType, ColumnSpec]:
        """The column encoding of each node type: with ``metadata()``, all a model is built from."""
        return {nt: self.specs[t] for nt, t in self.node_types.items()}


def _csr(src: torch.Tensor, dst: torch.Tensor, src_rank: torch.Tensor, num_dst: int, stride: int) -> CSR:
    key = dst * stride + src_rank[src]
    key, order = torch.sort(key, stable=True)
    rowptr = torch.searchsorted(key, torch.arange(num_dst + 1, dtype=torch.long) * stride)
    return CSR(rowptr, src[order].contiguous(), key.contiguous())


def running_sums(x_num: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """``[E + 1, F]``: cumulative sums of the standardised values (NULL as 0, the mean) of ``col``'s rows.

    ``x_num`` interleaves each value with its missing flag; only the values
    are summed. float64, so a difference of two sums over 300k rows keeps
    its digits.
    """
    values = x_num[:, 0::2].double().index_select(0, col)
    return torch.cat([values.new_zeros(1, values.shape[1]), values.cumsum(0)])


def build_graph(extracted: ExtractedGraph, specs: dict[str, ColumnSpec] | None = None,
                fit_until_us: int | None = None, keys: dict[str, str] | None = None) -> TemporalGraph:
    """Tensors for sampling and encoding; ``specs`` reuses a stored model's encodings.

    Encodings fitted here (no ``specs``) read only the rows dated at or
    before ``fit_until_us`` (the last training anchor) and the undated ones:
    a category that first appears later, or a later shift in a column's
    values, must not shape the inputs of a model that is validated on it.
    ``keys``: the key column extracted per table (``extract.key_feature``).
    """
    tables = list(extracted.nodes)
    node_types = {f"n{i}": t for i, t in enumerate(tables)}
    specs = dict(specs) if specs else {}
    raw_times = {}
    for t in tables:
        tm = extracted.nodes[t].column(time_name(extracted.tables[t], time_us=True))
        raw_times[t] = pc.fill_null(tm, STATIC_TIME).to_numpy(zero_copy_only=False).astype(np.int64)
    dated = [x[x != STATIC_TIME] for x in raw_times.values()]
    times = torch.from_numpy(np.unique(np.concatenate(dated))) if dated else torch.zeros(0, dtype=torch.long)

    nodes = {}
    for nt, t in node_types.items():
        tbl = extracted.nodes[t]
        if t not in specs:
            seen = tbl
            if fit_until_us is not None:
                t_us = raw_times[t]
                seen = tbl.filter(pa.array((t_us == STATIC_TIME) | (t_us <= fit_until_us)))
            specs[t] = fit_spec(seen, extracted.tables[t], (keys or {}).get(t))
        elif specs[t].key is not None and specs[t].key not in tbl.column_names:
            # every row would read as an unseen key: scores would change without a word
            raise ValueError(f"the encoding of table {t} reads its key column {specs[t].key}, "
                             f"which was not extracted (extract(..., keys=...))")
        x_num, x_cat = encode_features(tbl, specs[t])
        tm = torch.from_numpy(raw_times[t])
        rank = torch.where(tm == STATIC_TIME, 0, torch.searchsorted(times, tm) + 1)
        nodes[nt] = NodeStore(tm, rank, x_num, x_cat, encode_timestamps(tbl, specs[t]))

    graph = TemporalGraph(node_types, nodes, {}, times, specs)
    for i, (link, tbl) in enumerate(extracted.edges.items()):
        child, parent = graph.type_of(link.child), graph.type_of(link.parent)
        src = torch.from_numpy(tbl.column(SRC).to_numpy().astype(np.int64))
        dst = torch.from_numpy(tbl.column(DST).to_numpy().astype(np.int64))
        graph.csr[(child, f"r{i}", parent)] = _csr(src, dst, nodes[child].rank, nodes[parent].num_nodes,
                                                   graph.stride)
        graph.csr[(parent, f"r{i}_rev", child)] = _csr(dst, src, nodes[parent].rank, nodes[child].num_nodes,
                                                       graph.stride)
    return graph


__all__ = ["TemporalGraph", "NodeStore", "CSR", "NodeType", "EdgeType", "build_graph", "STATIC_TIME", "NODE"]
