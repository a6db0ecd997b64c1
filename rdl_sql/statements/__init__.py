"""Handlers of the rdl-sql statements, by family: one function per statement kind.

Each handler binds its parsed statement (``rdl_sql.bind``) and calls the
engine; it returns an ``engine.Result`` that the session turns into the
cursor's result. ``HANDLERS`` maps each statement's AST class to its handler.
"""
from rdl_sql.dialect import (
                             AlterGraph,
                             CreateModel,
                             DescribeGraph,
                             DescribeModel,
                             DropModel,
                             Evaluate,
                             ExplainPredict,
                             Predict,
                             ShowModels,
)

from . import graph, models, predict

HANDLERS = {
    Predict: predict.predict, ExplainPredict: predict.explain, Evaluate: predict.evaluate,
    CreateModel: models.create_model, ShowModels: models.show_models, DescribeModel: models.describe_model,
    DropModel: models.drop_model, AlterGraph: graph.alter_graph, DescribeGraph: graph.describe_graph,
}

__all__ = ["HANDLERS"]
