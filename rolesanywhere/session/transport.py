"""Sending a prepared request: httpx (sync and async) and a light stdlib transport.

The clients hand a transport a :class:`~rolesanywhere.session.protocol.HttpRequest` and get back an
:class:`Answer` or a :class:`TransportFailure`; they never see a library-specific exception.
:class:`StdlibTransport` uses the package's own small HTTP/1.1 client
(:mod:`rolesanywhere.session.http11`)
so that the ``credential-process`` command pays neither for importing httpx nor for ``http.client``
(and the ``email`` package it pulls in) on every cold start; everything else uses httpx.

httpx's timeouts bound each read, not the exchange: a server that drips one byte a second would
keep a request going for ever. Every httpx exchange of the package therefore goes through
:func:`exchange` (sync) or :func:`aexchange` (async), which end it by a deadline and read at most
:data:`MAX_RESPONSE_BYTES` of the answer.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from rolesanywhere.errors import ProtocolError, TransportFailure, parameter
from rolesanywhere.session.http11 import MAX_BODY, Response, fetch

if TYPE_CHECKING:
    import asyncio

    import httpx

    from rolesanywhere.session.protocol import HttpRequest

__all__ = [
    "MAX_RESPONSE_BYTES",
    "USER_AGENT",
    "Answer",
    "AsyncHttpxTransport",
    "AsyncTransport",
    "HttpxTransport",
    "StdlibTransport",
    "SyncTransport",
    "aexchange",
    "exchange",
    "resolve_verify",
]

USER_AGENT = "rolesanywhere-python/0.1"

#: The most of a response body the httpx exchanges read into memory (a CreateSession answer is
#: about 2 KiB, an OSIS answer less); the rest is left unread and the connection closed.
MAX_RESPONSE_BYTES = 1 << 20


#: What came back: status, headers (in order, may repeat) and the whole body. Every transport
#: answers with it; it is the record the stdlib transport's HTTP/1.1 parser builds.
Answer = Response


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
            from rolesanywhere.errors import NetworkError

            raise NetworkError(
                f"cannot use CA bundle {verify}: {_detail(exc)}: check the path (or AWS_CA_BUNDLE)"
            ) from None
    return verify


def _detail(exc: BaseException) -> str:
    from rolesanywhere.errors import safe_text

    text = safe_text(exc)
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
            hint=f"check that proxy, or run without it (turn {parameter('proxy_from_env')} off)",
        )
    if _is_tls_failure(exc):
        return TransportFailure(_detail(exc), timed_out=timed_out, hint=TLS_HINT)
    return TransportFailure(_detail(exc), timed_out=timed_out)


def _unusable(detail: str) -> TransportFailure:
    """The endpoint answered, but not with a usable HTTP response (too large, garbled, cut)."""
    return TransportFailure(
        detail,
        timed_out=False,
        reached=True,
        hint=f"check that {parameter('endpoint')} (or AWS_ENDPOINT_URL…) names a Roles Anywhere "
        "endpoint",
    )


# --- whole-exchange deadlines on httpx ----------------------------------------------------------


class _Watchdog:
    """One daemon thread that calls ``fire`` callbacks at their deadlines (time.monotonic())."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[list[Any]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: float, fire: Callable[[], None]) -> list[Any]:
        entry: list[Any] = [deadline, next(self._order), fire]
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None or not self._thread.is_alive():  # none yet, or forked
                self._thread = threading.Thread(
                    target=self._run, name="rolesanywhere-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return entry

    def cancel(self, entry: list[Any]) -> None:
        with self._cond:
            entry[2] = None  # dropped when it reaches the top

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2] is None:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        entry = heapq.heappop(self._heap)
                        fire, entry[2] = entry[2], None
                        break
                    self._cond.wait(wait)
            with contextlib.suppress(Exception):  # the watchdog outlives any one callback
                fire()


_WATCHDOG = _Watchdog()


class _Watch:
    """One sync exchange: the socket it uses (learnt from httpcore's ``trace`` extension when a
    connection is opened, or from the ``network_stream`` of the answer) is shut down at the
    deadline, which wakes a read blocked on it whatever httpx's per-read timeout says."""

    __slots__ = ("_lock", "_sock", "done", "fired")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.fired = False
        self.done = False

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event.endswith((".connect_tcp.complete", ".start_tls.complete")):
            self.watch(info.get("return_value"))

    def watch(self, stream: Any) -> None:
        get = getattr(stream, "get_extra_info", None)
        sock = get("socket") if callable(get) else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sock = sock
            if self.fired and not self.done:
                self._shut(sock)

    def fire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.fired = True
            if self._sock is not None:
                self._shut(self._sock)

    def finish(self) -> None:
        with self._lock:
            self.done = True

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        # the plain socket method: an SSLSocket's own would drop its SSL object under the
        # reading thread
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _cap_timeouts(request: httpx.Request, remaining: float, keys: Iterable[str]) -> None:
    """Lower httpx's per-operation timeouts of ``request`` to ``remaining`` (in place: httpcore
    reads the same dict when it starts reading the body)."""
    timeouts = request.extensions.get("timeout")
    if not isinstance(timeouts, dict):
        request.extensions["timeout"] = timeouts = {}
    for key in keys:
        current = timeouts.get(key)
        timeouts[key] = remaining if current is None else min(current, remaining)


_ALL_TIMEOUTS = ("connect", "read", "write", "pool")


def _late(request: httpx.Request, budget: float) -> httpx.TimeoutException:
    import httpx

    return httpx.ReadTimeout(f"no complete answer within {budget:.3g} s", request=request)


class _Body:
    """A response body read chunk by chunk, kept to at most ``max_body`` bytes."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.chunks: list[bytes] = []
        self.size = 0
        self.whole = True

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; False (and the body cut at ``max_body``) when it does not fit."""
        if self.size + len(chunk) > self.max_body:
            self.chunks.append(chunk[: self.max_body - self.size])
            self.whole = False
            return False
        self.chunks.append(chunk)
        self.size += len(chunk)
        return True


def exchange(
    client: httpx.Client,
    request: httpx.Request,
    *,
    deadline: float,
    max_body: int = MAX_RESPONSE_BYTES,
) -> tuple[httpx.Response, bytes, bool]:
    """Send ``request`` and read the answer, all by ``deadline`` (a ``time.monotonic()`` value).

    Returns the (closed) response, its decoded body (at most ``max_body`` bytes) and whether that
    is the whole body. Past the deadline raises ``httpx.ReadTimeout`` (an
    ``httpx.TimeoutException``), however slowly the server sends; other failures raise the
    usual ``httpx.TransportError``. httpx's own timeouts are lowered to the time left; a socket
    still busy at the deadline is shut down by a watchdog thread (one for the process).
    """
    budget = deadline - time.monotonic()
    if budget <= 0:
        raise _late(request, 0)
    _cap_timeouts(request, budget, _ALL_TIMEOUTS)
    watch = _Watch()
    outer = request.extensions.get("trace")

    def trace(event: str, info: Mapping[str, Any]) -> None:
        watch.trace(event, info)
        if outer is not None:
            outer(event, info)

    request.extensions["trace"] = trace
    entry = _WATCHDOG.add(deadline, watch.fire)
    try:
        response = client.send(request, stream=True)
        try:
            watch.watch(response.extensions.get("network_stream"))
            _cap_timeouts(response.request, max(deadline - time.monotonic(), 0.001), ("read",))
            body = _Body(max_body)
            for chunk in response.iter_bytes():
                if time.monotonic() >= deadline:
                    raise _late(request, budget)
                if not body.add(chunk):
                    break
        finally:
            response.close()
    except Exception as exc:
        import httpx

        # the watchdog's shutdown shows as the server hanging up: say what really happened
        cut = watch.fired or time.monotonic() >= deadline
        failed = isinstance(exc, httpx.TransportError)
        if cut and failed and not isinstance(exc, httpx.TimeoutException):
            raise _late(request, budget) from None
        raise
    finally:
        watch.finish()
        _WATCHDOG.cancel(entry)
    return response, b"".join(body.chunks), body.whole


async def aexchange(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    deadline: float,
    max_body: int = MAX_RESPONSE_BYTES,
) -> tuple[httpx.Response, bytes, bool]:
    """The awaitable twin of :func:`exchange`: the whole exchange runs under
    ``asyncio.timeout``, so the deadline holds however slowly the server sends."""
    import asyncio

    budget = deadline - time.monotonic()
    if budget <= 0:
        raise _late(request, 0)
    _cap_timeouts(request, budget, _ALL_TIMEOUTS)
    body = _Body(max_body)
    try:
        async with asyncio.timeout(budget):
            response = await client.send(request, stream=True)
            try:
                async for chunk in response.aiter_bytes():
                    if not body.add(chunk):
                        break
            finally:
                await response.aclose()
    except TimeoutError:
        raise _late(request, budget) from None
    return response, b"".join(body.chunks), body.whole


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
    def _answer(outcome: tuple[httpx.Response, bytes, bool]) -> Answer:
        response, body, whole = outcome
        if not whole:
            raise _unusable(f"the answer is larger than {MAX_RESPONSE_BYTES >> 20} MiB")
        return Answer(response.status_code, tuple(response.headers.multi_items()), body)


class HttpxTransport(_HttpxBase["httpx.Client"]):
    """Synchronous transport over a (lazily created) ``httpx.Client``.

    ``timeout`` bounds the whole exchange (see :func:`exchange`), ``connect_timeout`` connecting.
    """

    def send(self, request: HttpRequest, *, timeout: float, connect_timeout: float) -> Answer:
        import httpx

        if self._client is None:
            self._client = httpx.Client(**self._options())
        deadline = time.monotonic() + timeout
        built = self._build(self._client, request, timeout, connect_timeout)
        try:
            outcome = exchange(self._client, built, deadline=deadline)
        except httpx.TransportError as exc:
            raise _httpx_failure(exc, request.url, self._trust_env) from None
        return self._answer(outcome)

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
        deadline = time.monotonic() + timeout
        built = self._build(client, request, timeout, connect_timeout)
        try:
            outcome = await aexchange(client, built, deadline=deadline)
        except httpx.TransportError as exc:
            raise _httpx_failure(exc, request.url, self._trust_env) from None
        return self._answer(outcome)

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
    """One request per connection over :mod:`rolesanywhere.session.http11`: no proxy support,
    cheap to
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
            raise _unusable(
                f"the answer is larger than {MAX_BODY >> 20} MiB" if too_large else _detail(exc)
            ) from None

    def close(self) -> None:
        return None
