"""Temporal neighbour sampling over time-sorted CSR arrays, vectorised in torch.

Every seed carries its own anchor time, and so does every node sampled
beneath it: a neighbour is eligible only if its time is at or before the
seed's anchor. Because each CSR segment is sorted by time, the eligible
neighbours of a node are a prefix of its segment, found for all frontier
nodes at once with one ``searchsorted``; the sample is then drawn from that
prefix with tensor arithmetic, never a Python loop per seed.

Trees are disjoint (a node reached from two seeds appears twice), because
the same row seen from two anchor times is two different things. Leaves
(the last hop) are the exception: a leaf is read only as a message to its
parent, and its input is a function of the row and the anchor alone, so the
leaves of one row at one anchor are merged into one node with one edge per
parent (``dedupe_leaves``). Seeds that share an anchor often share leaves
(the reviews of a popular product), and the leaves are most of a batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .graph import TemporalGraph


@dataclass
class Subgraph:
    """A sampled batch. Node ``i`` of type ``t`` is ``node[t][i]`` seen at ``anchor[t][i]``.

    The seeds are the first ``num_seeds`` nodes of ``seed_type``.
    """

    seed_type: str
    num_seeds: int
    node: dict[str, torch.Tensor]        # type -> [n_t] global node ids
    anchor: dict[str, torch.Tensor]      # type -> [n_t] anchor time (us) of the node's seed
    edge_index: dict[tuple[str, str, str], torch.Tensor]  # [2, e] local (src, dst)
    #: nodes of each type at hop <= h (h = 0..hops), and edges into hop <= h (h = 0..hops-1):
    #: nodes and edges are laid out hop by hop, so a prefix is "everything up to hop h"
    node_hops: dict[str, list[int]] | None = None
    edge_hops: dict[tuple[str, str, str], list[int]] | None = None
    #: edge type -> [n_dst] how many source rows each destination node has in all at its anchor (not
    #: only the sampled ones; 0 for nodes of the last hop, which were never expanded, and for the edge
    #: type a node was reached by, whose only source is its parent in the tree)
    visible: dict[tuple[str, str, str], torch.Tensor] | None = None
    #: edge type -> [n_dst, W] how many of those source rows lie within each of the ``windows_us`` before
    #: the anchor (``(anchor - w, anchor]``); empty dict when no windows were asked for
    recent: dict[tuple[str, str, str], torch.Tensor] | None = None
    #: edge type -> [n_dst, (W + 1) * F_src] the mean of the source rows' standardised numbers over each
    #: window and over all the visible past (window-major), for edge types with ``TemporalGraph.src_sums``
    means: dict[tuple[str, str, str], torch.Tensor] | None = None

    def nodes_upto(self, node_type: str, hop: int) -> int:
        if self.node_hops is None:
            return int(self.node[node_type].numel())
        return self.node_hops[node_type][hop]

    def edges_upto(self, edge_type, hop: int) -> int:
        if self.edge_hops is None:
            return int(self.edge_index[edge_type].shape[1])
        return self.edge_hops[edge_type][hop]

    @property
    def num_edges(self) -> int:
        return sum(int(e.shape[1]) for e in self.edge_index.values())


def pick(start: torch.Tensor, count: torch.Tensor, k: int, strategy: str,
         generator: torch.Generator | None = None, salt: torch.Tensor | None = None
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose up to ``k`` positions in each range ``[start, start + count)``.

    Returns ``(positions [n, k], valid [n, k])``. ``recent`` takes the last
    ``k`` (the newest rows); ``uniform`` takes all when ``count <= k``, else
    a systematic sample: positions ``(j * count + r) // k`` for ``j < k`` with
    one random ``r`` in ``[0, count)`` per range. Every position is drawn with
    probability ``k / count`` (integer strata of unequal size would favour
    the rows in the smaller ones) and none twice. ``salt`` ([n] non-negative
    int64) replaces the random ``r`` with a value fixed per range.
    """
    n = start.numel()
    j = torch.arange(k, dtype=torch.long).expand(n, k)
    c = count.unsqueeze(1)
    valid = j < c
    if strategy == "recent":
        pos = start.unsqueeze(1) + c - 1 - j
    else:
        r = salt.unsqueeze(1) if salt is not None else torch.randint(0, 2 ** 62, (n, 1), generator=generator)
        r = r % c.clamp(min=1)
        offset = torch.where(c > k, torch.div(j * c + r, k, rounding_mode="floor"), j)
        pos = start.unsqueeze(1) + offset
    return torch.where(valid, pos, 0), valid


def sample(graph: TemporalGraph, seed_type: str, seeds: torch.Tensor, anchors_us: torch.Tensor,
           fanouts: list[int], strategy: str = "uniform", generator: torch.Generator | None = None,
           dedupe_leaves: bool = True, windows_us: tuple[int, ...] = ()) -> Subgraph:
    """Sample ``len(fanouts)`` hops of in-neighbours around ``seeds`` at their anchor times.

    With a ``generator`` the draws are random (training: new neighbours each
    epoch). Without one they are a hash of (node, anchor, hop, edge type), so
    a row scores the same whatever else shares its batch or chunk.
    ``dedupe_leaves``: one node per (row, anchor) in the last hop (the
    model's outputs are the same either way). ``windows_us``: also count,
    per expanded node and edge type, the source rows within each window
    before the node's anchor (``Subgraph.recent``): a fan-out of 16 shows the
    newest 16 orders, not whether there were 3 or 300 in the last month.
    """
    if strategy not in ("uniform", "recent"):
        raise ValueError(f"unknown sampler strategy {strategy!r}; use 'uniform' or 'recent'")
    seeds = seeds.long()
    anchors_us = anchors_us.long()
    node = {seed_type: [seeds]}
    anchor = {seed_type: [anchors_us]}
    size = {nt: 0 for nt in graph.nodes}
    size[seed_type] = seeds.numel()
    edges: dict[tuple[str, str, str], list[torch.Tensor]] = {}
    # frontier: (local index, node id, anchor, anchor's time rank, edge type index it was reached by;
    # -1 for seeds); the rank is looked up once per seed and travels down the tree with the anchor
    frontier = {seed_type: (torch.arange(seeds.numel()), seeds, anchors_us, graph.anchor_rank(anchors_us),
                            torch.full((seeds.numel(),), -1, dtype=torch.long))}
    types = list(graph.csr)
    # a child reached from its parent would only find that same parent again over the reverse edge
    back_to = {i: types.index((dst, rel[: -len("_rev")], src)) for i, (src, rel, dst) in enumerate(types)
               if rel.endswith("_rev") and (dst, rel[: -len("_rev")], src) in graph.csr}
    node_hops = {nt: [size[nt]] for nt in graph.nodes}
    edge_hops: dict[tuple[str, str, str], list[int]] = {et: [] for et in graph.csr}
    edge_count = {et: 0 for et in graph.csr}
    visible: dict[tuple[str, str, str], list[tuple[torch.Tensor, torch.Tensor]]] = {}
    recent: dict[tuple[str, str, str], list[torch.Tensor]] = {}
    means: dict[tuple[str, str, str], list[torch.Tensor]] = {}
    windows = torch.tensor(list(windows_us), dtype=torch.long)
    for hop, k in enumerate(fanouts):
        nxt: dict[str, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
        for ei, (et, csr) in enumerate(graph.csr.items()):
            src_t, _, dst_t = et
            if dst_t not in frontier:
                continue
            local, glob, t, rank, via = frontier[dst_t]
            if ei in back_to:
                keep = via != back_to[ei]
                local, glob, t, rank, via = local[keep], glob[keep], t[keep], rank[keep], via[keep]
            start = csr.rowptr[glob]
            stop = torch.searchsorted(csr.key, glob * graph.stride + rank, right=True)
            salt = None if generator is not None or strategy == "recent" else _mix(glob, t, hop * 1009 + ei)
            pos, valid = pick(start, stop - start, k, strategy, generator, salt)
            visible.setdefault(et, []).append((local, stop - start))
            if windows.numel():
                # rows at or before (anchor - w) end the prefix that is out of the window
                w_rank = graph.anchor_rank((t.unsqueeze(1) - windows).clamp(min=-2 ** 62))
                w_start = torch.searchsorted(csr.key, glob.unsqueeze(1) * graph.stride + w_rank, right=True)
                w_start = torch.maximum(w_start, start.unsqueeze(1))
                recent.setdefault(et, []).append(stop.unsqueeze(1) - w_start)
                sums = graph.src_sums(et)
                if sums is not None:
                    means.setdefault(et, []).append(_range_means(sums, torch.cat([w_start, start.unsqueeze(1)], 1),
                                                                 stop))
            rows = valid.nonzero()[:, 0]
            picked = csr.col[pos[valid]]
            new_local = size[src_t] + torch.arange(picked.numel())
            size[src_t] += picked.numel()
            edges.setdefault(et, []).append(torch.stack([new_local, local[rows]]))
            edge_count[et] += picked.numel()
            node.setdefault(src_t, []).append(picked)
            anchor.setdefault(src_t, []).append(t[rows])
            nxt.setdefault(src_t, []).append((new_local, picked, t[rows], rank[rows], torch.full_like(picked, ei)))
        frontier = {nt: tuple(torch.cat(parts) for parts in zip(*lst)) for nt, lst in nxt.items()}
        for nt in graph.nodes:
            node_hops[nt].append(size[nt])
        for et in graph.csr:
            edge_hops[et].append(edge_count[et])
    counts, in_window, window_means = {}, {}, {}
    for et, parts in visible.items():
        local, count = (torch.cat(x) for x in zip(*parts))
        counts[et] = torch.zeros(size[et[2]], dtype=torch.long).index_put_((local,), count)
        if et in recent:
            in_window[et] = torch.zeros(size[et[2]], windows.numel(), dtype=torch.long).index_put_(
                (local,), torch.cat(recent[et]))
        if et in means:
            m = torch.cat(means[et])
            window_means[et] = m.new_zeros(size[et[2]], m.shape[1]).index_put_((local,), m)
    sub = Subgraph(
        seed_type, seeds.numel(),
        {nt: torch.cat(v) for nt, v in node.items()},
        {nt: torch.cat(v) for nt, v in anchor.items()},
        {et: torch.cat(v, 1) for et, v in edges.items()},
        {nt: v for nt, v in node_hops.items() if nt in node},
        {et: v for et, v in edge_hops.items() if et in edges},
        counts,
        in_window,
        window_means,
    )
    if dedupe_leaves and fanouts:
        _merge_leaves(sub)
    return sub


def _range_means(sums: torch.Tensor, starts: torch.Tensor, stop: torch.Tensor) -> torch.Tensor:
    """``[n, R * F]`` float32: the mean of the summed rows in ``[starts[:, r], stop)`` for each range ``r``."""
    n, r = starts.shape
    total = sums.index_select(0, stop).unsqueeze(1) - sums.index_select(0, starts.reshape(-1)).view(n, r, sums.shape[1])
    count = (stop.unsqueeze(1) - starts).clamp(min=1).unsqueeze(2)
    return (total / count).float().reshape(n, r * sums.shape[1])


def _merge_leaves(sub: Subgraph) -> None:
    """Make the last hop's nodes unique per (row, anchor), in place; edges from merged leaves are redirected.

    Leaves sit at the end of each node type's rows and receive no edge, so
    merging them moves no other node and changes no message but its source.
    """
    for nt, ids in sub.node.items():
        lo, hi = sub.node_hops[nt][-2], sub.node_hops[nt][-1]
        if hi - lo < 2:
            continue
        times, t_inv = torch.unique(sub.anchor[nt][lo:hi], return_inverse=True)
        uniq, inv = torch.unique(ids[lo:hi] * times.numel() + t_inv, return_inverse=True)
        sub.node[nt] = torch.cat([ids[:lo], torch.div(uniq, times.numel(), rounding_mode="floor")])
        sub.anchor[nt] = torch.cat([sub.anchor[nt][:lo], times[uniq % times.numel()]])
        sub.node_hops[nt][-1] = lo + uniq.numel()
        for et, edge_index in sub.edge_index.items():
            if et[0] == nt:
                src = edge_index[0]
                leaf = src >= lo
                sub.edge_index[et] = torch.stack([torch.where(leaf, lo + inv[(src - lo).clamp(min=0)], src),
                                                  edge_index[1]])
        if sub.visible is not None:
            for et, count in sub.visible.items():
                if et[2] == nt:
                    sub.visible[et] = count[: lo + uniq.numel()]
        for per_dst in (sub.recent, sub.means):
            for et, value in (per_dst or {}).items():
                if et[2] == nt:
                    per_dst[et] = value[: lo + uniq.numel()]


def _mix(node: torch.Tensor, anchor_us: torch.Tensor, stream: int) -> torch.Tensor:
    """A well-spread non-negative int64 per (node, anchor, stream) (splitmix64's finaliser)."""
    offset = (stream * 1442695040888963407) % 2 ** 64
    offset -= 2 ** 64 if offset >= 2 ** 63 else 0  # int64 arithmetic wraps in torch, not in Python
    h = node * -7046029254386353131 + anchor_us * -4658895280553007687 + offset
    h = (h ^ (h >> 31)) * -7723592293110705685
    h = (h ^ (h >> 29)) * -4658895280553007687
    return (h ^ (h >> 32)) & (2 ** 62 - 1)
