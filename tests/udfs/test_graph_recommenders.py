"""The graph recommenders: chunked top-k equals the full score matrix, and the conditioned model's context."""
import io

import duckdb
import numpy as np
import pytest
import torch

from rdl_sql.bind import to_query
from rdl_sql.dialect import parse_statement
from rdl_sql.engine import recommend
from rdl_sql.planner.options import DEFAULTS
from rdl_sql.planner.ranking import compile_ranking
from rdl_sql.planner.schema import read_schema
from rdl_sql.udfs import ranking


@pytest.fixture
def tiny_model():
    con = duckdb.connect()
    con.execute("""
        CREATE TABLE customers (customer_id BIGINT PRIMARY KEY);
        CREATE TABLE products (product_id BIGINT PRIMARY KEY, brand VARCHAR);
        CREATE TABLE orders (order_id BIGINT PRIMARY KEY, customer_id BIGINT REFERENCES customers,
                             product_id BIGINT REFERENCES products, ordered_at TIMESTAMP);
        INSERT INTO customers SELECT i FROM range(6) t(i);
        INSERT INTO products SELECT i, 'b' || (i % 3) FROM range(9) t(i);
        -- customer c orders product (c + j) % 9 on day j for j < 5, and product c once more on day 6
        INSERT INTO orders SELECT c * 10 + j, c, (c + j) % 9, TIMESTAMP '2024-01-01' + INTERVAL (j) DAY
            FROM range(6) a(c), range(5) b(j);
        INSERT INTO orders SELECT 100 + c, c, c, TIMESTAMP '2024-01-07' FROM range(6) a(c);
    """)
    sql = "PREDICT LIST_DISTINCT(orders.product_id, 0, 1, DAYS) RANK TOP 4 FOR EACH customers.customer_id"
    plan = compile_ranking(con, read_schema(con), to_query(parse_statement(sql), sql), training=False)
    graph, entity_edge, item_edge = recommend._graph(con, plan, ["customers", "orders", "products"])
    torch.manual_seed(0)
    model = ranking.TwoTower(graph.node_specs(), graph.edge_types, 8, 2, conditioned=True)
    m = ranking.TwoTowerModel(model, graph, graph.type_of("customers"), graph.type_of("products"), (16, 8),
                              "recent", 8, 2, {}, entity_edge, item_edge)
    yield m
    con.close()


def test_chunked_top_k_equals_the_full_score_matrix(tiny_model, monkeypatch):
    m = tiny_model
    m.model.context = None  # the two-tower alone: its full matrix is a plain product of embeddings
    nodes = np.arange(6)
    anchor = int(np.datetime64("2024-01-08", "us").astype(np.int64))
    anchors = np.full(6, anchor)
    items = np.arange(9)
    entity = ranking.embed_many(m, "entity", nodes, anchors)
    full = entity @ ranking.embed_many(m, "item", items, np.full(9, anchor)).T
    want = torch.topk(full, 4, dim=1).indices.numpy()
    monkeypatch.setattr(ranking, "MAX_CELLS", 10)  # one entity per chunk
    got = ranking.top_k(m, nodes, anchors, 4, {anchor: items}).to_pandas()
    assert len(got) == 24 and got.groupby("__row")["rank"].apply(list).tolist() == [[1, 2, 3, 4]] * 6
    for r in range(6):
        assert got[got["__row"] == r].sort_values("rank")["__item"].tolist() == want[r].tolist()
    # k larger than the candidates: as many rows as candidates; no candidates: no rows
    assert len(ranking.top_k(m, nodes[:1], anchors[:1], 50, {anchor: items[:3]})) == 3
    assert len(ranking.top_k(m, nodes[:1], anchors[:1], 5, {anchor: items[:0]})) == 0


def test_context_counts_paths_and_age_from_the_entity_own_rows_only(tiny_model):
    m = tiny_model
    anchor = int(np.datetime64("2024-01-08", "us").astype(np.int64))
    from rdl_sql.udfs.sampler import sample
    sub = sample(m.graph, m.entity_type, torch.tensor([2]), torch.tensor([anchor]), [16, 8], "recent")
    seed, item, feats = ranking.context_pairs(m, sub)
    got = {int(i): (round(float(np.expm1(f[0])), 3), round(float(np.expm1(f[1])), 3))
           for i, f in zip(item.tolist(), feats.numpy())}
    assert set(seed.tolist()) == {0}
    # customer 2 bought products 2..6 on days 0..4 and product 2 again on day 6 (1 day before the anchor)
    assert got[2] == (2.0, 1.0)
    assert {i: c for i, (c, _) in got.items()} == {2: 2.0, 3: 1.0, 4: 1.0, 5: 1.0, 6: 1.0}
    assert got[6][1] == pytest.approx(3.0)  # day 4 -> 3 days before the anchor
    # an anchor before every order: nothing reached
    early = sample(m.graph, m.entity_type, torch.tensor([2]), torch.tensor([anchor - 10 * 86_400_000_000]),
                   [16, 8], "recent")
    assert ranking.context_pairs(m, early)[0].numel() == 0


def test_stored_form_round_trips(tiny_model):
    m = tiny_model
    back = ranking.loads(ranking.dumps(m), m.graph)
    assert back.conditioned and back.entity_edge == m.entity_edge and back.item_edge == m.item_edge
    anchor = int(np.datetime64("2024-01-08", "us").astype(np.int64))
    a = ranking.top_k(m, np.arange(6), np.full(6, anchor), 3, {anchor: np.arange(9)})
    b = ranking.top_k(back, np.arange(6), np.full(6, anchor), 3, {anchor: np.arange(9)})
    assert a.equals(b)
    # a format 1 two-tower (stored before every edge type ran for every destination) is rebuilt as trained
    state = torch.load(io.BytesIO(ranking.dumps(m)), weights_only=True)
    buf = io.BytesIO()
    torch.save(dict(state, format=1), buf)
    assert not ranking.loads(buf.getvalue(), m.graph).model.entity.gnn.every_type
    assert back.model.entity.gnn.every_type
    assert DEFAULTS.model == "gnn"  # a ranking statement's default model is the two-tower (engine/recommend.py)
