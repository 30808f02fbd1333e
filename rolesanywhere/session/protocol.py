"""CreateSession, sans-I/O: build and sign the request, read the response.

Nothing here opens a socket; :mod:`rolesanywhere.session.client` is the thin shell that sends what
:func:`build_create_session_request` returns and hands the answer to
:func:`parse_create_session_response`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from rolesanywhere.credentials import Credentials
from rolesanywhere.errors import (
    AccessDeniedError,
    CredentialsError,
    ResourceNotFoundError,
    ServiceError,
    ServiceValidationError,
    ThrottlingError,
    parameter,
    safe_text,
)
from rolesanywhere.session.arn import (
    parse_profile_arn,
    parse_role_arn,
    parse_trust_anchor_arn,
    resolve_region,
    validate_duration,
    validate_role_session_name,
)
from rolesanywhere.sigv4 import canonical as sigv4
from rolesanywhere.values import Value

if TYPE_CHECKING:
    from rolesanywhere.session.endpoints import Endpoint
    from rolesanywhere.x509.identity import Identity
    from rolesanywhere.x509.keys import SigningKey

__all__ = [
    "SERVICE",
    "HttpRequest",
    "SessionParams",
    "SignedRequest",
    "build_create_session_request",
    "header_value",
    "is_retryable_status",
    "parse_create_session_response",
    "sign_x509",
]

SERVICE = "rolesanywhere"
#: Headers that are never signed (they change in transit or are added by the HTTP client).
UNSIGNED_HEADERS = frozenset({"authorization", "user-agent", "content-length", "connection"})


def header_value(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (any case) in ``(name, value)`` pairs, or ``None``."""
    lname = name.lower()
    for key, value in headers:
        if key.lower() == lname:
            return value
    return None


class HttpRequest(Value):
    """An HTTP request as bytes and strings; headers keep their order and may repeat."""

    __slots__ = ("method", "url", "headers", "body")

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def __init__(
        self, method: str, url: str, headers: tuple[tuple[str, str], ...], body: bytes = b""
    ) -> None:
        super().__init__(method, url, headers, body)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        return header_value(self.headers, name)


class SignedRequest(HttpRequest):
    """A signed request plus the intermediate strings, for ``--debug`` output."""

    __slots__ = ("canonical_request", "string_to_sign")

    canonical_request: str
    string_to_sign: str

    def __init__(
        self,
        method: str,
        url: str,
        headers: tuple[tuple[str, str], ...],
        body: bytes = b"",
        canonical_request: str = "",
        string_to_sign: str = "",
    ) -> None:
        Value.__init__(self, method, url, headers, body, canonical_request, string_to_sign)


class SessionParams(Value):
    """What to ask CreateSession for, validated on construction (before any network call)."""

    __slots__ = (
        "trust_anchor_arn",
        "profile_arn",
        "role_arn",
        "region",
        "duration_seconds",
        "role_session_name",
        "resolved_region",
        "query",
        "body",
    )
    _hidden = frozenset({"query", "body"})

    trust_anchor_arn: str
    profile_arn: str
    role_arn: str
    region: str | None
    duration_seconds: int
    role_session_name: str | None
    #: The region that goes in the credential scope and picks the endpoint, resolved from the
    #: ARNs when ``region`` is not given. May be a FIPS microformat such as ``us-gov-west-1-fips``.
    resolved_region: str
    #: The ARNs as a canonical (sorted, RFC 3986 encoded) query string, also the wire form.
    query: str
    #: The compact JSON body: ``{"durationSeconds":3600}`` plus the session name when given.
    body: bytes

    def __init__(
        self,
        trust_anchor_arn: str,
        profile_arn: str,
        role_arn: str,
        region: str | None = None,
        duration_seconds: int = 3600,
        role_session_name: str | None = None,
    ) -> None:
        anchor = parse_trust_anchor_arn(trust_anchor_arn)
        profile = parse_profile_arn(profile_arn)
        role = parse_role_arn(role_arn)
        validate_duration(duration_seconds)
        if role_session_name is not None:
            validate_role_session_name(role_session_name)
        resolved = resolve_region(anchor, profile, region, role_arn=role)
        query = sigv4.canonical_query_from_pairs(
            [
                ("profileArn", profile_arn),
                ("roleArn", role_arn),
                ("trustAnchorArn", trust_anchor_arn),
            ]
        )
        payload: dict[str, object] = {"durationSeconds": duration_seconds}
        if role_session_name is not None:
            payload["roleSessionName"] = role_session_name
        body = json.dumps(payload, separators=(",", ":")).encode()
        super().__init__(
            trust_anchor_arn, profile_arn, role_arn, region, duration_seconds,
            role_session_name, resolved, query, body,
        )  # fmt: skip


def _canonical_x509(
    request: HttpRequest,
    signed_headers: Collection[str] | None,
    canonical_query: str | None,
) -> tuple[str, str]:
    """``(canonical request, signed header list)`` of ``request``."""
    url = urlsplit(request.url)
    if signed_headers is None:
        signed_headers = [n for n, _ in request.headers if n.lower() not in UNSIGNED_HEADERS]
    block, signed = sigv4.canonical_headers(request.headers, signed_headers)
    canonical = sigv4.canonical_request(
        request.method,
        sigv4.canonical_path(url.path),
        sigv4.canonical_query(url.query) if canonical_query is None else canonical_query,
        block,
        signed,
        sigv4.sha256_hex(request.body),
    )
    return canonical, signed


def _finish_x509(
    request: HttpRequest,
    canonical: str,
    signed: str,
    x_amz_date: str,
    *,
    key: SigningKey,
    serial: str,
    region: str,
    service: str,
) -> SignedRequest:
    """Sign a canonical request and attach ``Authorization``."""
    scope = sigv4.credential_scope(x_amz_date, region, service)
    to_sign = sigv4.string_to_sign(key.algorithm, x_amz_date, scope, canonical)
    signature = key.sign(to_sign.encode()).hex()
    authorization = sigv4.authorization_value(key.algorithm, serial, scope, signed, signature)
    return SignedRequest(
        method=request.method,
        url=request.url,
        headers=(*request.headers, ("Authorization", authorization)),
        body=request.body,
        canonical_request=canonical,
        string_to_sign=to_sign,
    )


def sign_x509(
    request: HttpRequest,
    *,
    key: SigningKey,
    serial: int,
    region: str,
    service: str = SERVICE,
    signed_headers: Collection[str] | None = None,
    canonical_query: str | None = None,
) -> SignedRequest:
    """Sign ``request`` with an X.509 key and return it with an ``Authorization`` header.

    ``request`` must already carry ``Host`` and ``X-Amz-Date`` (and ``X-Amz-X509``…). Every header
    is signed except :data:`UNSIGNED_HEADERS`, unless ``signed_headers`` names the ones to sign.
    The credential is the certificate's serial number in decimal. ``canonical_query`` saves
    re-canonicalising a query the caller built in canonical form.
    """
    x_amz_date = request.header("x-amz-date")
    if not x_amz_date:
        raise ValueError("sign_x509 needs an X-Amz-Date header on the request")
    canonical, signed = _canonical_x509(request, signed_headers, canonical_query)
    return _finish_x509(
        request, canonical, signed, x_amz_date, key=key, serial=str(serial), region=region,
        service=service,
    )  # fmt: skip


#: Stands in for the date while a CreateSession template is canonicalised once.
_DATE_SLOT = "\x00x-amz-date\x00"


class _CreateSessionTemplate(Value):
    """Everything about a CreateSession request that does not change from call to call.

    Built once per (identity, params, endpoint) with the date left as a slot, by the same
    canonicalisation as any other request; each call then only fills in the date and signs.
    """

    __slots__ = ("request", "canonical", "signed", "identity", "serial", "region")

    request: HttpRequest
    canonical: tuple[str, str]
    signed: str
    identity: Identity
    serial: str
    region: str

    def __init__(
        self,
        request: HttpRequest,
        canonical: tuple[str, str],
        signed: str,
        identity: Identity,
        serial: str,
        region: str,
    ) -> None:
        super().__init__(request, canonical, signed, identity, serial, region)

    def sign(self, x_amz_date: str) -> SignedRequest:
        request = self.request
        headers = tuple((n, x_amz_date if v is _DATE_SLOT else v) for n, v in request.headers)
        before, after = self.canonical
        return _finish_x509(
            HttpRequest(request.method, request.url, headers, request.body),
            before + x_amz_date + after,
            self.signed,
            x_amz_date,
            key=self.identity.signing_key,
            serial=self.serial,
            region=self.region,
            service=SERVICE,
        )


@functools.lru_cache(maxsize=32)
def _create_session_template(
    identity: Identity, params: SessionParams, endpoint: Endpoint
) -> _CreateSessionTemplate:
    headers: list[tuple[str, str]] = [
        ("Content-Type", "application/json"),
        ("Host", endpoint.host),
        ("X-Amz-Date", _DATE_SLOT),
        ("X-Amz-X509", identity.certificate_b64),
    ]
    if identity.chain_der:
        headers.append(("X-Amz-X509-Chain", ",".join(identity.chain_b64)))
    request = HttpRequest("POST", endpoint.sessions_url(params.query), tuple(headers), params.body)
    canonical, signed = _canonical_x509(request, None, params.query)
    before, after = canonical.split(_DATE_SLOT)
    return _CreateSessionTemplate(
        request, (before, after), signed, identity, str(identity.serial_number),
        endpoint.signing_region,
    )  # fmt: skip


def build_create_session_request(
    identity: Identity,
    params: SessionParams,
    endpoint: Endpoint,
    *,
    now: datetime | None = None,
) -> SignedRequest:
    """The signed CreateSession request, exactly as PROTOCOL.md §1 describes it."""
    global _last_template
    last = _last_template
    if last is None or last[0] is not identity or last[1] is not params or last[2] is not endpoint:
        # Hashing the three keys costs microseconds; a client passes the same objects each time.
        last = (identity, params, endpoint, _create_session_template(identity, params, endpoint))
        _last_template = last
    return last[3].sign(sigv4.amz_date(now))


_last_template: tuple[Identity, SessionParams, Endpoint, _CreateSessionTemplate] | None = None


# --- responses --------------------------------------------------------------------------------

_ERROR_CLASSES: Mapping[str, type[ServiceError]] = {
    "AccessDeniedException": AccessDeniedError,
    "ValidationException": ServiceValidationError,
    "ResourceNotFoundException": ResourceNotFoundError,
    "ThrottlingException": ThrottlingError,
    "TooManyRequestsException": ThrottlingError,
}
_STATUS_CLASSES: Mapping[int, type[ServiceError]] = {
    400: ServiceValidationError,
    403: AccessDeniedError,
    404: ResourceNotFoundError,
    429: ThrottlingError,
}
#: Longest service message, and error type or request id, an exception carries (escaped).
_MAX_MESSAGE = 400
_MAX_NAME = 100


def is_retryable_status(status: int) -> bool:
    """429 and 5xx are retried; every other 4xx is final."""
    return status == 429 or status >= 500


def _lower_keys(headers: Mapping[str, str] | Sequence[tuple[str, str]]) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {k.lower(): v for k, v in items}


def service_error(
    status: int, headers: Mapping[str, str] | Sequence[tuple[str, str]], body: bytes
) -> ServiceError:
    """The typed exception for an error answer (the type from ``X-Amzn-ErrorType`` or the body)."""
    lowered = _lower_keys(headers)
    error_type = lowered.get("x-amzn-errortype", "").split(":", 1)[0].strip() or None
    message = ""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        payload = None
    if isinstance(payload, dict):
        raw_type = payload.get("__type") or payload.get("code") or payload.get("Code")
        if error_type is None and isinstance(raw_type, str):
            error_type = raw_type.rsplit("#", 1)[-1].split(":", 1)[0] or None
        raw_message = payload.get("message") or payload.get("Message")
        if isinstance(raw_message, str):
            message = raw_message
    elif body:
        message = body.decode("utf-8", "replace")
    cls = _ERROR_CLASSES.get(error_type or "") or _STATUS_CLASSES.get(status) or ServiceError
    return cls(
        safe_text(message, _MAX_MESSAGE) or f"HTTP {status} with no message",
        status=status,
        error_type=safe_text(error_type, _MAX_NAME) if error_type else None,
        request_id=safe_text(lowered.get("x-amzn-requestid") or "", _MAX_NAME) or None,
        hint=_hint(cls, status, message),
    )


#: What to do about a throttled CreateSession (the account's quota is shared by every host).
THROTTLING_HINT = (
    "the account is over its CreateSession quota (10 calls per second per region unless AWS "
    "raised it), which every host and process with this account shares: share one session per "
    "host (the credential cache, --cache, or serve), let long-running agents refresh for you, "
    "spread scheduled jobs, or ask AWS for a higher quota (docs/fleet.md)"
)


def _hint(cls: type[ServiceError], status: int, message: str) -> str | None:
    """What to check for an error answer, when its kind tells."""
    if status >= 500:
        return (
            "the service failed on its side (the call was retried): try again later, and "
            f"if it persists check {parameter('endpoint')}"
        )
    if issubclass(cls, ThrottlingError):
        return THROTTLING_HINT
    if issubclass(cls, AccessDeniedError) and "untrusted signing certificate" in message.lower():
        return (
            "if an intermediate CA issued the certificate, pass its certificates with "
            f"{parameter('intermediates')}; otherwise check that the trust anchor "
            "holds the CA that issued it"
        )
    if issubclass(cls, ResourceNotFoundError):
        return (
            "check that the trust anchor, profile and role ARNs exist in that account and "
            f"region, and that {parameter('endpoint')} is right"
        )
    return None


def parse_create_session_response(
    status: int, headers: Mapping[str, str] | Sequence[tuple[str, str]], body: bytes
) -> Credentials:
    """Credentials from a 2xx answer; the typed :class:`ServiceError` for anything else."""
    if not 200 <= status < 300:
        raise service_error(status, headers, body)
    try:
        payload = json.loads(body)
        creds = payload["credentialSet"][0]["credentials"]
        fields = [
            creds[k] for k in ("accessKeyId", "secretAccessKey", "sessionToken", "expiration")
        ]
        if not all(isinstance(f, str) and f for f in fields):
            raise TypeError
        access_key_id, secret, token, expiration_text = fields
        return Credentials(
            access_key_id=access_key_id,
            secret_access_key=secret,
            session_token=token,
            expiration=datetime.fromisoformat(expiration_text),
            expiration_text=expiration_text,
        )
    except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError):
        # The message must not echo the body: it may hold a secret key.
        raise CredentialsError(
            f"CreateSession answered HTTP {status} without a usable credentialSet[0].credentials "
            "(accessKeyId, secretAccessKey, sessionToken, expiration): check the endpoint"
        ) from None
