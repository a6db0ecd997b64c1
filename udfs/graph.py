"""Tensors of a temporal heterogeneous graph, built from the planner's Arrow tables.

Each table becomes a node type with encoded features and a time per row;
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

from rdl_sql.planner.extract import DST, NODE, SRC, TIME_US, ExtractedGraph

#: time of a row of a static table: older than any anchor
STATIC_TIME = -(2 ** 62)
MAX_VOCAB = 1000


@dataclass
class ColumnSpec:
    """How one table's features are encoded; fitted once, stored with a model."""

    numerical: list[str] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    vocabs: list[list[str]] = field(default_factory=list)
    #: timestamp columns other than the row's time: encoded relative to the anchor, and
    #: hidden (as missing) when later than it, so a row visible now cannot reveal a future date
    timestamps: list[str] = field(default_factory=list)

    @property
    def num_dim(self) -> int:
        return 2 * len(self.numerical)  # value and is-missing flag

    @property
    def cat_sizes(self) -> list[int]:
        return [len(v) + 1 for v in self.vocabs]  # code 0: NULL or unseen


def fit_spec(tbl: pa.Table, tinfo) -> ColumnSpec:
    """Normalisation statistics and vocabularies of one table's extracted rows."""
    spec = ColumnSpec()
    for c in tinfo.features:
        arr = tbl.column(c.name)
        if c.stype == "timestamp":
            spec.timestamps.append(c.name)
        elif c.stype == "categorical":
            counts = pc.value_counts(pc.drop_null(arr)).to_pylist()
            counts.sort(key=lambda d: (-d["counts"], d["values"]))
            spec.categorical.append(c.name)
            spec.vocabs.append([d["values"] for d in counts[:MAX_VOCAB]])
        else:
            x = arr.to_numpy(zero_copy_only=False).astype(np.float64)
            x = x[np.isfinite(x)]
            spec.numerical.append(c.name)
            spec.means.append(float(x.mean()) if x.size else 0.0)
            std = float(x.std()) if x.size else 1.0
            spec.stds.append(std if std > 1e-12 else 1.0)
    return spec


def encode_features(tbl: pa.Table, spec: ColumnSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_num [N, 2F], x_cat [N, C])``: standardised values with missing flags, category codes."""
    n = tbl.num_rows
    nums = []
    for name, m, s in zip(spec.numerical, spec.means, spec.stds):
        x = tbl.column(name).to_numpy(zero_copy_only=False).astype(np.float32) if name in tbl.column_names \
            else np.full(n, np.nan, np.float32)
        missing = ~np.isfinite(x)
        z = np.where(missing, 0.0, np.clip((x - m) / s, -10, 10)).astype(np.float32)
        nums += [z, missing.astype(np.float32)]
    x_num = torch.from_numpy(np.stack(nums, 1)) if nums else torch.zeros(n, 0)
    cats = []
    for name, vocab in zip(spec.categorical, spec.vocabs):
        if name in tbl.column_names:
            idx = pc.index_in(tbl.column(name), value_set=pa.array(vocab, pa.string()))
            cats.append(pc.fill_null(pc.add(idx, 1), 0).to_numpy(zero_copy_only=False).astype(np.int64))
        else:
            cats.append(np.zeros(n, np.int64))
    x_cat = torch.from_numpy(np.stack(cats, 1)) if cats else torch.zeros(n, 0, dtype=torch.long)
    return x_num, x_cat


def encode_timestamps(tbl: pa.Table, spec: ColumnSpec) -> torch.Tensor:
    """``x_ts [N, T]``: seconds since the epoch (NaN for NULL), compared with the anchor per batch."""
    n = tbl.num_rows
    cols = [tbl.column(name).to_numpy(zero_copy_only=False).astype(np.float64) if name in tbl.column_names
            else np.full(n, np.nan) for name in spec.timestamps]
    return torch.from_numpy(np.stack(cols, 1)) if cols else torch.zeros(n, 0, dtype=torch.float64)


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

    @property
    def stride(self) -> int:
        return self.times.numel() + 2

    def type_of(self, table: str) -> str:
        return next(k for k, v in self.node_types.items() if v == table)

    def anchor_rank(self, anchor_us: torch.Tensor) -> torch.Tensor:
        """Rank that a node's rank must not exceed to be visible at ``anchor_us``."""
        return torch.searchsorted(self.times, anchor_us, right=True)

    @property
    def edge_types(self) -> list[tuple[str, str, str]]:
        return list(self.csr)


def _csr(src: torch.Tensor, dst: torch.Tensor, src_rank: torch.Tensor, num_dst: int, stride: int) -> CSR:
    key = dst * stride + src_rank[src]
    key, order = torch.sort(key, stable=True)
    rowptr = torch.searchsorted(key, torch.arange(num_dst + 1, dtype=torch.long) * stride)
    return CSR(rowptr, src[order].contiguous(), key.contiguous())


def build_graph(extracted: ExtractedGraph, specs: dict[str, ColumnSpec] | None = None) -> TemporalGraph:
    """Tensors for sampling and encoding; ``specs`` reuses a stored model's encodings."""
    tables = list(extracted.nodes)
    node_types = {f"n{i}": t for i, t in enumerate(tables)}
    specs = dict(specs) if specs else {}
    raw_times = {}
    for t in tables:
        tm = extracted.nodes[t].column(TIME_US)
        raw_times[t] = pc.fill_null(tm, STATIC_TIME).to_numpy(zero_copy_only=False).astype(np.int64)
    dated = [x[x != STATIC_TIME] for x in raw_times.values()]
    times = torch.from_numpy(np.unique(np.concatenate(dated))) if dated else torch.zeros(0, dtype=torch.long)

    nodes = {}
    for nt, t in node_types.items():
        tbl = extracted.nodes[t]
        if t not in specs:
            specs[t] = fit_spec(tbl, extracted.tables[t])
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


__all__ = ["TemporalGraph", "NodeStore", "CSR", "ColumnSpec", "build_graph", "STATIC_TIME", "NODE"]
