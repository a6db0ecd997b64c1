"""``create_engine("rdl_sql:///path")``: the SQLAlchemy dialect (entry point), pandas read_sql, the inspector."""
from __future__ import annotations

import shutil

import duckdb
import pytest

import rdl_sql

sa = pytest.importorskip("sqlalchemy", reason="SQLAlchemy is not installed (pip install rdl-sql[test])")
pd = pytest.importorskip("pandas")



@pytest.fixture
def engine(stored, tmp_path):
    path = tmp_path / "copy.duckdb"
    shutil.copy(stored[0], path)
    e = sa.create_engine(f"rdl_sql:///{path}")
    yield e
    e.dispose()


def test_the_url_resolves_through_the_entry_point():
    from sqlalchemy.dialects import registry

    from rdl_sql.sqla import RdlDialect
    assert registry.load("rdl_sql") is RdlDialect  # pyproject: [project.entry-points."sqlalchemy.dialects"]


def test_pandas_read_sql_of_a_prediction(engine, stored):
    df = pd.read_sql("PREDICT USING churn", engine)
    assert list(df.columns) == ["customer_id", "anchor_time", "prediction", "score"]
    got = sorted(zip(df.customer_id.tolist(), df.prediction.tolist(), df.score.tolist()))
    assert got == [(r[0], r[2], pytest.approx(r[3])) for r in stored[1]]
    joined = pd.read_sql("SELECT c.country, p.score FROM (PREDICT USING churn) p JOIN customers c USING (customer_id)",
                         engine)
    assert len(joined) == len(stored[1])


def test_inspector_tables_columns_and_keys(engine):
    insp = sa.inspect(engine)
    assert insp.get_table_names() == ["customers", "orders", "products", "rdl_models", "reviews"]
    assert insp.has_table("orders") and not insp.has_table("nope")
    cols = {c["name"]: c for c in insp.get_columns("orders")}
    assert isinstance(cols["order_id"]["type"], sa.BIGINT) and cols["order_id"]["nullable"] is False
    assert insp.get_pk_constraint("orders")["constrained_columns"] == ["order_id"]
    fks = {fk["referred_table"]: fk for fk in insp.get_foreign_keys("orders")}
    assert fks["customers"]["constrained_columns"] == ["customer_id"]
    table = sa.Table("customers", sa.MetaData(), autoload_with=engine)
    assert [c.name for c in table.primary_key] == ["customer_id"]
    with pytest.raises(sa.exc.NoSuchTableError):
        insp.get_columns("nope")


def test_core_statements_parameters_and_a_begin_block(engine, stored):
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE scores AS PREDICT USING churn")
    with engine.connect() as c:
        n = c.execute(sa.text("SELECT count(*) FROM scores WHERE score >= :x"), {"x": 0.0}).scalar()
        assert n == len(stored[1])
        scores = sa.Table("scores", sa.MetaData(), autoload_with=c)
        top = c.execute(sa.select(scores.c.customer_id).order_by(scores.c.score.desc()).limit(1)).scalar()
        assert top == max(stored[1], key=lambda r: r[3])[0]
    assert "scores" in sa.inspect(engine).get_table_names()


def test_a_mistake_is_a_programming_error_with_the_rdl_sql_message(engine):
    with engine.connect() as c, pytest.raises(sa.exc.ProgrammingError) as err:
        c.exec_driver_sql("PREDICT USING nope")
    assert isinstance(err.value.orig, rdl_sql.ProgrammingError) and "model `nope` not found" in str(err.value)


def test_url_options_read_only_and_unknown(stored, tmp_path):
    path = tmp_path / "ro.duckdb"
    shutil.copy(stored[0], path)
    e = sa.create_engine(f"rdl_sql:///{path}?read_only=true")
    try:
        assert len(pd.read_sql("PREDICT USING churn", e)) == len(stored[1])
        with pytest.raises(sa.exc.DBAPIError):
            with e.connect() as c:
                c.exec_driver_sql("CREATE TABLE x (a INTEGER)")
        reader = duckdb.connect(str(path), read_only=True)  # another reader beside the engine's connection
        reader.close()
    finally:
        e.dispose()
    w = duckdb.connect(str(path))  # disposed of: the file is free to write
    w.close()
    with pytest.raises(rdl_sql.InterfaceError, match="unknown option"):
        sa.create_engine(f"rdl_sql:///{path}?readonly=1").connect()


def test_in_memory_engine_round_trips_a_dataframe():
    e = sa.create_engine("rdl_sql://")
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}).to_sql("t", e, index=False)
    assert pd.read_sql("SELECT * FROM t ORDER BY a", e).to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}
    e.dispose()


@pytest.fixture
def audit(tmp_path):
    e = sa.create_engine(f"rdl_sql:///{tmp_path / 'audit.duckdb'}")
    with e.begin() as c:
        c.exec_driver_sql("CREATE TABLE audit (x INTEGER)")
        c.exec_driver_sql("INSERT INTO audit VALUES (1)")
    yield e
    e.dispose()


def _audit_rows(engine):
    with engine.connect() as c:
        return [r[0] for r in c.exec_driver_sql("SELECT x FROM audit ORDER BY x")]


def test_a_begin_block_that_raises_rolls_back(audit):
    with pytest.raises(RuntimeError), audit.begin() as c:
        c.execute(sa.text("INSERT INTO audit VALUES (2)"))
        c.execute(sa.text("INSERT INTO audit VALUES (3)"))
        raise RuntimeError("boom")
    assert _audit_rows(audit) == [1]


def test_a_begin_block_that_ends_commits(audit):
    with audit.begin() as c:
        c.execute(sa.text("INSERT INTO audit VALUES (2)"))
        assert c.execute(sa.text("SELECT count(*) FROM audit")).scalar() == 2  # its own row, in its transaction
        assert _audit_rows(audit) == [1]  # another connection: not yet committed
    assert _audit_rows(audit) == [1, 2]


def test_connect_then_rollback_drops_and_commit_keeps(audit):
    with audit.connect() as c:
        c.execute(sa.text("INSERT INTO audit VALUES (2)"))
        c.rollback()
        c.execute(sa.text("INSERT INTO audit VALUES (3)"))
        c.commit()
        c.execute(sa.text("INSERT INTO audit VALUES (4)"))  # never committed: closing rolls it back
    assert _audit_rows(audit) == [1, 3]


def test_connect_then_commit_keeps(audit):
    with audit.connect() as c:
        c.execute(sa.text("INSERT INTO audit VALUES (2)"))
        assert _audit_rows(audit) == [1]  # another connection: not yet committed
        c.commit()
        assert _audit_rows(audit) == [1, 2]
    assert _audit_rows(audit) == [1, 2]


def test_a_result_read_after_the_next_statement_keeps_its_rows(audit):
    with audit.connect() as c:
        first = c.execute(sa.text("SELECT x FROM audit"))
        c.execute(sa.text("INSERT INTO audit VALUES (2)"))
        assert first.fetchall() == [(1,)]
        assert c.execute(sa.text("SELECT count(*) FROM audit")).scalar() == 2
        c.rollback()
    assert _audit_rows(audit) == [1]


def test_autocommit_isolation_commits_each_statement(audit, tmp_path):
    with audit.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(sa.text("INSERT INTO audit VALUES (2)"))
        c.rollback()  # nothing to roll back: the INSERT committed
    assert _audit_rows(audit) == [1, 2]
    e = sa.create_engine(f"rdl_sql:///{tmp_path / 'audit.duckdb'}", isolation_level="AUTOCOMMIT")
    audit.dispose()  # one engine at a time holds the file
    try:
        with e.connect() as c:
            c.execute(sa.text("INSERT INTO audit VALUES (3)"))
        assert _audit_rows(e) == [1, 2, 3]
    finally:
        e.dispose()
