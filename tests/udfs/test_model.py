"""The model: shapes over x_dict / edge_index_dict, reset_parameters, layer trimming, metadata only."""
from __future__ import annotations

import re

import pytest
import torch
from torch_geometric.nn import SAGEConv

from rdl_sql.udfs.columns import ColumnSpec
from rdl_sql.udfs.loader import Batch, load
from rdl_sql.udfs.model import HeteroEncoder, HeteroGraphSAGE, RelationalConv, RelationalGNN, newest_edge
from rdl_sql.udfs.sampler import sample

DAY_US = 86_400 * 1_000_000


def _batch(graph, val, n=64, fanouts=(4, 4)):
    return load(graph, sample(graph, graph.type_of("customers"), val.node[:n], val.anchor[:n], list(fanouts),
                              "recent"))


def _model(graph, layers=2, channels=16, out_dim=1, seed=0):
    torch.manual_seed(seed)
    return RelationalGNN(graph.node_specs(), graph.edge_types, channels, layers, out_dim)


def test_shapes_over_x_dict_and_edge_index_dict(small_shop, one_thread_torch):
    g, val = small_shop["graph"], small_shop["val"]
    b = _batch(g, val)
    model = _model(g, out_dim=3).eval()
    with torch.no_grad():
        x_dict = model.embed(b)
        assert {nt: tuple(x.shape) for nt, x in x_dict.items()} == {nt: (ids.numel(), 16)
                                                                   for nt, ids in b.n_id_dict.items()}
        full = model.gnn(x_dict, b.edge_index_dict)
        assert {nt: x.shape for nt, x in full.items()} == {nt: x.shape for nt, x in x_dict.items()}
        trimmed = model.gnn(x_dict, b.edge_index_dict, b.num_sampled_nodes_dict, b.num_sampled_edges_dict)
        # trimmed: only the seeds' hop of each type is left
        assert {nt: x.shape[0] for nt, x in trimmed.items()} == {nt: c[0] for nt, c in
                                                                 b.num_sampled_nodes_dict.items()}
        assert model(b).shape == (64, 3)
    # one RelationalConv per edge type and layer, keyed as HeteroConv keys them; a LayerNorm per node type and layer
    names = dict(model.named_parameters())
    for et in g.edge_types:
        assert f"gnn.convs.1.<{'___'.join(et)}>.lin_aggr.weight" in names
    assert all(f"gnn.norms.0.{nt}.weight" in names for nt in g.node_types)


def test_layer_trimming_gives_the_untrimmed_seed_outputs(small_shop, one_thread_torch):
    g, val = small_shop["graph"], small_shop["val"]
    for layers in (1, 2, 3):
        b = _batch(g, val, n=128, fanouts=(4,) * layers)
        model = _model(g, layers=layers).eval()
        with torch.no_grad():
            assert torch.allclose(model(b), model(b, trim=False), atol=1e-5), layers


def test_reset_parameters_reinitialises_every_parameter(small_shop):
    g = small_shop["graph"]
    model = _model(g)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.123)
    model.reset_parameters()
    for name, p in model.named_parameters():
        assert not torch.all(p == 0.123), name
    # deterministic parts come back exactly: zero biases of the table encoders, layer norms
    state = model.state_dict()
    for name in state:
        if re.fullmatch(r"encoder\.encoders\.\w+\.bias", name) or ".norms." in name:
            assert torch.equal(state[name], fresh[name]), name
    # random parts are redrawn: the same seed redraws the same values
    torch.manual_seed(5)
    model.reset_parameters()
    first = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(5)
    model.reset_parameters()
    assert all(torch.equal(first[k], v) for k, v in model.state_dict().items())


def test_each_module_has_reset_parameters():
    spec = ColumnSpec(numerical=["x"], means=[0.0], stds=[1.0])
    for module in (HeteroEncoder({"a": spec}, 4), HeteroGraphSAGE(["a"], [("a", "r0", "a")], 4, 2)):
        module.reset_parameters()


def test_a_model_is_built_from_metadata_alone():
    """No graph: column encodings, node and edge types; a hand-made batch in PyG's shape goes through."""
    specs = {
        "n0": ColumnSpec(numerical=["amount"], means=[10.0], stds=[2.0], categorical=["kind"], vocabs=[["a", "b"]]),
        "n1": ColumnSpec(timestamps=["shipped_at"]),
    }
    edge_types = [("n1", "r0", "n0"), ("n0", "r0_rev", "n1")]
    torch.manual_seed(0)
    model = RelationalGNN(specs, edge_types, channels=8, layers=2, out_dim=1).eval()
    assert model.metadata == (["n0", "n1"], edge_types)
    anchor = 1_000 * DAY_US
    # two seeds of n0; three n1 rows at hop 1 (two under seed 0, one under seed 1); no hop 2
    b = Batch(
        "n0", 2,
        n_id_dict={"n0": torch.tensor([0, 1]), "n1": torch.tensor([0, 1, 2])},
        x_num_dict={"n0": torch.tensor([[0.5, 0.0], [0.0, 1.0]]), "n1": torch.zeros(3, 0)},
        x_cat_dict={"n0": torch.tensor([[1], [0]]), "n1": torch.zeros(3, 0, dtype=torch.long)},
        x_ts_dict={"n0": torch.zeros(2, 0, dtype=torch.float64),
                   "n1": torch.tensor([[990 * 86_400.0], [float("nan")], [1_001 * 86_400.0]], dtype=torch.float64)},
        time_dict={"n0": torch.tensor([anchor - DAY_US, anchor - 5 * DAY_US]),
                   "n1": torch.tensor([anchor - 2 * DAY_US, anchor - 3 * DAY_US, anchor - DAY_US])},
        anchor_dict={"n0": torch.tensor([anchor, anchor]), "n1": torch.tensor([anchor, anchor, anchor])},
        edge_index_dict={("n1", "r0", "n0"): torch.tensor([[0, 1, 2], [0, 0, 1]]),
                         ("n0", "r0_rev", "n1"): torch.zeros(2, 0, dtype=torch.long)},
        num_sampled_nodes_dict={"n0": [2, 0, 0], "n1": [0, 3, 0]},
        num_sampled_edges_dict={("n1", "r0", "n0"): [3, 0], ("n0", "r0_rev", "n1"): [0, 0]},
    )
    with torch.no_grad():
        out = model(b)
        assert out.shape == (2, 1) and torch.isfinite(out).all()
        assert torch.allclose(out, model(b, trim=False), atol=1e-6)


@pytest.mark.parametrize("out_dim", [1, 4])
def test_head_width_follows_out_dim(small_shop, out_dim):
    g, val = small_shop["graph"], small_shop["val"]
    with torch.no_grad():
        assert _model(g, out_dim=out_dim).eval()(_batch(g, val, n=8)).shape == (8, out_dim)


def test_relational_conv_counts_neighbours_where_a_mean_cannot():
    """One source row or four identical ones: the same mean, a different count (and visible count)."""
    torch.manual_seed(0)
    conv = RelationalConv(4).eval()
    x_src, x_dst = torch.ones(5, 4), torch.zeros(2, 4)
    edge_index = torch.tensor([[0, 1, 2, 3, 4], [0, 1, 1, 1, 1]])
    newest = newest_edge(edge_index, torch.zeros(5, dtype=torch.long), 2)
    with torch.no_grad():
        out = conv((x_src, x_dst), edge_index, newest)
        assert not torch.allclose(out[0], out[1], atol=1e-4)
        # the same sample, but destination 0 had 40 rows before its anchor, of which one was sampled
        seen = conv((x_src, x_dst), edge_index, newest, torch.tensor([40, 4]))
        assert not torch.allclose(seen[0], out[0], atol=1e-4) and torch.allclose(seen[1], out[1], atol=1e-6)
        sage = SAGEConv(4, 4, aggr="mean").eval()
        plain = sage((x_src, x_dst), edge_index)
        assert torch.allclose(plain[0], plain[1], atol=1e-6)


def test_newest_edge_is_the_edge_from_the_latest_source_of_each_destination():
    # destination 0: sources at times 5, 9, 7 -> edge 1; destination 1: a tie at 3 -> its first edge (3);
    # destination 2: no edge
    edge_index = torch.tensor([[0, 1, 2, 3, 4], [0, 0, 0, 1, 1]])
    times = torch.tensor([5, 9, 7, 3, 3])
    assert newest_edge(edge_index, times, 3).tolist() == [1, 3, -1]


def test_the_newest_source_changes_the_output_a_mean_would_not():
    """Same multiset of sources, a different one newest: a different output (the mean is the same)."""
    torch.manual_seed(0)
    conv = RelationalConv(4).eval()
    x_src = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    x_dst = torch.zeros(1, 4)
    edge_index = torch.tensor([[0, 1], [0, 0]])
    with torch.no_grad():
        a = conv((x_src, x_dst), edge_index, newest_edge(edge_index, torch.tensor([1, 2]), 1))
        b = conv((x_src, x_dst), edge_index, newest_edge(edge_index, torch.tensor([2, 1]), 1))
    assert not torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("conv", ["relational", "sage"])
def test_layer_trimming_holds_for_each_convolution(small_shop, one_thread_torch, conv):
    g, val = small_shop["graph"], small_shop["val"]
    b = _batch(g, val, n=64, fanouts=(4, 4, 4))
    torch.manual_seed(0)
    model = RelationalGNN(g.node_specs(), g.edge_types, 16, 3, 1, conv).eval()
    with torch.no_grad():
        assert torch.allclose(model(b), model(b, trim=False), atol=1e-5)


def test_merged_leaves_give_the_outputs_of_disjoint_trees(small_shop, one_thread_torch):
    """One node per (row, anchor) in the last hop: fewer rows, the same scores."""
    g, val = small_shop["graph"], small_shop["val"]
    args = (g, g.type_of("customers"), val.node[:128], val.anchor[:128], [4, 4, 4], "recent")
    merged, disjoint = load(g, sample(*args)), load(g, sample(*args, dedupe_leaves=False))
    assert merged.num_nodes < disjoint.num_nodes and merged.num_edges == disjoint.num_edges
    torch.manual_seed(0)
    model = RelationalGNN(g.node_specs(), g.edge_types, 16, 3, 1).eval()
    with torch.no_grad():
        assert torch.allclose(model(merged), model(disjoint), atol=1e-5)
        assert torch.allclose(model(merged), model(merged, trim=False), atol=1e-5)
