"""A local IAM Roles Anywhere (CreateSession) emulator for offline tests and the demo.

A real HTTP(S) server on 127.0.0.1 that checks requests the way the service does (PROTOCOL.md §1)
and hands out fresh random credentials, remembered in a registry that other emulators can check
SigV4 requests against (:meth:`RolesAnywhereEmulator.lookup`)::

    with RolesAnywhereEmulator.for_pki(pki) as emu:
        ...  # POST {emu.url}/sessions?profileArn=…&roleArn=…&trustAnchorArn=…

Checks, in order (the first failure answers):

1. ``Authorization`` present and well formed, algorithm ``AWS4-X509-RSA-SHA256`` or
   ``AWS4-X509-ECDSA-SHA256``; scope ``<serial>/<date>/<region>/rolesanywhere/aws4_request`` with
   the date of ``X-Amz-Date``, this emulator's region; the required headers signed (403).
2. ``X-Amz-X509`` / ``X-Amz-X509-Chain`` decode (400); the scope's serial is the leaf's, the
   algorithm matches the leaf's key type, the signature verifies (403 ``Invalid signature``);
   ``X-Amz-Date`` within 5 minutes of the clock (403 ``Signature expired…``).
3. Body and ARNs (query string first, then the JSON body), ``durationSeconds``,
   ``roleSessionName``, regions (400); trust anchor, profile, role known (404).
4. The chain from the leaf through ``X-Amz-X509-Chain`` reaches a certificate of *this* trust
   anchor (403 ``Untrusted Signing Certificate``); every certificate on the path is within its
   validity period (403 ``Certificate expired`` / ``Certificate not yet valid``).
5. The profile lists the role and accepts the session name and duration (403 / 400).

Errors carry ``X-Amzn-ErrorType`` and ``{"message": …}``; every answer has ``x-amzn-RequestId``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import string
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from rolesanywhere.credentials import format_expiration
from rolesanywhere.errors import UnsupportedKeyError
from rolesanywhere.session.endpoints import partition_for_region
from rolesanywhere.session.protocol import header_value
from rolesanywhere.sigv4 import canonical as sigv4
from rolesanywhere.testing._server import (
    Answer,
    ServedEmulator,
    authorization_parameters,
    clock_skew_error,
    json_answer,
    origin_form,
)
from rolesanywhere.testing.pki import IssuedCert
from rolesanywhere.x509.keys import (
    ALGORITHM_ECDSA,
    ALGORITHM_RSA,
    algorithm_for_public_key,
    verify_signature,
)

if TYPE_CHECKING:
    from rolesanywhere.session.client import AsyncRolesAnywhereClient, RolesAnywhereClient
    from rolesanywhere.testing._server import Handler
    from rolesanywhere.testing.pki import PKI
    from rolesanywhere.x509.identity import Identity

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "IssuedCredentials",
    "Profile",
    "RecordedRequest",
    "Role",
    "RolesAnywhereEmulator",
    "TrustAnchor",
]

DEFAULT_ACCOUNT_ID = "123456789012"
SERVICE = "rolesanywhere"
MAX_CLOCK_SKEW = timedelta(minutes=5)
MIN_DURATION = 900
MAX_DURATION = 43200
MAX_BODY_BYTES = 1 << 20
MAX_CHAIN_DEPTH = 5
_ALGORITHMS = frozenset({ALGORITHM_RSA, ALGORITHM_ECDSA})
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z", re.ASCII)
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_KEY_ALPHABET = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"
_ROLE_ID_ALPHABET = string.ascii_uppercase + string.digits
_FAULT_TYPES: Mapping[int, tuple[str, str]] = {
    429: ("ThrottlingException", "Rate exceeded"),
    500: ("InternalServerException", "Internal server error"),
    502: ("BadGatewayException", "Bad gateway"),
    503: ("ServiceUnavailableException", "Service unavailable"),
    504: ("GatewayTimeoutException", "Gateway timeout"),
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- records -------------------------------------------------------------------------------------


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
        return (now or _utcnow()) >= self.expiration


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


_Answer = Answer


class _Reject(Exception):
    """An error answer raised from inside the checks."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def _denied(message: str) -> _Reject:
    return _Reject(403, "AccessDeniedException", message)


def _invalid(message: str) -> _Reject:
    return _Reject(400, "ValidationException", message)


def _not_found(message: str) -> _Reject:
    return _Reject(404, "ResourceNotFoundException", message)


@dataclass(frozen=True, slots=True)
class _Authorization:
    algorithm: str
    serial: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True, slots=True)
class _Verified:
    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]


# --- the emulator --------------------------------------------------------------------------------


class RolesAnywhereEmulator(ServedEmulator):
    """IAM Roles Anywhere CreateSession on ``127.0.0.1``, plain HTTP or TLS.

    ``clock`` returns the current time (timezone-aware) and is read for every request; tests may
    replace :attr:`clock` at any time. Configure with :meth:`add_trust_anchor`, :meth:`add_role`,
    :meth:`add_profile` (before or after :meth:`start`), or use :meth:`for_pki`.
    """

    _LABEL = "emulator"
    _THREAD_NAME = "rolesanywhere-emulator"
    _CA_FILE = "emulator-ca.pem"

    def __init__(
        self,
        region: str = "us-east-1",
        *,
        tls: IssuedCert | None = None,
        clock: Callable[[], datetime] | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(host, tls)
        self.region = region
        self.partition = partition_for_region(region).name
        self.account_id = account_id
        self.clock: Callable[[], datetime] = clock or _utcnow
        #: Seconds to wait before answering each request (a stalled server); ``stop`` cuts it short.
        self.delay: float = 0.0
        self._lock = threading.Lock()
        self._trust_anchors: dict[str, TrustAnchor] = {}
        self._profiles: dict[str, Profile] = {}
        self._roles: dict[str, Role] = {}
        self._issued: dict[str, IssuedCredentials] = {}
        self._requests: list[RecordedRequest] = []
        self._faults: list[int] = []
        self._calls = 0
        self._successes = 0
        self._defaults: dict[str, str] = {}

    # --- configuration --------------------------------------------------------------------------

    @classmethod
    def for_pki(
        cls,
        pki: PKI,
        *,
        region: str = "us-east-1",
        tls: bool | IssuedCert = False,
        clock: Callable[[], datetime] | None = None,
        role_name: str = "test-role",
        duration_seconds: int = MAX_DURATION,
    ) -> RolesAnywhereEmulator:
        """An emulator trusting ``pki.root`` with one role and one profile allowing it.

        ``tls=True`` serves HTTPS with ``pki.server_cert()``. The ARNs are in
        :attr:`trust_anchor_arn`, :attr:`profile_arn` and :attr:`role_arn`.
        """
        server_cert: IssuedCert | None
        if tls is True:
            server_cert = pki.server_cert()
        elif tls is False:
            server_cert = None
        else:
            server_cert = tls
        emu = cls(region, tls=server_cert, clock=clock)
        if server_cert is not None:
            emu.tls_ca_pem = pki.trust_anchor_pem()
        anchor = emu.add_trust_anchor(pki.root)
        role = emu.add_role(role_name)
        profile = emu.add_profile([role], duration_seconds=duration_seconds)
        emu._defaults = {"trust_anchor": anchor, "profile": profile, "role": role}
        return emu

    def _default(self, name: str) -> str:
        try:
            return self._defaults[name]
        except KeyError:
            raise AttributeError(
                f"this emulator has no default {name}: create it with RolesAnywhereEmulator.for_pki"
            ) from None

    @property
    def trust_anchor_arn(self) -> str:
        """The trust anchor made by :meth:`for_pki`."""
        return self._default("trust_anchor")

    @property
    def profile_arn(self) -> str:
        """The profile made by :meth:`for_pki`."""
        return self._default("profile")

    @property
    def role_arn(self) -> str:
        """The role made by :meth:`for_pki`."""
        return self._default("role")

    def add_trust_anchor(
        self,
        certificates: x509.Certificate | IssuedCert | Iterable[x509.Certificate | IssuedCert],
        *,
        arn: str | None = None,
    ) -> str:
        """Trust one or more CA certificates; return the new trust anchor's ARN."""
        items: list[x509.Certificate | IssuedCert]
        if isinstance(certificates, x509.Certificate | IssuedCert):
            items = [certificates]
        else:
            items = list(certificates)
        certs = tuple(c if isinstance(c, x509.Certificate) else c.certificate for c in items)
        if not certs:
            raise ValueError("a trust anchor needs at least one CA certificate")
        arn = arn or self._arn("rolesanywhere", self.region, f"trust-anchor/{uuid.uuid4()}")
        with self._lock:
            self._trust_anchors[arn] = TrustAnchor(arn, certs)
        return arn

    def add_role(self, name: str) -> str:
        """Register an IAM role by name (or full ARN); return its ARN."""
        arn = name if name.startswith("arn:") else self._arn("iam", "", f"role/{name}")
        role_id = "AROA" + "".join(secrets.choice(_ROLE_ID_ALPHABET) for _ in range(17))
        with self._lock:
            self._roles[arn] = Role(arn, arn.rsplit("/", 1)[-1], role_id)
        return arn

    def add_profile(
        self,
        role_arns: Sequence[str],
        *,
        duration_seconds: int = MAX_DURATION,
        accept_role_session_name: bool = True,
        arn: str | None = None,
    ) -> str:
        """A profile allowing ``role_arns`` (not checked: unknown roles answer 404); its ARN.

        Requests asking for more than ``duration_seconds`` are refused (400).
        """
        arn = arn or self._arn("rolesanywhere", self.region, f"profile/{uuid.uuid4()}")
        profile = Profile(arn, tuple(role_arns), duration_seconds, accept_role_session_name)
        with self._lock:
            self._profiles[arn] = profile
        return arn

    def _arn(self, service: str, region: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{region}:{self.account_id}:{resource}"

    # --- fault injection, counters, registry ------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` CreateSession calls with ``status`` (429: ThrottlingException)."""
        if not 400 <= status <= 599:
            raise ValueError(f"fail_next needs a 4xx or 5xx status, not {status}")
        with self._lock:
            self._faults.extend([status] * n)

    @property
    def calls(self) -> int:
        """CreateSession requests received, failed ones included."""
        with self._lock:
            return self._calls

    @property
    def successes(self) -> int:
        """CreateSession requests answered with credentials."""
        with self._lock:
            return self._successes

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received (any path), oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget counters, recorded requests, pending faults and the delay.

        Trust anchors, profiles, roles and issued credentials are kept.
        """
        with self._lock:
            self._calls = 0
            self._successes = 0
            self._requests.clear()
            self._faults.clear()
        self.delay = 0.0

    def client(self, identity: Identity, **options: Any) -> RolesAnywhereClient:
        """A :class:`~rolesanywhere.session.client.RolesAnywhereClient` for this emulator's trust
        anchor, profile and role (see :meth:`for_pki`), without proxies; ``options`` go to it
        (``duration_seconds``, ``retry``, ``timeout``…). Over TLS it trusts the emulator's CA
        (:attr:`ca_bundle`, else :attr:`tls_ca_pem`) unless ``verify=`` is given."""
        from rolesanywhere.session.client import RolesAnywhereClient

        return RolesAnywhereClient(identity, **self._client_options(options))

    def async_client(self, identity: Identity, **options: Any) -> AsyncRolesAnywhereClient:
        """The :class:`~rolesanywhere.session.client.AsyncRolesAnywhereClient` twin of
        :meth:`client`."""
        from rolesanywhere.session.client import AsyncRolesAnywhereClient

        return AsyncRolesAnywhereClient(identity, **self._client_options(options))

    def _client_options(self, options: dict[str, Any]) -> dict[str, Any]:
        options.setdefault("proxy_from_env", False)
        if "verify" not in options:
            verify = self._client_verify()
            if verify is not None:
                options["verify"] = verify
        return {
            "trust_anchor_arn": self.trust_anchor_arn,
            "profile_arn": self.profile_arn,
            "role_arn": self.role_arn,
            "endpoint": self.url,
            **options,
        }

    def lookup(self, access_key_id: str) -> IssuedCredentials | None:
        """The credentials issued under ``access_key_id``, or ``None`` (expired ones included)."""
        with self._lock:
            return self._issued.get(access_key_id)

    @property
    def issued(self) -> list[IssuedCredentials]:
        """Every set of credentials handed out, oldest first."""
        with self._lock:
            return list(self._issued.values())

    # --- server lifecycle: start, stop, url, port, with (ServedEmulator) --------------------------

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "stopped"
        return f"RolesAnywhereEmulator(region={self.region!r}, {where})"

    # --- request handling -------------------------------------------------------------------------

    def _respond(self, handler: Handler) -> None:
        try:
            body = handler.read_body(MAX_BODY_BYTES)[0]
        except ValueError:
            handler.close_connection = True
            handler.write(self._error(400, "ValidationException", "Malformed request body"))
            return
        headers = tuple((name, str(value)) for name, value in handler.headers.items())
        answer = self._handle(handler.command, handler.path, headers, body)
        if answer is None:
            handler.close_connection = True
            return
        handler.write(answer)

    def _handle(
        self, method: str, target: str, headers: tuple[tuple[str, str], ...], body: bytes | None
    ) -> _Answer | None:
        """The answer to one request; ``None`` when the emulator stopped while delaying."""
        request = RecordedRequest(method, origin_form(target), headers, body or b"")
        path = sigv4.normalize_path(request.path)
        is_session = method == "POST" and (path == "/sessions" or path.endswith("/sessions"))
        fault: int | None = None
        with self._lock:
            self._requests.append(request)
            if is_session:
                self._calls += 1
                fault = self._faults.pop(0) if self._faults else None
        if self.delay > 0 and self._stopping.wait(self.delay):
            return None
        if not is_session:
            return self._error(404, "UnknownOperationException", f"No operation at {method} {path}")
        if fault is not None:
            error_type, message = _FAULT_TYPES.get(fault, ("ServiceException", f"HTTP {fault}"))
            return self._error(fault, error_type, message)
        if body is None:
            return self._error(413, "ValidationException", "Request body is too large")
        try:
            payload = self._create_session(request)
        except _Reject as reject:
            return self._error(reject.status, reject.error_type, reject.message)
        except Exception as exc:  # a bug or a bad clock: say so rather than drop the connection
            message = f"emulator error: {type(exc).__name__}: {exc}"
            return self._error(500, "InternalServerException", message[:300])
        with self._lock:
            self._successes += 1
        return self._json(201, payload)

    def _now(self) -> datetime:
        now = self.clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now

    def _json(self, status: int, payload: object, extra: Sequence[tuple[str, str]] = ()) -> _Answer:
        headers = (
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", str(uuid.uuid4())),
            *extra,
        )
        return json_answer(status, payload, headers)

    def _error(self, status: int, error_type: str, message: str) -> _Answer:
        return self._json(status, {"message": message}, [("X-Amzn-ErrorType", error_type)])

    def _create_session(self, request: RecordedRequest) -> dict[str, Any]:
        auth = self._parse_authorization(request)
        verified = self._verify_signature(request, auth)
        params = _parse_params(request)
        anchor, profile, role = self._resources(params)
        path = _build_path(verified.leaf, verified.chain, anchor.certificates)
        now = self._now()
        for cert in path:
            if now < cert.not_valid_before_utc:
                raise _denied("Certificate not yet valid")
            if now > cert.not_valid_after_utc:
                raise _denied("Certificate expired")
        if role.arn not in profile.role_arns:
            raise _denied(f"Unable to assume role for {role.arn}: the profile does not allow it")
        session_name = params.get("roleSessionName")
        if session_name is not None and not profile.accept_role_session_name:
            raise _denied("Not authorized to set roleSessionName.")
        duration = int(params["durationSeconds"])
        if duration > profile.duration_seconds:
            raise _invalid(
                f"durationSeconds {duration} exceeds the profile's maximum of "
                f"{profile.duration_seconds} seconds"
            )
        return self._issue(verified.leaf, role, duration, session_name, now)

    def _parse_authorization(self, request: RecordedRequest) -> _Authorization:
        header = request.header("authorization")
        if not header:
            raise _denied("Missing Authentication Token")
        algorithm, _, rest = header.strip().partition(" ")
        if algorithm not in _ALGORITHMS:
            raise _denied(f"Unsupported signing algorithm: {algorithm[:64]!r}")
        parts = authorization_parameters(rest, _denied)
        scope = parts["Credential"].split("/")
        if len(scope) != 5:
            raise _denied(
                "Credential should be <serial>/<date>/<region>/rolesanywhere/aws4_request"
            )
        serial, date, region, service, terminator = scope
        auth = _Authorization(
            algorithm=algorithm,
            serial=serial,
            date=date,
            region=region,
            service=service,
            terminator=terminator,
            signed_headers=tuple(parts["SignedHeaders"].split(";")),
            signature=parts["Signature"],
        )
        x_amz_date = request.header("x-amz-date")
        if not x_amz_date:
            raise _denied("Missing X-Amz-Date header")
        if not _AMZ_DATE.fullmatch(x_amz_date.strip()):
            raise _denied(f"X-Amz-Date must be in the form YYYYMMDDTHHMMSSZ, not {x_amz_date!r}")
        if auth.date != x_amz_date.strip()[:8]:
            raise _denied(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                f"date from HTTP: '{auth.date}' != '{x_amz_date[:8]}', from '{x_amz_date}'."
            )
        if auth.region != self.region:
            raise _denied(f"Credential should be scoped to a valid region, not '{auth.region}'.")
        if auth.service != SERVICE:
            raise _denied(
                f"Credential should be scoped to correct service: '{SERVICE}', "
                f"not '{auth.service}'."
            )
        if auth.terminator != "aws4_request":
            raise _denied(
                "Credential should be scoped with a valid terminator: 'aws4_request', "
                f"not '{auth.terminator}'."
            )
        signed = set(auth.signed_headers)
        present = {name.lower() for name, _ in request.headers}
        required = ["host", "x-amz-date", "x-amz-x509"]
        required += [h for h in ("content-type", "x-amz-x509-chain") if h in present]
        for name in required:
            if name not in signed:
                raise _denied(f"'{name}' must be a 'SignedHeader' in the AWS Authorization.")
        for name in auth.signed_headers:
            if name not in present:
                raise _denied(f"Signed header '{name}' is not in the request.")
        return auth

    def _verify_signature(self, request: RecordedRequest, auth: _Authorization) -> _Verified:
        leaf = _decode_certificate(request.header("x-amz-x509") or "", "X-Amz-X509")
        chain_header = request.header("x-amz-x509-chain")
        chain: tuple[x509.Certificate, ...] = ()
        if chain_header is not None:
            chain = tuple(
                _decode_certificate(item, "X-Amz-X509-Chain") for item in chain_header.split(",")
            )
        if not auth.serial.isdigit() or int(auth.serial) != leaf.serial_number:
            raise _denied("Credential serial number does not match the signing certificate")
        try:
            expected = algorithm_for_public_key(leaf.public_key())
        except (UnsupportedKeyError, UnsupportedAlgorithm):
            raise _denied("Unsupported key type in the signing certificate") from None
        if auth.algorithm != expected:
            raise _denied(
                f"Signing algorithm {auth.algorithm} does not match the certificate's key "
                f"(expected {expected})"
            )
        try:
            signature = bytes.fromhex(auth.signature)
        except ValueError:
            raise _denied("Invalid signature") from None
        x_amz_date = (request.header("x-amz-date") or "").strip()
        block, signed = sigv4.canonical_headers(request.headers, auth.signed_headers)
        canonical = sigv4.canonical_request(
            request.method,
            sigv4.canonical_path(request.path),
            sigv4.canonical_query(request.query),
            block,
            signed,
            sigv4.sha256_hex(request.body),
        )
        scope = sigv4.credential_scope(auth.date, auth.region, auth.service)
        to_sign = sigv4.string_to_sign(auth.algorithm, x_amz_date, scope, canonical)
        if not verify_signature(leaf.public_key(), auth.algorithm, to_sign.encode(), signature):
            raise _denied("Invalid signature")
        skew = clock_skew_error(x_amz_date, self._now(), MAX_CLOCK_SKEW)
        if skew is not None:
            raise _denied(skew)
        return _Verified(leaf, chain)

    def _resources(self, params: Mapping[str, Any]) -> tuple[TrustAnchor, Profile, Role]:
        for key in ("trustAnchorArn", "profileArn"):
            region = _arn_region(params[key], key)
            if region != self.region:
                raise _invalid(
                    f"{key} {params[key]} is in region {region!r}, but this endpoint serves "
                    f"{self.region!r}"
                )
        with self._lock:
            anchor = self._trust_anchors.get(params["trustAnchorArn"])
            profile = self._profiles.get(params["profileArn"])
            role = self._roles.get(params["roleArn"])
        if anchor is None:
            raise _not_found(f"Trust anchor {params['trustAnchorArn']} not found")
        if profile is None:
            raise _not_found(f"Profile {params['profileArn']} not found")
        if role is None:
            raise _not_found(f"Role {params['roleArn']} not found")
        return anchor, profile, role

    def _issue(
        self,
        leaf: x509.Certificate,
        role: Role,
        duration: int,
        session_name: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        name = session_name or format(leaf.serial_number, "x")
        expiration = (now + timedelta(seconds=duration)).astimezone(UTC).replace(microsecond=0)
        access_key_id = "ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
        secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
        token = "IQoJb3JpZ2luX2Vj" + base64.b64encode(secrets.token_bytes(300)).decode()
        assumed_arn = f"arn:{self.partition}:sts::{self.account_id}:assumed-role/{role.name}/{name}"
        issued = IssuedCredentials(
            access_key_id=access_key_id,
            secret_access_key=secret,
            session_token=token,
            expiration=expiration,
            role_arn=role.arn,
            assumed_role_arn=assumed_arn,
            session_name=name,
            certificate_serial=leaf.serial_number,
        )
        with self._lock:
            self._issued[access_key_id] = issued
        subject = leaf.subject.rfc4514_string()
        subject_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{subject}#{leaf.serial_number}")
        common_names = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        source_identity = f"CN={common_names[0].value!s}" if common_names else subject
        return {
            "credentialSet": [
                {
                    "assumedRoleUser": {
                        "arn": assumed_arn,
                        "assumedRoleId": f"{role.role_id}:{name}",
                    },
                    "credentials": {
                        "accessKeyId": access_key_id,
                        "expiration": format_expiration(expiration),
                        "secretAccessKey": secret,
                        "sessionToken": token,
                    },
                    "packedPolicySize": 0,
                    "roleArn": role.arn,
                    "sourceIdentity": source_identity,
                }
            ],
            "subjectArn": self._arn("rolesanywhere", self.region, f"subject/{subject_id}"),
        }


# --- checks that need no emulator state -------------------------------------------------------


def _decode_certificate(text: str, header: str) -> x509.Certificate:
    if not text.strip():
        raise _invalid(f"Missing {header} header")
    try:
        der = base64.b64decode(text.strip(), validate=True)
        return x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        raise _invalid(f"Unable to parse the certificate in {header}") from None


def _arn_region(arn: str, key: str) -> str:
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != SERVICE:
        raise _invalid(f"Value '{arn}' at '{key}' failed to satisfy constraint: not an ARN")
    return parts[3]


def _parse_params(request: RecordedRequest) -> dict[str, Any]:
    """The CreateSession parameters: ARNs from the query (else the body), the body's options."""
    try:
        payload = json.loads(request.body) if request.body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise _invalid("Request body is not valid JSON") from None
    except RecursionError:  # deeper than the parser goes: the client's fault, not a 500
        raise _invalid("Request body is not valid JSON: nested too deeply") from None
    if not isinstance(payload, dict):
        raise _invalid("Request body must be a JSON object")
    query: dict[str, str] = {}
    for part in request.query.split("&"):
        raw_key, sep, raw_value = part.partition("=")
        if sep:
            query.setdefault(unquote(raw_key), unquote(raw_value))
    params: dict[str, Any] = {}
    errors: list[str] = []
    for key in ("trustAnchorArn", "profileArn", "roleArn"):
        value = query.get(key, payload.get(key))
        if not isinstance(value, str) or not value:
            errors.append(
                f"Value null at '{key}' failed to satisfy constraint: Member must not be null"
            )
        params[key] = value
    duration = payload.get("durationSeconds", 3600)
    if isinstance(duration, bool) or not isinstance(duration, int):
        errors.append(
            f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: "
            "Member must be an integer"
        )
    elif duration < MIN_DURATION:
        errors.append(
            f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: "
            f"Member must have value greater than or equal to {MIN_DURATION}"
        )
    elif duration > MAX_DURATION:
        errors.append(
            f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: "
            f"Member must have value less than or equal to {MAX_DURATION}"
        )
    params["durationSeconds"] = duration
    name = payload.get("roleSessionName")
    if name is not None and (not isinstance(name, str) or not _SESSION_NAME.fullmatch(name)):
        errors.append(
            f"Value '{name}' at 'roleSessionName' failed to satisfy constraint: Member must "
            "satisfy regular expression pattern: [\\w+=,.@-]{2,64}"
        )
    params["roleSessionName"] = name
    if errors:
        count = len(errors)
        noun = "error" if count == 1 else "errors"
        raise _invalid(f"{count} validation {noun} detected: " + "; ".join(errors))
    return params


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _build_path(
    leaf: x509.Certificate,
    chain: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
) -> list[x509.Certificate]:
    """Leaf → intermediates from ``chain`` → one of ``anchors``; refused when none is reached."""

    def extend(path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        current = path[-1]
        for anchor in anchors:
            if _issued_by(current, anchor):
                return [*path, anchor]
        if len(path) > MAX_CHAIN_DEPTH:
            return None
        for candidate in chain:
            if candidate in path or not _is_ca(candidate) or not _issued_by(current, candidate):
                continue
            found = extend([*path, candidate])
            if found is not None:
                return found
        return None

    found = extend([leaf])
    if found is None:
        raise _denied("Untrusted Signing Certificate")
    return found
