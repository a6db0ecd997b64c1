"""A multiclass prediction comes back in its column's type: classes travel as text, the scoring SQL casts back.

Runs the planner's SQL on the ``typed_classes`` database of ``tests/conftest.py`` with a stand-in scoring
function that answers as the real UDF does (the class as VARCHAR), so no model is trained here.
"""
from __future__ import annotations

import pyarrow as pa
import pytest

from rdl_sql.planner.query import Aggregate, PredictQuery, Target, TaskType
from rdl_sql.planner.schema import read_schema
from rdl_sql.planner.sql import arrow, table, to_sql
from rdl_sql.planner.task import compile_task

ENUM = "ENUM('bronze', 'silver', 'gold')"
#: target -> (the class column's DuckDB type, a class as the scoring UDF returns it, that class as DuckDB reads it)
TARGETS = {
    "FIRST(orders.product_id)": ("INTEGER", "3", 3),
    "FIRST(orders.promo_day)": ("DATE", "2024-01-15", "2024-01-15"),
    "LAST(orders.vip)": ("BOOLEAN", "true", True),
    "customers.tier": (ENUM, "gold", "gold"),
    "customers.country": ("VARCHAR", "DE", "DE"),
}
STRUCT = "STRUCT(" + ", ".join(f"{n} {t}" for n, t in TaskType.MULTICLASS.output_fields) + ")"


def plan_of(con, target: str):
    if target.startswith("customers."):
        q = PredictQuery(Target(None, column=target.split(".")[1]), "customers", "customer_id")
    else:
        func, rest = target.rstrip(")").split("(")
        agg = Aggregate(func, "orders", rest.split(".")[1], 0, 30, "DAYS")
        q = PredictQuery(Target(agg), "customers", "customer_id", aggregates=(agg,))
    return compile_task(con, read_schema(con), q)


def stand_in(con, answer: str) -> str:
    """A scoring function that predicts ``answer`` (text, as ``udfs.predictions.shape`` shapes it) for every row."""
    def score(key, node, anchor_us):
        n = len(node)
        probabilities = pa.MapArray.from_arrays(pa.array(range(n + 1), pa.int32()), pa.array([answer] * n),
                                                pa.array([1.0] * n))
        return pa.StructArray.from_arrays([pa.array([answer] * n, pa.string()), pa.array([1.0] * n), probabilities],
                                          names=[n for n, _ in TaskType.MULTICLASS.output_fields])
    con.create_function("stand_in_score", score, ["VARCHAR", "BIGINT", "BIGINT"], STRUCT, type="arrow")
    return "stand_in_score"


@pytest.mark.parametrize("target", TARGETS)
def test_the_predicted_class_has_the_type_of_its_column(typed_classes, target):
    dtype, answer, value = TARGETS[target]
    plan = plan_of(typed_classes, target)
    assert plan.task_type is TaskType.MULTICLASS and plan.class_type == dtype
    assert dict(plan.output_fields) == {"prediction": dtype, "score": "DOUBLE", "probabilities": "MAP(VARCHAR, DOUBLE)"}
    q = plan.score_sql("m", function=stand_in(typed_classes, answer))
    described = dict((r[0], r[1]) for r in typed_classes.execute(f"DESCRIBE {to_sql(q)}").fetchall())
    assert described["prediction"] == dtype
    assert described["probabilities"] == "MAP(VARCHAR, DOUBLE)"  # keyed by the classes' names, as before
    rows = typed_classes.execute(f"SELECT CAST(prediction AS VARCHAR), prediction = ? FROM ({to_sql(q)})",
                                 [value]).fetchall()
    assert rows and all(r == (answer, True) for r in rows)


@pytest.mark.parametrize("target", TARGETS)
def test_typed_sql_casts_a_table_of_predictions_as_text(typed_classes, target):
    """The GBDT's route: a scored Arrow table (the class as text) read through ``typed_sql``."""
    dtype, answer, _ = TARGETS[target]
    plan = plan_of(typed_classes, target)
    keys = {"customer_id": pa.array([1, 2], pa.int32())}
    if plan.column is None:
        keys["anchor_time"] = pa.array([0, 0], pa.timestamp("us"))
    scored = pa.table({**keys, "prediction": [answer, None], "score": [0.5, None],
                       "probabilities": pa.array([[(answer, 0.5)], None], pa.map_(pa.string(), pa.float64()))})
    typed_classes.register("scored", scored)
    q = plan.typed_sql(table("scored"))
    described = dict((r[0], r[1]) for r in typed_classes.execute(f"DESCRIBE {to_sql(q)}").fetchall())
    assert list(described) == plan.output_columns and described["prediction"] == dtype
    got = arrow(typed_classes, q).to_pylist()
    assert [r["customer_id"] for r in got] == [1, 2] and got[1]["prediction"] is None


def test_other_tasks_keep_their_types(typed_classes):
    count = Aggregate("COUNT", "orders", None, 0, 30, "DAYS")
    for target in (Target(count, ">", 0), Target(count)):
        plan = compile_task(typed_classes, read_schema(typed_classes),
                            PredictQuery(target, "customers", "customer_id", aggregates=(count,)))
        assert plan.class_type is None and plan.output_fields == plan.task_type.output_fields
