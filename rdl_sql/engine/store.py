"""Models kept in the user's database file, in table ``rdl_models``.

One row per model: its statement (as the user wrote it, for display, and
in canonical form, for identity), options, the schema it was trained on
(to refuse scoring after an incompatible change), metrics, weights as a
BLOB. Writes happen in one transaction, so a model is there whole or not
at all, and any tool that opens the file sees the same models.

Formats: column ``model`` names the kind of the weights (``KINDS``: a GNN's
torch state, ``udfs.persist``; a GBDT's JSON around LightGBM's model text,
``udfs.gbdt``), and each kind's bytes carry their own format number. A row
of a kind or format this version does not know is refused with a message
that says so, never misread. ``model = 'auto'`` stores its winner, as a row
of the winner's kind whose metrics name every candidate it tried.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import duckdb
from sqlglot import exp

from rdl_sql.planner.errors import PlanError, Position, did_you_mean
from rdl_sql.planner.sql import ident, lit, run, table, to_sql

TABLE = "rdl_models"
#: the kinds of weights this version reads
KINDS = ("gnn", "gbdt", "popular", "past", "two_tower", "conditioned")
COLUMNS = [("name", "VARCHAR PRIMARY KEY"), ("statement", "VARCHAR"), ("task", "VARCHAR"), ("model", "VARCHAR"),
           ("options", "VARCHAR"), ("fingerprint", "VARCHAR"), ("data_digest", "VARCHAR"), ("metrics", "VARCHAR"),
           ("weights", "BLOB"), ("created_at", "TIMESTAMP"), ("canonical", "VARCHAR")]


@dataclass(frozen=True)
class StoredModel:
    name: str
    statement: str
    task: str
    model: str
    options: dict
    fingerprint: dict  # planner.schema.Schema.fingerprint
    data_digest: str
    metrics: dict
    weights: bytes
    created_at: dt.datetime
    #: the statement generated from its parsed form: what reuse and re-parsing use (None in files
    #: written before it existed, where ``statement`` is used instead)
    canonical: str | None = None

    @property
    def identity(self) -> str:
        return self.canonical or self.statement


def _ensure(con) -> None:
    exists_table(con)  # refuses a table of that name that is not rdl-sql's before writing to it
    cols = []
    for name, kind in COLUMNS:
        dtype, *rest = kind.split(" ", 1)
        constraints = [exp.ColumnConstraint(kind=exp.PrimaryKeyColumnConstraint())] if rest else []
        cols.append(exp.ColumnDef(this=ident(name), kind=exp.DataType.build(dtype), constraints=constraints))
    con.execute(to_sql(exp.Create(this=exp.Schema(this=table(TABLE), expressions=cols), kind="TABLE", exists=True)))
    if "canonical" not in _columns(con):  # a file written before the canonical form was stored
        con.execute(to_sql(exp.Alter(this=table(TABLE), kind="TABLE", actions=[
            exp.ColumnDef(this=ident("canonical"), kind=exp.DataType.build("VARCHAR"))])))


def _columns(con) -> list[str]:
    q = (exp.select(exp.column("column_name")).from_("duckdb_columns()")
         .where(exp.column("table_name").eq(lit(TABLE))).where(exp.column("schema_name").eq(lit("main"))))
    return [r[0] for r in run(con, q)]


def exists_table(con) -> bool:
    """Whether ``rdl_models`` exists; a PlanError if a table of that name lacks its columns.

    A user's own table of that name (or one altered by hand) must be neither
    written to (a column added, a row of a model's name deleted) nor read as
    models.
    """
    q = (exp.select("1").from_("duckdb_tables()").where(exp.column("table_name").eq(lit(TABLE)))
         .where(exp.column("schema_name").eq(lit("main"))))
    if not run(con, q):
        return False
    have = {c.lower() for c in _columns(con)}
    missing = [n for n, _ in COLUMNS if n != "canonical" and n not in have]  # canonical: added to old files
    if missing:
        raise PlanError(f"the table `{TABLE}` here lacks the column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(missing)} of rdl-sql's stored models: it is not rdl-sql's, or was altered; "
                        f"rename it (ALTER TABLE {TABLE} RENAME TO {TABLE}_old) and rdl-sql makes its own")
    return True


def names(con) -> list[str]:
    if not exists_table(con):
        return []
    return [r[0] for r in run(con, exp.select(exp.column("name")).from_(table(TABLE)).order_by("name"))]


def save(con: duckdb.DuckDBPyConnection, model: StoredModel, replace: bool, position: Position | None = None) -> None:
    """Write ``model`` in one transaction; refuse an existing name unless ``replace``."""
    _ensure(con)
    con.execute("BEGIN TRANSACTION")
    try:
        if model.name in names(con):
            if not replace:
                raise PlanError(f"model `{model.name}` already exists; use CREATE OR REPLACE MODEL or "
                                f"DROP MODEL {model.name}", position)
            con.execute(to_sql(exp.delete(table(TABLE), where=exp.column("name").eq(lit(model.name)))))
        values = [model.name, model.statement, model.task, model.model, json.dumps(model.options),
                  json.dumps(model.fingerprint), model.data_digest, json.dumps(model.metrics), model.weights,
                  model.created_at, model.canonical]
        insert = exp.insert(exp.values([exp.Tuple(expressions=[exp.Placeholder() for _ in values])]), table(TABLE),
                            columns=[c for c, _ in COLUMNS])
        con.execute(to_sql(insert), values)
        con.execute("COMMIT")
    except (duckdb.ConstraintException, duckdb.TransactionException) as e:
        _rollback(con)
        # another connection stored a model of this name after the check before training
        fix = "run the statement again" if replace else "use CREATE OR REPLACE MODEL to overwrite it, or another name"
        raise PlanError(f"model `{model.name}` was stored by another connection while this one trained, so "
                        f"this one was not stored; {fix} ({str(e).splitlines()[0]})", position) from None
    except BaseException:
        _rollback(con)
        raise


def _rollback(con) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:  # a failed COMMIT has ended the transaction already
        pass


def load(con, name: str, position: Position | None = None) -> StoredModel:
    known = names(con)
    if name not in known:
        raise PlanError(f"model `{name}` not found{did_you_mean(name, known)}"
                        + ("" if known else "; create one with CREATE MODEL name AS PREDICT ..."), position)
    present = _columns(con)
    cols = [exp.column(c) if c in present else exp.null() for c, _ in COLUMNS]
    row = run(con, exp.select(*cols).from_(table(TABLE)).where(exp.column("name").eq(lit(name))))[0]
    (n, stmt, task, kind, opts, fp, digest, metrics, weights, created, canonical) = row
    if kind not in KINDS:
        raise PlanError(f"model `{name}` holds a `{kind}` model, which this version of rdl-sql cannot read (it "
                        f"reads {', '.join(KINDS)}); retrain it with CREATE OR REPLACE MODEL {name} AS {stmt}",
                        position)
    parsed = {}
    for column, text in (("options", opts), ("fingerprint", fp), ("metrics", metrics)):
        try:
            parsed[column] = json.loads(text)
            if not isinstance(parsed[column], dict):
                raise ValueError(f"a JSON {type(parsed[column]).__name__}, not an object")
        except (TypeError, ValueError) as e:
            raise _unreadable(name, stmt, column, e, position) from None
    if not isinstance(stmt, str) or not stmt.strip():
        raise _unreadable(name, None, "statement", "NULL or empty", position)
    if not isinstance(created, dt.datetime):
        raise _unreadable(name, stmt, "created_at", f"{created!r}, not a time", position)
    if not isinstance(parsed["fingerprint"].get("tables"), dict):
        raise _unreadable(name, stmt, "fingerprint", "no `tables` object", position)
    if not isinstance(weights, (bytes, bytearray, memoryview)):
        raise _unreadable(name, stmt, "weights", f"{'NULL' if weights is None else type(weights).__name__}, "
                          f"not bytes", position)
    return StoredModel(n, stmt, task, kind, parsed["options"], parsed["fingerprint"], digest, parsed["metrics"],
                       bytes(weights), created, canonical)


def _unreadable(name: str, statement, column: str, why, position: Position | None) -> PlanError:
    """A row of ``rdl_models`` edited or damaged outside rdl-sql: say so and how to get a working model back."""
    redo = (f"CREATE OR REPLACE MODEL {name} AS {statement}" if isinstance(statement, str) and statement
            else f"DROP MODEL {name}, then CREATE MODEL {name} AS PREDICT ...")
    return PlanError(f"model `{name}` cannot be read: its `{column}` in rdl_models is damaged ({why}); "
                     f"retrain it with {redo}", position)


def find_reusable(con, canonical: str, data_digest: str) -> StoredModel | None:
    """A stored model trained from the same statement (canonical form) on the same data, if any."""
    if not exists_table(con) or "canonical" not in _columns(con):
        return None
    rows = run(con, exp.select(exp.column("name")).from_(table(TABLE))
               .where(exp.and_(exp.column("data_digest").eq(lit(data_digest)),
                               exp.column("canonical").eq(lit(canonical)),
                               exp.column("model").isin(*[lit(k) for k in KINDS])))
               .order_by(exp.Ordered(this=exp.column("created_at"), desc=True)).limit(1))
    return load(con, rows[0][0]) if rows else None


def drop(con, name: str, if_exists: bool, position: Position | None = None) -> bool:
    known = names(con)
    if name not in known:
        if if_exists:
            return False
        raise PlanError(f"model `{name}` not found{did_you_mean(name, known)}; use DROP MODEL IF EXISTS "
                        f"to ignore a missing model", position)
    con.execute(to_sql(exp.delete(table(TABLE), where=exp.column("name").eq(lit(name)))))
    return True


def describe_weights(model: StoredModel) -> list[tuple[str, str]]:
    """``(property, value)`` rows about a GBDT's stored bytes (format, features, top features by gain).

    Reads the JSON envelope only, so DESCRIBE MODEL never loads LightGBM; a
    GNN's bytes are torch's and are not opened here.
    """
    if model.model != "gbdt":
        return []
    try:
        state = json.loads(bytes(model.weights).decode())
    except (UnicodeDecodeError, ValueError):
        return [("format", "unreadable")]
    rows = [("format", f"gbdt {state.get('format')}"), ("features", str(len(state.get("features", []))))]
    gain = state.get("importance") or {}
    if gain:
        total = sum(gain.values()) or 1.0
        rows.append(("top features (gain)", ", ".join(f"{k} {v / total:.0%}" for k, v in gain.items())))
    return rows
