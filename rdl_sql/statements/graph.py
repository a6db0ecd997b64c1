"""ALTER GRAPH and DESCRIBE GRAPH: the graph definition, kept in table ``rdl_graph``."""
from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from rdl_sql.dialect import AlterGraph, DescribeGraph
from rdl_sql.engine import Engine, Result
from rdl_sql.planner import overrides
from rdl_sql.planner.errors import PlanError, Position, did_you_mean, sql_name
from rdl_sql.planner.schema import read_schema
from rdl_sql.planner.sql import col, lit, run, table
from rdl_sql.script import Statement


def alter_graph(engine: Engine, duck, node: AlterGraph, stmt: Statement) -> Result:
    """Declare or drop a link, set a time column, hide columns: persisted in ``rdl_graph``."""
    schema = read_schema(duck, with_counts=False)
    action = node.this.name
    # names as the catalog spells them: DuckDB (and so rdl-sql) compares names without case
    tinfo = schema.table(node.args["table"].name, Position.of(node.args["table"]))
    tname = tinfo.name
    cols = _columns(tinfo, node.args.get("columns") or [])
    if action == "ADD_LINK":
        ref = node.args["ref_table"]
        rinfo = schema.table(ref.name, Position.of(ref))
        ref_cols = _columns(rinfo, node.args["ref_columns"])
        _refuse_repeated(duck, tname, cols, rinfo, ref_cols, Position.of(node.args["ref_columns"][0]))
        known = any(lk.child == tname and lk.child_columns == tuple(cols) and lk.parent == rinfo.name
                    and lk.parent_columns == tuple(ref_cols) for lk in schema.links)
        overrides.add_link(duck, tname, cols, rinfo.name, ref_cols)
        msg = (f"link {tname}({', '.join(cols)}) -> {rinfo.name}({', '.join(ref_cols)}) "
               f"{'was already there; nothing changed' if known else 'added'}")
    elif action == "DROP_LINK":
        if not any(lk.child == tname and lk.child_columns == tuple(cols) for lk in schema.links):
            raise PlanError(f"no link from {tname}({', '.join(cols)})", Position.of(node.args["table"]))
        overrides.drop_link(duck, tname, cols)
        msg = f"link from {tname}({', '.join(cols)}) dropped"
    elif action == "SET_TIME":
        col = cols[0] if cols else None
        if col is not None and tinfo.column(col).dtype.split("(")[0].upper() not in (
                "DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"):
            dtype = tinfo.column(col).dtype
            epoch = ""
            if dtype.upper() in ("BIGINT", "INTEGER", "HUGEINT", "UBIGINT", "UINTEGER"):
                t, c = sql_name(tname), sql_name(col)  # a number that may count seconds since 1970
                epoch = (f"; if it counts seconds since 1970, convert it: ALTER TABLE {t} ALTER {c} TYPE TIMESTAMP "
                         f"USING make_timestamp({c} * 1000000) (milliseconds: USING epoch_ms({c})), then run this "
                         f"statement again")
            raise PlanError(f"`{tname}.{col}` is {dtype}; a time column must be DATE or TIMESTAMP{epoch}",
                            Position.of(node.args["columns"][0]))
        overrides.set_time_column(duck, tname, col)
        msg = f"time column of {tname}: {col or 'none (static table)'}"
    elif action == "UNIGNORE":
        hidden = overrides.ignored_columns(duck, tname)
        flagged: set[str] = set()
        if set(cols) - hidden:  # not ignored by IGNORE COLUMN: perhaps taken for a running last time
            flagged = {h.column for h in read_schema(duck).tables[tname].hindsight}
        for c, cnode in zip(cols, node.args.get("columns") or []):
            if c not in hidden | flagged:
                raise PlanError(f"column `{c}` of `{tname}` is not ignored, so there is nothing to undo"
                                + (f"; ignored there: {', '.join(sorted(hidden | flagged))}"
                                   if hidden | flagged else ""), Position.of(cnode))
        for c in cols:
            overrides.unignore_column(duck, tname, c)
            if c in flagged:
                overrides.keep_column(duck, tname, c)
        msg = f"{tname}: {', '.join(cols)} used again"
    else:
        for c in cols:
            overrides.ignore_column(duck, tname, c)
        msg = f"{tname}: {', '.join(cols)} ignored"
    return Result(table=pa.table({"result": [msg]}), notices=[msg])


def _refuse_repeated(duck, child: str, cols: list[str], rinfo, ref_cols: list[str], position) -> None:
    """Refuse a link whose parent columns hold a value in several rows.

    A link names one parent row per child row: with two, a child would have two parents and
    GBDT's joins would count it twice. Rows added later may still repeat a value; the feature
    query then reads one of them (``planner.nodes.one_row_per``). A key DuckDB keeps unique
    (PRIMARY KEY or UNIQUE) is not counted.
    """
    if rinfo.primary_key and set(ref_cols) == set(rinfo.primary_key):
        return
    keys = [col(c) for c in ref_cols]
    n = exp.Count(this=exp.Star())
    q = (exp.select(*keys, n).from_(table(rinfo.name))
         .where(exp.and_(*[k.copy().is_(exp.null()).not_() for k in keys]))
         .group_by(*[k.copy() for k in keys]).having(n.copy() > lit(1))
         .order_by(*[k.copy() for k in keys]).limit(1))
    rows = run(duck, q)
    if not rows:
        return
    *value, count = rows[0]
    where = " and ".join(f"{c} = {_literal(v)}" for c, v in zip(ref_cols, value))
    key = rinfo.primary_key
    fix = (f"reference its key instead (ALTER GRAPH ADD LINK {sql_name(child)}(<column>) REFERENCES "
           f"{sql_name(rinfo.name)}({', '.join(map(sql_name, key))})), or " if key else "")
    raise PlanError(f"cannot add link {child}({', '.join(cols)}) -> {rinfo.name}({', '.join(ref_cols)}): "
                    f"({', '.join(ref_cols)}) does not identify one row of `{rinfo.name}` ({where} is in {count} "
                    f"rows), and a link must name one parent row per child row; {fix}declare the link to "
                    f"columns whose values are unique in `{rinfo.name}`, or keep one row per value there",
                    position)


def _literal(value) -> str:
    """A repeated key value as a user would write it in SQL."""
    if isinstance(value, (bool, int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _columns(tinfo, nodes) -> list[str]:
    out = []
    for cnode in nodes:
        c = tinfo.column(cnode.name)
        if c is None:
            raise PlanError(f"column `{cnode.name}` not found in table `{tinfo.name}`"
                            f"{did_you_mean(cnode.name, [x.name for x in tinfo.columns])}", Position.of(cnode))
        out.append(c.name)
    return out


def describe_graph(engine: Engine, duck, node: DescribeGraph, stmt: Statement) -> Result:
    """Every column of every table with its semantic type and role in the graph."""
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
    notes = list(schema.notes) + [n for t in schema.tables.values() for n in (*t.notes, *(h.note for h in t.hindsight))]
    return Result(table=pa.table(rows), notices=notes)
