"""Heterogeneous temporal GraphSAGE over sampled subgraphs, in torch-geometric's shape.

Three modules meet over ``x_dict`` / ``edge_index_dict``, as in RelBench's
``modeling/nn.py``:

- ``HeteroEncoder``: one ``TableEncoder`` per node type, the rows' columns
  to ``x_dict[t] [n_t, channels]``;
- ``RelativeTimeEncoder`` (shared by all node types): how long before the
  seed's anchor each row happened, added to its encoding;
- ``HeteroGraphSAGE``: ``layers`` rounds of a convolution per edge type,
  summed per destination type (as ``HeteroConv(aggr='sum')`` does), with a
  residual connection and layer norm. The default convolution,
  ``RelationalConv``, keeps what a mean forgets: how many neighbours a row
  has (sampled, and visible at the anchor in all) and which one is the
  newest; ``conv = 'sage'`` is a plain mean-aggregating ``SAGEConv`` (the
  models stored before format 3);

then an MLP head on the seeds, which also reads where the seed's anchor
falls in the day, the week and the year (``CalendarEncoder``). The model is built from metadata only (the
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
from torch_geometric.utils import scatter

from .columns import ColumnSpec
from .encoders import US_PER_DAY, CalendarEncoder, RelativeTimeEncoder, TableEncoder
from .graph import STATIC_TIME, EdgeType, NodeType
from .loader import Batch


class HeteroEncoder(nn.Module):
    """``(x_num_dict, x_cat_dict, x_ts_dict, anchor_dict) -> x_dict``: one ``TableEncoder`` per node type."""

    def __init__(self, specs: dict[NodeType, ColumnSpec], channels: int, deep: bool = False):
        super().__init__()
        self.encoders = nn.ModuleDict({nt: TableEncoder(spec, channels, deep) for nt, spec in specs.items()})

    def reset_parameters(self) -> None:
        for enc in self.encoders.values():
            enc.reset_parameters()

    def forward(self, x_num_dict: dict[NodeType, torch.Tensor], x_cat_dict: dict[NodeType, torch.Tensor],
                x_ts_dict: dict[NodeType, torch.Tensor], anchor_dict: dict[NodeType, torch.Tensor]
                ) -> dict[NodeType, torch.Tensor]:
        return {nt: self.encoders[nt](x_num, x_cat_dict[nt], x_ts_dict.get(nt), anchor_dict[nt])
                for nt, x_num in x_num_dict.items()}


#: the convolutions ``HeteroGraphSAGE`` can run per edge type
CONVS = ("relational", "sage")


class RelationalConv(nn.Module):
    """``((x_src, x_dst), edge_index [2, e], newest [n_dst], visible [n_dst], recent [n_dst, W]) -> [n_dst, C]``.

    One edge type's update of its destination rows from their sampled
    source rows: ``lin_root(x_dst) + lin_aggr([mean, mean * log(1 + n), newest])
    + lin_count([log(1 + n), log(1 + visible), log(1 + recent)])``, where ``n`` is the number
    of sampled sources, ``newest`` the source with the latest time (``newest``
    holds, per destination, the position of that edge in ``edge_index``, -1
    for a destination without edges) and ``visible`` the number of sources
    visible at the anchor in all (the sampler's count, not capped by the
    fan-out); ``recent`` how many of those fall within each of ``windows``
    spans before the anchor (the sampler's ``windows_us``); with ``recency``,
    ``age`` the days from the newest source row to the anchor (-1: none, or
    undated); with ``summary``, ``means`` the mean of every number of all
    the source rows in each window and in all the visible past (the
    sampler's running sums: every row, not the sampled sixteen). A mean
    alone cannot tell one order from sixteen, nor single out the latest
    purchase, which is often the one that matters; the scaled mean is the
    sum, kept on a log scale so sixteen neighbours do not swamp one. The
    windowed counts are the rate at which rows arrive (three orders last
    month, thirty last year), which the newest sixteen rows cannot show for
    a busy row nor a count over all time for an old one; the age of the
    newest row ("days since the last order") is one number here rather
    than one direction among the newest row's 128 channels. The windowed
    means are what a carrier's 500 flights of yesterday say that its newest
    16 cannot (their mean delay).
    """

    def __init__(self, channels: int, windows: int = 0, recency: bool = False, summary: int = 0):
        super().__init__()
        self.windows, self.recency, self.summary = windows, recency, summary
        self.lin_aggr = nn.Linear(3 * channels, channels)
        self.lin_root = nn.Linear(channels, channels, bias=False)
        n_count = 2 + windows + 2 * recency + summary
        # counts and ages matter by thresholds (no order in 30 days), not linearly: format 4 reads them
        # through a small MLP
        self.lin_count = (nn.Sequential(nn.Linear(n_count, channels), nn.ReLU(), nn.Linear(channels, channels))
                          if recency else nn.Linear(n_count, channels, bias=False))

    def reset_parameters(self) -> None:
        for module in (self.lin_aggr, self.lin_root, self.lin_count):
            for lin in module.modules():
                if isinstance(lin, nn.Linear):
                    lin.reset_parameters()

    def forward(self, x: tuple[torch.Tensor, torch.Tensor], edge_index: torch.Tensor, newest: torch.Tensor,
                visible: torch.Tensor | None = None, recent: torch.Tensor | None = None,
                age: torch.Tensor | None = None, means: torch.Tensor | None = None) -> torch.Tensor:
        x_src, x_dst = x
        n_dst = x_dst.shape[0]
        src, dst = edge_index[0], edge_index[1]
        total = scatter(x_src.index_select(0, src), dst, 0, dim_size=n_dst, reduce="sum")
        n = torch.bincount(dst, minlength=n_dst).unsqueeze(1).to(x_dst.dtype)
        mean = total / n.clamp(min=1)
        has = newest >= 0
        if src.numel():
            new = x_src.index_select(0, src.index_select(0, newest.clamp(min=0))) * has.unsqueeze(1).to(x_dst.dtype)
        else:
            new = x_src.new_zeros(n_dst, x_src.shape[1])
        log_n = torch.log1p(n)
        log_visible = torch.log1p(visible.float()).unsqueeze(1) if visible is not None else log_n
        counts = [log_n, log_visible]
        if self.windows:
            # without the sampler's windowed counts (never the case for a model trained with them),
            # nothing is known to be recent
            counts.append(torch.log1p(recent.float()) if recent is not None
                          else x_dst.new_zeros(n_dst, self.windows))
        if self.recency:
            # how long before the anchor the newest source row is (log days), and whether it is dated
            known = (age >= 0) if age is not None else torch.zeros(n_dst, dtype=torch.bool)
            days = age.clamp(min=0) if age is not None else x_dst.new_zeros(n_dst)
            counts += [(torch.log1p(days) / 5 * known).unsqueeze(1), known.to(x_dst.dtype).unsqueeze(1)]
        if self.summary:
            counts.append(means.clamp(-10, 10) if means is not None else x_dst.new_zeros(n_dst, self.summary))
        return (self.lin_root(x_dst) + self.lin_aggr(torch.cat([mean, mean * log_n, new], 1))
                + self.lin_count(torch.cat(counts, 1)))


def newest_edge(edge_index: torch.Tensor, src_time: torch.Tensor, n_dst: int) -> torch.Tensor:
    """``[n_dst]``: the position of each destination's edge from its newest source (by ``src_time``; the
    first such edge on a tie), -1 for a destination without edges."""
    t = src_time.index_select(0, edge_index[0])
    dst = edge_index[1]
    latest = torch.full((n_dst,), torch.iinfo(torch.long).min, dtype=torch.long).scatter_reduce(
        0, dst, t, reduce="amax")
    e = dst.numel()
    pos = torch.where(t == latest.index_select(0, dst), torch.arange(e), e)
    first = torch.full((n_dst,), e, dtype=torch.long).scatter_reduce(0, dst, pos, reduce="amin")
    return torch.where(first == e, -1, first)


def newest_age(edge_index: torch.Tensor, newest: torch.Tensor, src_time: torch.Tensor,
               anchor: torch.Tensor) -> torch.Tensor:
    """``[n_dst]`` days from each destination's newest source row to its anchor; -1 without a dated one."""
    if edge_index.shape[1] == 0:
        return torch.full(newest.shape, -1.0)
    t = src_time.index_select(0, edge_index[0].index_select(0, newest.clamp(min=0)))
    days = (anchor - t).double() / US_PER_DAY
    return torch.where((newest >= 0) & (t != STATIC_TIME), days.clamp(min=0), -1.0).float()


class HeteroGraphSAGE(nn.Module):
    """``(x_dict, edge_index_dict[, per-hop counts][, time_dict, num_visible_dict]) -> x_dict``: message passing.

    Each layer runs a convolution per edge type (``RelationalConv``, or a
    mean-aggregating ``SAGEConv`` with ``conv = 'sage'``), sums the results
    per destination type and updates ``x <- LayerNorm(x + relu(sum))``; a
    node type that receives no message keeps its embedding. With the per-hop
    counts (``Batch.num_sampled_nodes_dict`` / ``num_sampled_edges_dict``)
    the output dict holds only the seeds' hop (hop 0) of each type.
    ``RelationalConv`` reads the rows' times (``time_dict``, to find each
    row's newest neighbour) and, if given, the sampler's visible-neighbour
    counts (``num_visible_dict[et] [n_dst]``, ``num_recent_dict[et] [n_dst, windows]``).
    Every edge type's convolution runs for every destination, with or without
    edges (``every_type``): skipping a type that has no edge in the batch made a
    row's score depend on the rows scored beside it; False rebuilds a model
    stored before format 5, which was trained that way.
    """

    def __init__(self, node_types: list[NodeType], edge_types: list[EdgeType], channels: int, layers: int,
                 conv: str = "relational", windows: int = 0, recency: bool = False,
                 summaries: dict[EdgeType, int] | None = None, every_type: bool = True):
        super().__init__()
        self.recency = recency
        self.every_type = every_type
        if conv not in CONVS:
            raise ValueError(f"unknown convolution {conv!r}; use one of {', '.join(CONVS)}")
        self.conv = conv
        self.edge_types = [tuple(et) for et in edge_types]

        summaries = summaries or {}

        def make(et: EdgeType) -> nn.Module:
            if conv == "relational":
                return RelationalConv(channels, windows, recency, summaries.get(et, 0))
            return SAGEConv(channels, channels, aggr="mean")

        # torch-geometric's ModuleDict takes edge-type tuples as keys (stored as '<src___rel___dst>', as in HeteroConv)
        self.convs = nn.ModuleList(ModuleDict({et: make(et) for et in self.edge_types}) for _ in range(layers))
        self.norms = nn.ModuleList(nn.ModuleDict({nt: nn.LayerNorm(channels) for nt in node_types})
                                   for _ in range(layers))

    def reset_parameters(self) -> None:
        for layer in (*self.convs, *self.norms):
            for module in layer.values():
                module.reset_parameters()

    def forward(self, x_dict: dict[NodeType, torch.Tensor], edge_index_dict: dict[EdgeType, torch.Tensor],
                num_sampled_nodes_dict: dict[NodeType, list[int]] | None = None,
                num_sampled_edges_dict: dict[EdgeType, list[int]] | None = None,
                time_dict: dict[NodeType, torch.Tensor] | None = None,
                num_visible_dict: dict[EdgeType, torch.Tensor] | None = None,
                num_recent_dict: dict[EdgeType, torch.Tensor] | None = None,
                anchor_dict: dict[NodeType, torch.Tensor] | None = None,
                window_mean_dict: dict[EdgeType, torch.Tensor] | None = None) -> dict[NodeType, torch.Tensor]:
        trim = num_sampled_nodes_dict is not None and num_sampled_edges_dict is not None
        layers = len(self.convs)
        newest: dict[EdgeType, torch.Tensor] = {}
        age: dict[EdgeType, torch.Tensor] = {}
        if self.conv == "relational":  # the same in every layer: computed once per batch
            for et, edge_index in edge_index_dict.items():
                src, _, dst = et
                src_time = time_dict[src] if time_dict is not None else torch.zeros(x_dict[src].shape[0],
                                                                                    dtype=torch.long)
                newest[et] = newest_edge(edge_index, src_time, x_dict[dst].shape[0])
                if self.recency and time_dict is not None and anchor_dict is not None:
                    age[et] = newest_age(edge_index, newest[et], src_time, anchor_dict[dst])
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
                # a destination without neighbours of a type still gets its root, bias and count terms,
                # whatever else is in the batch (models stored before format 5 skipped a type without edges)
                if x_dst.shape[0] == 0 or (not self.every_type and edge_index.shape[1] == 0):
                    continue
                if self.conv == "sage":
                    y = convs[et]((x_src, x_dst), edge_index)
                else:
                    n_dst = x_dst.shape[0]
                    y = convs[et]((x_src, x_dst), edge_index, newest[et][:n_dst],
                                  *(_rows(per_dst, et, n_dst)
                                    for per_dst in (num_visible_dict, num_recent_dict, age, window_mean_dict)))
                out[dst] = out[dst] + y if dst in out else y
            if trim:
                x_dict = {nt: x[: _upto(num_sampled_nodes_dict[nt], depth)] for nt, x in x_dict.items()}
            x_dict = {nt: norms[nt](x + torch.relu(out[nt])) if nt in out else x for nt, x in x_dict.items()}
        return x_dict


def _rows(per_dst: dict | None, et: EdgeType, n: int) -> torch.Tensor | None:
    """The first ``n`` rows of ``per_dst[et]`` (the destinations a trimmed layer still computes), or None."""
    value = per_dst.get(et) if per_dst else None
    return value[:n] if value is not None else None


def _upto(per_hop: list[int], hop: int) -> int:
    """Nodes (edges) up to and including ``hop``, from per-hop counts."""
    return sum(per_hop[: hop + 1])


class RelationalGNN(nn.Module):
    """``Batch -> [num_seeds, out_dim]`` scores of the batch's seeds.

    ``specs``: the column encoding of each node type (its keys are the node
    types, in order); ``edge_types``: ``(src, rel, dst)`` triples. Together
    they are ``TemporalGraph.node_specs()`` and ``TemporalGraph.metadata()[1]``.
    ``windows``: how many windowed neighbour counts each ``RelationalConv``
    reads (the sampler's ``windows_us``); ``calendar``: the periods (days) of
    the anchor's calendar the head reads (``CalendarEncoder``; empty: none),
    or None for a model of format 3 or older, which also lacks the rest of
    format 4 (ages of the newest neighbours, windowed means, MLP encoders).
    ``direct``: format 6's linear term from the seeds' windowed counts and
    means to the output (``_direct``), which ``train.new_model`` asks for in
    regression models only; off by default, so a model built without saying
    so has format 5's layout.
    """

    def __init__(self, specs: dict[NodeType, ColumnSpec], edge_types: list[EdgeType], channels: int = 128,
                 layers: int = 2, out_dim: int = 1, conv: str = "relational", windows: int = 0,
                 calendar: tuple[float, ...] | None = None, every_type: bool = True, direct: bool = False):
        super().__init__()
        self.channels, self.layers, self.out_dim, self.conv = channels, layers, out_dim, conv
        self.windows = windows
        self.calendar = tuple(calendar) if calendar is not None else None
        fmt4 = calendar is not None
        self.encoder = HeteroEncoder(specs, channels, deep=fmt4)
        self.temporal = RelativeTimeEncoder(channels)
        # format 4: windowed means of the numbers of a row's children (each parent has one child's worth)
        summaries = {tuple(et): (windows + 1) * len(specs[et[0]].numerical) for et in edge_types
                     if fmt4 and windows and not et[1].endswith("_rev")}
        self.gnn = HeteroGraphSAGE(list(specs), edge_types, channels, layers, conv, windows, recency=fmt4,
                                   summaries=summaries, every_type=every_type)
        self.when = CalendarEncoder(channels, self.calendar) if self.calendar else None
        self.head = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, out_dim))
        # format 6: a linear map from a seed's own windowed counts and means to its output, per link to it
        # (every link: the seed's table is not known here); zero at the start, so training begins where
        # format 5 did
        self.direct = ModuleDict({et: nn.Linear(windows + width // (windows + 1) * windows, out_dim, bias=False)
                                  for et, width in (summaries.items() if direct else ())})
        self._zero_direct()

    @property
    def metadata(self) -> tuple[list[NodeType], list[EdgeType]]:
        return list(self.encoder.encoders), list(self.gnn.edge_types)

    def _zero_direct(self) -> None:
        for lin in self.direct.values():
            nn.init.zeros_(lin.weight)

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        self.temporal.reset_parameters()
        self.gnn.reset_parameters()
        self._zero_direct()
        if self.when is not None:
            self.when.reset_parameters()
        for module in self.head:
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(self, batch: Batch, trim: bool = True) -> torch.Tensor:
        """Scores of the seeds; ``trim=False`` updates every node in every layer (same seed outputs, slower)."""
        x_dict = self.embed(batch)
        hops = (batch.num_sampled_nodes_dict, batch.num_sampled_edges_dict) if trim else (None, None)
        x_dict = self.gnn(x_dict, batch.edge_index_dict, *hops, time_dict=batch.time_dict,
                          num_visible_dict=batch.num_visible_dict, num_recent_dict=batch.num_recent_dict,
                          anchor_dict=batch.anchor_dict, window_mean_dict=batch.window_mean_dict)
        seeds = x_dict[batch.seed_type][: batch.num_seeds]
        if self.when is not None:
            seeds = seeds + self.when(batch.anchor_dict[batch.seed_type][: batch.num_seeds])
        return self.head(seeds) + self._direct(batch)

    def _direct(self, batch: Batch) -> torch.Tensor | float:
        """The linear term of format 6: ``[num_seeds, out_dim]`` from the seeds' windowed counts and means.

        Deep layers read the same numbers, but through an MLP, a residual sum
        and a layer norm, which bound how far a value outside the training
        range can move the output: a carrier's delays of a stormy December
        reach the score damped. The linear term carries them through at
        their size, as an autoregressive term in a forecast does (and as the
        "wide" part of a wide-and-deep model). It reads the windows only,
        rates over a fixed span: the count over all the past and the mean
        over all the past grow or drift with the age of the data, and a
        linear term would extrapolate that drift, not the entity (shop
        spend: MAE 68.74 with them, 68.48 without, 3 seeds). Regression only:
        a classifier's score is a probability, which a level past the
        training range cannot move past 1, and on short training the linear
        shortcut held back what the deep path learns from far tables (the
        three-links test, 3 epochs on 3,000 rows: AUROC 0.638 with it, 0.697
        without, 3 seeds).
        """
        out: torch.Tensor | float = 0.0
        n = batch.num_seeds
        for et, lin in self.direct.items():
            if et[2] != batch.seed_type:
                continue
            recent = (batch.num_recent_dict or {}).get(et)
            means = (batch.window_mean_dict or {}).get(et)
            parts = [torch.log1p(recent[:n].float()) if recent is not None else torch.zeros(n, self.windows)]
            width = lin.in_features - self.windows  # the windows' means come first, the all-past ones last
            if width:
                parts.append(means[:n, :width].clamp(-10, 10) if means is not None else torch.zeros(n, width))
            out = out + lin(torch.cat(parts, 1))
        return out

    def embed(self, batch: Batch) -> dict[NodeType, torch.Tensor]:
        """Input embeddings ``x_dict[t] [n_t, channels]``: the rows' columns plus their time before the anchor."""
        x_dict = self.encoder(batch.x_num_dict, batch.x_cat_dict, batch.x_ts_dict, batch.anchor_dict)
        return {nt: x + self.temporal(batch.time_dict[nt], batch.anchor_dict[nt]) for nt, x in x_dict.items()}
