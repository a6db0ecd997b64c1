"""What the engine hands back to the front-end for one statement."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
from sqlglot import exp


@dataclass
class Result:
    """A statement's rows and messages.

    The rows are either ``query`` (a DuckDB query the front-end runs, or
    splices into a larger statement: how predictions stream through the
    scoring UDF) or ``table`` (a small Arrow table: metrics, plans,
    properties). ``notices`` are shown after the rows; ``metrics`` are the
    trained model's, for ``cursor.metrics``. ``select`` reads ``table`` where
    a plain scan would not give its columns' types (a GBDT's class, text in
    Arrow, back in its column's type, an ENUM included, which an Arrow round
    trip would make VARCHAR): it gets the table's name, returns the query.
    """

    query: exp.Select | None = None
    table: pa.Table | None = None
    select: Callable[[exp.Expression], exp.Select] | None = None
    notices: list[str] = field(default_factory=list)
    metrics: dict | None = None


def describe_metrics(metrics: dict) -> str:
    """``val_AUROC 0.7712, epochs 4, ...``: metrics in one line for a notice."""
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
