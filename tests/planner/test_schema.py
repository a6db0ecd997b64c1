"""Schema discovery: keys, links, time columns, semantic types, ALTER GRAPH overrides."""
from __future__ import annotations

import pytest

from rdl_sql.planner import overrides
from rdl_sql.planner.schema import Link, read_schema


def stypes(tinfo):
    return {c.name: c.stype for c in tinfo.columns}


def test_primary_and_foreign_keys_are_discovered(tiny):
    s = read_schema(tiny)
    assert set(s.tables) == {"customers", "orders", "products"}
    assert s.tables["customers"].primary_key == ("customer_id",)
    assert s.tables["orders"].primary_key == ("order_id",)
    assert set(s.links) == {
        Link("orders", ("customer_id",), "customers", ("customer_id",)),
        Link("orders", ("product_id",), "products", ("product_id",)),
    }
    assert all(lk.declared == "constraint" for lk in s.links)
    assert s.links_from("orders", "customers") == [Link("orders", ("customer_id",), "customers", ("customer_id",))]
    assert s.tables["orders"].rows == 11


def test_semantic_types_per_column(tiny):
    s = read_schema(tiny)
    assert stypes(s.tables["customers"]) == {
        "customer_id": "id", "signup_at": "time", "country": "categorical", "age": "numerical"}
    assert stypes(s.tables["orders"]) == {
        "order_id": "id", "customer_id": "id", "product_id": "id", "ordered_at": "time", "amount": "numerical"}
    # keys and the time column are not features
    assert [c.name for c in s.tables["orders"].features] == ["amount"]


def test_single_timestamp_column_is_the_time_column_and_none_means_static(tiny):
    s = read_schema(tiny)
    assert s.tables["customers"].time_column == "signup_at"
    assert s.tables["orders"].time_column == "ordered_at"
    assert s.tables["products"].time_column is None


def test_single_date_column_is_inferred_as_time(con):
    con.execute("CREATE TABLE visits (visit_id INTEGER PRIMARY KEY, day DATE, pages INTEGER)")
    s = read_schema(con)
    assert s.tables["visits"].time_column == "day"
    assert stypes(s.tables["visits"])["day"] == "time"


def test_two_time_columns_make_a_static_table_with_a_note(con):
    con.execute("CREATE TABLE trips (trip_id INTEGER PRIMARY KEY, started_at TIMESTAMP, ended_at TIMESTAMP)")
    t = read_schema(con).tables["trips"]
    assert t.time_column is None
    assert len(t.notes) == 1
    assert "started_at" in t.notes[0] and "ended_at" in t.notes[0] and "SET TIME COLUMN" in t.notes[0]
    # both remain usable as (absolute) timestamp features
    assert stypes(t)["started_at"] == "timestamp" and stypes(t)["ended_at"] == "timestamp"


def test_time_column_override_resolves_two_candidates_and_can_make_a_table_static(con):
    con.execute("CREATE TABLE trips (trip_id INTEGER PRIMARY KEY, started_at TIMESTAMP, ended_at TIMESTAMP)")
    con.execute("CREATE TABLE days (day_id INTEGER PRIMARY KEY, d DATE)")
    overrides.set_time_column(con, "trips", "ended_at")
    overrides.set_time_column(con, "days", None)
    s = read_schema(con)
    assert s.tables["trips"].time_column == "ended_at"
    assert s.tables["trips"].notes == ()
    assert stypes(s.tables["trips"]) == {"trip_id": "id", "started_at": "timestamp", "ended_at": "time"}
    assert s.tables["days"].time_column is None
    assert "rdl_graph" not in s.tables  # the overrides table is never part of the graph


def test_a_timestamp_in_a_key_is_not_a_time_column(con):
    con.execute("CREATE TABLE snap (ts TIMESTAMP PRIMARY KEY, v DOUBLE)")
    assert read_schema(con).tables["snap"].time_column is None


def test_composite_primary_and_foreign_keys(con):
    con.execute("""
        CREATE TABLE seats (room INTEGER, seat INTEGER, label VARCHAR, PRIMARY KEY (room, seat));
        CREATE TABLE bookings (booking_id INTEGER PRIMARY KEY, room INTEGER, seat INTEGER, booked_at TIMESTAMP,
                               FOREIGN KEY (room, seat) REFERENCES seats (room, seat));
    """)
    s = read_schema(con)
    assert s.tables["seats"].primary_key == ("room", "seat")
    assert s.links == (Link("bookings", ("room", "seat"), "seats", ("room", "seat")),)
    assert stypes(s.tables["bookings"])["room"] == "id"


def test_unique_constraint_serves_as_key_when_no_primary_key(con):
    con.execute("CREATE TABLE users (email VARCHAR UNIQUE, n INTEGER)")
    assert read_schema(con).tables["users"].primary_key == ("email",)


def test_link_override_adds_a_link_without_a_constraint(con):
    con.execute("""
        CREATE TABLE users (user_id INTEGER PRIMARY KEY, name VARCHAR);
        CREATE TABLE posts (post_id INTEGER PRIMARY KEY, author INTEGER, posted_at TIMESTAMP);
    """)
    assert read_schema(con).links == ()
    overrides.add_link(con, "posts", ["author"], "users", ["user_id"])
    s = read_schema(con)
    assert s.links == (Link("posts", ("author",), "users", ("user_id",), "override"),)
    assert stypes(s.tables["posts"])["author"] == "id"  # a link column is a key, not a number
    # and it persists: a fresh read from the same database sees it again
    assert read_schema(con).links == s.links


def test_drop_link_override_removes_a_declared_link(tiny):
    overrides.drop_link(tiny, "orders", ["product_id"])
    s = read_schema(tiny)
    assert s.links == (Link("orders", ("customer_id",), "customers", ("customer_id",)),)


def test_ignore_column_override(tiny):
    overrides.ignore_column(tiny, "customers", "country")
    t = read_schema(tiny).tables["customers"]
    assert stypes(t)["country"] == "ignored"
    assert [c.name for c in t.features] == ["age"]


def test_override_on_missing_table_is_skipped_with_a_note(tiny):
    overrides.set_time_column(tiny, "nope", "x")
    s = read_schema(tiny)
    assert any("nope" in n for n in s.notes)
    assert set(s.tables) == {"customers", "orders", "products"}


def test_many_distinct_strings_are_text_not_categorical(con):
    con.execute("CREATE TABLE notes (note_id INTEGER PRIMARY KEY, body VARCHAR, kind VARCHAR)")
    con.execute("INSERT INTO notes SELECT i, 'note number ' || i, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END "
                "FROM range(3000) t(i)")
    t = read_schema(con).tables["notes"]
    assert stypes(t)["body"] == "text"
    assert stypes(t)["kind"] == "categorical"
    assert [c.name for c in t.features] == ["kind"]


def test_quoted_identifiers_are_discovered(weird):
    s = read_schema(weird)
    assert set(s.tables) == {"group", "Order Items"}
    assert s.tables["group"].time_column == "from"
    assert s.tables["Order Items"].time_column == "when"
    assert s.links == (Link("Order Items", ("user id",), "group", ("user id",)),)
    assert stypes(s.tables["Order Items"]) == {
        "item id": "id", "user id": "id", "select": "numerical", 'a"b': "categorical", "when": "time"}


def test_unknown_table_suggests_the_closest_name(tiny):
    from rdl_sql.planner.errors import PlanError
    s = read_schema(tiny)
    with pytest.raises(PlanError, match="did you mean `orders`"):
        s.table("order")
    with pytest.raises(PlanError, match="did you mean `customers`"):
        s.table("custmers")
    # names compare without case, as DuckDB compares them (issue 8)
    assert s.table("Customers").name == "customers"
    assert s.table("orders").column("Customer_ID").name == "customer_id"


def test_fingerprint_changes_with_a_link_and_not_with_rows(tiny):
    tables = ["customers", "orders", "products"]
    before = read_schema(tiny).fingerprint(tables)
    tiny.execute("INSERT INTO customers VALUES (99, '2024-03-01', 'US', 50)")
    assert read_schema(tiny).fingerprint(tables) == before
    overrides.drop_link(tiny, "orders", ["product_id"])
    assert read_schema(tiny).fingerprint(tables) != before
