"""Extraction queries: node tables, edge tables, the AS OF cut, NULL and dangling keys."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa

from rdl_sql.planner import overrides
from rdl_sql.planner.extract import extract, reachable
from rdl_sql.planner.schema import Link, read_schema

A = dt.datetime(2024, 1, 10)
EPOCH = dt.datetime(1970, 1, 1)


def us(t: dt.datetime) -> int:
    return (t - EPOCH) // dt.timedelta(microseconds=1)


def edge_pairs(con, g, link: Link) -> set[tuple]:
    """Edges as (child primary key, parent key) pairs, by looking node ids up in rowid order."""
    child_pk = g.tables[link.child].primary_key[0]
    child_keys = [r[0] for r in con.execute(
        f'SELECT "{child_pk}" FROM "{link.child}" ORDER BY rowid').fetchall()]
    parent_keys = [r[0] for r in con.execute(
        f'SELECT "{link.parent_columns[0]}" FROM "{link.parent}" ORDER BY rowid').fetchall()]
    return {(child_keys[s], parent_keys[d]) for s, d in zip(g.edges[link].column("src").to_pylist(),
                                                            g.edges[link].column("dst").to_pylist())}


def test_reachable_is_breadth_first(tiny):
    s = read_schema(tiny)
    assert reachable(s, "customers", 0) == ["customers"]
    assert reachable(s, "customers", 1) == ["customers", "orders"]
    assert reachable(s, "customers", 2) == ["customers", "orders", "products"]
    assert reachable(s, "products", 1) == ["products", "orders"]


def test_node_tables_hold_ids_times_and_features(tiny):
    s = read_schema(tiny)
    g = extract(tiny, s, ["customers", "orders", "products"], None)
    c = g.nodes["customers"]
    assert c.column_names == ["__node", "__time_us", "country", "age"]
    assert c.column("__node").to_pylist() == [0, 1, 2, 3]
    assert c.column("__time_us").to_pylist() == [us(dt.datetime(2023, 9, 1)), us(dt.datetime(2023, 12, 15)),
                                                 us(dt.datetime(2024, 1, 15)), us(dt.datetime(2023, 11, 1))]
    assert c.column("country").to_pylist() == ["US", "DE", "US", "FR"]
    assert c.column("age").to_pylist() == [30.0, 40.0, 25.0, None]
    assert pa.types.is_floating(c.schema.field("age").type)
    p = g.nodes["products"]
    assert p.column("__time_us").null_count == 3  # static table: no time
    assert g.nodes["orders"].num_rows == 11
    assert g.tables["orders"].time_column == "ordered_at"
    assert g.as_of is None


def test_edges_join_child_and_parent_keys(tiny):
    s = read_schema(tiny)
    g = extract(tiny, s, ["customers", "orders", "products"], None)
    to_customer = Link("orders", ("customer_id",), "customers", ("customer_id",))
    to_product = Link("orders", ("product_id",), "products", ("product_id",))
    assert set(g.edges) == {to_customer, to_product}
    expected = {(o[0], o[1]) for o in tiny.execute("SELECT order_id, customer_id FROM orders").fetchall()}
    assert edge_pairs(tiny, g, to_customer) == expected
    expected = {(o[0], o[1]) for o in tiny.execute("SELECT order_id, product_id FROM orders").fetchall()}
    assert edge_pairs(tiny, g, to_product) == expected


def test_only_links_among_the_extracted_tables_are_extracted(tiny):
    g = extract(tiny, read_schema(tiny), ["customers", "orders"], None)
    assert set(g.nodes) == {"customers", "orders"}
    assert list(g.edges) == [Link("orders", ("customer_id",), "customers", ("customer_id",))]


def test_as_of_drops_later_rows_and_renumbers_nodes(tiny):
    s = read_schema(tiny)
    g = extract(tiny, s, ["customers", "orders", "products"], A)
    assert g.as_of == A
    # orders up to and including A: 1, 2, 3 (exactly at A), 8; customer 3 signs up later
    assert g.nodes["orders"].num_rows == 4
    assert g.nodes["orders"].column("__node").to_pylist() == [0, 1, 2, 3]
    assert max(g.nodes["orders"].column("__time_us").to_pylist()) == us(A)
    assert g.nodes["customers"].column("country").to_pylist() == ["US", "DE", "FR"]
    assert g.nodes["products"].num_rows == 3  # static rows are always there
    to_customer = Link("orders", ("customer_id",), "customers", ("customer_id",))
    # order i (i = 1, 2, 3, 8) -> node (0, 1, 2, 3); customers 1, 2, 4 -> nodes 0, 1, 2
    src_dst = sorted(zip(g.edges[to_customer].column("src").to_pylist(),
                         g.edges[to_customer].column("dst").to_pylist()))
    assert src_dst == [(0, 0), (1, 0), (2, 0), (3, 1)]


def test_every_extracted_time_is_at_or_before_as_of(shop_small):
    s = read_schema(shop_small)
    as_of = dt.datetime(2023, 5, 1)
    g = extract(shop_small, s, reachable(s, "customers", 2), as_of)
    for name, tbl in g.nodes.items():
        times = [t for t in tbl.column("__time_us").to_pylist() if t is not None]
        if g.tables[name].time_column is None:
            assert times == [], name
            continue
        assert times and max(times) <= us(as_of), name
        assert tbl.column("__node").to_pylist() == list(range(tbl.num_rows))
    for link, e in g.edges.items():
        assert max(e.column("src").to_pylist()) < g.nodes[link.child].num_rows
        assert max(e.column("dst").to_pylist()) < g.nodes[link.parent].num_rows


def test_planted_future_rows_leave_the_extraction_unchanged(tiny):
    s = read_schema(tiny)
    tables = ["customers", "orders", "products"]
    before = extract(tiny, s, tables, A)
    # a future order for every existing customer, a future customer with an order, one a microsecond late
    tiny.execute("INSERT INTO orders SELECT 100 + customer_id, customer_id, 2, TIMESTAMP '2024-01-11', 999 "
                 "FROM customers")
    tiny.execute("INSERT INTO customers VALUES (50, '2024-01-10 00:00:00.000001', 'XX', 99)")
    tiny.execute("INSERT INTO orders VALUES (200, 50, 1, '2024-01-10 00:00:00.000001', 5000)")
    tiny.execute("INSERT INTO orders VALUES (201, 1, 1, '2024-01-10 00:00:00.000001', 5000)")
    after = extract(tiny, read_schema(tiny), tables, A)
    assert set(after.nodes) == set(before.nodes) and set(after.edges) == set(before.edges)
    for t in tables:
        assert after.nodes[t].equals(before.nodes[t]), t
    for lk in before.edges:
        assert after.edges[lk].equals(before.edges[lk]), lk.name
    # and the same rows are there when the cut moves past them
    later = extract(tiny, read_schema(tiny), tables, A + dt.timedelta(days=1))
    assert later.nodes["orders"].num_rows == before.nodes["orders"].num_rows + 4 + 2 + 1


def test_undated_rows_of_a_dated_table_are_always_present(tiny):
    tiny.execute("INSERT INTO orders VALUES (300, 2, 1, NULL, 1.5)")
    g = extract(tiny, read_schema(tiny), ["customers", "orders"], dt.datetime(2000, 1, 1))
    assert g.nodes["orders"].column("__time_us").to_pylist() == [None]
    assert g.nodes["customers"].num_rows == 0
    assert g.edges[Link("orders", ("customer_id",), "customers", ("customer_id",))].num_rows == 0


def test_null_and_dangling_keys_give_nodes_without_edges(con):
    con.execute("""
        CREATE TABLE users (user_id INTEGER PRIMARY KEY, joined DATE);
        CREATE TABLE posts (post_id INTEGER PRIMARY KEY, author INTEGER, posted DATE, words INTEGER);
        INSERT INTO users VALUES (1, '2024-01-01'), (2, '2024-01-02');
        INSERT INTO posts VALUES (10, 1, '2024-01-03', 5), (11, NULL, '2024-01-03', 6),
                                 (12, 7, '2024-01-04', 7), (13, 2, '2024-01-05', 8);
    """)
    overrides.add_link(con, "posts", ["author"], "users", ["user_id"])
    s = read_schema(con)
    g = extract(con, s, ["users", "posts"], None)
    assert g.nodes["posts"].column("words").to_pylist() == [5.0, 6.0, 7.0, 8.0]  # every row is a node
    assert edge_pairs(con, g, s.links[0]) == {(10, 1), (13, 2)}
    # a DATE time column comes out as midnight in microseconds
    assert g.nodes["users"].column("__time_us").to_pylist() == [us(dt.datetime(2024, 1, 1)),
                                                                us(dt.datetime(2024, 1, 2))]


def test_composite_keys_join_on_every_column(con):
    con.execute("""
        CREATE TABLE seats (room INTEGER, seat INTEGER, PRIMARY KEY (room, seat));
        CREATE TABLE bookings (booking_id INTEGER PRIMARY KEY, room INTEGER, seat INTEGER, booked_at TIMESTAMP,
                               FOREIGN KEY (room, seat) REFERENCES seats (room, seat));
        INSERT INTO seats VALUES (1, 1), (1, 2), (2, 1);
        INSERT INTO bookings VALUES (10, 1, 2, '2024-01-01'), (11, 2, 1, '2024-01-02'), (12, 1, 1, '2024-01-03');
    """)
    s = read_schema(con)
    g = extract(con, s, ["seats", "bookings"], None)
    e = g.edges[s.links[0]]
    assert sorted(zip(e.column("src").to_pylist(), e.column("dst").to_pylist())) == [(0, 1), (1, 2), (2, 0)]


def test_second_timestamp_is_an_epoch_seconds_feature(con):
    con.execute("""
        CREATE TABLE trips (trip_id INTEGER PRIMARY KEY, started_at TIMESTAMP, ended_at TIMESTAMP, kind VARCHAR);
        INSERT INTO trips VALUES (1, '2024-01-01', '2024-01-01 00:00:10', 'a');
    """)
    overrides.set_time_column(con, "trips", "started_at")
    g = extract(con, read_schema(con), ["trips"], None)
    assert g.nodes["trips"].column_names == ["__node", "__time_us", "ended_at", "kind"]
    assert g.nodes["trips"].column("ended_at").to_pylist() == [us(dt.datetime(2024, 1, 1)) / 1e6 + 10]


def test_identifiers_that_need_quoting_extract(weird):
    s = read_schema(weird)
    g = extract(weird, s, reachable(s, "group", 1), dt.datetime(2024, 1, 15))
    assert set(g.nodes) == {"group", "Order Items"}
    items = g.nodes["Order Items"]
    assert items.column_names == ["__node", "__time_us", "select", 'a"b']
    # items 10, 11, 13, 14 are at or before 2024-01-15; 12 and 15 are later
    assert items.column("select").to_pylist() == [2.0, 0.5, 3.0, 9.0]
    assert items.column('a"b').to_pylist() == ["x", "y", None, "z"]
    assert g.nodes["group"].column("Name").to_pylist() == ["O'Brien", "select"]
    # item 14 has a NULL user: a node without an edge
    e = g.edges[s.links[0]]
    assert sorted(zip(e.column("src").to_pylist(), e.column("dst").to_pylist())) == [(0, 0), (1, 0), (2, 1)]
