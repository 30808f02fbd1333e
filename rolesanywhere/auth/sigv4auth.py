"""``SigV4Auth``: an ``httpx.Auth`` that signs every request with auto-refreshing credentials.

One sans-I/O flow (:meth:`SigV4Auth._flow`) decides what happens; the sync and async drivers only
fetch credentials (``get`` / ``aget``) and read error bodies. It serves ``httpx.Client`` and
``httpx.AsyncClient`` alike::

    auth = rolesanywhere.SigV4Auth.from_roles_anywhere(
        certificate="client.pem", private_key="client.key",
        trust_anchor_arn=..., profile_arn=..., role_arn=..., service="osis",
    )
    httpx.post("https://pipe-abc.us-east-1.osis.amazonaws.com/log/ingest", json=[...], auth=auth)

Bodies: bytes are hashed. A streamed body is hashed incrementally when it can be replayed (a
seekable file: it is read once for the hash, rewound, and sent); otherwise it is signed as
``UNSIGNED-PAYLOAD`` when ``unsigned_payload=True`` allowed it, and refused with
:class:`UnsignableBodyError` when not.

A 401 or 403 saying that the credentials are expired or invalid (``ExpiredTokenException``,
``UnrecognizedClientException``, ``InvalidSignatureException``, "The security token included in
the request is expired", a stale signature...) invalidates them, re-signs with fresh ones and
retries once. Any other 401/403 (``AccessDeniedException``: a permission, not the credentials)
is returned as it is. Refreshes forced that way happen at most once per
``forced_refresh_interval`` seconds (60): answers that keep refusing fresh credentials cost one
CreateSession a minute, not one per request. :meth:`SigV4Auth.refresh_if_stale` is that one
decision; the log shipper asks it too.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import httpx

from rolesanywhere.credentials import Credentials
from rolesanywhere.errors import InvalidParameterError, UnsignableBodyError
from rolesanywhere.session.endpoints import partition_for_region
from rolesanywhere.session.refresh import RefreshingCredentials
from rolesanywhere.sigv4.signer import UNSIGNED_PAYLOAD, sign

if TYPE_CHECKING:
    from rolesanywhere.session.client import AsyncRolesAnywhereClient, RolesAnywhereClient
    from rolesanywhere.session.refresh import CredentialSource

__all__ = ["SigV4Auth", "region_from_host"]

#: Seconds: at most one refresh forced by stale-credentials answers per this many.
DEFAULT_FORCED_REFRESH_INTERVAL = 60.0

_CHUNK = 1 << 16
#: What a 401/403 says when the credentials, not the request, are the problem: expired, or
#: unknown to the service ("The security token included in the request is invalid").
_STALE = re.compile(
    rb"expiredtoken|token[^.\n]{0,40}(?:expired|invalid)|expired[^.\n]{0,40}token"
    rb"|signature expired|request has expired"
    rb"|signature[^.\n]{0,20}(?:not yet current|is now earlier)"
    rb"|unrecognizedclient|invalidclienttokenid",
    re.IGNORECASE,
)
#: ``X-Amzn-ErrorType`` values saying the same (lower case).
_STALE_TYPES = (
    "expiredtoken",
    "expiredtokenexception",
    "invalidsignatureexception",
    "unrecognizedclientexception",
    "invalidclienttokenid",
)


@functools.lru_cache(maxsize=256)
def region_from_host(host: str) -> str | None:
    """The AWS region named in a standard host name, or ``None``.

    ``pipe-abc.us-east-1.osis.amazonaws.com`` → ``us-east-1``; likewise
    ``sqs.eu-west-1.amazonaws.com``, ``s3.dualstack.ap-south-1.amazonaws.com`` or
    ``x.aoss.cn-north-1.amazonaws.com.cn``: the last label that is a known region format.
    """
    for label in reversed(host.lower().rstrip(".").split(".")):
        try:
            partition_for_region(label)
        except InvalidParameterError:
            continue
        return label
    return None


def _seekable_file(request: httpx.Request) -> BinaryIO | None:
    """The file behind a streamed body, when it can be rewound (httpx wraps it unchanged)."""
    inner = getattr(request.stream, "_stream", None)
    seekable = getattr(inner, "seekable", None)
    if inner is not None and callable(seekable) and seekable() and hasattr(inner, "read"):
        return cast("BinaryIO", inner)
    return None


def _hash_file(file: BinaryIO) -> str:
    """SHA-256 of the rest of ``file``, read in chunks; the position is restored."""
    start = file.tell()
    digest = hashlib.sha256()
    while chunk := file.read(_CHUNK):
        digest.update(chunk)
    file.seek(start)
    return digest.hexdigest()


def _akid(request: httpx.Request) -> str | None:
    """The access key id that signed ``request`` (``None``: not SigV4-signed)."""
    header: str = request.headers.get("authorization", "")
    marker = "Credential="
    at = header.find(marker)
    if at < 0:
        return None
    return header[at + len(marker) :].split("/", 1)[0]


def _says_stale(response: httpx.Response) -> bool:
    if response.status_code not in (401, 403):
        return False
    error_type = response.headers.get("x-amzn-errortype", "").split(":", 1)[0].lower()
    if error_type in _STALE_TYPES:
        return True
    return bool(_STALE.search(response.content[:4096]))


class _NeedCredentials:
    """Yielded by the flow when it wants credentials (the drivers fetch them)."""

    __slots__ = ()


_NEED_CREDENTIALS = _NeedCredentials()


def _header_pairs(request: httpx.Request) -> list[tuple[str, str]]:
    """The request's headers as ``str`` pairs, decoded once (cheaper than ``multi_items()``)."""
    pairs = []
    for name, value in request.headers.raw:
        try:
            text = value.decode()
        except UnicodeDecodeError:
            text = value.decode("latin-1")
        pairs.append((name.decode("latin-1"), text))
    return pairs


class SigV4Auth(httpx.Auth):
    """Sign httpx requests with SigV4 (``AWS4-HMAC-SHA256``).

    ``credentials``: static :class:`Credentials`, a :class:`RefreshingCredentials`, a
    :class:`RolesAnywhereClient` / :class:`AsyncRolesAnywhereClient`, or any sync or async
    callable returning :class:`Credentials` (wrapped in a :class:`RefreshingCredentials`).
    ``region``: inferred from standard AWS and OSIS host names when omitted.
    ``forced_refresh_interval``: at most one refresh forced by stale-credentials answers per
    this many seconds, by ``clock`` (see :meth:`refresh_if_stale`).
    """

    def __init__(
        self,
        credentials: Credentials
        | RefreshingCredentials
        | RolesAnywhereClient
        | AsyncRolesAnywhereClient
        | CredentialSource,
        *,
        service: str,
        region: str | None = None,
        unsigned_payload: bool = False,
        content_sha256: bool | None = None,
        also_sign: Iterable[str] = (),
        retry_on_stale: bool = True,
        forced_refresh_interval: float = DEFAULT_FORCED_REFRESH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(credentials, RefreshingCredentials):
            self.credentials = credentials
        else:
            self.credentials = RefreshingCredentials(credentials)
        if not service:
            raise InvalidParameterError("SigV4Auth needs a service name, e.g. service='osis'")
        if not forced_refresh_interval >= 0:
            raise InvalidParameterError(
                f"forced_refresh_interval must be 0 or more seconds, not {forced_refresh_interval}"
            )
        self.service = service
        self.region = region
        self.unsigned_payload = unsigned_payload
        self.content_sha256 = content_sha256
        self.also_sign = tuple(also_sign)
        self.retry_on_stale = retry_on_stale
        #: How many requests were re-signed and retried after a stale-credentials answer.
        self.retries = 0
        self.forced_refresh_interval = forced_refresh_interval
        self._clock = clock
        self._forced_lock = threading.Lock()
        self._last_forced: float | None = None
        #: How many refreshes stale-credentials answers forced.
        self.forced_refreshes = 0

    @classmethod
    def from_roles_anywhere(
        cls,
        *,
        service: str,
        region: str | None = None,
        rolesanywhere_region: str | None = None,
        certificate: Any,
        private_key: Any = None,
        intermediates: Any = None,
        password: str | bytes | None = None,
        **settings: Any,
    ) -> SigV4Auth:
        """Everything from a certificate and the three ARNs, in one call.

        The identity files are watched (rotation needs no restart); credentials refresh ahead of
        expiry. ``region`` is the signing region of the target service (inferred from the host
        when omitted); ``rolesanywhere_region`` is Roles Anywhere's own (default: the trust
        anchor's). The other keyword arguments go to :class:`RolesAnywhereClient`
        (``trust_anchor_arn``, ``profile_arn``, ``role_arn``, ``duration_seconds``, ``timeout``,
        ``connect_timeout``…), or to :class:`SigV4Auth` when they are its own
        (``unsigned_payload``…).
        """
        import inspect

        from rolesanywhere.retry import LONG_RUNNING
        from rolesanywhere.session.client import RolesAnywhereClient
        from rolesanywhere.x509.loader import IdentityLoader

        own = inspect.signature(cls.__init__).parameters
        options = {name: settings.pop(name) for name in list(settings) if name in own}
        settings.setdefault("retry", LONG_RUNNING)  # throttles: the refresher backs off
        client = RolesAnywhereClient(
            IdentityLoader(certificate, private_key, intermediates, password),
            region=rolesanywhere_region,
            **settings,
        )
        return cls(client, service=service, region=region, **options)

    def __repr__(self) -> str:
        return f"SigV4Auth(service={self.service!r}, region={self.region!r})"

    def check_endpoint(self, url: str) -> None:
        """Raise :class:`InvalidParameterError` now, not at the first request, when no signing
        region is known for ``url``: none given and none named by its host."""
        if self.region is None:
            host = httpx.URL(url).host
            if region_from_host(host) is None:
                raise InvalidParameterError(
                    f"cannot tell the signing region from host {host!r}: create the SigV4Auth "
                    "with region='us-east-1' (or the pipeline's region)"
                )

    def refresh_if_stale(self, response: httpx.Response) -> bool:
        """Whether ``response`` (read) says the credentials that signed it are expired or
        invalid *and* other credentials may be used now; if so, a refresh may be forced.

        ``True``: send the request again, signed anew: either credentials newer than the ones
        that signed it are already held, or they were invalidated here (the next ``get`` asks
        the source), which happens at most once per ``forced_refresh_interval`` seconds.
        ``False``: the answer is not about the credentials (``AccessDeniedException``, a plain
        403...), they cannot be refreshed (static), or the floor holds (a refresh was forced
        less than ``forced_refresh_interval`` seconds ago). The one decision for this auth's
        own retry and for the log shipper's.
        """
        if not _says_stale(response):
            return False
        used = _akid(response.request)
        with self._forced_lock:
            current = self.credentials.credentials
            if current is None:
                return False
            if used is not None and used != current.access_key_id:
                return True  # replaced since that request was signed: no refresh needed
            now = self._clock()
            last = self._last_forced
            if last is not None and now - last < self.forced_refresh_interval:
                return False
            if not self.credentials.invalidate(current):
                return False
            self._last_forced = now
            self.forced_refreshes += 1
            return True

    # --- the sans-I/O flow ---------------------------------------------------------------------

    def _payload(self, request: httpx.Request) -> tuple[str | None, BinaryIO | None, int]:
        """``(hash to sign or None to hash the content, file to rewind, its start)``."""
        if isinstance(request.stream, httpx.ByteStream) or hasattr(request, "_content"):
            return None, None, 0
        file = _seekable_file(request)
        if file is not None:
            return _hash_file(file), file, file.tell()
        if self.unsigned_payload:
            return UNSIGNED_PAYLOAD, None, 0
        raise UnsignableBodyError(
            "cannot sign a one-shot streamed body: pass bytes or a seekable file, or allow "
            "SigV4Auth(..., unsigned_payload=True) if the service accepts UNSIGNED-PAYLOAD"
        )

    def _sign(self, request: httpx.Request, credentials: Credentials, payload: str | None) -> None:
        region = self.region or region_from_host(request.url.host)
        if region is None:
            raise InvalidParameterError(
                f"cannot tell the AWS region from host {request.url.host!r}: "
                "pass SigV4Auth(..., region='us-east-1')"
            )
        signed = sign(
            request.method,
            str(request.url),
            _header_pairs(request),
            b"" if payload is not None else request.content,
            credentials=credentials,
            service=self.service,
            region=region,
            payload_hash=payload,
            # the server cannot know a streamed body's hash, nor UNSIGNED-PAYLOAD, unless told
            content_sha256=True if payload is not None else self.content_sha256,
            also_sign=self.also_sign,
        )
        for name, value in signed.headers:
            request.headers[name] = value

    def _flow(
        self, request: httpx.Request
    ) -> Generator[_NeedCredentials | httpx.Request, Credentials | httpx.Response, None]:
        payload, file, start = self._payload(request)
        credentials = yield _NEED_CREDENTIALS
        assert isinstance(credentials, Credentials)
        self._sign(request, credentials, payload)
        response = yield request
        assert isinstance(response, httpx.Response)
        if not self.retry_on_stale or payload == UNSIGNED_PAYLOAD:
            return  # (a one-shot stream was consumed by the first attempt)
        if not self.refresh_if_stale(response):
            return
        if file is not None:
            file.seek(start)
        self.retries += 1
        credentials = yield _NEED_CREDENTIALS
        assert isinstance(credentials, Credentials)
        self._sign(request, credentials, payload)
        yield request

    # --- drivers --------------------------------------------------------------------------------

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        flow = self._flow(request)
        step = next(flow)
        while True:
            sent: Credentials | httpx.Response
            if isinstance(step, _NeedCredentials):
                sent = self.credentials.get()
            else:
                sent = yield step
                if sent.status_code in (401, 403):
                    sent.read()
            try:
                step = flow.send(sent)
            except StopIteration:
                return

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self._flow(request)
        step = next(flow)
        while True:
            sent: Credentials | httpx.Response
            if isinstance(step, _NeedCredentials):
                sent = await self.credentials.aget()
            else:
                sent = yield step
                if sent.status_code in (401, 403):
                    await sent.aread()
            try:
                step = flow.send(sent)
            except StopIteration:
                return
