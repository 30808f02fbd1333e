"""Temporary AWS credentials."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from rolesanywhere.values import Value

__all__ = ["Credentials", "format_expiration", "go_json", "redact"]


def redact(value: str | None) -> str:
    """Show a secret as ``<redacted>``; ``None`` stays visible as such."""
    return "None" if value is None else "<redacted>"


def format_expiration(when: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` and whole seconds, as the service and the Go helper write it."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Credentials(Value):
    """An access key, its secret, an optional session token and an optional expiry.

    ``repr`` and ``str`` never show the secret or the token. Read-only; equality ignores
    ``expiration_text``.
    """

    __slots__ = (
        "access_key_id",
        "secret_access_key",
        "session_token",
        "expiration",
        "expiration_text",
    )
    _uncompared = frozenset({"expiration_text"})

    access_key_id: str
    secret_access_key: str
    session_token: str | None
    expiration: datetime | None
    #: The expiry exactly as the service wrote it, echoed by :meth:`to_process_json`.
    expiration_text: str | None

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        expiration: datetime | None = None,
        expiration_text: str | None = None,
    ) -> None:
        if expiration is not None and expiration.tzinfo is None:
            raise ValueError("Credentials.expiration must be a timezone-aware datetime")
        super().__init__(
            access_key_id, secret_access_key, session_token, expiration, expiration_text
        )

    def __repr__(self) -> str:
        return (
            f"Credentials(access_key_id={self.access_key_id!r}, "
            f"secret_access_key={redact(self.secret_access_key)}, "
            f"session_token={redact(self.session_token)}, expiration={self.expiration!r})"
        )

    __str__ = __repr__

    def seconds_left(self, now: datetime | None = None) -> float:
        """Seconds until expiry (``inf`` for credentials that do not expire)."""
        if self.expiration is None:
            return float("inf")
        return (self.expiration - (now or datetime.now(UTC))).total_seconds()

    def to_process_json(self) -> str:
        """The ``credential_process`` output, byte for byte what ``aws_signing_helper`` prints.

        Keys in the Go helper's order, compact separators, no trailing newline.
        """
        if self.expiration_text is not None:
            expiration = self.expiration_text
        else:
            expiration = format_expiration(self.expiration) if self.expiration else ""
        data: dict[str, object] = {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "SessionToken": self.session_token or "",
            "Expiration": expiration,
        }
        return go_json(data)


def go_json(data: object) -> str:
    """Serialise like Go's ``json.Marshal``: compact, UTF-8 kept, HTML characters escaped."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _GO_ESCAPES:
        text = text.replace(char, escaped)
    return text


_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)
