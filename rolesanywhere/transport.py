"""Sending a prepared request: httpx (sync and async) and a light stdlib transport.

The clients hand a transport a :class:`~rolesanywhere.session.HttpRequest` and get back an
:class:`Answer` or a :class:`TransportFailure`; they never see a library-specific exception.
:class:`StdlibTransport` uses the package's own small HTTP/1.1 client (:mod:`rolesanywhere.http11`)
so that the ``credential-process`` command pays neither for importing httpx nor for ``http.client``
(and the ``email`` package it pulls in) on every cold start; everything else uses httpx.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from .errors import RolesAnywhereError
from .http11 import MAX_BODY, ProtocolError, Response, fetch

if TYPE_CHECKING:
    import asyncio

    import httpx

    from .session import HttpRequest

__all__ = [
    "USER_AGENT",
    "Answer",
    "AsyncHttpxTransport",
    "AsyncTransport",
    "HttpxTransport",
    "StdlibTransport",
    "SyncTransport",
    "TransportFailure",
    "resolve_verify",
]

USER_AGENT = "rolesanywhere-python/0.1"


#: What came back: status, headers (in order, may repeat) and the whole body. Every transport
#: answers with it; it is the record the stdlib transport's HTTP/1.1 parser builds.
Answer = Response


class TransportFailure(RolesAnywhereError):
    """No usable answer: ``timed_out`` tells a timeout from any other failure.

    ``reached`` is true when the endpoint answered but its answer was unusable (too large, not
    HTTP); ``hint`` says what to check, when the failure tells (TLS, proxy, size).
    """

    def __init__(
        self, detail: str, *, timed_out: bool, reached: bool = False, hint: str | None = None
    ) -> None:
        super().__init__(detail)
        self.timed_out = timed_out
        self.reached = reached
        self.hint = hint


#: What to check when the TLS handshake fails.
TLS_HINT = (
    "check that the endpoint speaks https, and if its certificate comes from a private CA, "
    "point AWS_CA_BUNDLE at that CA's PEM bundle"
)


class SyncTransport(Protocol):
    def send(self, request: HttpRequest, *, timeout: float, connect_timeout: float) -> Answer:
        """Send ``request``; raise :class:`TransportFailure` when no answer arrives."""
        ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    async def send(self, request: HttpRequest, *, timeout: float, connect_timeout: float) -> Answer:
        """Send ``request``; raise :class:`TransportFailure` when no answer arrives."""
        ...

    async def aclose(self) -> None: ...


def resolve_verify(
    verify: bool | str | ssl.SSLContext, environ: Mapping[str, str] | None = None
) -> bool | ssl.SSLContext:
    """TLS verification setting: ``AWS_CA_BUNDLE`` applies when verification is on.

    A path (given or from the environment) becomes an ``SSLContext`` trusting that bundle.
    """
    if verify is True:
        verify = (os.environ if environ is None else environ).get("AWS_CA_BUNDLE") or True
    if isinstance(verify, str):
        try:
            return ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError) as exc:
            from .errors import NetworkError

            raise NetworkError(
                f"cannot use CA bundle {verify}: {_detail(exc)}: check the path (or AWS_CA_BUNDLE)"
            ) from None
    return verify


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):  # the exception and what it wraps (httpx wraps httpcore wraps ssl)
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _proxy_for(url: str) -> str | None:
    """The proxy httpx takes from the environment for ``url``: ``URL (from VARIABLE)``, with any
    user name and password in it hidden; ``None`` when no proxy applies."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    bypass = getattr(urllib.request, "proxy_bypass_environment", None)  # not in typeshed
    if not proxy or (bypass is not None and bypass(parts.hostname or "", proxies)):
        return None
    scheme = parts.scheme if proxies.get(parts.scheme) else "all"
    names = (f"{scheme.upper()}_PROXY", f"{scheme}_proxy")
    variable = next((n for n in names if os.environ.get(n)), names[0])
    shown = urlsplit(proxy)
    if "@" in shown.netloc:  # never show a proxy password
        proxy = shown._replace(netloc="***@" + shown.netloc.rpartition("@")[2]).geturl()
    return f"{proxy} (from {variable})"


def _httpx_failure(exc: Exception, url: str, trust_env: bool) -> TransportFailure:
    import httpx

    timed_out = isinstance(exc, httpx.TimeoutException)
    proxy = _proxy_for(url) if trust_env else None
    if proxy is not None and isinstance(exc, httpx.ProxyError | httpx.ConnectError):
        return TransportFailure(
            f"through proxy {proxy}: {_detail(exc)}",
            timed_out=timed_out,
            hint="check that proxy, or run without it (drop --with-proxy; "
            "proxy_from_env=False in Python)",
        )
    if _is_tls_failure(exc):
        return TransportFailure(_detail(exc), timed_out=timed_out, hint=TLS_HINT)
    return TransportFailure(_detail(exc), timed_out=timed_out)


_C = TypeVar("_C", "httpx.Client", "httpx.AsyncClient")


class _HttpxBase(Generic[_C]):
    """What the sync and async httpx transports share: options, request building, answers."""

    def __init__(
        self,
        *,
        verify: bool | ssl.SSLContext = True,
        trust_env: bool = True,
        client: _C | None = None,
    ) -> None:
        self._verify = verify
        self._trust_env = trust_env
        self._client: _C | None = client

    def _options(self) -> dict[str, Any]:
        return {
            "verify": self._verify,
            "trust_env": self._trust_env,
            "headers": {"User-Agent": USER_AGENT},
            "follow_redirects": False,
        }

    @staticmethod
    def _build(
        client: httpx.Client | httpx.AsyncClient,
        request: HttpRequest,
        timeout: float,
        connect_timeout: float,
    ) -> httpx.Request:
        import httpx

        return client.build_request(
            request.method,
            request.url,
            headers=list(request.headers),
            content=request.body,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
        )

    @staticmethod
    def _answer(response: httpx.Response) -> Answer:
        return Answer(response.status_code, tuple(response.headers.multi_items()), response.content)


class HttpxTransport(_HttpxBase["httpx.Client"]):
    """Synchronous transport over a (lazily created) ``httpx.Client``."""

    def send(self, request: HttpRequest, *, timeout: float, connect_timeout: float) -> Answer:
        import httpx

        if self._client is None:
            self._client = httpx.Client(**self._options())
        try:
            response = self._client.send(
                self._build(self._client, request, timeout, connect_timeout)
            )
        except httpx.TransportError as exc:
            raise _httpx_failure(exc, request.url, self._trust_env) from None
        return self._answer(response)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class AsyncHttpxTransport(_HttpxBase["httpx.AsyncClient"]):
    """Asynchronous transport over lazily created ``httpx.AsyncClient`` objects, one per event
    loop: an httpx connection pool only works on the loop that made it, and callers may use
    one transport from several loops (``asyncio.run`` twice, or loops in several threads).

    A client given to the constructor is used as is, on whatever loop calls.
    """

    def __init__(
        self,
        *,
        verify: bool | ssl.SSLContext = True,
        trust_env: bool = True,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        import weakref

        super().__init__(verify=verify, trust_env=trust_env, client=client)
        # Weak keys: an entry may also go with its loop once nothing else holds either.
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def _current(self) -> httpx.AsyncClient:
        import asyncio

        import httpx

        if self._client is not None:
            return self._client
        loop = asyncio.get_running_loop()
        # A closed loop's pool cannot be closed any more; dropping it lets the collector close
        # its sockets (the pool refers to its loop, so the weak key alone would never go).
        for old in [other for other in self._per_loop if other.is_closed()]:
            del self._per_loop[old]
        client = self._per_loop.get(loop)
        if client is None:
            client = self._per_loop[loop] = httpx.AsyncClient(**self._options())
        return client

    async def send(self, request: HttpRequest, *, timeout: float, connect_timeout: float) -> Answer:
        import httpx

        client = self._current()
        built = self._build(client, request, timeout, connect_timeout)
        try:
            response = await client.send(built)
        except httpx.TransportError as exc:
            raise _httpx_failure(exc, request.url, self._trust_env) from None
        return self._answer(response)

    async def aclose(self) -> None:
        """Close the client given, or the current loop's pool (other loops' pools stay: they
        may be in use; those of closed loops are dropped)."""
        import asyncio

        if self._client is not None:
            await self._client.aclose()
            self._client = None
            return
        mine = self._per_loop.pop(asyncio.get_running_loop(), None)
        for old in [other for other in self._per_loop if other.is_closed()]:
            del self._per_loop[old]
        if mine is not None:
            await mine.aclose()


class StdlibTransport:
    """One request per connection over :mod:`rolesanywhere.http11`: no proxy support, cheap to
    import.

    Meant for short-lived processes (the ``credential-process`` command) that send one request.
    ``connect_timeout`` bounds connecting and the TLS handshake, ``timeout`` the rest of the
    exchange (sending the request and reading the whole answer).
    """

    def __init__(self, *, verify: bool | ssl.SSLContext = True) -> None:
        if verify is True:
            verify = ssl.create_default_context()
        elif verify is False:
            verify = ssl._create_unverified_context()  # noqa: S323 - the user opted out
        self._context = verify

    def send(self, request: HttpRequest, *, timeout: float, connect_timeout: float) -> Answer:
        try:
            return fetch(
                request.method,
                request.url,
                request.headers,
                request.body,
                context=self._context,
                connect_timeout=connect_timeout,
                timeout=timeout,
                user_agent=USER_AGENT,
            )
        except TimeoutError as exc:
            raise TransportFailure(_detail(exc), timed_out=True) from None
        except ssl.SSLError as exc:
            raise TransportFailure(_detail(exc), timed_out=False, hint=TLS_HINT) from None
        except OSError as exc:
            raise TransportFailure(_detail(exc), timed_out=False) from None
        except ProtocolError as exc:
            # It answered, but not with a usable HTTP response (too large, garbled, cut short).
            too_large = "larger than" in str(exc)
            raise TransportFailure(
                f"the answer is larger than {MAX_BODY >> 20} MiB" if too_large else _detail(exc),
                timed_out=False,
                reached=True,
                hint="check that --endpoint (or AWS_ENDPOINT_URL…) names a Roles Anywhere endpoint",
            ) from None

    def close(self) -> None:
        return None
