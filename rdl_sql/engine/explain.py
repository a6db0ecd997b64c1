"""EXPLAIN PREDICT: the plan as rows, without training.

Shows what the statement would read and how: the graph (tables with row
counts, links with edge counts), the task and its anchor times, the SQL of
labels, prediction rows and extraction, and the model settings.
"""
from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from rdl_sql.planner.extract import edges_sql, nodes_sql, reachable
from rdl_sql.planner.labels import TaskPlan
from rdl_sql.planner.query import PredictQuery
from rdl_sql.planner.schema import read_schema
from rdl_sql.planner.sql import run, to_sql
from rdl_sql.planner.task import compile_task

from .result import Result


def _count(con, query: exp.Select) -> int:
    sub = exp.Subquery(this=query.copy().order_by(None) if query.args.get("order") else query.copy(),
                       alias=exp.TableAlias(this=exp.to_identifier("__c")))
    return run(con, exp.select(exp.Count(this=exp.Star())).from_(sub))[0][0]


def _anchor_rows(plan: TaskPlan) -> list[tuple[str, str, str]]:
    """Each split's anchors (first, last, how many) and the examples they hold, as counted while planning."""
    if plan.column:
        how = (f"rows dated up to {plan.val_start} train, up to {plan.test_start} validate, later ones test"
               if plan.val_start is not None else "split 80/10/10 by a hash of the key")
        return [("anchors", "all", f"{plan.predict_anchor}; {how}")]
    agg = plan.target.agg
    step = plan.options.anchor_step or (agg.end - agg.start)
    rows, i = [], 0
    for name, anchors in (("train", plan.train_anchors), ("validation", plan.val_anchors),
                          ("test", plan.test_anchors)):
        counts = plan.anchor_rows[i:i + len(anchors)]
        i += len(anchors)
        if not anchors:
            empty = plan.why_empty({"validation": "val"}.get(name, name))
            rows.append(("anchors", name, f"none: {empty.why if empty else 'no anchor'}"))
            continue
        detail = (f"{len(anchors)} anchor{'s' if len(anchors) > 1 else ''}, first {anchors[0]}, last {anchors[-1]}, "
                  f"every {step} {agg.unit.lower()} (anchors without examples skipped); {sum(counts):,} examples, "
                  f"{min(counts):,} to {max(counts):,} per anchor")
        cap = plan.options.max_train_rows
        if name == "train" and 0 < cap < sum(counts):
            detail += f"; max_train_rows keeps the most recent {cap:,} (a seeded sample of the oldest anchor)"
        rows.append(("anchors", name, detail))
    rows.append(("anchors", "prediction", str(plan.predict_anchor)))
    return rows


def explain(con, query: PredictQuery) -> Result:
    """The plan of ``query`` as rows ``(section, item, detail)``; reads counts, trains nothing."""
    schema = read_schema(con, as_of=query.as_of)
    plan = compile_task(con, schema, query)
    rows: list[tuple[str, str, str]] = []
    layers = plan.options.layers
    tables = reachable(plan.schema, plan.entity.name, layers)
    for t in tables:
        info = plan.schema.tables[t]
        rows.append(("graph", f"node {t}", f"{_count(con, nodes_sql(info, plan.as_of)):,} rows; time column "
                     f"{info.time_column or 'none (static)'}; features "
                     + (", ".join(f"{c.name} ({c.stype})" for c in info.features) or "none")))
    for lk in plan.schema.links:
        if lk.child in tables and lk.parent in tables:
            rows.append(("graph", f"edge {lk.name}", f"{_count(con, edges_sql(plan.schema, lk, plan.as_of)):,} "
                         f"edges, both directions"))
    target = (f"column {plan.entity.name}.{plan.column}" if plan.column
              else f"{plan.target.agg.func} over {plan.target.table.name} in ({plan.target.agg.start}, "
                   f"{plan.target.agg.end}] {plan.target.agg.unit} after the anchor")
    rows += [("task", "type", plan.task_type), ("task", "entity", f"{plan.entity.name}({', '.join(plan.keys)})"),
             ("task", "target", target), ("task", "as of", str(plan.as_of or "latest data"))]
    rows += _anchor_rows(plan)
    rows += [("sql", "labels", to_sql(plan.examples_sql(plan.split_anchors()))),
             ("sql", "prediction rows", to_sql(plan.predict_sql()))]
    rows += [("sql", f"extract {t}", to_sql(nodes_sql(plan.schema.tables[t], plan.as_of))) for t in tables]
    rows += [("sql", f"extract {lk.name}", to_sql(edges_sql(plan.schema, lk, plan.as_of)))
             for lk in plan.schema.links if lk.child in tables and lk.parent in tables]
    rows.append(("model", "fanouts", ", ".join(f"hop {i + 1}: {f}" for i, f in enumerate(plan.options.hop_fanouts))
                 + f" ({plan.options.sampler} sampling, neighbours no later than the anchor)"))
    rows += [("model", k, str(v)) for k, v in plan.options.as_dict().items() if k != "fanouts"]
    return Result(table=pa.table({"section": [r[0] for r in rows], "item": [r[1] for r in rows],
                                  "detail": [r[2] for r in rows]}))
