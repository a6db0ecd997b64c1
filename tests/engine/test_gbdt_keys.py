"""GBDT on entity keys of any type: its features and its result keep the key's DuckDB type.

GBDT's example rows travel through Arrow, which has no UUID (nor ENUM) type: a UUID key came back as
text, which DuckDB refused to compare with the UUID key column (``IN``); a column target returned it as
VARCHAR where the GNN returns UUID. Each database here is tiny: 40 entities, 1,000 events.
"""
from __future__ import annotations

import pytest

import rdl_sql

#: key type -> the key of entity i (0..n-1); the number of entities where it is not 40
KEYS = {
    "UUID": ("md5(i::VARCHAR)::UUID", 40),  # fixed keys: a static table's rows split by a hash of the key
    "VARCHAR": ("'k' || i", 40),
    "DATE": ("DATE '2020-01-01' + i::INTEGER", 40),
    "DECIMAL(18,3)": ("i / 8", 40),
    "BIGINT": ("i * 1000000000000", 40),
    "HUGEINT": ("i::HUGEINT * 170141183460469231731687303715884105", 40),
    "BOOLEAN": ("i % 2 = 0", 2),
    "ENUM('a', 'b', 'c', 'd')": ("(['a', 'b', 'c', 'd'])[i % 4 + 1]", 4),
}
SUM = "PREDICT SUM(ev.v, 0, 7, DAYS) FOR EACH ent.k WITH (model = 'gbdt')"
COLUMN = "PREDICT ent.a FOR EACH ent.k WITH (model = 'gbdt')"


def keyed(dtype: str) -> rdl_sql.Connection:
    """``ent(k <dtype>)`` (``a`` NULL for every fourth entity) and ``ev``, events every 6 hours of 2023."""
    expr, n = KEYS[dtype]
    con = rdl_sql.connect(":memory:")
    con.execute(f"""
        CREATE TABLE ent (k {dtype} PRIMARY KEY, a DOUBLE, i INTEGER);
        INSERT INTO ent SELECT {expr}, CASE WHEN i % 4 = 0 THEN NULL ELSE i END, i FROM range({n}) t(i);
        CREATE TABLE ev (id INTEGER PRIMARY KEY, k {dtype} REFERENCES ent (k), ts TIMESTAMP, v DOUBLE);
        INSERT INTO ev SELECT r.i, ent.k, TIMESTAMP '2023-01-01' + INTERVAL (r.i * 6) HOUR, r.i % 5
        FROM range(1000) r(i) JOIN ent ON ent.i = r.i % {n};
    """)
    return con


def key_type(con, statement: str) -> str:
    return next(t for name, t, *_ in con.execute(f"DESCRIBE {statement}").fetchall() if name == "k")


def assert_keys_of_the_entity(con, statement: str, expected_rows: int) -> None:
    """One row per entity, each key a value of ``ent.k`` compared as the key's type."""
    got = con.execute(f"SELECT count(*), count(DISTINCT p.k), count(*) FILTER (WHERE p.k IN (SELECT k FROM ent)) "
                      f"FROM ({statement}) p").fetchone()
    assert got == (expected_rows, expected_rows, expected_rows)


@pytest.fixture
def uuid_keyed():
    con = keyed("UUID")
    try:
        yield con
    finally:
        con.close()


def test_gbdt_trains_and_scores_on_a_uuid_key(uuid_keyed):
    assert key_type(uuid_keyed, SUM) == "UUID"
    assert_keys_of_the_entity(uuid_keyed, SUM, 40)


def test_a_gbdt_column_target_returns_a_uuid_key_as_uuid_like_the_gnn(uuid_keyed):
    assert key_type(uuid_keyed, COLUMN) == "UUID"
    assert_keys_of_the_entity(uuid_keyed, COLUMN, 10)   # the ten entities whose `a` is NULL
    gnn = COLUMN.replace("'gbdt'", "'gnn', epochs = 1, channels = 8, fanouts = '2,2'")
    assert key_type(uuid_keyed, gnn) == "UUID"


def test_a_stored_gbdt_and_for_in_keep_the_uuid_key(uuid_keyed):
    uuid_keyed.execute(f"CREATE MODEL g AS {SUM}")
    assert key_type(uuid_keyed, "PREDICT USING g") == "UUID"
    assert_keys_of_the_entity(uuid_keyed, "PREDICT USING g", 40)
    listed = "PREDICT USING g FOR ent.k IN (SELECT k FROM ent WHERE i < 3)"
    assert key_type(uuid_keyed, listed) == "UUID"
    assert_keys_of_the_entity(uuid_keyed, listed, 3)


@pytest.mark.parametrize("dtype", [t for t in KEYS if t != "UUID"])
def test_gbdt_keeps_every_key_type(dtype):
    con = keyed(dtype)
    try:
        assert key_type(con, SUM) == dtype
        assert_keys_of_the_entity(con, SUM, KEYS[dtype][1])
    finally:
        con.close()


def test_a_composite_key_is_still_refused_for_gbdt():
    con = rdl_sql.connect(":memory:")
    try:
        con.execute("""
            CREATE TABLE ent (a INTEGER, b VARCHAR, x DOUBLE, PRIMARY KEY (a, b));
            INSERT INTO ent SELECT i, 'b' || i, CASE WHEN i % 4 > 0 THEN i END FROM range(200) t(i);
        """)
        with pytest.raises(rdl_sql.Error, match="composite keys .* work with model = 'gnn' only"):
            con.execute("PREDICT ent.x FOR EACH (ent.a, ent.b) WITH (model = 'gbdt')")
    finally:
        con.close()
