"""The records of the Roles Anywhere emulator (:mod:`rolesanywhere.testing.emulator`): a request
as it arrived, the credentials it issued, and its trust anchors, profiles and roles."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509

from rolesanywhere.session.protocol import header_value

__all__ = ["IssuedCredentials", "Profile", "RecordedRequest", "Role", "TrustAnchor"]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as it arrived: method, raw target (path and query), headers, body."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def path(self) -> str:
        """The raw path, without the query."""
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        """The raw query string, without ``?``."""
        return self.target.partition("?")[2]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        return header_value(self.headers, name)


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    """Temporary credentials the emulator handed out (``repr`` hides the secret and token)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime
    role_arn: str
    assumed_role_arn: str
    session_name: str
    certificate_serial: int

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the credentials have expired at ``now`` (the real time by default)."""
        return (now or datetime.now(UTC)) >= self.expiration


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    """A trust anchor: its ARN and the CA certificates it trusts."""

    arn: str
    certificates: tuple[x509.Certificate, ...]


@dataclass(frozen=True, slots=True)
class Profile:
    """A profile: the roles it may assume, the longest session, whether names may be set."""

    arn: str
    role_arns: tuple[str, ...]
    duration_seconds: int
    accept_role_session_name: bool


@dataclass(frozen=True, slots=True)
class Role:
    """An IAM role."""

    arn: str
    name: str
    role_id: str
