"""CREATE MODEL, SHOW MODELS, DESCRIBE MODEL, DROP MODEL."""
from __future__ import annotations

from rdl_sql.bind import to_query
from rdl_sql.dialect import CreateModel, DescribeModel, DropModel, ShowModels, canonical
from rdl_sql.engine import Engine, Result
from rdl_sql.planner.errors import Position
from rdl_sql.script import Statement
from rdl_sql.statements.predict import model_name, refuse_order


def create_model(engine: Engine, duck, node: CreateModel, stmt: Statement) -> Result:
    predict = node.args["predict"]
    refuse_order(predict, "CREATE MODEL")
    work = duck.cursor()
    try:
        start = predict.meta.get("start", 0)
        # with parameters the user's text holds `?`: show the statement with its values instead
        shown = canonical(predict) if node.meta.get("parameters") else stmt.text[start:].strip()
        return engine.create_model(work, model_name(work, node.this.name), to_query(predict, stmt.text), shown,
                                   canonical(predict), bool(node.args.get("replace")), Position.of(node.this))
    finally:
        work.close()


def show_models(engine: Engine, duck, node: ShowModels, stmt: Statement) -> Result:
    return engine.show_models(duck)


def describe_model(engine: Engine, duck, node: DescribeModel, stmt: Statement) -> Result:
    return engine.describe_model(duck, model_name(duck, node.this.name), Position.of(node.this))


def drop_model(engine: Engine, duck, node: DropModel, stmt: Statement) -> Result:
    """On a connection of its own, as CREATE MODEL writes: outside a transaction the user opened, so
    ``BEGIN; DROP MODEL m; CREATE MODEL m ...`` sees the drop instead of conflicting with it."""
    work = duck.cursor()
    try:
        return engine.drop_model(work, model_name(work, node.this.name), bool(node.args.get("exists")),
                                 Position.of(node.this))
    finally:
        work.close()

