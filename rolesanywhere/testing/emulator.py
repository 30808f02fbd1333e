"""A local IAM Roles Anywhere (CreateSession) emulator for offline tests and the demo.

A real HTTP(S) server on 127.0.0.1 that checks requests the way the service does (PROTOCOL.md §1)
and hands out fresh random credentials, remembered in a registry that other emulators can check
SigV4 requests against (:meth:`RolesAnywhereEmulator.lookup`)::

    with RolesAnywhereEmulator.for_pki(pki) as emu:
        ...  # POST {emu.url}/sessions?profileArn=…&roleArn=…&trustAnchorArn=…

Checks, in order (the first failure answers):

0. A fault queued by :meth:`RolesAnywhereEmulator.fail_next`; then the ``quota`` (a
   :class:`~rolesanywhere.testing.quota.Quota` shared by all clients, off by default): a call
   over it is answered 429 ``ThrottlingException`` "Rate exceeded" before anything else is looked
   at, as the service throttles before doing the work, so every CreateSession request counts
   against it, badly signed ones included.
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
The service sends no ``Retry-After``; ``retry_after=True`` adds one to quota 429s (the seconds
until a call would pass, rounded up).
"""

from __future__ import annotations

import base64
import math
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography import x509

from rolesanywhere.credentials import format_expiration
from rolesanywhere.session.endpoints import partition_for_region
from rolesanywhere.sigv4 import canonical as sigv4
from rolesanywhere.testing._server import Answer, ServedEmulator, json_answer, origin_form
from rolesanywhere.testing.emulator_checks import (
    MAX_CLOCK_SKEW,
    MAX_DURATION,
    Reject,
    arn_region,
    build_path,
    denied,
    invalid,
    not_found,
    parse_authorization,
    parse_params,
    verify_request_signature,
)
from rolesanywhere.testing.emulator_records import (
    IssuedCredentials,
    Profile,
    RecordedRequest,
    Role,
    TrustAnchor,
)
from rolesanywhere.testing.pki import IssuedCert
from rolesanywhere.testing.quota import Quota, QuotaCounter, QuotaSecond, QuotaStats

if TYPE_CHECKING:
    from rolesanywhere.session.client import AsyncRolesAnywhereClient, RolesAnywhereClient
    from rolesanywhere.testing._server import Handler
    from rolesanywhere.testing.pki import PKI
    from rolesanywhere.x509.identity import Identity

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "IssuedCredentials",
    "Profile",
    "Quota",
    "RecordedRequest",
    "Role",
    "RolesAnywhereEmulator",
    "TrustAnchor",
]

DEFAULT_ACCOUNT_ID = "123456789012"
MAX_BODY_BYTES = 1 << 20
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


_Answer = Answer


# --- the emulator --------------------------------------------------------------------------------


class RolesAnywhereEmulator(ServedEmulator):
    """IAM Roles Anywhere CreateSession on ``127.0.0.1``, plain HTTP or TLS.

    ``clock`` returns the current time (timezone-aware) and is read for every request; tests may
    replace :attr:`clock` at any time. Configure with :meth:`add_trust_anchor`, :meth:`add_role`,
    :meth:`add_profile` (before or after :meth:`start`), or use :meth:`for_pki`.

    ``quota`` (:class:`~rolesanywhere.testing.quota.Quota`, or :meth:`set_quota` later) limits
    CreateSession calls across all clients: over it, 429 ``ThrottlingException``; with
    ``retry_after`` the 429 also carries ``Retry-After``. ``monotonic`` (seconds) is the quota's
    clock: inject a fake one to drive it. :attr:`accepted`, :attr:`throttled`,
    :meth:`quota_stats` and :meth:`quota_history` count the calls it admitted and refused.
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
        quota: Quota | None = None,
        retry_after: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
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
        #: The quota's decisions and counts (:class:`~rolesanywhere.testing.quota.QuotaCounter`).
        self.quota_counter = QuotaCounter(quota, clock=monotonic)
        #: Add ``Retry-After`` (whole seconds, rounded up) to quota 429s; the service does not.
        self.retry_after = retry_after

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
        **options: Any,
    ) -> RolesAnywhereEmulator:
        """An emulator trusting ``pki.root`` with one role and one profile allowing it.

        ``tls=True`` serves HTTPS with ``pki.server_cert()``. The ARNs are in
        :attr:`trust_anchor_arn`, :attr:`profile_arn` and :attr:`role_arn`. ``options`` go to
        the constructor (``quota``, ``retry_after``, ``monotonic``, ``account_id``).
        """
        server_cert: IssuedCert | None
        if tls is True:
            server_cert = pki.server_cert()
        elif tls is False:
            server_cert = None
        else:
            server_cert = tls
        emu = cls(region, tls=server_cert, clock=clock, **options)
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
    def quota(self) -> Quota | None:
        """The CreateSession quota in force (``None``: unlimited)."""
        limit = self.quota_counter.limit
        return limit if isinstance(limit, Quota) else None

    def set_quota(self, rate: float | Quota | None, burst: float | None = None) -> None:
        """Limit CreateSession to ``rate`` calls a second with bursts of ``burst`` (default:
        ``rate``), starting full; ``set_quota(None)`` lifts the limit. Counts are kept."""
        if rate is None or isinstance(rate, Quota):
            self.quota_counter.set_limit(rate)
        else:
            self.quota_counter.set_limit(Quota(rate, rate if burst is None else burst))

    @property
    def accepted(self) -> int:
        """CreateSession calls the quota let through (all of them without a quota); they
        are then checked as usual, so :attr:`successes` may be fewer."""
        return self.quota_counter.stats().accepted

    @property
    def throttled(self) -> int:
        """CreateSession calls answered 429 by the quota (not those of :meth:`fail_next`)."""
        return self.quota_counter.stats().throttled

    def quota_stats(self) -> QuotaStats:
        """Accepted and throttled calls at once, consistently."""
        return self.quota_counter.stats()

    def quota_history(self) -> list[QuotaSecond]:
        """Accepted and throttled calls per second of the ``monotonic`` clock, from the first
        call to the last (quiet seconds included): CreateSession's rate over time."""
        return self.quota_counter.history()

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
        """Forget counters (the quota's too), recorded requests, pending faults and the delay.

        Trust anchors, profiles, roles, issued credentials and the quota in force are kept.
        """
        with self._lock:
            self._calls = 0
            self._successes = 0
            self._requests.clear()
            self._faults.clear()
        self.quota_counter.reset()
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
        # The quota decides on arrival, before the delay and any other check (see the module).
        throttled = is_session and fault is None and not self.quota_counter.admit()
        retry_after = None
        if throttled and self.retry_after:
            retry_after = str(math.ceil(self.quota_counter.wait_time()))
        if self.delay > 0 and self._stopping.wait(self.delay):
            return None
        if not is_session:
            return self._error(404, "UnknownOperationException", f"No operation at {method} {path}")
        if fault is not None:
            error_type, message = _FAULT_TYPES.get(fault, ("ServiceException", f"HTTP {fault}"))
            return self._error(fault, error_type, message)
        if throttled:
            error_type, message = _FAULT_TYPES[429]
            extra = [("Retry-After", retry_after)] if retry_after is not None else []
            return self._error(429, error_type, message, extra)
        if body is None:
            return self._error(413, "ValidationException", "Request body is too large")
        try:
            payload = self._create_session(request)
        except Reject as reject:
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

    def _error(
        self, status: int, error_type: str, message: str, extra: Sequence[tuple[str, str]] = ()
    ) -> _Answer:
        headers = [("X-Amzn-ErrorType", error_type), *extra]
        return self._json(status, {"message": message}, headers)

    def _create_session(self, request: RecordedRequest) -> dict[str, Any]:
        auth = parse_authorization(request, self.region)
        # MAX_CLOCK_SKEW is read here, from this module, so tests can widen it with monkeypatch
        verified = verify_request_signature(request, auth, self._now(), MAX_CLOCK_SKEW)
        params = parse_params(request)
        anchor, profile, role = self._resources(params)
        path = build_path(verified.leaf, verified.chain, anchor.certificates)
        now = self._now()
        for cert in path:
            if now < cert.not_valid_before_utc:
                raise denied("Certificate not yet valid")
            if now > cert.not_valid_after_utc:
                raise denied("Certificate expired")
        if role.arn not in profile.role_arns:
            raise denied(f"Unable to assume role for {role.arn}: the profile does not allow it")
        session_name = params.get("roleSessionName")
        if session_name is not None and not profile.accept_role_session_name:
            raise denied("Not authorized to set roleSessionName.")
        duration = int(params["durationSeconds"])
        if duration > profile.duration_seconds:
            raise invalid(
                f"durationSeconds {duration} exceeds the profile's maximum of "
                f"{profile.duration_seconds} seconds"
            )
        return self._issue(verified.leaf, role, duration, session_name, now)

    def _resources(self, params: Mapping[str, Any]) -> tuple[TrustAnchor, Profile, Role]:
        for key in ("trustAnchorArn", "profileArn"):
            region = arn_region(params[key], key)
            if region != self.region:
                raise invalid(
                    f"{key} {params[key]} is in region {region!r}, but this endpoint serves "
                    f"{self.region!r}"
                )
        with self._lock:
            anchor = self._trust_anchors.get(params["trustAnchorArn"])
            profile = self._profiles.get(params["profileArn"])
            role = self._roles.get(params["roleArn"])
        if anchor is None:
            raise not_found(f"Trust anchor {params['trustAnchorArn']} not found")
        if profile is None:
            raise not_found(f"Profile {params['profileArn']} not found")
        if role is None:
            raise not_found(f"Role {params['roleArn']} not found")
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
