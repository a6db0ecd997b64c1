"""The one error type the planner raises for a mistake in the user's statement.

It carries the source position (from sqlglot token metadata) so the
front-end can print the line, the column and a caret; the planner itself
never formats statements.
"""
from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass

import duckdb
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB


@dataclass(frozen=True)
class Position:
    line: int
    col: int
    start: int  # character offsets into the statement text, inclusive
    end: int

    @classmethod
    def of(cls, node) -> "Position | None":
        """Position of a sqlglot node, from its own meta or its first identifier's."""
        if node is None:
            return None
        for n in (node, *node.find_all(exp.Identifier)):
            meta = getattr(n, "meta", None) or {}
            if "line" in meta and "start" in meta:
                return cls(meta["line"], meta["col"], meta["start"], meta["end"])
        return None


class PlanError(Exception):
    """A statement that cannot be planned: unknown name, wrong window, bad option."""

    def __init__(self, message: str, position: Position | None = None):
        super().__init__(message)
        self.message = message
        self.position = position


def did_you_mean(name: str, candidates) -> str:
    """' did you mean `x`?' when a close candidate exists, else ''."""
    cands = list(candidates)
    lowered = {c.lower(): c for c in cands}
    if name.lower() in lowered and lowered[name.lower()] != name:
        return f"; did you mean `{lowered[name.lower()]}`?"
    close = difflib.get_close_matches(name, cands, n=1, cutoff=0.6)
    if not close:
        close = [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)]
    return f"; did you mean `{close[0]}`?" if close else ""


@functools.cache
def _duckdb_keywords() -> frozenset[str]:
    """DuckDB's keywords that cannot always stand bare as a name (``AT``, ``TIME``, ``ORDER``): sqlglot's
    list misses some, and a fix offered with one bare does not parse."""
    rows = duckdb.sql("SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category <> 'unreserved'").fetchall()
    return frozenset(r[0].upper() for r in rows)


def sql_name(name: str) -> str:
    """``name`` as it must be written in a statement: bare if it can be, else double-quoted."""
    if (re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name.upper() not in DuckDB.Tokenizer.KEYWORDS
            and name.upper() not in _duckdb_keywords()):
        return name
    return '"' + name.replace('"', '""') + '"'
