"""JVM clients, as BI tools connect: the PostgreSQL JDBC driver against ``rdl-sql serve``, and the DuckDB
JDBC 2.x driver reading a prediction table from a file rdl-sql wrote.

The Java programs are in ``java/``; they are compiled with ``javac`` into the test's temporary folder and
run with the driver jar from the local Maven repository (``~/.m2``), which ``mvn dependency:get`` fills
when it can reach a Maven registry. Without java, javac, or the jar, a test skips and says why: a missing
download never fails CI.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from server_helpers import CHURN, ServerProcess, make_shop

import rdl_sql

JAVA = Path(__file__).resolve().parent / "java"
M2 = Path.home() / ".m2" / "repository"


def maven_jar(group: str, artifact: str, version: str, prefix: str) -> Path:
    """The jar of ``group:artifact`` whose version starts with ``prefix`` (``version`` fetched when none is
    there); skips the test when neither is possible."""
    folder = M2 / group.replace(".", "/") / artifact

    def local() -> list[Path]:
        return sorted(p for p in folder.glob(f"{prefix}*/{artifact}-{prefix}*.jar")
                      if not p.name.endswith(("-sources.jar", "-javadoc.jar")))

    if not local():
        if shutil.which("mvn") is None:
            pytest.skip(f"no {group}:{artifact} {prefix}x in ~/.m2 and no mvn to fetch it")
        try:
            done = subprocess.run(["mvn", "-q", "-B", "-Dstyle.color=never", "dependency:get",
                                   f"-Dartifact={group}:{artifact}:{version}", "-Dtransitive=false"],
                                  capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip(f"mvn dependency:get {group}:{artifact}:{version} timed out")
        if not local():
            tail = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr).strip().splitlines()
            pytest.skip(f"cannot fetch {group}:{artifact}:{version} from a Maven registry: "
                        + (tail[0][:200] if tail else f"exit {done.returncode}"))
    return local()[-1]


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory) -> Path:
    """The Java programs of ``java/``, compiled (skip without a JDK)."""
    if shutil.which("java") is None or shutil.which("javac") is None:
        pytest.skip("no java / javac (a JDK 17) on this machine")
    out = tmp_path_factory.mktemp("java")
    done = subprocess.run(["javac", "-d", str(out), *map(str, sorted(JAVA.glob("*.java")))],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def run_java(classes: Path, jar: Path, main: str, *args: str) -> dict[str, str]:
    done = subprocess.run(["java", "-cp", f"{jar}:{classes}", main, *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def scored_db(tmp_path_factory) -> tuple[Path, list[tuple]]:
    """A tiny shop with the stored model `churn` and its prediction table `churn_scores`; and that table."""
    path = make_shop(tmp_path_factory.mktemp("jdbc") / "shop.duckdb")
    with rdl_sql.connect(str(path), progress=False) as con:
        con.execute("CREATE MODEL churn AS " + CHURN)
        con.execute("CREATE TABLE churn_scores AS PREDICT USING churn")
        rows = con.execute("SELECT customer_id, prediction, score FROM churn_scores ORDER BY customer_id").fetchall()
    assert rows
    return path, rows


def test_postgresql_jdbc_reads_predicts_and_lists_metadata(java_classes, scored_db, tmp_path):
    jar = maven_jar("org.postgresql", "postgresql", "42.7.13", "42.7.")
    db = tmp_path / "served.duckdb"
    shutil.copy(scored_db[0], db)
    rows = scored_db[1]
    server = ServerProcess(db)
    try:
        out = run_java(java_classes, jar, "PgJdbcClient",
                       f"jdbc:postgresql://{server.host}:{server.port}/shop?sslmode=disable", "analyst")
    finally:
        server.stop()
    total = sum(r[2] for r in rows)
    assert int(out["table_rows"]) == len(rows) and int(out["table_first"]) == rows[0][0]
    assert float(out["table_score_sum"]) == pytest.approx(total, abs=1e-4)
    # PREDICT USING scores every customer at the latest time: the same model, so the same scores as the table
    assert out["predict_columns"] == "customer_id:int4,anchor_time:timestamp,prediction:bool,score:float8"
    assert int(out["predict_rows"]) == len(rows) == int(out["prepared_count"])
    assert float(out["predict_score_sum"]) == pytest.approx(total, abs=1e-4)
    # a located rdl-sql message with its SQLSTATE class 42 (a mistake in the statement) and position
    assert out["error_state"].startswith("42"), out
    assert "model `nope` not found" in out["error_message"] and "Position: 15" in out["error_message"]
    assert out["tables"] == "churn_scores,customers,orders,rdl_models"
    assert out["columns"] == "customer_id:int4,anchor_time:timestamp,prediction:bool,score:float8"


def test_duckdb_jdbc_2_reads_a_prediction_table_from_the_file(java_classes, scored_db, tmp_path):
    jar = maven_jar("org.duckdb", "duckdb_jdbc", "2.0.0.1", "2.")
    db = tmp_path / "read.duckdb"
    shutil.copy(scored_db[0], db)
    out = run_java(java_classes, jar, "DuckdbJdbcRead", str(db))
    rows = scored_db[1]
    assert out["version"].startswith("v2.")
    assert int(out["table_rows"]) == len(rows)
    assert float(out["table_score_sum"]) == pytest.approx(sum(r[2] for r in rows), abs=1e-4)
