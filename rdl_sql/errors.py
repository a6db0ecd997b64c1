"""PEP 249 exceptions, and the one-line-plus-caret messages SQL users see."""
from __future__ import annotations


class Warning(Exception):  # noqa: A001 - the name PEP 249 requires
    pass


class Error(Exception):
    pass


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    """A mistake in the user's statement; the message names the place and the fix."""

    def __init__(self, message: str, *, statement: int | None = None, line: int | None = None,
                 col: int | None = None):
        super().__init__(message)
        self.statement, self.line, self.col = statement, line, col


class NotSupportedError(DatabaseError):
    pass


def located(message: str, text: str, index: int, start: int | None, end: int | None,
            first_line: int = 1) -> ProgrammingError:
    """``message`` with the statement number, line, column and a caret under ``text[start:end+1]``."""
    if start is None:
        return ProgrammingError(f"statement {index}: {message}", statement=index)
    start = max(0, min(start, len(text) - 1)) if text else 0
    end = max(start, min(end if end is not None else start, len(text) - 1))
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    line_end = len(text) if line_end < 0 else line_end
    line_no = text.count("\n", 0, start) + first_line
    col = start - line_start + 1
    source = text[line_start:line_end]
    width = max(1, min(end, line_end - 1) - start + 1)
    caret = " " * (col - 1) + "^" * width
    return ProgrammingError(f"statement {index}, line {line_no}, column {col}: {message}\n  {source}\n  {caret}",
                            statement=index, line=line_no, col=col)
