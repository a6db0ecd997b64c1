"""Split a SQL script into statements and tell rdl-sql statements from plain SQL.

Splitting uses sqlglot's DuckDB tokenizer, so semicolons inside strings and
comments do not split. A statement goes to rdl-sql's parser only if it holds
one of its keywords; all other text goes to DuckDB exactly as written.
"""
from __future__ import annotations

import difflib
import threading
from dataclasses import dataclass

from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType

from rdl_sql.dialect import RdlTokenizer

_local = threading.local()


def _tokenize(text: str):
    """sqlglot's tokenizer keeps state between calls: one per thread (a server splits in many at once)."""
    tokenizer = getattr(_local, "tokenizer", None)
    if tokenizer is None:
        tokenizer = _local.tokenizer = RdlTokenizer()
    return tokenizer.tokenize(text)


@dataclass(frozen=True)
class Statement:
    text: str
    index: int        # 1-based position in the script
    first_line: int   # line of the script where the statement starts
    is_rdl: bool


def _is_rdl(words: list[str]) -> bool:
    if not words:
        return False
    if "PREDICT" in words:
        return True
    head = tuple(words[:2])
    return head in {("ALTER", "GRAPH"), ("DESCRIBE", "GRAPH"), ("DESCRIBE", "MODEL"), ("SHOW", "MODELS"),
                    ("DROP", "MODEL"), ("CREATE", "MODEL"), ("EVALUATE", "MODEL")} or tuple(words[:4]) == (
        "CREATE", "OR", "REPLACE", "MODEL")


def split(script: str) -> list[Statement]:
    """Statements of ``script`` in order, without trailing semicolons; empty ones dropped."""
    try:
        tokens = _tokenize(script)
    except TokenError:
        text = script.strip().rstrip(";")
        return [Statement(text, 1, 1, False)] if text else []
    out: list[Statement] = []
    group = []
    for tok in tokens + [None]:
        if tok is None or tok.token_type == TokenType.SEMICOLON:
            if group:
                start, end = group[0].start, group[-1].end
                words = [t.text.upper() for t in group if t.token_type not in (TokenType.STRING, TokenType.IDENTIFIER)]
                first_line = script.count("\n", 0, start) + 1
                out.append(Statement(script[start:end + 1], len(out) + 1, first_line, _is_rdl(words)))
            group = []
        else:
            group.append(tok)
    return out


#: how each rdl-sql statement begins, for "did you mean" on a misspelt one
HEADS = ("CREATE MODEL", "CREATE OR REPLACE MODEL", "SHOW MODELS", "DESCRIBE MODEL", "DESCRIBE GRAPH", "DROP MODEL",
         "ALTER GRAPH", "EVALUATE MODEL", "EVALUATE PREDICT", "EXPLAIN PREDICT", "PREDICT")


def suggest(text: str) -> tuple[str, int, int] | None:
    """``(message, start, end)`` when ``text`` begins like an rdl-sql statement with one word misspelt
    (``CREATE MODLE``, ``SHOW MODEL``, ``EXPLIAN PREDICT``); None when it does not."""
    try:
        tokens = [t for t in _tokenize(text)[:5]]
    except TokenError:
        return None
    words = [t.text.upper() if t.token_type not in (TokenType.STRING, TokenType.IDENTIFIER) else "" for t in tokens]
    best = None
    for head in HEADS:
        want = head.split()
        got = words[:len(want)]
        if len(got) < len(want):
            continue
        if got == want:
            return None  # the statement is spelt right; its error is elsewhere
        wrong = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
        if len(wrong) != 1:
            continue
        i = wrong[0]
        score = difflib.SequenceMatcher(None, got[i], want[i]).ratio()
        if score >= 0.75 and (best is None or score > best[0]):
            best = (score, head, tokens[i])
    if best is None:
        return None
    _, head, tok = best
    return f"did you mean {head}?", tok.start, tok.end
