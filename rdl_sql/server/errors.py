"""rdl-sql and DuckDB errors as PostgreSQL ErrorResponse fields: SQLSTATE, message, position, detail."""
from __future__ import annotations

import re

import duckdb

from rdl_sql import errors

_LINE = re.compile(r"^LINE (\d+): (.*)$")


_PREFIX = {"Parser Error": duckdb.ParserException, "Syntax Error": duckdb.SyntaxException,
           "Catalog Error": duckdb.CatalogException, "Binder Error": duckdb.BinderException,
           "Constraint Error": duckdb.ConstraintException, "TransactionContext Error": duckdb.TransactionException,
           "Conversion Error": duckdb.ConversionException, "Out of Range Error": duckdb.OutOfRangeException,
           "Out of Memory Error": duckdb.OutOfMemoryException, "Not implemented Error": duckdb.NotImplementedException,
           "IO Error": duckdb.IOException, "INTERRUPT Error": duckdb.InterruptException}


def _duckdb_kind(exc: BaseException):
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, duckdb.Error):
        return cause
    head = str(exc).split(":", 1)[0].strip()
    cls = _PREFIX.get(head)
    if cls is not None:
        return cls.__new__(cls)
    return exc


def sqlstate(exc: BaseException) -> str:
    cause = _duckdb_kind(exc)
    msg = str(exc)
    low = msg.lower()
    if isinstance(cause, duckdb.InterruptException) or "interrupted" in low or "cancel" in low:
        return "57014"   # query_canceled
    if isinstance(cause, (duckdb.ParserException, duckdb.SyntaxException)):
        return "42601"
    if isinstance(cause, duckdb.CatalogException):
        if "column" in low:
            return "42703"
        if "table" in low or "view" in low:
            return "42P01"
        if "function" in low:
            return "42883"
        if "schema" in low:
            return "3F000"
        return "42704"
    if isinstance(cause, duckdb.BinderException):
        if "column" in low and ("not found" in low or "does not" in low):
            return "42703"
        if "function" in low:
            return "42883"
        return "42804"
    if isinstance(cause, duckdb.ConstraintException):
        if "null" in low:
            return "23502"
        if "foreign key" in low:
            return "23503"
        if "duplicate" in low or "unique" in low or "primary key" in low:
            return "23505"
        return "23000"
    if isinstance(cause, duckdb.TransactionException):
        if "conflict" in low:
            return "40001"
        if "aborted" in low:
            return "25P02"
        return "25000"
    if "read-only" in low or "read only" in low:
        return "25006"
    if isinstance(cause, duckdb.ConversionException):
        return "22P02"
    if isinstance(cause, duckdb.OutOfRangeException):
        return "22003"
    if isinstance(cause, duckdb.OutOfMemoryException):
        return "53200"
    if isinstance(cause, duckdb.NotImplementedException) or isinstance(exc, errors.NotSupportedError):
        return "0A000"
    if isinstance(cause, duckdb.IOException):
        return "58030"
    if isinstance(exc, errors.IntegrityError):
        return "23000"
    if isinstance(exc, errors.DataError):
        return "22000"
    if isinstance(exc, errors.ProgrammingError):
        return "42601" if "syntax" in low or "expected" in low else "42000"
    if isinstance(exc, errors.OperationalError):
        return "58000"
    return "XX000"


def _offset_of_line(text: str, line: int) -> int:
    pos = 0
    for _ in range(line - 1):
        nxt = text.find("\n", pos)
        if nxt < 0:
            return pos
        pos = nxt + 1
    return pos


def fields(exc: BaseException, query: str = "", stmt_offset: int = 0, stmt_text: str = "") -> dict[str, str]:
    """ErrorResponse fields for ``exc`` raised by the statement at ``stmt_offset`` of ``query``.

    ``M`` is the message's first line (with its statement, line and column as
    rdl-sql writes them); ``P`` (1-based character position in ``query``) lets
    clients such as psql draw their own caret; other lines go to ``D``.
    """
    msg = str(exc).strip() or type(exc).__name__
    lines = msg.split("\n")
    out = {"C": sqlstate(exc), "M": lines[0]}
    position = None
    rest = lines[1:]
    line, col = getattr(exc, "line", None), getattr(exc, "col", None)
    if line is not None and col is not None:
        # rdl-sql's caret lines repeat the statement: the position replaces them
        position = _offset_of_line(query, line) + col
        rest = [x for x in rest if x.strip() and not x.startswith("  ")]
    else:
        kept = []
        for i, x in enumerate(rest):
            m = _LINE.match(x)
            if m and i + 1 < len(rest) and rest[i + 1].strip().startswith("^"):
                snippet, caret_line = m.group(2), rest[i + 1]
                if not snippet.startswith("...") and stmt_text:
                    caret = caret_line.index("^") - len(x) + len(m.group(2))
                    base = _offset_of_line(stmt_text, int(m.group(1)))
                    position = stmt_offset + base + caret + 1
                continue
            if x.strip().startswith("^") or not x.strip():
                continue
            kept.append(x)
        rest = kept
    if position is not None and position > 0:
        out["P"] = str(position)
    if rest:
        out["D"] = "\n".join(rest)
    return out
