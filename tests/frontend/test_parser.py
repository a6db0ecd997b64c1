"""The PREDICT grammar: what parses, and the exact messages for what does not."""
import datetime as dt

import pytest
from sqlglot.errors import ParseError

from rdl_sql.bind import to_query
from rdl_sql.dialect import AlterGraph, DescribeGraph, Predict, parse_statement
from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.query import AggRef
from rdl_sql.script import split

FULL = """PREDICT COUNT(orders.*, 0, 30, DAYS) = 0
FOR EACH customers.customer_id
WHERE COUNT(orders.*, -90, 0, DAYS) > 0 AND customers.age >= 18
ASSUMING EXISTS(orders.* WHERE orders.amount > 5 VIA customer_id, 0, 10, DAY)
AS OF TIMESTAMP '2024-06-01'
WITH (epochs = 3, model = 'gnn', fanouts = [8, 4], lr = 0.01)"""


def test_full_predict_binds_every_clause():
    q = to_query(parse_statement(FULL), FULL)
    t = q.target
    assert (t.aggregate.func, t.aggregate.table, t.aggregate.column) == ("COUNT", "orders", None)
    assert (t.aggregate.start, t.aggregate.end, t.aggregate.unit, t.op, t.value) == (0, 30, "DAYS", "=", 0)
    assert (q.entity_table, q.entity_column) == ("customers", "customer_id")
    assert [a.func for a in q.aggregates] == ["COUNT", "COUNT", "EXISTS"]
    assert q.aggregates[1].start == -90 and q.aggregates[1].end == 0
    exists = q.aggregates[2]
    assert exists.via == "customer_id" and exists.unit == "DAYS" and exists.where.sql() == "orders.amount > 5"
    assert {r.this for r in q.where.find_all(AggRef)} == {1}
    assert {r.this for r in q.assuming.find_all(AggRef)} == {2}
    assert q.as_of == dt.datetime(2024, 6, 1)
    o = q.options  # typed: fanouts is a tuple of ints, no layer parses a string
    assert {k: getattr(o, k) for k in o.given} == {"epochs": 3, "model": "gnn", "fanouts": (8, 4), "lr": 0.01}


def test_comparison_with_aggregate_on_the_right_is_flipped():
    q = to_query(parse_statement("PREDICT 2 < SUM(orders.amount, 0, 7, DAYS) FOR EACH c.id"), "")
    assert (q.target.op, q.target.value, q.target.aggregate.column) == (">", 2, "amount")


def test_plain_aggregates_still_parse_as_sql_inside_rdl_dialect():
    e = parse_statement("SELECT COUNT(*), SUM(x), MAX(y) FROM t")
    assert e.sql("duckdb") == "SELECT COUNT(*), SUM(x), MAX(y) FROM t"


def test_alter_and_describe_graph_parse():
    a = parse_statement('ALTER GRAPH ADD LINK "Order Items"(a, b) REFERENCES p(x, y)')
    assert isinstance(a, AlterGraph) and a.args["table"].name == "Order Items"
    assert [c.name for c in a.args["ref_columns"]] == ["x", "y"]
    t = parse_statement("ALTER GRAPH SET TIME COLUMN t(NONE)")
    assert t.this.name == "SET_TIME" and not t.args.get("columns")
    assert isinstance(parse_statement("DESCRIBE GRAPH"), DescribeGraph)
    assert isinstance(parse_statement("PREDICT COUNT(o.*, 0, 1, HOURS) FOR EACH c.id"), Predict)


@pytest.mark.parametrize("sql, message", [
    ("PREDICT COUNT(orders.*, 0, 30, DAYZ) = 0 FOR EACH c.id",
     "unknown time unit `DAYZ`; use one of SECONDS, MINUTES, HOURS, DAYS, WEEKS, MONTHS, YEARS"),
    ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR c.id",
     "expected IN (query) after FOR <table>.<key>; or write FOR EACH <table>.<key>"),
    ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 WHERE c.x > 1",
     "expected FOR EACH <table>.<primary key> after the PREDICT target"),
    ("CREATE MODEL m AS SELECT 1", "expected AS PREDICT ... after CREATE MODEL m"),
    ("CREATE MODEL m AS PREDICT USING other", "CREATE MODEL trains a new model; write its target, not PREDICT USING"),
    ("PREDICT COUNT(orders.*, 0, x, DAYS) FOR EACH c.id", "the window end must be a whole number, e.g. -90 or 30"),
    ("PREDICT FOR EACH c.id", "PREDICT needs a target, e.g. PREDICT COUNT(orders.*, 0, 30, DAYS) = 0"),
    ("PREDICT COUNT(orders.*, 0, 30, DAYS) FOR EACH id",
     "FOR EACH needs a qualified key, e.g. FOR EACH customers.customer_id"),
    ("ALTER GRAPH RENAME t",
     "expected ADD LINK, DROP LINK, SET TIME COLUMN, IGNORE COLUMN or UNIGNORE COLUMN after ALTER GRAPH"),
])
def test_parse_errors_have_exact_messages_and_positions(sql, message):
    with pytest.raises(ParseError) as err:
        parse_statement(sql)
    info = err.value.errors[0]
    assert info["description"] == message
    assert info["line"] == 1 and info["col"] >= 1


@pytest.mark.parametrize("sql, message", [
    ("PREDICT COUNT(orders.*, 0, 30) FOR EACH c.id", "the PREDICT target must be a windowed aggregate"),
    ("PREDICT COUNT(o.*, 0, 3, DAYS) FOR EACH c.id WITH (epoch = 3)", "unknown option `epoch`; did you mean `epochs`?"),
    ("PREDICT COUNT(o.*, 0, 3, DAYS) FOR EACH c.id WITH (epochs = 'many')", "option `epochs` must be a whole number"),
    ("PREDICT COUNT(o.*, 0, 3, DAYS) FOR EACH c.id WITH (model = 'xgb')", "option `model` must be one of"),
    ("PREDICT COUNT(o.*, 0, 3, DAYS) FOR EACH c.id WITH (layers = 3, fanouts = '4,4')", "3 layers need 3 fanouts"),
    ("PREDICT COUNT(o.*, 0, 3, DAYS) FOR EACH c.id AS OF 'yesterday'", "AS OF needs a timestamp literal"),
])
def test_bind_errors(sql, message):
    with pytest.raises(PlanError) as err:
        to_query(parse_statement(sql), sql)
    assert message in err.value.message


def test_script_split_respects_strings_and_comments_and_routes_statements():
    stmts = split("select ';' as a; -- PREDICT in a comment;\nselect 'PREDICT';\n"
                  "PREDICT COUNT(o.*, 0, 3, DAYS) FOR EACH c.id;\nALTER GRAPH SET TIME COLUMN t(x)")
    assert [s.text for s in stmts] == ["select ';' as a", "select 'PREDICT'",
                                       "PREDICT COUNT(o.*, 0, 3, DAYS) FOR EACH c.id",
                                       "ALTER GRAPH SET TIME COLUMN t(x)"]
    assert [s.is_rdl for s in stmts] == [False, False, True, True]
    assert [s.first_line for s in stmts] == [1, 2, 3, 4]


def test_split_is_safe_from_many_threads():
    """A server splits statements of many clients at once; sqlglot's tokenizer keeps state per instance."""
    import threading
    scripts = [f"SELECT {i} AS v{i}; SELECT 'x{i}' -- c\n; PREDICT COUNT(o.*, 0, {i + 1}, DAYS) FOR EACH c.id"
               for i in range(40)]
    expected = {s: [st.text for st in split(s)] for s in scripts}
    bad = []

    def work(s):
        for _ in range(50):
            if [st.text for st in split(s)] != expected[s]:
                bad.append(s)

    threads = [threading.Thread(target=work, args=(s,)) for s in scripts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []
