"""Execute statements: plain SQL to DuckDB as written, rdl-sql statements through the planner.

A PREDICT is planned (labels, splits, extraction as DuckDB queries), trained
here in Python between short queries (so Ctrl-C stops it cleanly; DuckDB
cannot interrupt a running UDF), and scored by one DuckDB query that calls
the ``rdl_score`` UDF, whose result the cursor then fetches like any other.
"""
from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
from sqlglot.errors import ParseError

from sqlglot import exp

from rdl_sql import errors, model_store, training
from rdl_sql.bind import predict_text, to_query
from rdl_sql.dialect import (AlterGraph, CreateModel, DescribeGraph, DescribeModel, DropModel, Evaluate,
                             ExplainPredict, Predict, ShowModels, parse_statement)
from rdl_sql.planner import overrides
from rdl_sql.planner.errors import PlanError, Position, did_you_mean
from rdl_sql.planner.query import METRIC_NAME
from rdl_sql.planner.schema import read_schema
from rdl_sql.planner.sql import table as ident_table
from rdl_sql.planner.sql import to_sql
from rdl_sql.script import Statement

RESULT_VIEW = "__rdl_result"
_keys = itertools.count(1)


@dataclass
class Outcome:
    """What a statement leaves for the cursor: notices and, for PREDICT, its metrics."""

    notices: list[str] = field(default_factory=list)
    metrics: dict | None = None


class Session:
    """rdl-sql state of one database connection: held models, progress setting."""

    MAX_HELD = 4

    def __init__(self, con: duckdb.DuckDBPyConnection, progress: bool | None = None):
        self.con = con
        self.progress = sys.stderr.isatty() if progress is None else progress
        self._held: list[str] = []
        self._scoring_ready = False
        self._capture: list | None = None
        self._views: dict[int, list] = {}
        self._trained: dict[tuple[str, str], training.GnnResult] = {}

    def close(self) -> None:
        if self._held:
            from rdl_sql.udfs import scoring
            for key in self._held:
                scoring.release(key)
            self._held.clear()

    # ---- dispatch ------------------------------------------------------------
    def execute(self, duck: duckdb.DuckDBPyConnection, stmt: Statement, params=None) -> Outcome:
        """Run ``stmt`` on cursor ``duck``; its result is left on ``duck`` for fetching."""
        self._drop_views(duck)
        if not stmt.is_rdl:
            self._plain(duck, stmt.text, params)
            return Outcome()
        try:
            node = parse_statement(stmt.text)
        except ParseError as e:
            info = e.errors[0] if e.errors else {}
            raise self._parse_error(stmt, info) from None
        handlers = {
            Predict: self._predict, CreateModel: self._create_model, Evaluate: self._evaluate,
            ExplainPredict: self._explain, ShowModels: self._show_models, DescribeModel: self._describe_model,
            DropModel: self._drop_model, AlterGraph: self._alter_graph, DescribeGraph: self._describe_graph,
        }
        try:
            handler = handlers.get(type(node))
            if handler is not None or node.find(Predict) is not None:
                if params and not isinstance(node, AlterGraph):
                    raise PlanError("rdl-sql statements take no query parameters; write the values in the "
                                    "statement")
                if handler is None:
                    return self._composed(duck, node, stmt)
                return handler(duck, node, stmt)
        except PlanError as e:
            p = e.position
            raise errors.located(e.message, stmt.text, stmt.index, p.start if p else None, p.end if p else None,
                                 stmt.first_line) from None
        self._plain(duck, stmt.text, params)
        return Outcome()

    @staticmethod
    def _plain(duck, text: str, params) -> None:
        try:
            duck.execute(text, params) if params is not None else duck.execute(text)
        except duckdb.Error as e:
            raise _wrap_duckdb(e) from e

    @staticmethod
    def _parse_error(stmt: Statement, info: dict) -> errors.ProgrammingError:
        msg = info.get("description") or "syntax error"
        line, col, hl = info.get("line"), info.get("col"), info.get("highlight") or ""
        if line is None or col is None:
            return errors.located(msg, stmt.text, stmt.index, None, None)
        lines = stmt.text.split("\n")
        offset = sum(len(x) + 1 for x in lines[: line - 1])
        end = offset + col - 1
        start = max(offset, end - max(len(hl), 1) + 1)
        return errors.located(msg, stmt.text, stmt.index, start, end, stmt.first_line)

    # ---- results -----------------------------------------------------------------
    def _emit(self, duck, query: exp.Expression) -> None:
        """Run ``query`` as ``duck``'s result, or, inside a composed statement, keep it for splicing."""
        if self._capture is not None:
            self._capture.append(query)
            return
        try:
            duck.execute(to_sql(query))
        except duckdb.Error as e:
            raise _wrap_duckdb(e) from e

    def _show(self, duck, table: pa.Table) -> None:
        """Make ``table`` the statement's result (an Arrow view on ``duck``, no copy)."""
        # views stay registered until the cursor's next statement: DuckDB
        # refuses to unregister one while its result is still being fetched
        name = f"{RESULT_VIEW}_{next(_keys)}"
        duck.register(name, table)
        self._views.setdefault(id(duck), []).append((duck, name))
        self._emit(duck, exp.select("*").from_(ident_table(name)))

    def _drop_views(self, duck) -> None:
        views = self._views.pop(id(duck), [])
        if views:
            duck.abort()  # the previous result, possibly half-fetched, is replaced anyway
        for d, name in views:
            d.unregister(name)

    def _hold(self, trained, graph) -> str:
        """Keep a trained model in this process for ``rdl_score``; returns its key."""
        from rdl_sql.udfs import scoring
        key = f"m{next(_keys)}"
        scoring.hold(key, trained, graph)
        self._held.append(key)
        while len(self._held) > self.MAX_HELD:
            scoring.release(self._held.pop(0))
        if not self._scoring_ready:
            scoring.register(self.con)
            self._scoring_ready = True
        return key

    def _score_gnn(self, duck, plan, result: training.GnnResult, anchor=None) -> None:
        """Leave on ``duck`` the one query that scores ``plan``'s entities through ``rdl_score``."""
        key = self._hold(result.trained, result.graph)
        self._emit(duck, plan.score_sql(key, anchor, classes=result.trained.classes))

    # ---- PREDICT ---------------------------------------------------------------
    def _predict(self, duck, node: Predict, stmt: Statement) -> Outcome:
        if node.args.get("using") is not None:
            return self._predict_using(duck, node, stmt)
        query = to_query(node, stmt.text)
        q = duck.cursor()
        try:
            prep = training.prepare(q, query)
            if prep.plan.options["model"] != "gnn":  # gbdt | auto
                from rdl_sql import tabular
                return tabular.predict(self, duck, q, prep)
            result, note = self._train_or_reuse(q, prep, node, stmt.text)
        finally:
            q.close()
        self._score_gnn(duck, prep.plan, result)
        return Outcome([note], result.metrics)

    def _train_or_reuse(self, q, prep: training.Prepared, node: Predict, text: str):
        """The GNN for this statement: reused when the same statement ran on the same data."""
        key = (predict_text(node, text), training.data_digest(q, prep))
        if key in self._trained:
            result = self._trained[key]
            return result, f"reused the model trained by an identical PREDICT on unchanged data: " \
                           f"{_describe_metrics(result.metrics)}"
        stored = model_store.find_reusable(q, *key)
        if stored is not None:
            result = training.load_stored(q, prep, stored)
            self._trained[key] = result
            return result, (f"reused stored model `{stored.name}` (same statement, same data): "
                            f"{_describe_metrics(result.metrics)}")
        result = training.train_gnn(q, prep, self.progress)
        self._trained[key] = result
        while len(self._trained) > self.MAX_HELD:
            self._trained.pop(next(iter(self._trained)))
        return result, f"trained gnn: {_describe_metrics(result.metrics)}"

    def _predict_using(self, duck, node: Predict, stmt: Statement) -> Outcome:
        q = duck.cursor()
        try:
            stored = model_store.load(q, node.args["using"].name, Position.of(node.args["using"]))
            query = training.stored_query(stored, node, stmt.text)
            prep = training.prepare_scoring(q, query)
            result = training.load_stored(q, prep, stored)
        finally:
            q.close()
        self._score_gnn(duck, prep.plan, result)
        return Outcome([f"scored with stored model `{stored.name}` (trained {stored.created_at:%Y-%m-%d %H:%M})"],
                       result.metrics)

    def _composed(self, duck, node: exp.Expression, stmt: Statement) -> Outcome:
        """A SQL statement with PREDICT where a query stands: splice each prediction query in, run once."""
        outcome = Outcome()
        for inner in list(node.find_all(Predict)):
            self._capture = []
            try:
                got = self._predict(duck, inner, stmt)
                (query,) = self._capture
            finally:
                self._capture = None
            outcome.notices.extend(got.notices)
            outcome.metrics = got.metrics
            inner.replace(query)
        self._plain(duck, node.sql("duckdb"), None)
        return outcome

    # ---- models --------------------------------------------------------------------
    def _create_model(self, duck, node: CreateModel, stmt: Statement) -> Outcome:
        predict = node.args["predict"]
        name = node.this.name
        query = to_query(predict, stmt.text)
        if query.option_dict.get("model", "gnn") != "gnn":
            raise PlanError("CREATE MODEL stores GNN models; use model = 'gbdt' or 'auto' with a plain PREDICT",
                            query.options_position)
        q = duck.cursor()
        try:
            if not node.args.get("replace") and name in model_store.names(q):
                raise PlanError(f"model `{name}` already exists; use CREATE OR REPLACE MODEL or DROP MODEL {name}",
                                Position.of(node.this))
            prep = training.prepare(q, query)
            result = training.train_gnn(q, prep, self.progress)
            stored = training.to_stored(q, prep, result, name, predict_text(predict, stmt.text))
            model_store.save(q, stored, bool(node.args.get("replace")), Position.of(node.this))
            self._trained[(stored.statement, stored.data_digest)] = result
        finally:
            q.close()
        m = result.metrics
        metric = METRIC_NAME[prep.plan.task_type]
        row = {"model": [name], "task": [prep.plan.task_type],
               f"val_{metric}": [m.get(f"val_{metric}")], f"test_{metric}": [m.get(f"test_{metric}")],
               "train_rows": [m.get("train_rows")], "val_rows": [m.get("val_rows")], "test_rows": [m.get("test_rows")],
               "epochs": [m.get("epochs")], "train_seconds": [round(m.get("train_seconds", 0.0), 3)]}
        self._show(duck, pa.table(row))
        return Outcome([f"model `{name}` stored in {model_store.TABLE}"], m)

    def _show_models(self, duck, node, stmt) -> Outcome:
        cols = ["name", "task", "model", "created_at", "metrics", "statement"]
        if not model_store.exists_table(duck):
            self._show(duck, pa.table({c: pa.array([], pa.string()) for c in cols}))
            return Outcome()
        self._emit(duck, exp.select(*[exp.column(c) for c in cols]).from_(ident_table(model_store.TABLE))
                   .order_by(exp.column("name")))
        return Outcome()

    def _describe_model(self, duck, node, stmt) -> Outcome:
        stored = model_store.load(duck, node.this.name, Position.of(node.this))
        rows = [("name", stored.name), ("statement", stored.statement), ("task", stored.task),
                ("model", stored.model), ("created_at", str(stored.created_at)),
                ("weights_bytes", str(len(stored.weights))), ("data_digest", stored.data_digest)]
        rows += [(f"option {k}", str(v)) for k, v in stored.options.items()]
        rows += [(f"metric {k}", str(v)) for k, v in stored.metrics.items()]
        for table_name, info in stored.fingerprint["tables"].items():
            rows.append((f"table {table_name}", f"key ({', '.join(info['key'])}), time {info['time'] or 'none'}, "
                         + ", ".join(f"{c} {k}" for c, k in info["columns"].items())))
        rows += [("link", name) for name in stored.fingerprint["links"]]
        self._show(duck, pa.table({"property": [r[0] for r in rows], "value": [r[1] for r in rows]}))
        return Outcome()

    def _drop_model(self, duck, node, stmt) -> Outcome:
        name = node.this.name
        dropped = model_store.drop(duck, name, bool(node.args.get("exists")), Position.of(node.this))
        msg = f"model `{name}` dropped" if dropped else f"model `{name}` does not exist; nothing dropped"
        self._show(duck, pa.table({"result": [msg]}))
        return Outcome([msg])

    def _evaluate(self, duck, node: Evaluate, stmt: Statement) -> Outcome:
        from rdl_sql import evaluation
        q = duck.cursor()
        try:
            if node.args.get("model") is not None:
                stored = model_store.load(q, node.args["model"].name, Position.of(node.args["model"]))
                override = Predict(as_of=node.args.get("as_of"))
                query = training.stored_query(stored, override, stmt.text)
                prep = training.prepare_scoring(q, query)
                result = training.load_stored(q, prep, stored)
                table = evaluation.fresh(q, prep, result)
                note = f"model `{stored.name}` on fresh labels at {prep.plan.test_anchor}"
            else:
                query = to_query(node.args["predict"], stmt.text)
                if query.option_dict.get("model", "gnn") != "gnn":
                    raise PlanError("EVALUATE PREDICT evaluates the GNN; for 'gbdt' or 'auto' run the PREDICT, "
                                    "whose notice gives both models' validation and test metrics",
                                    query.options_position)
                prep = training.prepare(q, query)
                result = training.train_gnn(q, prep, self.progress)
                table = evaluation.test_split(prep, result)
                note = f"trained gnn, evaluated on the test split at {prep.plan.test_anchor}"
        finally:
            q.close()
        self._show(duck, table)
        return Outcome([note], result.metrics)

    def _explain(self, duck, node: ExplainPredict, stmt: Statement) -> Outcome:
        from rdl_sql.explain import explain
        q = duck.cursor()
        try:
            table = explain(q, to_query(node.this, stmt.text))
        finally:
            q.close()
        self._show(duck, table)
        return Outcome()

    # ---- graph statements --------------------------------------------------------
    def _alter_graph(self, duck, node: AlterGraph, stmt: Statement) -> Outcome:
        schema = read_schema(duck, with_counts=False)
        action = node.this.name
        tname = node.args["table"].name
        tinfo = schema.table(tname, Position.of(node.args["table"]))
        cols = [c.name for c in node.args.get("columns") or []]
        for c, cnode in zip(cols, node.args.get("columns") or []):
            if tinfo.column(c) is None:
                raise PlanError(f"column `{c}` not found in table `{tname}`"
                                f"{did_you_mean(c, [x.name for x in tinfo.columns])}", Position.of(cnode))
        if action == "ADD_LINK":
            ref = node.args["ref_table"]
            rinfo = schema.table(ref.name, Position.of(ref))
            ref_cols = [c.name for c in node.args["ref_columns"]]
            for c, cnode in zip(ref_cols, node.args["ref_columns"]):
                if rinfo.column(c) is None:
                    raise PlanError(f"column `{c}` not found in table `{ref.name}`"
                                    f"{did_you_mean(c, [x.name for x in rinfo.columns])}", Position.of(cnode))
            overrides.add_link(duck, tname, cols, ref.name, ref_cols)
            msg = f"link {tname}({', '.join(cols)}) -> {ref.name}({', '.join(ref_cols)}) added"
        elif action == "DROP_LINK":
            if not any(lk.child == tname and lk.child_columns == tuple(cols) for lk in schema.links):
                raise PlanError(f"no link from {tname}({', '.join(cols)})", Position.of(node.args["table"]))
            overrides.drop_link(duck, tname, cols)
            msg = f"link from {tname}({', '.join(cols)}) dropped"
        elif action == "SET_TIME":
            col = cols[0] if cols else None
            if col is not None and tinfo.column(col).dtype.split("(")[0].upper() not in (
                    "DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"):
                raise PlanError(f"`{tname}.{col}` is {tinfo.column(col).dtype}; a time column must be DATE or "
                                f"TIMESTAMP", Position.of(node.args["columns"][0]))
            overrides.set_time_column(duck, tname, col)
            msg = f"time column of {tname}: {col or 'none (static table)'}"
        else:
            for c in cols:
                overrides.ignore_column(duck, tname, c)
            msg = f"{tname}: {', '.join(cols)} ignored"
        self._show(duck, pa.table({"result": [msg]}))
        return Outcome([msg])

    def _describe_graph(self, duck, node, stmt) -> Outcome:
        schema = read_schema(duck)
        rows = {k: [] for k in ("table_name", "column_name", "data_type", "semantic_type", "role", "table_rows")}
        for t in schema.tables.values():
            for c in t.columns:
                role = []
                if c.name in t.primary_key:
                    role.append("primary key")
                if c.name == t.time_column:
                    role.append("time")
                for lk in schema.links:
                    if lk.child == t.name and c.name in lk.child_columns:
                        i = lk.child_columns.index(c.name)
                        role.append(f"link -> {lk.parent}({lk.parent_columns[i]})"
                                    + (" [override]" if lk.declared == "override" else ""))
                for key, val in zip(rows, (t.name, c.name, c.dtype, c.stype, "; ".join(role), t.rows)):
                    rows[key].append(val)
        self._show(duck, pa.table(rows))
        return Outcome(list(schema.notes) + [n for t in schema.tables.values() for n in t.notes])


def _describe_metrics(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())


def _wrap_duckdb(e: duckdb.Error) -> errors.DatabaseError:
    msg = str(e)
    if isinstance(e, (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException,
                      duckdb.SyntaxException)):
        return errors.ProgrammingError(msg)
    if isinstance(e, duckdb.ConstraintException):
        return errors.IntegrityError(msg)
    if isinstance(e, (duckdb.ConversionException, duckdb.OutOfRangeException, duckdb.InvalidInputException)):
        return errors.DataError(msg)
    return errors.OperationalError(msg)
