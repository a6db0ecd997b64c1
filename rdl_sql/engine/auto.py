"""``model = 'gbdt'`` and ``model = 'auto'`` for a PREDICT: train, compare on validation, score the winner."""
from __future__ import annotations

from rdl_sql.udfs.metrics import better

from . import gbdt
from .prepare import Prepared
from .result import Result, describe_metrics


def predict(engine, con, prep: Prepared) -> Result:
    """Train GBDT (and, for 'auto', the GNN); the result scores with the better one on validation."""
    plan = prep.plan
    tree = gbdt.fit(con, prep)
    metrics = dict(tree.metrics, model="gbdt")
    notices = [f"trained gbdt: {describe_metrics(tree.metrics)}"]
    if plan.options.model == "auto":
        gnn = engine.train_gnn(con, prep)
        notices.append(f"trained gnn: {describe_metrics(gnn.metrics)}")
        name = plan.task_type.metric
        key = f"val_{name}"
        a, b = gnn.metrics[key], tree.metrics[key]
        gnn_wins = better(plan.task_type, a, b)
        winner, loser = ("gnn", "gbdt") if gnn_wins else ("gbdt", "gnn")
        w, lo = (a, b) if gnn_wins else (b, a)
        notices.append(f"auto: {winner} won on validation {name} {w:.4f} vs {loser} {lo:.4f} ({w - lo:+.4f})")
        compared = {f"gbdt_{key}": b, f"gnn_{key}": a}
        if gnn_wins:
            return Result(query=engine.score_query(prep, gnn), notices=notices,
                          metrics=dict(gnn.metrics, model="gnn", **compared))
        metrics.update(compared)
    return Result(table=gbdt.score(con, plan, tree, prep.classes), notices=notices, metrics=metrics)
