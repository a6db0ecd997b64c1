"""Node numbering: one total order per table, the same in every query, and internal names apart from user names."""
from __future__ import annotations

import datetime as dt

import pytest

from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.extract import extract
from rdl_sql.planner.nodes import fresh_name, node_name, node_select, time_name
from rdl_sql.planner.resolve import check_entity
from rdl_sql.planner.schema import read_schema
from rdl_sql.planner.sql import arrow, col

N = 3000


def numbered(con, tinfo, as_of=None) -> dict:
    """``{primary key: node id}`` as ``node_select`` numbers the table."""
    q = node_select(tinfo, as_of, [col(tinfo.primary_key[0])])
    t = arrow(con, q)
    return dict(zip(t.column(tinfo.primary_key[0]).to_pylist(), t.column(node_name(tinfo)).to_pylist()))


def test_a_user_column_named_rowid_does_not_decide_the_numbering(con):
    """Before: ORDER BY rowid read the user's column of zeros, and ties numbered rows at random."""
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, rowid INTEGER, x DOUBLE)")
    # inserted in a shuffled order, so neither insertion order nor the zeros give key order
    con.execute(f"INSERT INTO t SELECT (i * 7919) % {N}, 0, i FROM range({N}) r(i)")
    tinfo = read_schema(con).tables["t"]
    ids = numbered(con, tinfo)
    assert ids == {k: k for k in range(N)}  # node i is the row with the i-th smallest key
    assert numbered(con, tinfo) == ids


def test_numbering_is_the_same_in_the_extraction_and_the_label_query(con):
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, rowid INTEGER, x DOUBLE)")
    con.execute(f"INSERT INTO t SELECT (i * 7919) % {N}, 0, (i * 7919) % {N} FROM range({N}) r(i)")
    g = extract(con, read_schema(con), ["t"], None)
    # the extraction holds x = id, and node i must be key i: the label query numbers by key too
    assert g.nodes["t"].column("x").to_pylist() == [float(i) for i in range(N)]


def test_a_table_without_a_key_is_numbered_by_all_its_columns(con):
    con.execute("CREATE TABLE t (a INTEGER, b VARCHAR, rowid INTEGER)")
    con.execute(f"INSERT INTO t SELECT (i * 7919) % 50, 'v' || ((i * 31) % 7), 0 FROM range({N}) r(i)")
    tinfo = read_schema(con).tables["t"]
    q = node_select(tinfo, None, [col("a"), col("b")])
    first = arrow(con, q.copy().order_by(col(node_name(tinfo)))).select(["a", "b"]).to_pylist()
    again = arrow(con, q.copy().order_by(col(node_name(tinfo)))).select(["a", "b"]).to_pylist()
    assert first == again == sorted(first, key=lambda r: (r["a"], r["b"]))


def test_a_unique_key_with_nulls_is_ordered_further_by_every_column(con):
    """A UNIQUE key admits several NULLs: ties among them are broken by the other columns."""
    con.execute("CREATE TABLE u (k INTEGER UNIQUE, v VARCHAR, rowid INTEGER)")
    con.execute("INSERT INTO u VALUES (NULL, 'c', 0), (2, 'z', 0), (NULL, 'a', 0), (1, 'y', 0), (NULL, 'b', 0)")
    tinfo = read_schema(con).tables["u"]
    assert tinfo.primary_key == ("k",) and not tinfo.key_is_primary
    q = node_select(tinfo, None, [col("v")]).order_by(col(node_name(tinfo)))
    assert arrow(con, q).column("v").to_pylist() == ["y", "z", "a", "b", "c"]


def test_numbering_counts_only_the_rows_visible_at_as_of(con):
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, seen_at TIMESTAMP)")
    con.execute("INSERT INTO t VALUES (5, '2024-01-01'), (1, '2024-03-01'), (3, NULL), (2, '2023-12-01')")
    tinfo = read_schema(con).tables["t"]
    assert numbered(con, tinfo, dt.datetime(2024, 1, 15)) == {2: 0, 3: 1, 5: 2}


@pytest.mark.parametrize("name", ["__node", "__NODE", "__time", "__time_us", "__k0", "src", "dst", "rowid",
                                  "__e", "__n", "c", "p"])
def test_a_user_column_with_an_internal_name_stays_a_user_column(con, name):
    """Before: a column named __node gave `Field "__node" exists 2 times` in the extraction."""
    con.execute(f'CREATE TABLE parent (pid INTEGER PRIMARY KEY, "{name}" DOUBLE)')
    con.execute(f'CREATE TABLE child (cid INTEGER PRIMARY KEY, pid INTEGER REFERENCES parent (pid), '
                f'"{name}" DOUBLE, seen_at TIMESTAMP)')
    con.execute("INSERT INTO parent SELECT i, i * 10 FROM range(5) r(i)")
    con.execute("INSERT INTO child SELECT i, 4 - i % 5, -i, TIMESTAMP '2024-01-01' + INTERVAL (i) DAY "
                "FROM range(8) r(i)")
    s = read_schema(con)
    g = extract(con, s, ["parent", "child"], None)
    assert g.nodes["parent"].column(name).to_pylist() == [i * 10.0 for i in range(5)]
    assert g.nodes["child"].column(name).to_pylist() == [-float(i) for i in range(8)]
    times = g.nodes["child"].column(time_name(s.tables["child"], time_us=True)).to_pylist()
    assert times == sorted(times) and None not in times
    (edges,) = g.edges.values()
    # child i links to parent 4 - i % 5; node ids are key ranks here
    assert sorted(zip(edges.column("src").to_pylist(), edges.column("dst").to_pylist())) == \
        sorted((i, 4 - i % 5) for i in range(8))


def test_fresh_names_ignore_case_as_duckdb_does():
    assert fresh_name("__node", ["a", "b"]) == "__node"
    assert fresh_name("__node", ["__Node"]) == "__node_2"
    assert fresh_name("__node", ["__node", "__NODE_2"]) == "__node_3"


def test_a_key_named_like_a_prediction_column_is_refused_with_a_fix(con):
    con.execute("CREATE TABLE tags (label VARCHAR PRIMARY KEY, n INTEGER)")
    s = read_schema(con)

    class Q:  # the two fields check_entity reads
        entity_table, entity_columns, entity_position = "tags", ("label",), None
    with pytest.raises(PlanError, match="RENAME COLUMN"):
        check_entity(s, Q())
