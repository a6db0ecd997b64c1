"""PREDICT, PREDICT USING, EXPLAIN PREDICT and EVALUATE: bind, then hand to the engine."""
from __future__ import annotations

from sqlglot import exp

from rdl_sql.bind import options, to_query
from rdl_sql.dialect import Evaluate, ExplainPredict, Predict, canonical, parse_statement
from rdl_sql.engine import Engine, Result, store
from rdl_sql.planner.errors import PlanError, Position
from rdl_sql.planner.query import PredictQuery
from rdl_sql.script import Statement


def predict(engine: Engine, duck, node: Predict, stmt: Statement) -> Result:
    """The prediction rows; ORDER BY / LIMIT of the statement are applied by the session, on these rows."""
    work = duck.cursor()
    try:
        if node.args.get("using") is not None:
            stored = store.load(work, model_name(work, node.args["using"].name), Position.of(node.args["using"]))
            return engine.predict_using(work, stored, stored_query(stored, node, stmt.text))
        return engine.predict(work, to_query(node, stmt.text), canonical(without_order(node)))
    finally:
        work.close()


def model_name(con, name: str) -> str:
    """``name`` as the stored model of that name spells it (model names ignore case, as DuckDB's names do)."""
    return next((n for n in store.names(con) if n.lower() == name.lower()), name)


def without_order(node: Predict) -> Predict:
    """``node`` without ORDER BY / LIMIT: they order the rows and are no part of the model's identity."""
    if node.args.get("order") is None and node.args.get("limit") is None:
        return node
    node = node.copy()
    node.set("order", None)
    node.set("limit", None)
    return node


def refuse_order(node: Predict, statement: str) -> None:
    """A PlanError when a PREDICT that returns no prediction rows carries ORDER BY or LIMIT."""
    for key in ("order", "limit"):
        part = node.args.get(key)
        if part is not None:
            raise PlanError(f"{'ORDER BY' if key == 'order' else 'LIMIT'} orders or cuts prediction rows, and "
                            f"{statement} returns none; use it on a plain PREDICT, or on a query around one: "
                            f"SELECT * FROM (PREDICT ...) ORDER BY score DESC LIMIT 10", Position.of(part))


def explain(engine: Engine, duck, node: ExplainPredict, stmt: Statement) -> Result:
    refuse_order(node.this, "EXPLAIN")
    if node.this.args.get("using") is not None:
        raise PlanError("EXPLAIN shows how a PREDICT trains; for a stored model use DESCRIBE MODEL "
                        f"{node.this.args['using'].name}", Position.of(node.this.args["using"]))
    work = duck.cursor()
    try:
        return engine.explain(work, to_query(node.this, stmt.text))
    finally:
        work.close()


def evaluate(engine: Engine, duck, node: Evaluate, stmt: Statement) -> Result:
    work = duck.cursor()
    try:
        if node.args.get("model") is not None:
            stored = store.load(work, model_name(work, node.args["model"].name), Position.of(node.args["model"]))
            query = stored_query(stored, Predict(as_of=node.args.get("as_of")), stmt.text)
            return engine.evaluate_model(work, stored, query)
        refuse_order(node.args["predict"], "EVALUATE")
        if node.args["predict"].args.get("using") is not None:
            using = node.args["predict"].args["using"]
            raise PlanError(f"to evaluate a stored model write EVALUATE MODEL {using.name}", Position.of(using))
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

    given = override.args.get("options")
    if given is not None:
        checked = options(given)  # an unknown or invalid option is named as in any WITH
        raise PlanError(f"PREDICT USING scores with model `{stored.name}` as it was trained, so "
                        f"{', '.join(f'`{k}`' for k in checked.given) or 'WITH'} would change nothing; to train "
                        f"with other options, CREATE OR REPLACE MODEL {stored.name} AS PREDICT ... WITH (...)",
                        Position.of(given))
    if override.args.get("assuming") is not None:
        raise PlanError(f"ASSUMING chooses the rows a model trains on, and PREDICT USING does not train; to "
                        f"train with it, CREATE OR REPLACE MODEL {stored.name} AS PREDICT ... ASSUMING ...",
                        Position.of(override.args["assuming"]))
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
