"""PREDICT, PREDICT USING, EXPLAIN PREDICT and EVALUATE: bind, then hand to the engine."""
from __future__ import annotations

from sqlglot import exp

from rdl_sql.bind import to_query
from rdl_sql.dialect import Evaluate, ExplainPredict, Predict, canonical, parse_statement
from rdl_sql.engine import Engine, Result, store
from rdl_sql.planner.errors import PlanError, Position
from rdl_sql.planner.query import PredictQuery
from rdl_sql.script import Statement


def predict(engine: Engine, duck, node: Predict, stmt: Statement) -> Result:
    work = duck.cursor()
    try:
        if node.args.get("using") is not None:
            stored = store.load(work, node.args["using"].name, Position.of(node.args["using"]))
            return engine.predict_using(work, stored, stored_query(stored, node, stmt.text))
        return engine.predict(work, to_query(node, stmt.text), canonical(node))
    finally:
        work.close()


def explain(engine: Engine, duck, node: ExplainPredict, stmt: Statement) -> Result:
    work = duck.cursor()
    try:
        return engine.explain(work, to_query(node.this, stmt.text))
    finally:
        work.close()


def evaluate(engine: Engine, duck, node: Evaluate, stmt: Statement) -> Result:
    work = duck.cursor()
    try:
        if node.args.get("model") is not None:
            stored = store.load(work, node.args["model"].name, Position.of(node.args["model"]))
            query = stored_query(stored, Predict(as_of=node.args.get("as_of")), stmt.text)
            return engine.evaluate_model(work, stored, query)
        return engine.evaluate_predict(work, to_query(node.args["predict"], stmt.text))
    finally:
        work.close()


def stored_query(stored: store.StoredModel, override: Predict, text: str) -> PredictQuery:
    """The stored model's PREDICT with the FOR, WHERE and AS OF of ``override`` applied.

    The stored statement is re-parsed from its canonical form, generated from
    the AST when the model was created, so whitespace, comments and string
    literals in the user's original text cannot change its meaning.
    """
    def keys(entity) -> list[str]:
        return [c.sql() for c in (entity.expressions if isinstance(entity, exp.Tuple) else [entity])]

    base = parse_statement(stored.identity)
    entity = override.args.get("entity")
    if entity is not None:
        mine, theirs = keys(entity), keys(base.args["entity"])
        if mine != theirs:
            raise PlanError(f"model `{stored.name}` predicts for {', '.join(theirs)}, not {', '.join(mine)}",
                            Position.of(entity))
    for key in ("entity_in", "where", "as_of"):
        if override.args.get(key) is not None:
            base.set(key, override.args[key].copy())
    return to_query(base, text)
