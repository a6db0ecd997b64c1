"""Temporal neighbour sampling: no neighbour younger than its seed's anchor, fan-outs, strategies.

Most tests build a random three-table graph straight from Arrow tables:
``A`` (dated entities), ``B`` (dated events, some undated, linking to ``A``
and ``C``) and ``C`` (static). Every sampled batch is checked against a
brute-force list of each node's neighbours.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest
import torch

from rdl_sql.planner.extract import ExtractedGraph, extract, reachable
from rdl_sql.planner.schema import Link, TableInfo, read_schema
from rdl_sql.udfs.graph import STATIC_TIME, build_graph
from rdl_sql.udfs.sampler import pick, sample

LINK_BA = Link("B", ("a",), "A", ("id",))
LINK_BC = Link("B", ("c",), "C", ("id",))


def _nodes(times) -> pa.Table:
    return pa.table({"__node": pa.array(np.arange(len(times)), pa.int64()),
                     "__time_us": pa.array(times, pa.int64())})


def _edges(src, dst) -> pa.Table:
    return pa.table({"src": pa.array(src, pa.int64()), "dst": pa.array(dst, pa.int64())})


def toy_graph(times_a, times_b, b_to_a, b_to_c, n_c):
    """A graph from per-row times (None: undated) and per-B-row parents (None: NULL key)."""
    ba = [(b, a) for b, a in enumerate(b_to_a) if a is not None]
    bc = [(b, c) for b, c in enumerate(b_to_c) if c is not None]
    ext = ExtractedGraph(
        nodes={"A": _nodes(times_a), "B": _nodes(times_b), "C": _nodes([None] * n_c)},
        edges={LINK_BA: _edges([b for b, _ in ba], [a for _, a in ba]),
               LINK_BC: _edges([b for b, _ in bc], [c for _, c in bc])},
        tables={"A": TableInfo("A", (), ("id",), "t", len(times_a)),
                "B": TableInfo("B", (), ("id",), "t", len(times_b)),
                "C": TableInfo("C", (), ("id",), None, n_c)},
        as_of=None,
    )
    graph = build_graph(ext)
    # brute-force in-neighbours per edge type and destination node
    nt = {t: graph.type_of(t) for t in "ABC"}
    fwd = {LINK_BA: ba, LINK_BC: bc}
    neighbours: dict[tuple, dict[int, list[int]]] = {}
    for et in graph.edge_types:
        src_t, rel, dst_t = et
        link = LINK_BA if rel.split("_")[0] == "r0" else LINK_BC
        assert (src_t, dst_t) in ((nt[link.child], nt[link.parent]), (nt[link.parent], nt[link.child]))
        nb = defaultdict(list)
        for child, parent in fwd[link]:
            if rel.endswith("_rev"):
                nb[child].append(parent)
            else:
                nb[parent].append(child)
        neighbours[et] = nb
    return graph, neighbours


def random_graph(seed: int, n_a=40, n_b=500, n_c=15, distinct_times=False):
    rng = np.random.default_rng(seed)
    times_a = rng.integers(0, 500, n_a).tolist()
    if distinct_times:
        times_b = (rng.permutation(n_b) * 3 + 1).tolist()
    else:
        times_b = rng.integers(0, 1000, n_b).tolist()  # many ties
    for i in rng.choice(n_b, n_b // 10, replace=False):
        times_b[i] = None
    b_to_a = [int(x) if rng.random() > 0.05 else None for x in rng.integers(0, n_a, n_b)]
    b_to_c = [int(x) if rng.random() > 0.05 else None for x in rng.integers(0, n_c, n_b)]
    return toy_graph(times_a, times_b, b_to_a, b_to_c, n_c)


def random_seeds(graph, seed: int, n: int):
    """Seeds of type A with anchors at or after their own time."""
    g = torch.Generator().manual_seed(seed)
    a = graph.type_of("A")
    nodes = torch.randint(0, graph.nodes[a].num_nodes, (n,), generator=g)
    anchors = graph.nodes[a].time[nodes] + torch.randint(0, 700, (n,), generator=g)
    return nodes, anchors


def check_batch(graph, neighbours, batch, fanouts, strategy):
    """Every property a sample must have, checked node by node against brute force."""
    time = {nt: store.time for nt, store in graph.nodes.items()}
    # each non-seed node is the source of exactly one sampled edge; find its parent and depth
    parent = {}
    for et, ei in batch.edge_index.items():
        src_t, _, dst_t = et
        for s, d in ei.t().tolist():
            assert (src_t, s) not in parent
            parent[(src_t, s)] = (et, dst_t, d)
    for nt, ids in batch.node.items():
        first = batch.num_seeds if nt == batch.seed_type else 0
        assert {i for (t, i) in parent if t == nt} == set(range(first, ids.numel()))
        assert batch.anchor[nt].shape == ids.shape
    depth = {(batch.seed_type, i): 0 for i in range(batch.num_seeds)}

    def depth_of(key):
        if key not in depth:
            _, dst_t, d = parent[key]
            depth[key] = depth_of((dst_t, d)) + 1
        return depth[key]

    groups = defaultdict(list)
    for (src_t, s), (et, dst_t, d) in parent.items():
        groups[(et, d)].append(s)
        # the neighbour is a real neighbour, seen at its seed's anchor, and not younger than it
        g_src, g_dst = int(batch.node[src_t][s]), int(batch.node[dst_t][d])
        assert g_src in neighbours[et][g_dst]
        assert batch.anchor[src_t][s] == batch.anchor[dst_t][d]
        assert time[src_t][g_src] <= batch.anchor[src_t][s]
        assert depth_of((src_t, s)) <= len(fanouts)
    # the sample of every (parent, edge type) is the right size and, per strategy, the right rows
    for nt, ids in batch.node.items():
        for i in range(ids.numel()):
            dep = depth_of((nt, i))
            if dep >= len(fanouts):
                continue
            k, g_dst, anchor = fanouts[dep], int(ids[i]), int(batch.anchor[nt][i])
            for et in graph.edge_types:
                if et[2] != nt:
                    continue
                eligible = [n for n in neighbours[et].get(g_dst, []) if int(time[et[0]][n]) <= anchor]
                got = [int(batch.node[et[0]][s]) for s in groups.get((et, i), [])]
                assert len(got) == len(set(got)), "a neighbour sampled twice"
                came_by = parent.get((nt, i))
                if came_by is not None and not came_by[0][1].endswith("_rev") and \
                        et == (came_by[0][2], came_by[0][1] + "_rev", came_by[0][0]):
                    # a child reached from its parent is not asked for its parent again: that is
                    # exactly the node it came from
                    assert got == [] and eligible == [int(batch.node[came_by[1]][came_by[2]])]
                    continue
                assert len(got) == min(k, len(eligible))
                if len(eligible) <= k:
                    assert sorted(got) == sorted(eligible)
                if strategy == "recent":
                    newest = sorted((int(time[et[0]][n]) for n in eligible), reverse=True)[:k]
                    assert sorted((int(time[et[0]][n]) for n in got), reverse=True) == newest


@pytest.mark.parametrize("strategy", ["uniform", "recent"])
@pytest.mark.parametrize("graph_seed", [0, 1, 2])
def test_random_graph_samples_obey_time_fanout_and_strategy(strategy, graph_seed):
    graph, neighbours = random_graph(graph_seed, distinct_times=graph_seed == 2)
    seeds, anchors = random_seeds(graph, graph_seed, 150)
    fanouts = [4, 3, 2]
    batch = sample(graph, graph.type_of("A"), seeds, anchors, fanouts, strategy,
                   torch.Generator().manual_seed(graph_seed), dedupe_leaves=False)
    merged = sample(graph, graph.type_of("A"), seeds, anchors, fanouts, strategy,
                    torch.Generator().manual_seed(graph_seed))
    # merged leaves: one per (row, anchor), every edge kept, each edge's source the same row at the same anchor
    assert merged.num_edges == batch.num_edges
    for nt, ids in merged.node.items():
        lo = merged.node_hops[nt][-2]
        pairs = list(zip(ids[lo:].tolist(), merged.anchor[nt][lo:].tolist()))
        assert len(pairs) == len(set(pairs))
    for et, e in merged.edge_index.items():
        src_t, _, dst_t = et
        got = sorted(zip(merged.node[src_t][e[0]].tolist(), merged.anchor[src_t][e[0]].tolist(),
                         merged.node[dst_t][e[1]].tolist()))
        want = batch.edge_index[et]
        assert got == sorted(zip(batch.node[src_t][want[0]].tolist(), batch.anchor[src_t][want[0]].tolist(),
                                 batch.node[dst_t][want[1]].tolist()))
    assert batch.num_seeds == 150
    assert torch.equal(batch.node[graph.type_of("A")][:150], seeds)
    assert batch.num_edges > 150  # the check below is not vacuous
    check_batch(graph, neighbours, batch, fanouts, strategy)


def test_every_sampled_node_is_visible_at_its_anchor_over_many_seeds():
    graph, _ = random_graph(7, n_a=200, n_b=5000, n_c=30)
    seeds, anchors = random_seeds(graph, 7, 5000)
    for strategy in ("uniform", "recent"):
        batch = sample(graph, graph.type_of("A"), seeds, anchors, [8, 8], strategy, torch.Generator().manual_seed(1))
        for nt, ids in batch.node.items():
            assert bool((graph.nodes[nt].time[ids] <= batch.anchor[nt]).all()), nt
        assert sum(ids.numel() for ids in batch.node.values()) > 5000 * 4


def hand_graph():
    """A0 (time 0) with ten B children at times 10, 20, ..., 100; B10 undated; a static C0 above all Bs."""
    times_b = [10 * (i + 1) for i in range(10)] + [None]
    return toy_graph([0], times_b, [0] * 11, [0] * 11, 1)


def first_hop(graph, batch, src="B", dst="A"):
    """Sampled neighbours (global ids) of each seed over the first hop, in seed order."""
    et = next(et for et in batch.edge_index if et[0] == graph.type_of(src) and et[2] == graph.type_of(dst))
    out = defaultdict(list)
    for s, d in batch.edge_index[et].t().tolist():
        out[d].append(int(batch.node[et[0]][s]))
    return [sorted(out[i]) for i in range(batch.num_seeds)]


def test_recent_returns_exactly_the_newest_eligible():
    graph, _ = hand_graph()
    anchors = torch.tensor([55, 100, 10, 9, 1000])
    batch = sample(graph, graph.type_of("A"), torch.zeros(5, dtype=torch.long), anchors, [3], "recent")
    # at 55: B4 (50), B3 (40), B2 (30); at 100: B9, B8, B7; at 10: B0 and the undated B10; at 9: only B10
    assert first_hop(graph, batch) == [[2, 3, 4], [7, 8, 9], [0, 10], [10], [7, 8, 9]]


def test_visible_counts_every_eligible_neighbour_not_only_the_sampled_ones():
    """``Subgraph.visible``: rows at or before the anchor, however many the fan-out keeps; never later ones."""
    graph, _ = hand_graph()
    a, b = graph.type_of("A"), graph.type_of("B")
    anchors = torch.tensor([55, 100, 10, 9, 1000])
    batch = sample(graph, a, torch.zeros(5, dtype=torch.long), anchors, [3], "recent")
    et = next(et for et in graph.edge_types if et[0] == b and et[2] == a)
    # as in test_recent_returns_exactly_the_newest_eligible: B0..B4 (and the undated B10) by 55, all 11 by 100
    assert batch.visible[et][:5].tolist() == [6, 11, 2, 1, 11]
    assert batch.edges_upto(et, 0) == 3 + 3 + 2 + 1 + 3  # the fan-out still caps the sample


def test_uniform_covers_all_eligible_when_they_fit_and_never_repeats():
    graph, _ = hand_graph()
    anchors = torch.tensor([30, 1000, 30, 1000])
    batch = sample(graph, graph.type_of("A"), torch.zeros(4, dtype=torch.long), anchors, [11],
                   "uniform", torch.Generator().manual_seed(0))
    got = first_hop(graph, batch)
    assert got[0] == [0, 1, 2, 10] and got[2] == [0, 1, 2, 10]
    assert got[1] == list(range(11)) and got[3] == list(range(11))
    small = sample(graph, graph.type_of("A"), torch.zeros(200, dtype=torch.long), torch.full((200,), 1000),
                   [4], "uniform", torch.Generator().manual_seed(0))
    for nb in first_hop(graph, small):
        assert len(nb) == 4 and len(set(nb)) == 4


def test_static_neighbours_are_always_eligible():
    graph, _ = hand_graph()
    # an anchor before every dated row: only the undated B10 and, from it, the static C0
    batch = sample(graph, graph.type_of("A"), torch.zeros(1, dtype=torch.long), torch.tensor([-10 ** 15]),
                   [5, 5], "uniform", torch.Generator().manual_seed(0))
    assert batch.node[graph.type_of("B")].tolist() == [10]
    assert batch.node[graph.type_of("C")].tolist() == [0]
    assert int(graph.nodes[graph.type_of("C")].time[0]) == STATIC_TIME


def test_uniform_is_roughly_uniform():
    graph, _ = hand_graph()
    n, k = 20_000, 3
    for anchor, eligible in ((1000, list(range(11))), (70, [0, 1, 2, 3, 4, 5, 6, 10])):
        batch = sample(graph, graph.type_of("A"), torch.zeros(n, dtype=torch.long), torch.full((n,), anchor),
                       [k], "uniform", torch.Generator().manual_seed(123), dedupe_leaves=False)
        b = graph.type_of("B")
        ids = batch.node[b]
        assert ids.numel() == n * k
        freq = torch.bincount(ids, minlength=11).double() / n
        expected = k / len(eligible)
        for i in range(11):
            if i in eligible:
                assert abs(float(freq[i]) - expected) < 0.02, (anchor, i, freq.tolist())
            else:
                assert float(freq[i]) == 0.0


def test_pick_positions():
    start, count = torch.tensor([0, 10, 20]), torch.tensor([0, 2, 7])
    pos, valid = pick(start, count, 3, "recent")
    assert valid.tolist() == [[False] * 3, [True, True, False], [True] * 3]
    assert pos[1, :2].tolist() == [11, 10] and pos[2].tolist() == [26, 25, 24]
    pos, valid = pick(start, count, 3, "uniform", torch.Generator().manual_seed(0))
    assert sorted(pos[1, :2].tolist()) == [10, 11]
    chosen = pos[2].tolist()
    assert len(set(chosen)) == 3 and all(20 <= p < 27 for p in chosen)


def test_same_generator_seed_gives_the_same_sample_and_bad_strategy_is_refused():
    graph, _ = random_graph(3)
    seeds, anchors = random_seeds(graph, 3, 50)
    one = sample(graph, graph.type_of("A"), seeds, anchors, [4, 4], "uniform", torch.Generator().manual_seed(5))
    two = sample(graph, graph.type_of("A"), seeds, anchors, [4, 4], "uniform", torch.Generator().manual_seed(5))
    assert all(torch.equal(one.node[t], two.node[t]) for t in one.node)
    with pytest.raises(ValueError, match="unknown sampler strategy"):
        sample(graph, graph.type_of("A"), seeds, anchors, [4], "newest")


def test_seeds_without_eligible_neighbours_give_a_batch_of_seeds_only():
    graph, _ = toy_graph([0], [10, 20], [0, 0], [None, None], 1)
    a = graph.type_of("A")
    batch = sample(graph, a, torch.tensor([0]), torch.tensor([5]), [3, 3], "uniform")
    assert batch.num_edges == 0
    assert {t: v.tolist() for t, v in batch.node.items() if v.numel()} == {a: [0]}


def test_planted_future_rows_do_not_change_the_sample(tiny):
    """Future orders and customers are in the graph (no AS OF cut) but never sampled."""
    anchor = dt.datetime(2024, 1, 10)
    anchor_us = int(anchor.replace(tzinfo=dt.timezone.utc).timestamp() * 1_000_000)

    def draw():
        s = read_schema(tiny)
        graph = build_graph(extract(tiny, s, reachable(s, "customers", 2), None))
        seeds = torch.tensor([0, 1, 3, 0, 1, 3])  # customers 1, 2, 4 (twice)
        out = []
        for strategy in ("uniform", "recent"):
            batch = sample(graph, graph.type_of("customers"), seeds, torch.full((6,), anchor_us), [2, 2, 2],
                           strategy, torch.Generator().manual_seed(0))
            out.append(({t: v.tolist() for t, v in batch.node.items()},
                        {et: v.tolist() for et, v in batch.edge_index.items()},
                        {et: v.tolist() for et, v in batch.visible.items()}))
        return out

    before = draw()
    tiny.execute("INSERT INTO orders SELECT 100 + customer_id, customer_id, 1, "
                 "TIMESTAMP '2024-01-10 00:00:00.000001', 1 FROM customers")
    tiny.execute("INSERT INTO orders SELECT 200 + customer_id, customer_id, 2, TIMESTAMP '2024-03-01', 1 "
                 "FROM customers")
    tiny.execute("INSERT INTO customers VALUES (50, '2024-01-11', 'XX', 99)")
    tiny.execute("INSERT INTO orders VALUES (300, 50, 1, '2024-01-12', 5000)")
    after = draw()
    assert after == before
    # the sample was not trivially empty: customer 1 had orders before the anchor
    assert sum(len(v) for v in before[0][0].values()) > 6
    # nor were the visible-neighbour counts (what the model reads as "how many orders so far")
    assert max(max(v) for v in before[0][2].values()) > 0


def test_unseeded_uniform_sample_of_a_row_does_not_depend_on_its_batch():
    """Scoring draws neighbours from a hash of (node, anchor): chunking cannot change a score."""
    graph, _ = random_graph(seed=11)
    seed_type = graph.type_of("A")
    seeds = torch.arange(40)
    anchors = torch.full((40,), 900)

    def tree_of_first_seed(batch):
        # hop-1 nodes hang under seed 0 by local index 0; collect their global ids per type
        out = {}
        for (src_t, _, dst_t), ei in batch.edge_index.items():
            if dst_t == seed_type:
                out.setdefault(src_t, []).extend(batch.node[src_t][ei[0][ei[1] == 0]].tolist())
        return {k: sorted(v) for k, v in out.items()}

    alone = sample(graph, seed_type, seeds[:1], anchors[:1], [3, 2], "uniform")
    together = sample(graph, seed_type, seeds, anchors, [3, 2], "uniform")
    assert tree_of_first_seed(alone) == tree_of_first_seed(together)
    assert tree_of_first_seed(alone)  # seed 0 has neighbours to sample
    again = sample(graph, seed_type, seeds, anchors, [3, 2], "uniform", torch.Generator().manual_seed(1))
    other = sample(graph, seed_type, seeds, anchors, [3, 2], "uniform", torch.Generator().manual_seed(2))
    assert any(not torch.equal(again.node[t], other.node[t]) for t in again.node)  # training stays random
