"""Graph tensors and encoders: vocabularies, unseen categories, missing numbers, times and CSR."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
import torch

from rdl_sql.planner.extract import extract, reachable
from rdl_sql.planner.schema import Column, TableInfo, read_schema
from rdl_sql.udfs.columns import encode_features, fit_spec
from rdl_sql.udfs.encoders import US_PER_DAY, RelativeTimeEncoder, TableEncoder
from rdl_sql.udfs.graph import STATIC_TIME, build_graph

INFO = TableInfo("t", (Column("id", "INTEGER", "id"), Column("color", "VARCHAR", "categorical"),
                       Column("size", "DOUBLE", "numerical")), ("id",), None, 0)


def table(colors, sizes):
    return pa.table({"color": pa.array(colors, pa.string()), "size": pa.array(sizes, pa.float64())})


def test_vocabulary_is_ordered_by_frequency_then_value():
    spec = fit_spec(table(["b", "a", "c", None, "a", "b", "a", "d"], [1.0] * 8), INFO)
    assert spec.categorical == ["color"]
    assert spec.vocabs == [["a", "b", "c", "d"]]  # a: 3, b: 2, then c and d (1 each) by value
    assert spec.cat_sizes == [5]  # code 0 is NULL or unseen


def test_category_codes_with_null_and_unseen_values_as_zero():
    spec = fit_spec(table(["b", "a", "a", None], [1.0, 2.0, 3.0, 4.0]), INFO)
    _, x_cat = encode_features(table(["a", "b", None, "never seen"], [1.0] * 4), spec)
    assert x_cat.dtype == torch.long
    assert x_cat[:, 0].tolist() == [1, 2, 0, 0]


def test_numbers_are_standardised_and_missing_values_flagged():
    spec = fit_spec(table(["a"] * 4, [1.0, None, 3.0, float("nan")]), INFO)
    assert spec.numerical == ["size"]
    assert spec.means == [2.0] and spec.stds == [1.0]  # statistics of the finite values only
    x_num, _ = encode_features(table(["a"] * 5, [1.0, None, 3.0, float("nan"), float("inf")]), spec)
    assert x_num.shape == (5, 2)
    assert x_num[:, 0].tolist() == [-1.0, 0.0, 1.0, 0.0, 0.0]
    assert x_num[:, 1].tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]  # value, is-missing flag
    assert torch.isfinite(x_num).all()


def test_constant_and_empty_columns_do_not_divide_by_zero():
    spec = fit_spec(table(["a", "a"], [5.0, 5.0]), INFO)
    assert spec.stds == [1.0]
    empty = fit_spec(table([None, None], [None, None]), INFO)
    assert empty.means == [0.0] and empty.stds == [1.0] and empty.vocabs == [[]]
    x_num, x_cat = encode_features(table([None, "x"], [None, 7.0]), empty)
    assert x_num.tolist() == [[0.0, 1.0], [7.0, 0.0]]
    assert x_cat.tolist() == [[0], [0]]


def test_outliers_are_clipped():
    spec = fit_spec(table(["a"] * 2, [0.0, 2.0]), INFO)
    x_num, _ = encode_features(table(["a"], [1e9]), spec)
    assert x_num[0, 0] == 10.0


def test_graph_times_ranks_and_static_rows(tiny):
    s = read_schema(tiny)
    g = build_graph(extract(tiny, s, reachable(s, "customers", 2), None))
    assert g.node_types == {"n0": "customers", "n1": "orders", "n2": "products"}
    c, o, p = (g.nodes[g.type_of(t)] for t in ("customers", "orders", "products"))
    assert (c.num_nodes, o.num_nodes, p.num_nodes) == (4, 11, 3)
    assert p.time.tolist() == [STATIC_TIME] * 3 and p.rank.tolist() == [0, 0, 0]
    # ranks are 1-based positions among every dated time of the graph; equal times share a rank
    assert torch.equal(g.times, torch.unique(torch.cat([c.time, o.time])))
    assert bool((g.times[o.rank - 1] == o.time).all())
    assert int(o.time[2]) == int(dt.datetime(2024, 1, 10, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000
    # anchor_rank: how many distinct times are at or before the anchor
    a = o.time[2:3]
    assert int(g.anchor_rank(a)) == int((g.times <= a).sum())
    assert int(g.anchor_rank(a - 1)) == int(g.anchor_rank(a)) - 1
    # features: customers.age (value + flag), customers.country (vocab of 3)
    assert c.x_num.shape == (4, 2) and c.x_cat.shape == (4, 1)
    assert c.x_num[:, 1].tolist() == [0.0, 0.0, 0.0, 1.0]  # customer 4 has no age
    assert g.specs["customers"].vocabs == [["US", "DE", "FR"]]
    assert c.x_cat[:, 0].tolist() == [1, 2, 1, 3]


def test_csr_segments_are_sorted_by_neighbour_time(tiny):
    s = read_schema(tiny)
    g = build_graph(extract(tiny, s, ["customers", "orders"], None))
    cust, orders = g.type_of("customers"), g.type_of("orders")
    (et,) = [et for et in g.edge_types if et[0] == orders and et[2] == cust]
    csr = g.csr[et]
    assert csr.rowptr.tolist() == [0, 7, 10, 11, 11]  # customer 1: 7 orders, 2: 3, 3: 1, 4: none
    for d in range(4):
        seg = csr.col[csr.rowptr[d]:csr.rowptr[d + 1]]
        times = g.nodes[orders].time[seg]
        assert bool((times[1:] >= times[:-1]).all())
    assert sorted(csr.col[:7].tolist()) == [0, 1, 2, 3, 4, 5, 6]
    (rev,) = [et for et in g.edge_types if et[0] == cust and et[2] == orders]
    assert g.csr[rev].rowptr.tolist() == list(range(12))  # one customer per order
    assert g.csr[rev].col.tolist() == [0] * 7 + [1] * 3 + [2]


def test_graph_rebuilt_with_stored_specs_encodes_unseen_values_as_zero(tiny):
    s = read_schema(tiny)
    first = build_graph(extract(tiny, s, ["customers"], None))
    tiny.execute("INSERT INTO customers VALUES (5, '2024-02-01', 'JP', 1000)")
    again = build_graph(extract(tiny, s, ["customers"], None), first.specs)
    c = again.nodes[again.type_of("customers")]
    assert again.specs["customers"] is first.specs["customers"]
    assert c.x_cat[:, 0].tolist() == [1, 2, 1, 3, 0]  # JP was never seen
    assert c.x_num[4, 0] == 10.0  # clipped with the stored statistics, not refitted
    refit = build_graph(extract(tiny, s, ["customers"], None))
    assert "JP" in refit.specs["customers"].vocabs[0]


def test_table_names_with_spaces_become_plain_type_names(weird):
    s = read_schema(weird)
    g = build_graph(extract(weird, s, reachable(s, "group", 1), None))
    assert set(g.node_types.values()) == {"group", "Order Items"}
    assert all(k.isidentifier() for k in g.node_types)
    assert all(part.isidentifier() for et in g.edge_types for part in et)


def test_table_encoder_sums_numeric_and_categorical_parts():
    spec = fit_spec(table(["a", "b"], [1.0, 2.0]), INFO)
    enc = TableEncoder(spec, 8)
    x_num, x_cat = encode_features(table(["a", "b", None], [1.0, 2.0, None]), spec)
    out = enc(x_num, x_cat)
    assert out.shape == (3, 8)
    expected = enc.bias + enc.num(x_num) + enc.cats[0](x_cat[:, 0])
    assert torch.allclose(out, expected)


def test_relative_time_encoding_depends_on_age_only_and_flags_static_rows():
    enc = RelativeTimeEncoder(8)
    t = torch.tensor([0, 10 * US_PER_DAY, STATIC_TIME])
    one = enc(t, torch.full((3,), 20 * US_PER_DAY))
    shifted = enc(t + torch.tensor([365 * US_PER_DAY, 365 * US_PER_DAY, 0]), torch.full((3,), 385 * US_PER_DAY))
    assert torch.allclose(one, shifted, atol=1e-5)
    # a static row reads the same at every anchor, and differently from a row dated at the anchor
    later = enc(t, torch.full((3,), 10_000 * US_PER_DAY))
    assert torch.allclose(one[2], later[2])
    assert not torch.allclose(enc(torch.tensor([5 * US_PER_DAY]), torch.tensor([5 * US_PER_DAY])), one[2:3])
    # rows dated after the anchor never reach the encoder; if one did, it would read as age 0, not negative
    assert torch.allclose(enc(torch.tensor([30 * US_PER_DAY]), torch.tensor([20 * US_PER_DAY])),
                          enc(torch.tensor([20 * US_PER_DAY]), torch.tensor([20 * US_PER_DAY])))


def test_empty_graph_has_no_times():
    from rdl_sql.planner.extract import ExtractedGraph
    ext = ExtractedGraph({"t": pa.table({"__node": pa.array([0, 1], pa.int64()),
                                         "__time_us": pa.array([None, None], pa.int64()),
                                         "color": pa.array(["a", "b"]), "size": pa.array([1.0, np.nan])})},
                         {}, {"t": INFO}, None)
    g = build_graph(ext)
    assert g.times.numel() == 0 and g.stride == 2
    assert g.nodes["n0"].rank.tolist() == [0, 0]
    assert g.anchor_rank(torch.tensor([0])).tolist() == [0]


@pytest.mark.parametrize("dtype", ["TIMESTAMP WITH TIME ZONE", "DATE", "TIMESTAMP_MS"])
def test_time_columns_of_every_type_become_microseconds(con, dtype):
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE TABLE e (id INTEGER PRIMARY KEY, happened {dtype})")
    con.execute("INSERT INTO e VALUES (1, '2024-01-02')")
    g = build_graph(extract(con, read_schema(con), ["e"], dt.datetime(2024, 1, 2)))
    assert g.nodes["n0"].time.tolist() == [int(dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc).timestamp()) * 10 ** 6]


def test_a_second_timestamp_later_than_the_anchor_is_hidden_like_null():
    """A row visible now must not reveal a future date (e.g. ended_at): it encodes as missing."""
    from rdl_sql.udfs.encoders import timestamp_features
    day = 86_400.0
    anchor_us = torch.tensor([10 * day * 1e6] * 3, dtype=torch.float64).long()
    x_ts = torch.tensor([[4 * day], [float("nan")], [30 * day]], dtype=torch.float64)
    f = timestamp_features(x_ts, anchor_us)
    assert f[0, 1] == 0 and f[0, 0] > 0            # six days before the anchor: a value
    assert torch.equal(f[1], f[2])                  # the future date looks exactly like NULL
    assert f[2, 1] == 1 and f[2, 0] == 0
