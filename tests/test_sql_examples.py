"""Every file in sql_examples/ runs, statement by statement, on the database its header names."""
from pathlib import Path

import pytest

import rdl_sql
from rdl_sql.script import split

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "sql_examples").glob("*.sql"))


def _database(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("-- database: "), f"{path.name} must start with '-- database: <name>'"
    return first.split(":", 1)[1].strip()


@pytest.fixture(scope="module")
def databases(tmp_path_factory):
    """One small file per dataset, copied per example so examples cannot affect each other."""
    from rdl_sql.datasets.shop import build_shop
    folder = tmp_path_factory.mktemp("examples")
    built = {}
    with rdl_sql.connect(str(folder / "shop.duckdb")) as con:
        build_shop(con.duckdb_connection, customers=500, products=60, days=730, seed=3)
    built["shop"] = folder / "shop.duckdb"
    if any(_database(p) == "flights" for p in EXAMPLES):
        from rdl_sql.datasets.flights import build_flights
        with rdl_sql.connect(str(folder / "flights.duckdb")) as con:
            build_flights(con.duckdb_connection)
        built["flights"] = folder / "flights.duckdb"
    return built


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, databases, tmp_path):
    import shutil
    db = tmp_path / "db.duckdb"
    shutil.copy(databases[_database(path)], db)
    statements = split(path.read_text())
    assert statements
    with rdl_sql.connect(str(db), progress=False) as con:
        for stmt in statements:
            cur = con.execute(stmt.text)
            if cur.description is not None:
                rows = cur.fetchall()
                if stmt.text.upper().lstrip().startswith(("PREDICT", "EVALUATE", "EXPLAIN", "DESCRIBE", "SHOW",
                                                         "CREATE OR REPLACE MODEL", "CREATE MODEL")):
                    assert rows, f"{path.name}: statement {stmt.index} returned no rows"
