"""The loader: a sampled subgraph's rows gathered into PyG-shaped dicts, with per-hop counts."""
from __future__ import annotations

import torch

from rdl_sql.udfs.loader import load
from rdl_sql.udfs.sampler import Subgraph, sample


def _batch(small_shop, n=40, fanouts=(4, 4)):
    g, val = small_shop["graph"], small_shop["val"]
    sub = sample(g, g.type_of("customers"), val.node[:n], val.anchor[:n], list(fanouts), "recent")
    return g, sub, load(g, sub)


def test_inputs_are_the_graph_rows_of_the_sampled_ids(small_shop):
    g, sub, b = _batch(small_shop)
    assert b.seed_type == g.type_of("customers") and b.num_seeds == 40
    assert set(b.n_id_dict) == set(sub.node) and set(b.edge_index_dict) == set(sub.edge_index)
    for nt, ids in sub.node.items():
        store = g.nodes[nt]
        assert torch.equal(b.n_id_dict[nt], ids)
        assert torch.equal(b.x_num_dict[nt], store.x_num[ids])
        assert torch.equal(b.x_cat_dict[nt], store.x_cat[ids])
        assert torch.equal(b.time_dict[nt], store.time[ids])
        assert torch.equal(b.anchor_dict[nt], sub.anchor[nt])
        assert b.x_ts_dict[nt].shape == (ids.numel(), store.x_ts.shape[1] if store.x_ts.numel() else 0)
    for et, ei in b.edge_index_dict.items():
        src, _, dst = et
        assert torch.equal(ei, sub.edge_index[et])
        if ei.numel():
            assert int(ei[0].max()) < b.n_id_dict[src].numel() and int(ei[1].max()) < b.n_id_dict[dst].numel()
    assert b.num_nodes == sum(ids.numel() for ids in sub.node.values()) and b.num_edges == sub.num_edges


def test_per_hop_counts_follow_pygs_convention(small_shop):
    g, sub, b = _batch(small_shop)
    seed = b.seed_type
    # nodes added at hop 0 (the seeds), 1, 2; edges added at hop 1, 2
    assert b.num_sampled_nodes_dict[seed][0] == b.num_seeds
    for nt, counts in b.num_sampled_nodes_dict.items():
        assert len(counts) == 3 and sum(counts) == b.n_id_dict[nt].numel()
        assert [sum(counts[: h + 1]) for h in range(3)] == sub.node_hops[nt]
    for et, counts in b.num_sampled_edges_dict.items():
        assert len(counts) == 2 and sum(counts) == b.edge_index_dict[et].shape[1]
        # the edges of hop 1 end at the seeds' hop
        hop1 = b.edge_index_dict[et][:, : counts[0]]
        if hop1.numel():
            assert int(hop1[1].max()) < b.num_sampled_nodes_dict[et[2]][0]


def test_a_subgraph_without_hop_layout_gives_no_counts(small_shop):
    g, sub, _ = _batch(small_shop)
    bare = Subgraph(sub.seed_type, sub.num_seeds, sub.node, sub.anchor, sub.edge_index)
    b = load(g, bare)
    assert b.num_sampled_nodes_dict is None and b.num_sampled_edges_dict is None


def test_seeds_alone_give_a_batch_of_the_seed_type_only(small_shop):
    g, sub, b = _batch(small_shop, n=5, fanouts=())
    assert list(b.n_id_dict) == [b.seed_type] and b.edge_index_dict == {}
    assert b.x_num_dict[b.seed_type].shape[0] == 5
