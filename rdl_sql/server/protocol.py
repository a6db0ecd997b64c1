"""PostgreSQL frontend/backend protocol 3.0: reading framed messages and building replies.

Only framing lives here (no SQL, no database): every length is checked
against a limit before anything is read, and a short or inconsistent
message raises :class:`ProtocolViolation`, which closes that one client.
"""
from __future__ import annotations

import socket
import struct

PROTOCOL_3_0 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_STARTUP = 10_000          # bytes; PostgreSQL itself allows 10000
DEFAULT_MAX_MESSAGE = 64 << 20


class ProtocolViolation(Exception):
    """The client broke the protocol; its connection is closed with this message (SQLSTATE 08P01)."""

    def __init__(self, message: str, sqlstate: str = "08P01"):
        super().__init__(message)
        self.sqlstate = sqlstate


class ClientGone(Exception):
    """The client closed its end."""


class Payload:
    """Bounds-checked reader over one message's body."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolViolation("message is shorter than its contents claim")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int16(self) -> int:
        return struct.unpack("!h", self._take(2))[0]

    def int32(self) -> int:
        return struct.unpack("!i", self._take(4))[0]

    def byte(self) -> bytes:
        return self._take(1)

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolViolation("string without terminating zero byte")
        raw = self.data[self.pos:end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation("string is not valid UTF-8", "22021") from None

    def bytes(self, n: int) -> bytes:
        return self._take(n)

    def rest(self) -> bytes:
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out

    def at_end(self) -> bool:
        return self.pos >= len(self.data)


class Connection:
    """A client socket: framed reads with limits, buffered writes."""

    def __init__(self, sock: socket.socket, max_message: int = DEFAULT_MAX_MESSAGE):
        self.sock = sock
        self.max_message = max_message
        self._out: list[bytes] = []

    def _recv_exact(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            try:
                chunk = self.sock.recv(min(n - got, 1 << 20))
            except OSError:
                raise ClientGone() from None
            if not chunk:
                raise ClientGone()
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def read_startup(self) -> tuple[int, Payload]:
        """The untyped first message: (code, rest)."""
        (length,) = struct.unpack("!i", self._recv_exact(4))
        if length < 8 or length > MAX_STARTUP:
            raise ProtocolViolation(f"invalid startup packet length {length}")
        body = Payload(self._recv_exact(length - 4))
        return body.int32(), body

    def read_message(self) -> tuple[bytes, Payload]:
        head = self._recv_exact(5)
        kind = head[:1]
        (length,) = struct.unpack("!i", head[1:])
        if length < 4:
            raise ProtocolViolation(f"invalid message length {length}")
        if length - 4 > self.max_message:
            raise ProtocolViolation(f"message of {length} bytes exceeds the server's limit of "
                                    f"{self.max_message} bytes", "54000")
        return kind, Payload(self._recv_exact(length - 4))

    def send(self, data: bytes) -> None:
        self._out.append(data)
        if sum(len(x) for x in self._out) > 1 << 16:
            self.flush()

    def flush(self) -> None:
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        try:
            self.sock.sendall(data)
        except OSError:
            raise ClientGone() from None

    def send_raw(self, data: bytes) -> None:
        self.flush()
        try:
            self.sock.sendall(data)
        except OSError:
            raise ClientGone() from None


# ---- backend messages ---------------------------------------------------------------
def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def cstr(s: str) -> bytes:
    return s.replace("\0", "").encode("utf-8") + b"\0"


def authentication(code: int, data: bytes = b"") -> bytes:
    return message(b"R", struct.pack("!i", code) + data)


def auth_ok() -> bytes:
    return authentication(0)


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key_data(pid: int, key: int) -> bytes:
    return message(b"K", struct.pack("!ii", pid, key))


def ready_for_query(status: str) -> bytes:
    return message(b"Z", status.encode())


def negotiate_protocol_version(minor: int, unknown: list[str]) -> bytes:
    return message(b"v", struct.pack("!ii", minor, len(unknown)) + b"".join(cstr(x) for x in unknown))


def row_description(fields: list[tuple[str, int, int, int, int]]) -> bytes:
    """``fields``: (name, type oid, type size, type modifier, format code)."""
    body = [struct.pack("!h", len(fields))]
    for name, oid, size, mod, fmt in fields:
        body.append(cstr(name) + struct.pack("!ihihih", 0, 0, oid, size, mod, fmt))
    return message(b"T", b"".join(body))


def data_row(values: list[bytes | None]) -> bytes:
    parts = [struct.pack("!h", len(values))]
    for v in values:
        if v is None:
            parts.append(b"\xff\xff\xff\xff")
        else:
            parts.append(struct.pack("!i", len(v)))
            parts.append(v)
    return message(b"D", b"".join(parts))


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


def _fields(severity: str, sqlstate: str, text: str, extra: dict[str, str] | None) -> bytes:
    items = [("S", severity), ("V", severity), ("C", sqlstate), ("M", text)]
    items += list((extra or {}).items())
    return b"".join(k.encode() + cstr(v) for k, v in items) + b"\0"


def error_response(sqlstate: str, text: str, extra: dict[str, str] | None = None,
                   severity: str = "ERROR") -> bytes:
    """``extra``: more fields by their one-letter code (``P`` position, ``D`` detail, ``H`` hint)."""
    return message(b"E", _fields(severity, sqlstate, text, extra))


def notice_response(text: str, sqlstate: str = "00000", severity: str = "NOTICE") -> bytes:
    return message(b"N", _fields(severity, sqlstate, text, None))


PARSE_COMPLETE = message(b"1")
BIND_COMPLETE = message(b"2")
CLOSE_COMPLETE = message(b"3")
NO_DATA = message(b"n")
PORTAL_SUSPENDED = message(b"s")
EMPTY_QUERY = message(b"I")


def parameter_description(oids: list[int]) -> bytes:
    return message(b"t", struct.pack("!h", len(oids)) + b"".join(struct.pack("!i", o) for o in oids))
