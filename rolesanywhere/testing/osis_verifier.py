"""SigV4 verification for the OSIS emulator: credentials and the ``AWS4-HMAC-SHA256`` checks.

:class:`SigV4Verifier` recomputes a request's signature from the wire with the canonicalisation
of :mod:`rolesanywhere.sigv4.canonical` and its own HMAC code (not the library's signer), and
answers like AWS (the order of the checks is in :mod:`rolesanywhere.testing.osis`).
:class:`CredentialRegistry` and the :class:`CredentialRecord` protocol say which keys exist.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from rolesanywhere.sigv4 import canonical as sigv4
from rolesanywhere.testing._server import authorization_parameters, clock_skew_error

__all__ = [
    "ALGORITHM",
    "MAX_CLOCK_SKEW",
    "SERVICE",
    "CredentialLookup",
    "CredentialRecord",
    "CredentialRegistry",
    "CredentialSource",
    "Rejection",
    "SigV4Verifier",
    "StaticCredentials",
    "as_lookup",
]

SERVICE = "osis"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_CLOCK_SKEW = timedelta(minutes=5)
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z", re.ASCII)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}", re.ASCII)
_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)

# --- credentials ---------------------------------------------------------------------------------


class CredentialRecord(Protocol):
    """What the verifier needs to know about an access key (``IssuedCredentials`` qualifies, and
    so does :class:`rolesanywhere.credentials.Credentials`)."""

    @property
    def access_key_id(self) -> str: ...

    @property
    def secret_access_key(self) -> str: ...

    @property
    def session_token(self) -> str | None: ...

    @property
    def expiration(self) -> datetime | None: ...


class CredentialSource(Protocol):
    """Anything with ``lookup(access_key_id)``, such as a ``RolesAnywhereEmulator``."""

    def lookup(self, access_key_id: str) -> CredentialRecord | None: ...


CredentialLookup = Callable[[str], CredentialRecord | None]


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Credentials registered by hand (``repr`` hides the secret and the token)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None


class CredentialRegistry:
    """A thread-safe registry of credentials, falling back on other sources in order.

    ``CredentialRegistry(roles_anywhere_emulator)`` knows everything that emulator issued, plus
    whatever :meth:`add` registers (long-term ``AKIA…`` keys have no token).
    """

    def __init__(self, *fallbacks: CredentialSource | CredentialLookup) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, CredentialRecord] = {}
        self._fallbacks = [as_lookup(source) for source in fallbacks]

    def add(self, credentials: CredentialRecord) -> None:
        """Register credentials (any object with the :class:`CredentialRecord` attributes)."""
        with self._lock:
            self._known[credentials.access_key_id] = credentials

    def add_key(
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        expiration: datetime | None = None,
    ) -> StaticCredentials:
        """Register an access key; return the record."""
        record = StaticCredentials(access_key_id, secret_access_key, session_token, expiration)
        self.add(record)
        return record

    def remove(self, access_key_id: str) -> None:
        """Forget an access key registered with :meth:`add` (fallbacks are not touched)."""
        with self._lock:
            self._known.pop(access_key_id, None)

    def lookup(self, access_key_id: str) -> CredentialRecord | None:
        with self._lock:
            record = self._known.get(access_key_id)
        if record is not None:
            return record
        for fallback in self._fallbacks:
            record = fallback(access_key_id)
            if record is not None:
                return record
        return None


def as_lookup(source: CredentialSource | CredentialLookup) -> CredentialLookup:
    """The ``lookup(akid)`` of a credential source, or the callable itself."""
    lookup = getattr(source, "lookup", None)
    if callable(lookup):
        return lookup  # type: ignore[no-any-return]
    if callable(source):
        return source
    raise TypeError(f"not a credential source: {type(source).__name__} (needs lookup(akid))")


@dataclass(frozen=True, slots=True)
class Rejection:
    """An authentication failure, for debugging a signer (no secret; the token is redacted)."""

    status: int
    error_type: str
    message: str
    #: The canonical request and string to sign the emulator computed, when it got that far.
    canonical_request: str | None = None
    string_to_sign: str | None = None


class Reject(Exception):
    """An authentication failure raised from inside the checks."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        canonical_request: str | None = None,
        string_to_sign: str | None = None,
    ) -> None:
        super().__init__(message)
        self.rejection = Rejection(status, error_type, message, canonical_request, string_to_sign)


def _denied(message: str, error_type: str = "IncompleteSignatureException") -> Reject:
    return Reject(403, error_type, message)


class SigV4Verifier:
    """Checks ``AWS4-HMAC-SHA256`` requests for service ``osis`` (or the one :meth:`verify` is
    given) against a credential lookup."""

    def __init__(self, lookup: CredentialLookup | None) -> None:
        self._lookup = lookup
        self._signing_keys: dict[tuple[str, str, str, str], bytes] = {}

    def _signing_key(self, secret: str, date: str, region: str, service: str) -> bytes:
        cache_key = (secret, date, region, service)
        key = self._signing_keys.get(cache_key)
        if key is None:
            key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
            for part in (region, service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            if len(self._signing_keys) > 1024:
                self._signing_keys.clear()
            self._signing_keys[cache_key] = key
        return key

    def verify(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        lowered: Mapping[str, str],
        body: bytes,
        now: datetime,
        *,
        expected_region: str,
        require_signed_content_type: bool = False,
        expected_service: str = SERVICE,
    ) -> str:
        """Check the SigV4 signature; return the access key id (or raise :class:`Reject`).

        ``lowered``: the headers by lower-case name (the first value of each).
        """
        authorization = lowered.get("authorization", "").strip()
        if not authorization:
            raise _denied("Missing Authentication Token", "MissingAuthenticationTokenException")
        algorithm, _, rest = authorization.partition(" ")
        if algorithm != ALGORITHM:
            raise _denied(f"Unsupported Authorization algorithm {algorithm[:40]!r}")
        parts = authorization_parameters(rest, _denied)
        scope_parts = parts["Credential"].split("/")
        if len(scope_parts) != 5:
            raise _denied(
                "Credential should be scoped to a valid region, service and terminator: "
                f"AKID/yyyymmdd/region/{expected_service}/aws4_request"
            )
        access_key_id, date, region, service, terminator = scope_parts
        x_amz_date = lowered.get("x-amz-date", "").strip()
        if not x_amz_date:
            raise _denied(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
                "header."
            )
        if not _AMZ_DATE.fullmatch(x_amz_date):
            raise _denied(f"X-Amz-Date must be in the form YYYYMMDDTHHMMSSZ: {x_amz_date[:40]!r}")
        if date != x_amz_date[:8]:
            raise _denied(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                f"from HTTP: '{date[:16]}' != '{x_amz_date[:8]}', from '{x_amz_date}'."
            )
        if region != expected_region:
            raise _denied(
                f"Credential should be scoped to a valid region, not '{region[:40]}'.",
                "InvalidSignatureException",
            )
        if service != expected_service:
            raise _denied(
                f"Credential should be scoped to correct service: '{expected_service}', "
                f"not '{service[:40]}'.",
                "InvalidSignatureException",
            )
        if terminator != "aws4_request":
            raise _denied(
                "Credential should be scoped with a valid terminator: 'aws4_request', "
                f"not '{terminator[:40]}'."
            )
        signed_text = parts["SignedHeaders"]
        signed = signed_text.split(";")
        if signed != sorted(set(signed)) or signed_text != signed_text.lower() or "" in signed:
            raise _denied("SignedHeaders must be lower-case names, sorted, separated by ';'.")
        signed_set = set(signed)
        required = ["host", "x-amz-date"]
        optional = ["x-amz-content-sha256", "x-amz-security-token"]
        if require_signed_content_type:
            optional.append("content-type")
        required += [name for name in optional if name in lowered]
        for name in required:
            if name not in signed_set:
                raise _denied(f"'{name}' must be a 'SignedHeader' in the AWS Authorization.")
        for name in signed:
            if name not in lowered:
                raise _denied(f"Signed header '{name[:64]}' is not in the request.")

        record = self._lookup(access_key_id) if self._lookup is not None else None
        if record is None:
            raise Reject(
                401,
                "UnrecognizedClientException",
                "The security token included in the request is invalid: the access key id "
                f"{access_key_id[:32]!r} does not exist in our records.",
            )
        if record.expiration is not None and now >= record.expiration:
            raise Reject(
                401,
                "ExpiredTokenException",
                "The security token included in the request is expired",
            )
        token = record.session_token
        sent_token = lowered.get("x-amz-security-token")
        if token:
            if sent_token is None:
                raise _denied(
                    "The request has no X-Amz-Security-Token, which temporary credentials need.",
                    "MissingAuthenticationTokenException",
                )
            if not hmac.compare_digest(sent_token.strip().encode(), token.encode()):
                raise _denied(
                    "The security token included in the request is invalid.",
                    "UnrecognizedClientException",
                )
        elif sent_token is not None:
            raise _denied(
                "The security token included in the request is invalid.",
                "UnrecognizedClientException",
            )

        declared = lowered.get("x-amz-content-sha256")
        if declared is None:
            payload_hash = hashlib.sha256(body).hexdigest()
        elif declared.strip() == sigv4.UNSIGNED_PAYLOAD:
            payload_hash = sigv4.UNSIGNED_PAYLOAD
        else:
            payload_hash = declared.strip()
            if not _SHA256_HEX.fullmatch(payload_hash) or not hmac.compare_digest(
                payload_hash, hashlib.sha256(body).hexdigest()
            ):
                raise _denied(
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    "XAmzContentSHA256Mismatch",
                )

        raw_path, _, raw_query = target.partition("?")
        block, signed_names = sigv4.canonical_headers(headers, signed)
        canonical = sigv4.canonical_request(
            method,
            sigv4.canonical_path(raw_path),
            sigv4.canonical_query(raw_query),
            block,
            signed_names,
            payload_hash,
        )
        scope = sigv4.credential_scope(date, region, service)
        to_sign = sigv4.string_to_sign(ALGORITHM, x_amz_date, scope, canonical)
        signing_key = self._signing_key(record.secret_access_key, date, region, service)
        expected = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), parts["Signature"].encode()):
            if token:
                canonical = canonical.replace(token, "<redacted>")
            raise Reject(403, "InvalidSignatureException", _BAD_SIGNATURE, canonical, to_sign)

        skew = clock_skew_error(x_amz_date, now, MAX_CLOCK_SKEW)
        if skew is not None:
            raise _denied(skew, "InvalidSignatureException")
        return access_key_id
