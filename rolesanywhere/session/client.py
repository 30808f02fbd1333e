"""Sync and async CreateSession clients: thin I/O shells around one sans-I/O flow.

:func:`_session_flow` is a generator that yields what to do next (send this request with this
timeout, or sleep this long) and receives what happened; :class:`RolesAnywhereClient` drives it
with ``httpx.Client`` and ``time.sleep``, :class:`AsyncRolesAnywhereClient` with
``httpx.AsyncClient`` and ``asyncio.sleep``. Retries, deadlines, re-signing and error mapping are
therefore written once.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Generic, Protocol, Self, TypeVar

from rolesanywhere.credentials import Credentials
from rolesanywhere.errors import (
    InvalidArgumentTypeError,
    InvalidParameterError,
    NetworkError,
    RequestTimeoutError,
    RolesAnywhereError,
    ThrottlingError,
    TransportFailure,
    parameter,
)
from rolesanywhere.retry import RetryPolicy, parse_retry_after
from rolesanywhere.session.endpoints import Endpoint, resolve_endpoint
from rolesanywhere.session.protocol import (
    SessionParams,
    SignedRequest,
    build_create_session_request,
    header_value,
    is_retryable_status,
    parse_create_session_response,
    service_error,
)
from rolesanywhere.session.transport import (
    Answer,
    AsyncHttpxTransport,
    AsyncTransport,
    HttpxTransport,
    SyncTransport,
    resolve_verify,
)
from rolesanywhere.values import Value
from rolesanywhere.x509.identity import Identity

if TYPE_CHECKING:  # the cold credential-process path does not import the limiter
    from rolesanywhere.ratelimit import AdaptiveRateLimiter

__all__ = [
    "AsyncRolesAnywhereClient",
    "ClientConfig",
    "IdentitySource",
    "RolesAnywhereClient",
]


class IdentitySource(Protocol):
    """Anything that hands out the current identity (e.g. an :class:`IdentityLoader`)."""

    def get(self) -> Identity: ...


class _Send(Value):
    __slots__ = ("request", "timeout", "connect_timeout")

    request: SignedRequest
    timeout: float
    connect_timeout: float

    def __init__(self, request: SignedRequest, timeout: float, connect_timeout: float) -> None:
        super().__init__(request, timeout, connect_timeout)


class _Sleep(Value):
    __slots__ = ("seconds",)

    seconds: float

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)


_Outcome = Answer | TransportFailure
_Flow = Generator[_Send | _Sleep, _Outcome | None, Credentials]


class ClientConfig(Value):
    """Everything a client needs, resolved and validated before any network call."""

    __slots__ = (
        "identity",
        "params",
        "endpoint",
        "timeout",
        "connect_timeout",
        "retry",
        "verify",
        "proxy_from_env",
        "debug",
        "clock",
        "rate_limiter",
    )

    identity: Identity | IdentitySource
    params: SessionParams
    endpoint: Endpoint
    timeout: float
    connect_timeout: float
    retry: RetryPolicy
    verify: bool | str | ssl.SSLContext
    proxy_from_env: bool
    debug: Callable[[str], None] | None
    clock: Callable[[], float]
    rate_limiter: AdaptiveRateLimiter | None

    def __init__(
        self,
        identity: Identity | IdentitySource,
        params: SessionParams,
        endpoint: Endpoint,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
        proxy_from_env: bool = True,
        debug: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rate_limiter: AdaptiveRateLimiter | None = None,
    ) -> None:
        super().__init__(
            identity, params, endpoint, timeout, connect_timeout, retry or RetryPolicy(),
            verify, proxy_from_env, debug, clock, rate_limiter,
        )  # fmt: skip

    def current_identity(self) -> Identity:
        source = self.identity
        return source if isinstance(source, Identity) else source.get()

    def ssl_verify(self) -> bool | ssl.SSLContext:
        """``verify`` as the transports take it (``AWS_CA_BUNDLE`` applied)."""
        return resolve_verify(self.verify)


def _describe(request: SignedRequest) -> str:
    lines = [
        "---- canonical request ----",
        request.canonical_request,
        "---- string to sign ----",
        request.string_to_sign,
        "---- request headers ----",
        *(f"{name}: {value}" for name, value in request.headers),
        f"---- {request.method} {request.url} ----",
    ]
    return "\n".join(lines)


#: Share of ``timeout`` one attempt may take when retries are allowed: a first attempt that
#: stalls gives up halfway, leaving the other half for a second one.
ATTEMPT_SHARE = 0.5


def attempt_timeout(timeout: float, max_attempts: int) -> float:
    """The longest one CreateSession attempt may take (each gets at most the time left, too)."""
    return timeout if max_attempts <= 1 else timeout * ATTEMPT_SHARE


def _session_flow(config: ClientConfig) -> _Flow:
    """The whole CreateSession exchange, with retries, as a sans-I/O generator."""
    start = config.clock()
    deadline = start + config.timeout
    policy = config.retry
    limiter = config.rate_limiter
    per_attempt = attempt_timeout(config.timeout, policy.max_attempts)
    last_error: RolesAnywhereError | None = None
    out_of_time = False  # stopped for want of time, not of attempts
    throttles = sent = 0
    attempt = 0
    held_back = False  # by the rate limiter, for longer than the time left
    while True:
        attempt += 1
        if limiter is not None:
            wait = limiter.acquire(max_wait=deadline - config.clock())
            if wait is None:  # nothing reserved: later calls are not held back by this one
                held_back = True
                break
            if wait > 0:
                yield _Sleep(wait)
        remaining = min(per_attempt, deadline - config.clock())
        if remaining <= 0:
            out_of_time = True
            break
        request = build_create_session_request(
            config.current_identity(), config.params, config.endpoint
        )
        if config.debug is not None:
            config.debug(_describe(request))
        sent += 1
        outcome = yield _Send(request, remaining, min(config.connect_timeout, remaining))
        asked_wait: float | None = None
        throttled = False
        if isinstance(outcome, Answer):
            if config.debug is not None:
                config.debug(f"---- response: HTTP {outcome.status} (attempt {attempt}) ----")
            if 200 <= outcome.status < 300 or not is_retryable_status(outcome.status):
                if limiter is not None:
                    limiter.record(throttled=False)
                return parse_create_session_response(outcome.status, outcome.headers, outcome.body)
            last_error = service_error(outcome.status, outcome.headers, outcome.body)
            throttled = isinstance(last_error, ThrottlingError)
            asked_wait = parse_retry_after(header_value(outcome.headers, "retry-after"))
            if limiter is not None:
                limiter.record(throttled=throttled)
        elif outcome is None:
            raise RuntimeError("the CreateSession flow needs an outcome for each request")
        elif outcome.timed_out:
            last_error = RequestTimeoutError(
                f"{config.endpoint.url} did not answer within {remaining:.3g} s "
                f"(attempt {attempt}): check the endpoint, or raise {_TIMEOUT_FIX}"
            )
        else:
            last_error = NetworkError(_failure_message(config.endpoint.url, outcome))
        if config.debug is not None:
            config.debug(f"---- attempt {attempt} failed: {last_error} ----")
        throttles += throttled
        if attempt >= policy.attempts_for(throttled):
            break
        pause = policy.delay(attempt, throttled=throttled)
        if asked_wait is not None:
            pause = max(pause, asked_wait)
        if config.clock() + pause >= deadline:
            out_of_time = True
            break
        yield _Sleep(pause)
    if isinstance(last_error, ThrottlingError):
        _note_throttles(last_error, throttles, sent, config.clock() - start)
    elif held_back and limiter is not None:
        last_error = RequestTimeoutError(
            f"the client-side rate limiter ({limiter.rate or 0:.3g} calls/s since the service "
            f"throttled) would hold this call past its {config.timeout:g} s: raise "
            f"{_TIMEOUT_FIX}, or make fewer CreateSession calls"
        )
    elif (
        last_error is None
        or (isinstance(last_error, RequestTimeoutError) and out_of_time)
        or (isinstance(last_error, NetworkError) and config.clock() >= deadline)
    ):
        last_error = RequestTimeoutError(
            f"no answer from {config.endpoint.url} within {config.timeout:g} s: "
            f"check the endpoint, or raise {_TIMEOUT_FIX}"
        )
    raise last_error


def _note_throttles(error: ThrottlingError, throttles: int, attempts: int, spent: float) -> None:
    """Say in ``error`` how often this call was throttled, before its hint."""
    tried = f"throttled on {throttles} of {attempts} attempts in {spent:.1f} s"
    error.hint = f"{tried}: {error.hint}" if error.hint else tried


_TIMEOUT_FIX = parameter("timeout")


def _failure_message(url: str, failure: TransportFailure) -> str:
    text = f"{'unusable answer from' if failure.reached else 'cannot reach'} {url}: {failure}"
    return f"{text}: {failure.hint}" if failure.hint else text


_T = TypeVar("_T")


class _ClientBase(Generic[_T]):
    """Construction shared by the sync and async clients (``_T``: the transport type)."""

    def __init__(
        self,
        identity: Identity | IdentitySource,
        *,
        trust_anchor_arn: str,
        profile_arn: str,
        role_arn: str,
        region: str | None = None,
        duration_seconds: int = 3600,
        role_session_name: str | None = None,
        endpoint: str | None = None,
        use_fips: bool | None = None,
        use_dualstack: bool | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        verify: bool | str | ssl.SSLContext = True,
        proxy_from_env: bool = True,
        debug: Callable[[str], None] | None = None,
        transport: _T | None = None,
        rate_limiter: AdaptiveRateLimiter | None = None,
    ) -> None:
        _check_identity(identity)
        _check_seconds("timeout", timeout)
        _check_seconds("connect_timeout", connect_timeout)
        self._transport = transport
        params = SessionParams(
            trust_anchor_arn=trust_anchor_arn,
            profile_arn=profile_arn,
            role_arn=role_arn,
            region=region,
            duration_seconds=duration_seconds,
            role_session_name=role_session_name,
        )
        self.config = ClientConfig(
            identity=identity,
            params=params,
            endpoint=resolve_endpoint(
                params.resolved_region,
                endpoint=endpoint,
                use_fips=use_fips,
                use_dualstack=use_dualstack,
            ),
            timeout=timeout,
            connect_timeout=connect_timeout,
            retry=retry or RetryPolicy(),
            verify=verify,
            proxy_from_env=proxy_from_env,
            debug=debug,
            rate_limiter=rate_limiter,
        )
        self.attempts = 0
        """How many HTTP requests the last :meth:`create_session` call sent."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={self.config.endpoint.url!r})"


def _check_identity(identity: object) -> None:
    if isinstance(identity, Identity) or callable(getattr(identity, "get", None)):
        return
    raise InvalidArgumentTypeError(
        "identity must be an Identity, an IdentityLoader or an object whose get() returns an "
        f"Identity, not {type(identity).__name__}: load one with Identity.load(...) or "
        "IdentityLoader(...)"
    )


def _check_seconds(name: str, value: object) -> None:
    import math

    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentTypeError(
            f"{name} must be a number of seconds, not {type(value).__name__}"
        )
    if not (math.isfinite(value) and value > 0):
        raise InvalidParameterError(
            f"{parameter(name)} must be a positive, finite number of seconds, got {value!r}: "
            f"pass e.g. {parameter(name)}=30"
        )


def _resume(flow: _Flow, outcome: _Outcome | None) -> _Send | _Sleep | Credentials:
    """The flow's next step after ``outcome`` (``None`` to start), or the credentials it
    returns: the part of driving it that neither blocks nor awaits."""
    try:
        return flow.send(outcome)
    except StopIteration as stop:
        credentials: Credentials = stop.value
        return credentials


def _drive_sync(flow: _Flow, transport: SyncTransport, counter: list[int]) -> Credentials:
    step = _resume(flow, None)
    while not isinstance(step, Credentials):
        outcome: _Outcome | None = None
        if isinstance(step, _Sleep):
            time.sleep(step.seconds)
        else:
            counter[0] += 1
            try:
                outcome = transport.send(
                    step.request, timeout=step.timeout, connect_timeout=step.connect_timeout
                )
            except TransportFailure as failure:
                outcome = failure
        step = _resume(flow, outcome)
    return step


class RolesAnywhereClient(_ClientBase[SyncTransport]):
    """Exchange an X.509 identity for temporary credentials, synchronously.

    Retries 429, 5xx, connection errors and timeouts (``retry``, 3 attempts by default) with a
    fresh signature each time, after full-jitter waits (longer ones after a throttle, and at
    least what a ``Retry-After`` header asks); ``timeout`` bounds the whole call, retries and
    waits included, and one attempt may take at most half of it (all of it when
    ``max_attempts`` is 1). A call that stays throttled raises
    :class:`~rolesanywhere.errors.ThrottlingError` saying how often and what to do.
    ``rate_limiter`` (an :class:`~rolesanywhere.ratelimit.AdaptiveRateLimiter`, which clients
    and threads of one process may share) slows the calls down once the service throttles.
    ``transport`` defaults to httpx; pass a
    :class:`~rolesanywhere.session.transport.StdlibTransport`
    for a faster start in one-shot processes.
    """

    def transport(self) -> SyncTransport:
        if self._transport is None:
            self._transport = HttpxTransport(
                verify=self.config.ssl_verify(), trust_env=self.config.proxy_from_env
            )
        return self._transport

    def create_session(self) -> Credentials:
        """Call CreateSession and return the credentials, or raise a typed error."""
        counter = [0]
        try:
            return _drive_sync(_session_flow(self.config), self.transport(), counter)
        finally:
            self.attempts = counter[0]

    __call__ = create_session

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncRolesAnywhereClient(_ClientBase[AsyncTransport]):
    """The awaitable twin of :class:`RolesAnywhereClient`."""

    def transport(self) -> AsyncTransport:
        if self._transport is None:
            self._transport = AsyncHttpxTransport(
                verify=self.config.ssl_verify(), trust_env=self.config.proxy_from_env
            )
        return self._transport

    async def create_session(self) -> Credentials:
        """Call CreateSession and return the credentials, or raise a typed error."""
        flow = _session_flow(self.config)
        self.attempts = 0
        step = _resume(flow, None)
        while not isinstance(step, Credentials):
            outcome: _Outcome | None = None
            if isinstance(step, _Sleep):
                import asyncio

                await asyncio.sleep(step.seconds)
            else:
                self.attempts += 1
                try:
                    outcome = await self.transport().send(
                        step.request, timeout=step.timeout, connect_timeout=step.connect_timeout
                    )
                except TransportFailure as failure:
                    outcome = failure
            step = _resume(flow, outcome)
        return step

    __call__ = create_session

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
