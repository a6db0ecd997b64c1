"""Password authentication: SCRAM-SHA-256 (RFC 5802 / RFC 7677), as PostgreSQL does it.

The password file holds ``user:password`` lines, or one line with only a
password, which then holds for every user name. Blank lines and lines
starting with ``#`` are ignored. Plain passwords are never kept: the server
derives SCRAM's stored and server keys at start-up and forgets the rest.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass

from rdl_sql.server.protocol import ProtocolViolation, authentication

MECHANISM = "SCRAM-SHA-256"
ITERATIONS = 4096
ANY_USER = ""


@dataclass(frozen=True)
class Verifier:
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


class AuthFailed(Exception):
    """Wrong password or unknown user (SQLSTATE 28P01)."""


def make_verifier(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> Verifier:
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return Verifier(salt, iterations, hashlib.sha256(client_key).digest(), server_key)


def read_password_file(path: str) -> dict[str, Verifier]:
    """Verifiers by user name (``ANY_USER`` for a password that holds for any user)."""
    out: dict[str, Verifier] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            user, sep, password = line.partition(":")
            if not sep:
                user, password = ANY_USER, line
            if not password:
                raise ValueError(f"{path}: empty password for user {user!r}")
            out[user] = make_verifier(password)
    if not out:
        raise ValueError(f"{path}: no password in the file")
    return out


def _attributes(message: str) -> dict[str, str]:
    out = {}
    for part in message.split(","):
        key, sep, value = part.partition("=")
        if sep and len(key) == 1:
            out.setdefault(key, value)
    return out


def scram_exchange(conn, user: str, verifiers: dict[str, Verifier]) -> None:
    """Run SCRAM-SHA-256 with the client on ``conn``; raise ``AuthFailed`` on a wrong password."""
    verifier = verifiers.get(user) or verifiers.get(ANY_USER)
    # an unknown user still goes through the exchange with a made-up verifier, so
    # the answer does not tell which user names exist
    known = verifier is not None
    verifier = verifier or make_verifier(secrets.token_hex(16))
    conn.send_raw(authentication(10, MECHANISM.encode() + b"\0\0"))

    kind, body = conn.read_message()
    if kind != b"p":
        raise ProtocolViolation("expected a SASLInitialResponse message")
    mechanism = body.cstring()
    if mechanism != MECHANISM:
        raise ProtocolViolation(f"unsupported SASL mechanism {mechanism!r}", "28000")
    length = body.int32()
    client_first = body.bytes(length).decode("utf-8", "replace") if length >= 0 else ""
    # gs2 header: channel-binding flag, authzid, then the bare message
    flag, _, rest = client_first.partition(",")
    _authzid, _, client_first_bare = rest.partition(",")
    if flag.startswith("p"):
        raise ProtocolViolation("channel binding is not supported (the server has no TLS)", "28000")
    gs2_header = client_first[: len(client_first) - len(client_first_bare)]
    client_nonce = _attributes(client_first_bare).get("r")
    if not client_nonce:
        raise ProtocolViolation("SCRAM client-first message has no nonce")

    nonce = client_nonce + base64.b64encode(os.urandom(18)).decode()
    server_first = f"r={nonce},s={base64.b64encode(verifier.salt).decode()},i={verifier.iterations}"
    conn.send_raw(authentication(11, server_first.encode()))

    kind, body = conn.read_message()
    if kind != b"p":
        raise ProtocolViolation("expected a SASLResponse message")
    client_final = body.rest().decode("utf-8", "replace")
    attrs = _attributes(client_final)
    without_proof, _, _ = client_final.rpartition(",p=")
    if attrs.get("r") != nonce or "p" not in attrs:
        raise ProtocolViolation("SCRAM client-final message does not match the exchange", "28000")
    if attrs.get("c") != base64.b64encode(gs2_header.encode()).decode():
        raise ProtocolViolation("SCRAM channel-binding data does not match", "28000")
    try:
        proof = base64.b64decode(attrs["p"], validate=True)
    except ValueError:
        raise ProtocolViolation("SCRAM proof is not base64", "28000") from None
    auth_message = f"{client_first_bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(verifier.stored_key, auth_message, "sha256")
    if len(proof) != len(signature):
        raise AuthFailed()
    client_key = bytes(a ^ b for a, b in zip(proof, signature))
    if not known or not hmac.compare_digest(hashlib.sha256(client_key).digest(), verifier.stored_key):
        raise AuthFailed()
    server_signature = hmac.digest(verifier.server_key, auth_message, "sha256")
    conn.send_raw(authentication(12, b"v=" + base64.b64encode(server_signature)))
