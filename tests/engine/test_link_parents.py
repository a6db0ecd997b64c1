"""A link names one parent row per child row: ADD LINK refuses parent columns that repeat a value, and a
value repeated by rows inserted later never makes GBDT score an entity twice.

20 shops in two regions, 2,000 visits over 2023; GBDT trains in about a second.
"""
from __future__ import annotations

import pytest

import rdl_sql

SHOPS = """
CREATE TABLE regions (region_code VARCHAR, name VARCHAR, area DOUBLE);
INSERT INTO regions VALUES ('N', 'north', 1.0), ('S', 'south', 2.0);
CREATE TABLE shops (shop_id INTEGER PRIMARY KEY, region_code VARCHAR, size DOUBLE);
INSERT INTO shops SELECT i, CASE WHEN i % 2 = 0 THEN 'N' ELSE 'S' END, CASE WHEN i % 5 > 0 THEN i END
FROM range(200) t(i);
CREATE TABLE visits (visit_id INTEGER PRIMARY KEY, shop_id INTEGER REFERENCES shops (shop_id), ts TIMESTAMP);
INSERT INTO visits SELECT i, i % 20, TIMESTAMP '2023-01-01' + INTERVAL (i * 7) HOUR FROM range(2000) t(i);
"""
LINK = "ALTER GRAPH ADD LINK shops(region_code) REFERENCES regions(region_code)"
COUNT = "PREDICT COUNT(visits.*, 0, 7, DAYS) FOR EACH shops.shop_id WHERE shops.shop_id < 20 WITH (model = 'gbdt')"


@pytest.fixture
def shops():
    con = rdl_sql.connect(":memory:")
    con.execute(SHOPS)
    try:
        yield con
    finally:
        con.close()


def links(con) -> list[tuple]:
    return [r for r in con.execute("DESCRIBE GRAPH").fetchall() if r[0] == "shops" and r[1] == "region_code"]


def test_add_link_refuses_a_parent_value_in_several_rows(shops):
    shops.execute("INSERT INTO regions VALUES ('S', 'south again', 3.0)")
    with pytest.raises(rdl_sql.Error) as err:
        shops.execute(LINK)
    message = str(err.value)
    assert "(region_code) does not identify one row of `regions` (region_code = 'S' is in 2 rows)" in message
    assert "declare the link to columns whose values are unique in `regions`" in message
    assert "link" not in links(shops)[0][4]                    # nothing recorded


def test_add_link_names_the_parent_key_to_link_to(shops):
    shops.execute("""CREATE TABLE zones (zone_id INTEGER PRIMARY KEY, region_code VARCHAR);
                     INSERT INTO zones VALUES (1, 'N'), (2, 'N')""")
    with pytest.raises(rdl_sql.Error, match=r"reference its key instead \(ALTER GRAPH ADD LINK shops\(<column>\) "
                                            r"REFERENCES zones\(zone_id\)\)"):
        shops.execute("ALTER GRAPH ADD LINK shops(region_code) REFERENCES zones(region_code)")


def test_add_link_accepts_unique_values_and_repeated_nulls(shops):
    shops.execute("INSERT INTO regions VALUES (NULL, 'unknown', 0.0), (NULL, 'unknown too', 0.0)")
    shops.execute(LINK)
    assert "link -> regions(region_code)" in links(shops)[0][4]


def test_a_parent_value_repeated_after_add_link_scores_each_entity_once(shops):
    shops.execute(LINK)
    shops.execute("INSERT INTO regions VALUES ('S', 'south again', 3.0)")   # after the link: nothing refuses it
    rows = shops.execute(COUNT).fetchall()
    assert sorted(r[0] for r in rows) == list(range(20))


def test_a_column_target_with_a_repeated_parent_value_fills_each_null_once(shops):
    shops.execute(LINK)
    shops.execute("INSERT INTO regions VALUES ('S', 'south again', 3.0)")
    rows = shops.execute("PREDICT shops.size FOR EACH shops.shop_id WITH (model = 'gbdt')").fetchall()
    assert sorted(r[0] for r in rows) == list(range(0, 200, 5))            # the 40 shops whose size is NULL


def test_adding_a_link_twice_says_nothing_changed(shops):
    """It said 'added' again; one link was kept, as now."""
    assert shops.execute(LINK).fetchall() == [("link shops(region_code) -> regions(region_code) added",)]
    assert shops.execute(LINK).fetchall() == [
        ("link shops(region_code) -> regions(region_code) was already there; nothing changed",)]
    declared = shops.execute("ALTER GRAPH ADD LINK visits(shop_id) REFERENCES shops(shop_id)").fetchall()
    assert declared == [("link visits(shop_id) -> shops(shop_id) was already there; nothing changed",)]
    links = [r for r in shops.execute("DESCRIBE GRAPH").fetchall() if str(r[4]).startswith("link")]
    assert len(links) == 2
