"""Results drawn as the DuckDB CLI draws them, one function per output mode.

Every renderer takes the column names, the DuckDB type names, an Arrow table and a
``Style`` (null text, headers, separator, size limits) and writes to a text stream.
How each mode looks was checked against the DuckDB CLI (``duckdb-cli`` 1.5.6):

- ``duckbox`` (default): names and types on top, numbers right-aligned, past
  ``max_rows`` rows the first and last half with ``·`` rows between and a footer
  (``100 rows (40 shown)``), wide columns cut with ``…`` to the terminal width.
- ``box`` / ``table``: names only, cells left-aligned, every row, drawn with
  box characters or with ``+-|``.
- ``markdown``: a pipe table whose rule marks number columns ``---:``.
- ``csv`` / ``list`` / ``tabs``: a header row (``.headers off`` drops it), then
  one line per row, separated by ``,``, ``|`` (or ``.separator``) or a tab.
- ``json`` (one array) / ``jsonlines`` (one object a line): numbers, booleans,
  lists and structs as JSON values; decimals, dates and times as strings, as
  DuckDB writes them.
- ``line``: ``name = value`` per line, a blank line between rows.

Two choices differ from DuckDB 1.5 on purpose and are kept from earlier
rdl-sql releases: csv writes NULL as an empty field (unless ``.nullvalue`` says
otherwise), and line mode does not pad names to five characters.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import unicodedata
from decimal import Decimal
from typing import TextIO

import pyarrow as pa

MAX_ROWS = 40  # DuckDB's default: past this, the first and last 20 rows are shown

MODES = ("duckbox", "box", "table", "markdown", "csv", "json", "jsonlines", "line", "list", "tabs")
# modes whose output a program reads: notices and timings go to stderr, never into the result
MACHINE_MODES = frozenset({"csv", "json", "jsonlines", "list", "tabs"})


@dataclasses.dataclass
class Style:
    """How results are drawn; changed by dot commands and flags."""
    mode: str = "duckbox"
    headers: bool = True           # csv / list / tabs only, as in DuckDB
    nullvalue: str | None = None   # None: the mode's own ("NULL", or "" in csv)
    separator: str = "|"           # list mode
    max_rows: int = MAX_ROWS       # duckbox only
    max_width: int | None = None   # duckbox only; None: no limit

    def null(self, default: str = "NULL") -> str:
        return default if self.nullvalue is None else self.nullvalue


# ---- one value -----------------------------------------------------------------------------

def _width(s: str) -> int:
    """Terminal columns taken by ``s`` (East Asian wide characters take two)."""
    if s.isascii():
        return len(s)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 0 if unicodedata.combining(ch) else 1
               for ch in s)


def _fit(s: str, w: int) -> str:
    """``s`` cut to ``w`` columns, ending in ``…`` when cut."""
    if _width(s) <= w:
        return s
    out, used = [], 0
    for ch in s:
        cw = _width(ch)
        if used + cw > w - 1:
            break
        out.append(ch)
        used += cw
    return "".join(out) + "…"


def _pad(s: str, w: int, align: str) -> str:
    s = _fit(s, w)
    gap = w - _width(s)
    if align == "right":
        return " " * gap + s
    if align == "center":
        return " " * (gap // 2) + s + " " * (gap - gap // 2)
    return s + " " * gap


def _interval(v) -> str:
    """An Arrow month-day-nano interval as DuckDB writes it (``1 year 2 months 3 days 04:05:06``)."""
    years, months = divmod(v.months, 12)
    parts = [f"{n} {unit}{'s' if abs(n) != 1 else ''}" for n, unit in ((years, "year"), (months, "month"),
                                                                      (v.days, "day")) if n]
    if v.nanoseconds or not parts:
        sign = "-" if v.nanoseconds < 0 else ""
        us = abs(v.nanoseconds) // 1000
        secs, us = divmod(us, 1_000_000)
        mins, secs = divmod(secs, 60)
        hours, mins = divmod(mins, 60)
        parts.append(f"{sign}{hours:02d}:{mins:02d}:{secs:02d}" + (f".{us:06d}" if us else ""))
    return " ".join(parts)


def format_value(v, null: str = "NULL", single: bool = False) -> str:
    """One value as DuckDB's CLI shows it (``single``: a float read from a REAL column)."""
    if v is None:
        return null
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if single and math.isfinite(v):
            return f"{v:.7g}" if "e" not in f"{v:.7g}" else repr(v)
        return repr(v)
    if isinstance(v, (int, Decimal, str)):
        return str(v)
    if isinstance(v, bytes):
        return "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02X}" for b in v)
    if isinstance(v, list):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"'{k}': {format_value(x)}" for k, x in v.items()) + "}"
    if type(v).__name__ == "MonthDayNano":
        return _interval(v)
    return str(v)


def _json_value(v, single: bool = False):
    """One value as DuckDB's json mode writes it: a JSON value, or its text as a string."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return float(format_value(v, single=single)) if math.isfinite(v) else None
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    return format_value(v)


def _column_cells(col: pa.ChunkedArray | pa.Array, null: str = "NULL") -> list[str]:
    single = pa.types.is_float32(col.type) or pa.types.is_float16(col.type)
    return [format_value(v, null, single) for v in col.to_pylist()]


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _one_line(cells: list[str]) -> list[str]:
    return [c.replace("\n", "\\n").replace("\r", "\\r").replace("\t", " ") for c in cells]


def _batches(table: pa.Table, null: str):
    """Rows of ``table`` as lists of display strings, one record batch at a time."""
    for batch in table.to_batches(max_chunksize=4096):
        yield from zip(*(_column_cells(batch.column(i), null) for i in range(batch.num_columns)))


# ---- duckbox -------------------------------------------------------------------------------

def render_box(names: list[str], types: list[str], table: pa.Table, max_rows: int = MAX_ROWS,
               max_width: int | None = None, null: str = "NULL") -> list[str]:
    """The lines of ``table`` drawn as DuckDB's duckbox mode draws it: names and types on top, numbers
    right-aligned, and past ``max_rows`` rows the first and last half with a ``·`` row between."""
    n = table.num_rows
    truncated = n > max_rows
    head = max_rows // 2 if truncated else n
    tail = max_rows - head if truncated else 0
    shown = pa.concat_tables([table.slice(0, head), table.slice(n - tail, tail)]) if truncated else table
    cols = [_one_line(_column_cells(shown.column(i), null)) for i in range(table.num_columns)]
    aligns = ["right" if _is_number(f.type) else "left" for f in table.schema]
    widths = [max([_width(nm), _width(tp)] + [_width(c) for c in col]) for nm, tp, col in zip(names, types, cols)]

    footer = f"{n:,} rows ({head + tail} shown)" if truncated else ("0 rows" if n == 0 else None)
    if max_width is not None:  # narrow the widest columns until the table fits the terminal
        while sum(widths) + 3 * len(widths) + 1 > max_width and max(widths, default=0) > 3:
            i = widths.index(max(widths))
            widths[i] -= 1
    inner = sum(widths) + 3 * len(widths) - 1
    footer_lines = [footer] if footer else []
    if footer and truncated and _width(footer) + 2 > inner:  # a narrow table: count and shown on two lines
        footer_lines = [f"{n:,} rows", f"({head + tail} shown)"]
    need = max((_width(f) + 2 for f in footer_lines), default=0)
    if widths and need > inner:
        widths[-1] += need - inner
        inner = need

    def rule(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    def row(cells: list[str], align: list[str]) -> str:
        return "│" + "│".join(f" {_pad(c, w, a)} " for c, w, a in zip(cells, widths, align)) + "│"

    lines = [rule("┌", "┬", "┐"), row(names, ["center"] * len(names)), row(types, ["center"] * len(types))]
    if n:
        lines.append(rule("├", "┼", "┤"))
    for r in range(head):
        lines.append(row([c[r] for c in cols], aligns))
    if truncated:
        lines.extend(row(["·"] * len(cols), ["center"] * len(cols)) for _ in range(3))
        for r in range(head, head + tail):
            lines.append(row([c[r] for c in cols], aligns))
    if footer_lines:
        align = "center" if len(footer_lines) > 1 else "left"
        lines += ([rule("├", "┴", "┤")] + ["│ " + _pad(f, inner - 2, align) + " │" for f in footer_lines]
                  + ["└" + "─" * inner + "┘"])
    else:
        lines.append(rule("└", "┴", "┘"))
    return lines


# ---- box, table, markdown: every row, names only ---------------------------------------------

def _grid(names: list[str], table: pa.Table, null: str) -> tuple[list[list[str]], list[int]]:
    rows = [_one_line(list(r)) for r in _batches(table, null)]
    widths = [max([_width(nm)] + [_width(r[i]) for r in rows]) for i, nm in enumerate(names)]
    return rows, widths


def render_grid(names: list[str], table: pa.Table, out: TextIO, style: Style) -> None:
    """``box`` (box-drawing characters) or ``table`` (``+-|``) mode: the SQLite-style grids."""
    rows, widths = _grid(names, table, style.null())
    if style.mode == "box":
        h, v, corners = "─", "│", ("┌┬┐", "├┼┤", "└┴┘")
    else:
        h, v, corners = "-", "|", ("+++", "+++", "+++")

    def rule(c: str) -> str:
        return c[0] + c[1].join(h * (w + 2) for w in widths) + c[2] + "\n"

    def line(cells: list[str], align: str) -> str:
        return v + v.join(f" {_pad(c, w, align)} " for c, w in zip(cells, widths)) + v + "\n"

    out.write(rule(corners[0]) + line(names, "center") + rule(corners[1]))
    out.write("".join(line(r, "left") for r in rows))
    out.write(rule(corners[2]))


def render_markdown(names: list[str], table: pa.Table, out: TextIO, style: Style) -> None:
    """A Markdown pipe table; number columns are marked right-aligned (``---:``)."""
    rows, widths = _grid(names, table, style.null())
    rows = [[c.replace("|", "\\|") for c in r] for r in rows]
    widths = [max(w, max((_width(r[i]) for r in rows), default=0)) for i, w in enumerate(widths)]
    rule = "|" + "|".join("-" * (w + 1) + (":" if _is_number(f.type) else "-")
                          for w, f in zip(widths, table.schema)) + "|\n"
    out.write("|" + "|".join(f" {_pad(nm, w, 'center')} " for nm, w in zip(names, widths)) + "|\n" + rule)
    out.write("".join("|" + "|".join(f" {_pad(c, w, 'left')} " for c, w in zip(r, widths)) + "|\n" for r in rows))


# ---- one line a row ---------------------------------------------------------------------------

def render_csv(names: list[str], table: pa.Table, out: TextIO, style: Style | None = None) -> None:
    """``table`` as CSV with a header row; NULL is the empty field unless ``.nullvalue`` is set."""
    style = style or Style(mode="csv")
    w = csv.writer(out, lineterminator="\n")
    if style.headers:
        w.writerow(names)
    for r in _batches(table, style.null("")):
        w.writerow(r)


def render_list(names: list[str], table: pa.Table, out: TextIO, style: Style) -> None:
    """``list`` (``|`` or ``.separator`` between values) or ``tabs`` mode, with a header row."""
    sep = "\t" if style.mode == "tabs" else style.separator
    if style.headers:
        out.write(sep.join(names) + "\n")
    out.writelines(sep.join(r) + "\n" for r in _batches(table, style.null()))


def render_json(names: list[str], table: pa.Table, out: TextIO, style: Style) -> None:
    """``json`` (one array, a row a line) or ``jsonlines`` (one object a line)."""
    singles = [pa.types.is_float32(f.type) or pa.types.is_float16(f.type) for f in table.schema]
    lines = (json.dumps({nm: _json_value(v, s) for nm, v, s in zip(names, row, singles)},
                        ensure_ascii=False, separators=(",", ":"))
             for batch in table.to_batches(max_chunksize=4096)
             for row in zip(*(batch.column(i).to_pylist() for i in range(batch.num_columns))))
    if style.mode == "jsonlines":
        out.write("".join(line + "\n" for line in lines))
    else:
        out.write("[" + ",\n".join(lines) + "]\n")


def render_line(names: list[str], table: pa.Table, out: TextIO, style: Style | None = None) -> None:
    """``table`` as DuckDB's line mode: one ``name = value`` per line, a blank line between rows."""
    null = (style or Style()).null()
    w = max((_width(nm) for nm in names), default=0)
    for i, r in enumerate(_batches(table, null)):
        if i:
            out.write("\n")
        out.write("".join(f"{_pad(nm, w, 'right')} = {v}\n" for nm, v in zip(names, r)))


def render(names: list[str], types: list[str], table: pa.Table, out: TextIO, style: Style) -> None:
    """Write ``table`` to ``out`` in ``style.mode``."""
    mode = style.mode
    if mode == "duckbox":
        lines = render_box(names, types, table, style.max_rows, style.max_width, style.null())
        out.write("\n".join(lines) + "\n")
    elif mode in ("box", "table"):
        render_grid(names, table, out, style)
    elif mode == "markdown":
        render_markdown(names, table, out, style)
    elif mode == "csv":
        render_csv(names, table, out, style)
    elif mode in ("list", "tabs"):
        render_list(names, table, out, style)
    elif mode in ("json", "jsonlines"):
        render_json(names, table, out, style)
    elif mode == "line":
        render_line(names, table, out, style)
    else:  # pragma: no cover - modes are checked where they are set
        raise ValueError(f"unknown mode {mode}")


def columns_layout(names: list[str], width: int) -> list[str]:
    """``names`` laid out column by column across ``width`` characters, as ``.tables`` shows them."""
    if not names:
        return []
    cw = max(_width(n) for n in names) + 2
    ncols = max(1, width // cw)
    nrows = math.ceil(len(names) / ncols)
    return ["".join(_pad(names[c * nrows + r], cw, "left") for c in range(ncols) if c * nrows + r < len(names))
            .rstrip() for r in range(nrows)]
