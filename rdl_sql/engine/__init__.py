"""The execution layer: runs rdl-sql statements between the front-end and the models.

``Engine`` (``runner``) is what the front-end calls; ``prepare`` makes
labelled examples, ``gnn`` / ``gbdt`` / ``auto`` train and score,
``evaluate`` and ``explain`` report, ``store`` keeps models in the database
file and ``registry`` holds trained models in this process. The engine never
imports the parser (``rdl_sql.dialect`` / ``bind`` / ``session``): a test checks it.
"""
from .result import Result
from .runner import Engine

__all__ = ["Engine", "Result"]
