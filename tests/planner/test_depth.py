"""The default depth: layers reach the farthest linked table, unless the statement sets them."""
from __future__ import annotations

import duckdb
import pytest

from rdl_sql.datasets.shop import build_shop
from rdl_sql.datasets.three_hop import build_three_hop
from rdl_sql.planner.depth import default_depth, link_distances
from rdl_sql.planner.extract import reachable
from rdl_sql.planner.options import DEPTH_FANOUTS, MAX_DEFAULT_LAYERS, Options
from rdl_sql.planner.schema import read_schema


@pytest.fixture(scope="module")
def schemas():
    out = {}
    for name, build in (("shop", build_shop), ("three_hop", build_three_hop)):
        con = duckdb.connect()
        build(con, customers=20, products=5, days=20, seed=0)
        out[name] = read_schema(con)
        con.close()
    return out


def test_three_links_to_the_reviews_give_three_layers(schemas):
    s = schemas["three_hop"]
    assert link_distances(s, "customers") == {"customers": 0, "orders": 1, "products": 2, "reviews": 3}
    assert default_depth(s, "customers") == 3
    # and three layers read every table: the extracted graph holds the reviews
    assert "reviews" in reachable(s, "customers", default_depth(s, "customers"))
    assert "reviews" not in reachable(s, "customers", 2)


def test_every_table_one_link_away_still_gives_two_layers(schemas):
    con = duckdb.connect()
    con.execute("CREATE TABLE planes (tailnum VARCHAR PRIMARY KEY, seats INTEGER)")
    con.execute("CREATE TABLE flights (flight_id BIGINT PRIMARY KEY, tailnum VARCHAR REFERENCES planes (tailnum), "
                "dep_at TIMESTAMP, delay DOUBLE)")
    s = read_schema(con)
    con.close()
    assert link_distances(s, "flights") == {"flights": 0, "planes": 1}
    assert default_depth(s, "flights") == 2  # the other flights of the same plane are two links away
    assert default_depth(schemas["shop"], "customers") == 2


def test_with_depth_sets_layers_and_their_fanouts_unless_given():
    assert Options().with_depth(3).layers == 3 and Options().with_depth(3).hop_fanouts == DEPTH_FANOUTS[3]
    assert Options().with_depth(7).layers == MAX_DEFAULT_LAYERS
    given = Options.parse([("layers", 2, None)])
    assert given.with_depth(3) == given
    # fan-outs given for two hops: the depth stays two
    two = Options.parse([("fanouts", "32,16", None)])
    assert two.with_depth(3).layers == 2 and two.with_depth(3).hop_fanouts == (32, 16)
    three = Options.parse([("fanouts", "32,16,8", None)])
    assert three.with_depth(3).hop_fanouts == (32, 16, 8)
    # one fan-out per layer: three given on a schema two links deep still read three hops, one reads one
    assert three.with_depth(2).layers == 3 and three.with_depth(2).hop_fanouts == (32, 16, 8)
    assert Options.parse([("fanouts", "8", None)]).with_depth(3).hop_fanouts == (8,)
    assert "layers" not in Options().with_depth(3).given  # the statement's canonical text is unchanged
