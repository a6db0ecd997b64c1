"""DuckDB result types as PostgreSQL type OIDs, and values in PostgreSQL's text and binary formats."""
from __future__ import annotations

import datetime as dt
import json
import math
import re
import struct
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

# PostgreSQL type OIDs (pg_type.oid), with their array types
BOOL, BYTEA, INT8, INT2, INT4, TEXT, JSON, FLOAT4, FLOAT8, UNKNOWN = 16, 17, 20, 21, 23, 25, 114, 700, 701, 705
VARCHAR, DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, TIMETZ, NUMERIC, UUID = (1043, 1082, 1083, 1114, 1184,
                                                                               1186, 1266, 1700, 2950)
ARRAY_OF = {BOOL: 1000, BYTEA: 1001, INT2: 1005, INT4: 1007, INT8: 1016, TEXT: 1009, VARCHAR: 1015, JSON: 199,
            FLOAT4: 1021, FLOAT8: 1022, DATE: 1182, TIME: 1183, TIMESTAMP: 1115, TIMESTAMPTZ: 1185,
            INTERVAL: 1187, TIMETZ: 1270, NUMERIC: 1231, UUID: 2951}
ELEMENT_OF = {v: k for k, v in ARRAY_OF.items()}
SIZE = {BOOL: 1, INT2: 2, INT4: 4, INT8: 8, FLOAT4: 4, FLOAT8: 8, DATE: 4, TIME: 8, TIMESTAMP: 8,
        TIMESTAMPTZ: 8, INTERVAL: 16, TIMETZ: 12, UUID: 16}
NAMES = {BOOL: "bool", BYTEA: "bytea", INT8: "int8", INT2: "int2", INT4: "int4", TEXT: "text", JSON: "json",
         FLOAT4: "float4", FLOAT8: "float8", VARCHAR: "varchar", DATE: "date", TIME: "time",
         TIMESTAMP: "timestamp", TIMESTAMPTZ: "timestamptz", INTERVAL: "interval", TIMETZ: "timetz",
         NUMERIC: "numeric", UUID: "uuid", UNKNOWN: "unknown"}

_SCALAR = {
    "BOOLEAN": BOOL, "TINYINT": INT2, "SMALLINT": INT2, "UTINYINT": INT2, "INTEGER": INT4, "USMALLINT": INT4,
    "BIGINT": INT8, "UINTEGER": INT8, "UBIGINT": NUMERIC, "HUGEINT": NUMERIC, "UHUGEINT": NUMERIC,
    "VARINT": NUMERIC, "BIGNUM": NUMERIC, "FLOAT": FLOAT4, "DOUBLE": FLOAT8, "VARCHAR": TEXT, "BLOB": BYTEA,
    "DATE": DATE, "TIME": TIME, "TIME_NS": TIME, "TIMESTAMP": TIMESTAMP, "TIMESTAMP_S": TIMESTAMP,
    "TIMESTAMP_MS": TIMESTAMP, "TIMESTAMP_NS": TIMESTAMP, "TIMESTAMP WITH TIME ZONE": TIMESTAMPTZ,
    "TIME WITH TIME ZONE": TIMETZ, "INTERVAL": INTERVAL, "UUID": UUID, "JSON": JSON,
}
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
_LIST = re.compile(r"^(.*)(\[\d*\])$")


@dataclass(frozen=True)
class PgType:
    oid: int
    size: int = -1
    modifier: int = -1
    element: "PgType | None" = None   # for arrays

    @property
    def name(self) -> str:
        if self.element is not None:
            return "_" + self.element.name
        return NAMES.get(self.oid, "text")


def from_duckdb(type_code: Any) -> PgType:
    """The PostgreSQL type for a DuckDB column type (``cursor.description``'s type code)."""
    text = str(type_code).strip()
    m = _LIST.match(text)
    if m:
        element = from_duckdb(m.group(1))
        while element.element is not None:   # PostgreSQL arrays are multi-dimensional, not nested
            element = element.element
        return PgType(ARRAY_OF.get(element.oid, ARRAY_OF[TEXT]), element=element if element.oid in ARRAY_OF
                      else PgType(TEXT))
    m = _DECIMAL.fullmatch(text)
    if m:
        return PgType(NUMERIC, -1, ((int(m.group(1)) << 16) | int(m.group(2))) + 4)
    oid = _SCALAR.get(text.upper(), TEXT)   # STRUCT, MAP, UNION, ENUM, BIT, "NULL": their text form
    return PgType(oid, SIZE.get(oid, -1))


# ---- text format ----------------------------------------------------------------------
def _float_text(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    r = repr(v)
    return r[:-2] if r.endswith(".0") else r


def _frac(us: int) -> str:
    return f".{us:06d}".rstrip("0") if us else ""


def _time_text(t: dt.time) -> str:
    return f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}{_frac(t.microsecond)}"


def _timestamp_text(v: dt.datetime) -> str:
    if v.tzinfo is not None:
        v = v.astimezone(dt.timezone.utc)
        return f"{v.year:04d}-{v.month:02d}-{v.day:02d} {_time_text(v.time())}+00"
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d} {_time_text(v.time())}"


def interval_text(v: dt.timedelta) -> str:
    us = (v.days * 86400 + v.seconds) * 1_000_000 + v.microseconds
    sign = "-" if us < 0 else ""
    days, rest = divmod(abs(us), 86_400_000_000)
    secs, micros = divmod(rest, 1_000_000)
    parts = []
    if days:
        parts.append(f"{sign}{days} day{'s' if days != 1 else ''}")
    if rest or not days:
        h, m, s = secs // 3600, secs // 60 % 60, secs % 60
        parts.append(f"{sign if rest else ''}{h:02d}:{m:02d}:{s:02d}{_frac(micros)}")
    return " ".join(parts)


_NEEDS_QUOTES = re.compile(r'[{},"\\\s]')


def _array_text(values: list, element: PgType) -> str:
    out = []
    for v in values:
        if v is None:
            out.append("NULL")
        elif isinstance(v, list):
            out.append(_array_text(v, element))
        else:
            s = text(v, element)
            if s == "" or _NEEDS_QUOTES.search(s) or s.upper() == "NULL":
                s = '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
            out.append(s)
    return "{" + ",".join(out) + "}"


def text(v: Any, t: PgType) -> str:
    """``v`` (a value DuckDB's Python client returned) as PostgreSQL's text output."""
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _float_text(v)
    if isinstance(v, str):
        return v
    if isinstance(v, Decimal):
        return format(v, "f") if v.is_finite() else ("NaN" if v.is_nan() else ("Infinity" if v > 0 else
                                                                               "-Infinity"))
    if isinstance(v, dt.datetime):
        return _timestamp_text(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dt.time):
        return _time_text(v) + ("+00" if v.tzinfo is not None else "")
    if isinstance(v, dt.timedelta):
        return interval_text(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(v).hex()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (list, tuple)) and t.element is not None:
        return _array_text(list(v), t.element)
    return json.dumps(v, default=str)   # STRUCT, MAP and the like: their JSON form


# ---- binary format ----------------------------------------------------------------------
PG_EPOCH = dt.datetime(2000, 1, 1)
PG_EPOCH_DATE = dt.date(2000, 1, 1)
_EPOCH_UTC = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


class Unsupported(Exception):
    """A value or type that this server cannot send or receive in binary format (SQLSTATE 0A000)."""


def _us(delta: dt.timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _numeric_binary(v: Decimal) -> bytes:
    if v.is_nan():
        return struct.pack("!hhHH", 0, 0, 0xC000, 0)
    sign, digits, exp = v.as_tuple()
    if not isinstance(exp, int):
        raise Unsupported("infinite numeric values have no binary form here")
    dscale = max(0, -exp)
    s = "".join(map(str, digits))
    if exp >= 0:
        whole, frac = s + "0" * exp, ""
    else:
        s = s.zfill(-exp)
        whole, frac = s[:exp], s[exp:]
    whole = whole.lstrip("0")
    whole = "0" * (-len(whole) % 4) + whole
    frac = frac + "0" * (-len(frac) % 4)
    groups = [int(whole[i:i + 4]) for i in range(0, len(whole), 4)] + [int(frac[i:i + 4])
                                                                        for i in range(0, len(frac), 4)]
    weight = len(whole) // 4 - 1
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    return struct.pack(f"!hhHH{len(groups)}H", len(groups), weight, 0x4000 if sign else 0, dscale, *groups)


def binary(v: Any, t: PgType) -> bytes:
    oid = t.oid
    if t.element is not None:
        return _array_binary(list(v), t.element)
    if oid == BOOL:
        return b"\x01" if v else b"\x00"
    if oid == INT2:
        return struct.pack("!h", v)
    if oid == INT4:
        return struct.pack("!i", v)
    if oid == INT8:
        return struct.pack("!q", v)
    if oid == FLOAT4:
        return struct.pack("!f", v)
    if oid == FLOAT8:
        return struct.pack("!d", v)
    if oid == NUMERIC:
        return _numeric_binary(v if isinstance(v, Decimal) else Decimal(v))
    if oid in (TEXT, VARCHAR, JSON) and isinstance(v, str):
        return v.encode("utf-8")
    if oid == BYTEA:
        return bytes(v)
    if oid == DATE:
        return struct.pack("!i", (v - PG_EPOCH_DATE).days)
    if oid == TIMESTAMP:
        return struct.pack("!q", _us(v - PG_EPOCH))
    if oid == TIMESTAMPTZ:
        return struct.pack("!q", _us(v - _EPOCH_UTC))
    if oid == TIME:
        return struct.pack("!q", ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond)
    if oid == INTERVAL:
        return struct.pack("!qii", v.seconds * 1_000_000 + v.microseconds, v.days, 0)
    if oid == UUID:
        return v.bytes
    raise Unsupported(f"binary format is not supported for type {t.name}; ask for text format")


def _array_binary(values: list, element: PgType) -> bytes:
    dims = []
    probe = values
    while isinstance(probe, list):
        dims.append(len(probe))
        probe = probe[0] if probe else None
    flat: list = []

    def walk(vs, depth):
        if len(vs) != dims[depth]:
            raise Unsupported("arrays of lists of different lengths have no PostgreSQL binary form")
        for x in vs:
            if depth + 1 < len(dims):
                if not isinstance(x, list):
                    raise Unsupported("ragged array")
                walk(x, depth + 1)
            else:
                flat.append(x)

    walk(values, 0)
    if dims == [0]:
        dims = []
    parts = [struct.pack("!iii", len(dims), int(any(x is None for x in flat)), element.oid)]
    parts += [struct.pack("!ii", d, 1) for d in dims]
    for x in flat:
        if x is None:
            parts.append(struct.pack("!i", -1))
        else:
            b = binary(x, element)
            parts.append(struct.pack("!i", len(b)) + b)
    return b"".join(parts)


# ---- parameters from the client -----------------------------------------------------------
def _parse_bool(s: str) -> bool:
    s = s.strip().lower()
    if s in ("t", "true", "y", "yes", "on", "1"):
        return True
    if s in ("f", "false", "n", "no", "off", "0"):
        return False
    raise ValueError(f"invalid input syntax for type boolean: {s!r}")


_TEXT_PARAM: dict[int, Callable[[str], Any]] = {
    BOOL: _parse_bool, INT2: int, INT4: int, INT8: int, FLOAT4: float, FLOAT8: float, NUMERIC: Decimal,
    DATE: dt.date.fromisoformat, UUID: uuid.UUID,
}


def decode_text_param(raw: bytes, oid: int) -> Any:
    """A parameter sent in text format; unknown types stay strings and DuckDB casts them."""
    s = raw.decode("utf-8")
    conv = _TEXT_PARAM.get(oid)
    if conv is None:
        return s
    try:
        return conv(s)
    except ValueError:
        return s   # let DuckDB try its own casts and report its own error


def decode_binary_param(raw: bytes, oid: int) -> Any:
    try:
        if oid == BOOL:
            return raw != b"\x00"
        if oid == INT2:
            return struct.unpack("!h", raw)[0]
        if oid == INT4:
            return struct.unpack("!i", raw)[0]
        if oid == INT8:
            return struct.unpack("!q", raw)[0]
        if oid == FLOAT4:
            return struct.unpack("!f", raw)[0]
        if oid == FLOAT8:
            return struct.unpack("!d", raw)[0]
        if oid in (TEXT, VARCHAR, JSON, UNKNOWN, 0):
            return raw.decode("utf-8")
        if oid == BYTEA:
            return bytes(raw)
        if oid == DATE:
            return PG_EPOCH_DATE + dt.timedelta(days=struct.unpack("!i", raw)[0])
        if oid == TIMESTAMP:
            return PG_EPOCH + dt.timedelta(microseconds=struct.unpack("!q", raw)[0])
        if oid == TIMESTAMPTZ:
            return _EPOCH_UTC + dt.timedelta(microseconds=struct.unpack("!q", raw)[0])
        if oid == UUID:
            return uuid.UUID(bytes=bytes(raw))
        if oid == NUMERIC:
            return _numeric_from_binary(raw)
    except (struct.error, ValueError) as e:
        raise ValueError(f"malformed binary value for type {NAMES.get(oid, oid)}: {e}") from None
    raise Unsupported(f"binary parameters of type {NAMES.get(oid, oid)} are not supported; send text format")


def _numeric_from_binary(raw: bytes) -> Decimal:
    ndigits, weight, sign, dscale = struct.unpack("!hhHH", raw[:8])
    if sign == 0xC000:
        return Decimal("NaN")
    digits = struct.unpack(f"!{ndigits}H", raw[8:8 + 2 * ndigits])
    value = Decimal(0)
    for i, d in enumerate(digits):
        value += Decimal(d).scaleb(4 * (weight - i))
    value = value.quantize(Decimal(1).scaleb(-dscale)) if dscale else value.to_integral_value()
    return -value if sign == 0x4000 else value
