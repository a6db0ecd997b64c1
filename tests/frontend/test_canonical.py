"""A statement's canonical form: its identity wherever meaning matters (reuse, stored models)."""
from __future__ import annotations

import pytest

from rdl_sql.dialect import canonical, parse_statement

SAME = [
    ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id",
     "predict   count(orders.*,0,30,day)=0\n -- a comment\n for each customers.customer_id /* another */"),
    ("PREDICT SUM(orders.amount WHERE orders.amount > 5 VIA customer_id, 0, 7, DAYS) FOR EACH customers.customer_id "
     "WHERE COUNT(orders.*, -90, 0, DAYS) > 0 ASSUMING EXISTS(orders.*, 0, 1, DAYS) AS OF TIMESTAMP '2024-01-01' "
     "WITH (epochs = 3, fanouts = '4,4')",
     "PREDICT SUM(orders.amount WHERE orders.amount>5 VIA customer_id,0,7,DAYS)\nFOR EACH customers.customer_id\n"
     "WHERE COUNT(orders.*,-90,0,DAYS)>0\nASSUMING EXISTS(orders.*,0,1,DAYS)\nAS OF TIMESTAMP '2024-01-01'\n"
     "WITH (epochs=3, fanouts='4,4')"),
]


@pytest.mark.parametrize("a, b", SAME)
def test_whitespace_comments_and_keyword_case_do_not_change_identity(a, b):
    assert canonical(parse_statement(a)) == canonical(parse_statement(b))


def test_string_literals_and_quoted_names_are_kept_exactly():
    a = canonical(parse_statement("PREDICT c.x FOR EACH c.id WHERE c.country = 'U  S'"))
    b = canonical(parse_statement("PREDICT c.x FOR EACH c.id WHERE c.country = 'U S'"))
    assert "'U  S'" in a and a != b
    q = canonical(parse_statement('PREDICT "Odd Table"."col x" FOR EACH ("Odd Table".a, "Odd Table".b)'))
    assert '"Odd Table"."col x"' in q


@pytest.mark.parametrize("text", [
    "PREDICT USING churn FOR customers.customer_id IN (SELECT customer_id, ts FROM x)",
    "PREDICT LAST(orders.product_id, 0, 30, DAYS) FOR EACH customers.customer_id -- trailing\n",
    "PREDICT customers.segment FOR EACH customers.customer_id WITH (model = 'gbdt')",
])
def test_canonical_text_parses_back_to_itself(text):
    once = canonical(parse_statement(text))
    assert canonical(parse_statement(once)) == once
    assert "--" not in once and "/*" not in once
