"""Grammar-aware fuzzing of the rdl-sql statements: mutate valid statements, run them, classify the outcome.

The promise checked: a mistake in SQL never gives a traceback. Every failure
is an ``rdl_sql.Error`` subclass (not ``InternalError``, which marks a bug),
whose message names a position where the statement has one (a parse error)
and shows no Python class name.

    python benchmarks/fuzz.py --statements 10000 --seed 0

runs a generated stream on a small shop database (``build_shop``) and prints
the counts by outcome; statements that train run with tiny options. The
suite's ``tests/frontend/test_fuzz.py`` drives the same mutations through
hypothesis, bounded to about a minute.
"""
from __future__ import annotations

import argparse
import collections
import random
import re
import sys
import time
from collections.abc import Sequence
from typing import Protocol

from sqlglot.errors import ParseError, TokenError

import rdl_sql
from rdl_sql.datasets.shop import build_shop
from rdl_sql.dialect import RdlTokenizer, parse_statement
from rdl_sql.script import split

#: what a training statement of the fuzz run may spend: tiny, so that thousands of statements run
TINY = "WITH (epochs = 1, channels = 8, fanouts = '2,2', max_train_rows = 200, patience = 0)"
CHURN = "PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id"

#: valid statements over the shop database (customers, products, orders, reviews; stored model `churn`)
SEEDS = (
    f"EXPLAIN {CHURN} WHERE COUNT(orders.*, -90, 0, DAYS) > 0 AND customers.age >= 18",
    "EXPLAIN PREDICT SUM(orders.amount, 0, 30, DAYS) FOR EACH customers.customer_id "
    "WHERE customers.country = 'US' AS OF TIMESTAMP '2023-06-01'",
    "EXPLAIN PREDICT EXISTS(orders.* WHERE orders.amount > 5 VIA customer_id, 0, 14, DAYS) "
    "FOR EACH customers.customer_id ASSUMING COUNT(reviews.*, 0, 14, DAYS) > 0 WITH (anchor_step = 7)",
    "EXPLAIN PREDICT LAST(orders.product_id, 0, 30, DAYS) FOR EACH customers.customer_id "
    "WITH (val_start = '2023-05-01', test_start = '2023-06-01')",
    "EXPLAIN PREDICT customers.country FOR EACH customers.customer_id",
    "EXPLAIN PREDICT AVG(reviews.rating, 0, 2, MONTHS) > 3 FOR EACH products.product_id "
    "WHERE COUNT(orders.*, -1, 0, MONTHS) > 1",
    "EXPLAIN PREDICT COUNT_DISTINCT(orders.product_id, 0, 4, WEEKS) FOR EACH customers.customer_id "
    "WITH (layers = 1, fanouts = '8', sampler = 'uniform')",
    "EXPLAIN PREDICT MAX(orders.amount, 0, 720, HOURS) >= 100 FOR customers.customer_id "
    "IN (SELECT customer_id FROM customers WHERE age > 30)",
    f"{CHURN} WHERE COUNT(orders.*, -60, 0, DAYS) > 0 {TINY}",
    f"PREDICT SUM(orders.amount, 0, 30, DAYS) FOR EACH customers.customer_id {TINY}",
    f"EVALUATE PREDICT COUNT(orders.*, 0, 30, DAYS) > 1 FOR EACH customers.customer_id {TINY}",
    f"CREATE OR REPLACE MODEL fuzz_model AS {CHURN} {TINY}",
    "PREDICT USING churn ORDER BY score DESC LIMIT 5",
    "PREDICT USING churn FOR customers.customer_id IN (SELECT customer_id FROM customers LIMIT 3) "
    "AS OF TIMESTAMP '2023-05-01'",
    "EVALUATE MODEL churn AS OF TIMESTAMP '2023-06-15'",
    "SELECT count(*) FROM (PREDICT USING churn) p JOIN customers c USING (customer_id)",
    "DESCRIBE MODEL churn",
    "SHOW MODELS",
    "DESCRIBE GRAPH",
    "DROP MODEL IF EXISTS no_such_model",
    "ALTER GRAPH SET TIME COLUMN reviews(reviewed_at)",
    "SELECT customer_id, country FROM customers WHERE age > 40 LIMIT 3",
)

NUMBERS = ("0", "1", "-1", "30", "-90", "2147483648", "-9223372036854775807", "9223372036854775808", "1e400",
           "-1e400", "1e-400", "0.5", "3000000000", "99999999999999999999999", "NULL", "'abc'", "TRUE", "?",
           "$1")
STRINGS = ("'2023-06-01T12:00:00Z'", "'2023-06-01 12:00:00+02'", "'0044-03-15 (BC)'", "'0001-01-01'",
           "'9999-12-31'", "'10000-01-01'", "''", "'abc'", "'2023-10-01''; DROP TABLE customers; --'",
           "'gnn'", "'gbdt'", "'1,1'", "'0,0'", "'-5'", "'2023-02-30'", "'é ü 日本'", "'NaN'", "'inf'")
KEYWORDS = ("PREDICT", "USING", "FOR", "EACH", "IN", "WHERE", "ASSUMING", "AS OF", "WITH", "ORDER BY", "LIMIT",
            "VIA", "MODEL", "MODELS", "GRAPH", "EXPLAIN", "EVALUATE", "CREATE", "OR REPLACE", "DROP", "SHOW",
            "DESCRIBE", "SELECT", "FROM", "AND", "OR", "NOT", "NULL", "TIMESTAMP", "TIMESTAMPTZ", "DATE",
            "INTERVAL", "DAYS", "DAY", "MONTHS", "YEARS", "SECONDS", "DAYZ", "COUNT", "SUM", "FIRST", "EXISTS",
            "RANK TOP 3", ",", "(", ")", ".", "*", "=", "<>", ">", ";", "--", "/*", "'")
IDENTIFIERS = ("orders", "Orders", "ORDERS", "orderz", "customers", "Customers", "customer_id", "Customer_ID",
               "customerid", "products", "reviews", "amount", "Amount", "country", "age", "signup_at", "churn",
               "Churn", "rdl_models", "rdl_graph", "rowid", "__node", '"select"', '"a""b"', "epochs",
               "batch_size", "lr", "seed", "channels", "max_train_rows", "no_such_table", "x")
#: option values that are each refused, past the bounds training can use
OPTIONS = ("epochs = 0", "batch_size = 0", "lr = 1e30", "seed = 9223372036854775808", "channels = 0",
           "anchor_step = 1000000", "val_start = '0001-01-02'", "test_start = '9999-12-30'", "epoch = 3",
           "fanouts = '0'", "layers = 9", "model = 'gbdt'", "threads = 0", "lr = -1", "max_train_rows = -5",
           "sampler = 'random'", "patience = 1.5")

#: what must never appear in a message: Python class names, sqlglot internals, tracebacks
CLASS_NAME = re.compile(r"<class |\bsqlglot\.|\bTokenType\b|Traceback|\bobject has no attribute\b"
                        r"|\b[A-Za-z]*[a-z](?:Error|Exception)\b")


class Chooser(Protocol):
    def choice(self, seq: Sequence): ...

    def randint(self, lo: int, hi: int) -> int: ...


def _spans(text: str) -> list[tuple[int, int, object]]:
    try:
        return [(t.start, t.end + 1, t.token_type) for t in RdlTokenizer().tokenize(text)]
    except TokenError:
        return []


def mutate_once(text: str, ch: Chooser) -> str:
    """One grammar-aware change of ``text``: a token dropped, repeated, swapped or replaced by a value,
    keyword or name of the language, a clause added, nesting, or a cut."""
    spans = _spans(text)
    if not spans:
        return text + ch.choice(KEYWORDS)
    i = ch.randint(0, len(spans) - 1)
    start, end, kind = spans[i]
    word = text[start:end]
    op = ch.choice(("drop", "repeat", "swap", "value", "keyword", "name", "option", "nest", "cut", "case"))
    if op == "drop":
        return text[:start] + text[end:]
    if op == "repeat":
        return text[:end] + " " + word + text[end:]
    if op == "swap" and i + 1 < len(spans):
        s2, e2, _ = spans[i + 1]
        return text[:start] + text[s2:e2] + text[end:s2] + word + text[e2:]
    if op == "value":
        pool = STRINGS if word.startswith("'") else NUMBERS if word[:1].isdigit() or word == "-" else (
            NUMBERS + STRINGS)
        return text[:start] + ch.choice(pool) + text[end:]
    if op == "keyword":
        at = ch.choice((start, end))
        return text[:at] + " " + ch.choice(KEYWORDS) + " " + text[at:]
    if op == "name":
        return text[:start] + ch.choice(IDENTIFIERS) + text[end:]
    if op == "option":
        if "WITH (" in text:
            return text.replace("WITH (", f"WITH ({ch.choice(OPTIONS)}, ", 1)
        return f"{text} WITH ({ch.choice(OPTIONS)})"
    if op == "nest":  # parentheses around one token, as deep as DuckDB allows and deeper
        depth = ch.choice((2, 50, 200, 999, 1001, 1500))
        return text[:start] + "(" * depth + word + ")" * depth + text[end:]
    if op == "cut":
        return text[:start]
    return text[:start] + (word.swapcase() if word.isupper() or word.islower() else word.upper()) + text[end:]


def statement(ch: Chooser) -> str:
    """A seed statement with one to three mutations (or none: valid statements must keep working)."""
    text = ch.choice(SEEDS)
    for _ in range(ch.randint(0, 3)):
        text = mutate_once(text, ch)
    return text


def outcome(con, text: str) -> tuple[str, str]:
    """``(outcome, message)``: ``ok``, an rdl_sql error class name, or one of the defects
    ``internal`` (InternalError), ``raw`` (not an rdl_sql.Error), ``class name`` (a Python class
    name in the message) and ``unlocated`` (a parse error without a position)."""
    try:
        con.execute(text)
        return "ok", ""
    except rdl_sql.InternalError as e:
        return "internal", str(e)
    except rdl_sql.Error as e:
        message = str(e)
        if CLASS_NAME.search(message):
            return "class name", message
        if isinstance(e, rdl_sql.ProgrammingError) and e.line is None and _parse_fails(text):
            return "unlocated", message
        return type(e).__name__, message
    except Exception as e:  # noqa: BLE001 - exactly what the fuzzing looks for
        return "raw", f"{type(e).__name__}: {e}"


def _parse_fails(text: str) -> bool:
    """Whether rdl-sql's own parser rejects ``text`` (then the message must carry a line and column)."""
    try:
        stmts = split(text)
    except Exception:  # noqa: BLE001
        return False
    if len(stmts) != 1 or not stmts[0].is_rdl:
        return False
    try:
        parse_statement(stmts[0].text)
    except ParseError:
        return True
    except Exception:  # noqa: BLE001
        return False
    return False


DEFECTS = ("internal", "raw", "class name", "unlocated")


def shop(path: str | None = None, *, model: bool = True) -> rdl_sql.Connection:
    """A small shop database (120 customers, 150 days) holding model `churn`."""
    con = rdl_sql.connect(path or ":memory:", progress=False)
    build_shop(con.duckdb_connection, customers=120, products=20, days=150, seed=1)
    if model:
        con.execute(f"CREATE MODEL churn AS {CHURN} {TINY}")
    return con


def restore(con) -> None:
    """Undo what mutated statements may have changed for the next ones: graph overrides, model `churn`."""
    con.execute("DROP TABLE IF EXISTS rdl_graph")
    con.execute("SHOW MODELS")
    if "churn" not in [r[0] for r in con.fetchall()]:
        con.execute(f"CREATE MODEL churn AS {CHURN} {TINY}")


class _Random:
    def __init__(self, seed: int):
        self.r = random.Random(seed)

    def choice(self, seq):
        return self.r.choice(seq)

    def randint(self, lo, hi):
        return self.r.randint(lo, hi)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--statements", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=3, help="examples printed per defect class")
    args = ap.parse_args(argv)
    ch = _Random(args.seed)
    con = shop()
    counts: collections.Counter = collections.Counter()
    examples: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    t0 = time.perf_counter()
    for n in range(1, args.statements + 1):
        if n % 200 == 0:
            restore(con)
        text = statement(ch)
        kind, message = outcome(con, text)
        counts[kind] += 1
        if kind in DEFECTS and len(examples[kind]) < args.show:
            examples[kind].append((text, message))
        if n % 1000 == 0:
            print(f"{n:,} statements, {time.perf_counter() - t0:,.0f} s: {dict(counts)}", file=sys.stderr, flush=True)
    print(f"{args.statements:,} statements in {time.perf_counter() - t0:,.0f} s (seed {args.seed})")
    for kind, n in counts.most_common():
        print(f"  {kind:20} {n:6,}")
    for kind, items in examples.items():
        for text, message in items:
            print(f"\n[{kind}] {text[:300]}\n  -> {message[:500]}")
    return 1 if any(counts[k] for k in DEFECTS) else 0


if __name__ == "__main__":
    sys.exit(main())
