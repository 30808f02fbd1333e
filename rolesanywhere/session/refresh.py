"""Credentials that refresh themselves: one refresh at a time, for threads and asyncio tasks alike.

:class:`RefreshingCredentials` wraps a source of :class:`~rolesanywhere.credentials.Credentials`
(a client, a sync or async callable, or static credentials) and hands out credentials that
always have more than :data:`MIN_REMAINING` seconds left::

    creds = RefreshingCredentials(RolesAnywhereClient(identity, ...))
    creds.get()           # from any thread
    await creds.aget()    # from any task, in any event loop

Refresh windows, counted back from the expiry, for a session of lifetime ``L`` (expiry minus the
time the credentials were obtained):

- **advisory**: ``max(MIN_REMAINING, min(15 min, L/4))`` before expiry. One caller refreshes
  while everyone else keeps getting the current credentials at once. Each set of credentials
  draws its own refresh point, uniformly in the later half of the window (``W/2`` to ``W``
  before expiry), so hosts that started together drift apart instead of calling CreateSession
  together every hour. A failure keeps the current credentials, logs a warning (logger
  ``rolesanywhere.session.refresh``) and waits a full-jitter backoff (uniform below 10 s,
  doubling, at most 2 min) before the next advisory attempt.
- **mandatory**: :data:`MIN_REMAINING` (60 s) before expiry, and also when there are no
  credentials yet or after :meth:`~RefreshingCredentials.invalidate`. Callers wait for the one
  refresh; if it fails, each of them gets the source's exception. After a *throttle*
  (:class:`~rolesanywhere.errors.ThrottlingError`: the account's shared quota is spent), callers
  get that exception at once until the backoff ends, so a busy process cannot turn its callers
  into a retry storm: :attr:`~RefreshingCredentials.next_refresh` says when the next attempt
  may start.

The issue asked for a mandatory window of ``min(1 min, L/10)`` *and* for no request ever to be
signed with credentials less than 60 s from expiry. ``min(1 min, L/10)`` never exceeds 60 s, so
the hard rule (``max(60 s, min(1 min, L/10))``) always wins and the window is a flat 60 s: the
``L/10`` term only ever lowers it, for sessions shorter than 10 minutes, which Roles Anywhere
never issues (its minimum is 900 s). Credentials are handed out only while they have *more*
than 60 s left, and a refresh that brings back credentials with 60 s or less counts as a failure
(:class:`~rolesanywhere.errors.CredentialsError`): handing them out would break the rule.
Unlike botocore's fixed 15/10-minute windows, a 900 s session is refreshed once, 225 s before it
expires, not on every call.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import inspect
import logging
import math
import random
import threading
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeAlias, TypeVar, Union

from rolesanywhere.credentials import Credentials
from rolesanywhere.errors import (
    CredentialsError,
    InvalidParameterError,
    ThrottlingError,
    safe_text,
)
from rolesanywhere.retry import full_jitter
from rolesanywhere.session.loopthread import LoopThread

if TYPE_CHECKING:
    from rolesanywhere.session.client import AsyncRolesAnywhereClient, RolesAnywhereClient

__all__ = [
    "ADVISORY_BACKOFF_BASE",
    "ADVISORY_BACKOFF_MAX",
    "ADVISORY_MAX",
    "MIN_REMAINING",
    "REFRESH_SPREAD",
    "CredentialSource",
    "RefreshWindows",
    "RefreshingCredentials",
    "refresh_windows",
]

logger = logging.getLogger(__name__)

#: Credentials with this many seconds left or fewer are never handed out.
MIN_REMAINING = 60.0
#: The advisory window is a quarter of the lifetime, but never more than this.
ADVISORY_MAX = 900.0
#: Seconds to wait after a failed refresh before the next advisory attempt (doubled per failure).
ADVISORY_BACKOFF_BASE = 10.0
#: Longest wait between advisory attempts.
ADVISORY_BACKOFF_MAX = 120.0
#: The longest backoff ``RefreshingCredentials`` takes (a day).
MAX_BACKOFF = 86400.0
#: The refresh point is drawn in the last ``REFRESH_SPREAD`` of the advisory window and after:
#: uniformly from ``W * (1 - REFRESH_SPREAD)`` to ``W`` before expiry.
REFRESH_SPREAD = 0.5

CredentialSource: TypeAlias = Union[  # forward references: ``|`` would fail at runtime
    Credentials,
    "RolesAnywhereClient",
    "AsyncRolesAnywhereClient",
    Callable[[], Credentials],
    Callable[[], Awaitable[Credentials]],
]
"""What :class:`RefreshingCredentials` can wrap."""

_T = TypeVar("_T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RefreshWindows:
    """Seconds before expiry at which a refresh becomes advisory, then mandatory."""

    advisory: float
    mandatory: float


def refresh_windows(lifetime: float) -> RefreshWindows:
    """The windows for credentials valid ``lifetime`` seconds from when they were obtained.

    ``mandatory = max(60 s, min(1 min, L/10))``, i.e. 60 s; ``advisory = max(mandatory,
    min(15 min, L/4))``: 225 s for a 900 s session, 15 min for an hour or more.
    """
    mandatory = max(MIN_REMAINING, min(60.0, lifetime / 10))
    advisory = max(mandatory, min(ADVISORY_MAX, lifetime / 4))
    return RefreshWindows(advisory=advisory, mandatory=mandatory)


def _is_async_callable(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 (an object with ``async def __call__``)
    )


def _describe(exc: BaseException, hide: tuple[str | None, ...]) -> str:
    """``Type: message`` on one line, with any known secret blanked out."""
    text = f"{type(exc).__name__}: {exc}"
    for secret in hide:
        if secret:
            text = text.replace(secret, "<redacted>")
    return safe_text(text, 300)


async def _await(awaitable: Awaitable[_T]) -> _T:
    return await awaitable


def _again(error: ThrottlingError) -> ThrottlingError:
    """A new exception like ``error`` (raising one object from many threads would grow and
    share its traceback)."""
    return type(error)(
        error.message,
        status=error.status,
        error_type=error.error_type,
        request_id=error.request_id,
        hint=error.hint,
    )


def _hand_out_until(credentials: Credentials, margin: float) -> datetime:
    """The instant from which ``credentials`` need a look under the lock (``margin`` s before
    expiry): before it, callers take them without locking."""
    if credentials.expiration is None:
        return datetime.max.replace(tzinfo=UTC)
    return credentials.expiration - timedelta(seconds=margin)


@dataclass(slots=True)
class _Plan:
    """What one caller does: hand out ``credentials``, ``wait`` for a refresh, or ``lead`` one."""

    credentials: Credentials | None = None
    wait: concurrent.futures.Future[Credentials] | None = None
    lead: concurrent.futures.Future[Credentials] | None = None
    advisory: bool = False


class RefreshingCredentials:
    """Credentials from ``source``, refreshed before they expire, one refresh at a time.

    ``source`` is a :class:`~rolesanywhere.session.client.RolesAnywhereClient` or
    :class:`~rolesanywhere.session.client.AsyncRolesAnywhereClient` (its ``create_session`` is
    called),
    a callable returning :class:`Credentials` or an awaitable of them, or static
    :class:`Credentials` (never refreshed; refused once they have 60 s or less left).

    :meth:`get` (threads) and :meth:`aget` (asyncio tasks, in any number of event loops) share
    one lock-guarded state and one in-flight refresh, a :class:`concurrent.futures.Future` that
    threads wait on and tasks await through :func:`asyncio.wrap_future`; whoever finds a refresh
    due starts it, and everyone else who needs it waits for that same future. The refresh runs:

    - sync source, from :meth:`get`: in the calling thread;
    - sync source, from :meth:`aget`: in a new worker thread, so the loop is not blocked (a
      dedicated thread rather than the loop's default executor, which threads calling
      ``to_thread(get)`` could fill while they wait for this very refresh);
    - async source, from either: on a private event loop in a helper thread owned by this
      object (started on first use, stopped by :meth:`close`).

    A refresh therefore never needs a caller's thread or event loop to make progress, so it
    cannot deadlock: not when :meth:`get` is called from inside a running loop, not when the
    caller is cancelled (the refresh carries on for the others). Async sources always run on
    the same loop, which sources bound to one loop need (an ``AsyncRolesAnywhereClient`` keeps
    one HTTP pool per loop, so it also works elsewhere). With ``close_source=True``,
    :meth:`close` closes the source on that loop. The source must not call back into this
    object.

    ``clock`` (timezone-aware ``datetime``) is read for every decision; ``rand`` (uniform in
    [0, 1)) draws the refresh points and backoffs; after ``n`` failures in a row the next
    attempt waits ``rand() * min(backoff_max, backoff_base * 2**(n-1))`` seconds (a fleet's
    knobs: a longer wait means fewer calls against a busy quota, but later credentials);
    :attr:`refreshes` and :attr:`failures` count source calls that returned usable credentials
    or failed.
    """

    def __init__(
        self,
        source: CredentialSource,
        *,
        clock: Callable[[], datetime] | None = None,
        close_source: bool = False,
        rand: Callable[[], float] = random.random,
        backoff_base: float = ADVISORY_BACKOFF_BASE,
        backoff_max: float = ADVISORY_BACKOFF_MAX,
    ) -> None:
        self._clock: Callable[[], datetime] = clock or _utcnow
        self._rand = rand
        for name, value in (("backoff_base", backoff_base), ("backoff_max", backoff_max)):
            if not (isinstance(value, int | float) and 0 <= value <= MAX_BACKOFF):
                raise InvalidParameterError(
                    f"{name} must be a number of seconds from 0 to {MAX_BACKOFF:g}, got {value!r}"
                )
        self._backoff = (float(backoff_base), float(backoff_max))
        self._to_close: object = (
            None if isinstance(source, Credentials) or not close_source else source
        )
        self._lock = threading.Lock()
        self._sync_fn: Callable[[], object] | None = None
        self._async_fn: Callable[[], Awaitable[object]] | None = None
        self._static = isinstance(source, Credentials)
        self._current: Credentials | None = source if isinstance(source, Credentials) else None
        self._windows = refresh_windows(math.inf)
        #: Seconds before expiry at which this set of credentials is refreshed (jittered).
        self._refresh_left = self._windows.advisory
        #: The last throttle, while its backoff runs: mandatory callers get it at once.
        self._throttled: ThrottlingError | None = None
        self._invalidated = False
        #: (credentials, until when they may be handed out without the lock): the common case.
        self._fast: tuple[Credentials, datetime] | None = None
        if isinstance(source, Credentials):
            self._fast = (source, _hand_out_until(source, MIN_REMAINING))
        self._inflight: concurrent.futures.Future[Credentials] | None = None
        self._next_advisory: datetime | None = None
        self._streak = 0
        self._refreshes = 0
        self._failures = 0
        if isinstance(source, Credentials):
            self._source_name = "static"
        else:
            method = getattr(source, "create_session", None)
            fn: object = method if callable(method) else source
            if not callable(fn):
                raise TypeError(
                    "RefreshingCredentials needs Credentials, a client or a callable, "
                    f"not {type(source).__name__}"
                )
            if _is_async_callable(fn):
                self._async_fn = fn
            else:
                self._sync_fn = fn
            self._source_name = type(source).__name__
        self._loop_thread = LoopThread()
        self._finalizer = weakref.finalize(self, self._loop_thread.close)

    # --- public API ------------------------------------------------------------------------------

    def get(self) -> Credentials:
        """Credentials with more than 60 s left, refreshing first when due (thread-safe).

        Raises whatever the source raised when a mandatory refresh fails.
        """
        fast = self._fast
        if fast is not None and self._clock() < fast[1]:
            return fast[0]
        plan = self._plan()
        if plan.lead is not None:
            if self._async_fn is not None:
                self._launch(plan.lead, plan.advisory)
            else:
                self._refresh_sync(plan.lead, plan.advisory, reraise=True)
            try:
                return plan.lead.result()
            except Exception as error:
                return self._fallback(plan, error)
        if plan.wait is not None:
            return plan.wait.result()
        assert plan.credentials is not None
        return plan.credentials

    async def aget(self) -> Credentials:
        """The awaitable twin of :meth:`get`: never blocks the event loop on a refresh."""
        fast = self._fast
        if fast is not None and self._clock() < fast[1]:
            return fast[0]
        import asyncio

        plan = self._plan()
        if plan.lead is not None:
            self._launch(plan.lead, plan.advisory)
            try:
                return await asyncio.wrap_future(plan.lead)
            except Exception as error:
                return self._fallback(plan, error)
        if plan.wait is not None:
            return await asyncio.wrap_future(plan.wait)
        assert plan.credentials is not None
        return plan.credentials

    def invalidate(self, credentials: Credentials | None = None) -> bool:
        """Force the next :meth:`get`/:meth:`aget` to refresh (the service rejected them).

        With ``credentials`` (the ones that were rejected), nothing happens unless they are
        still the current ones, so a late 403 cannot throw away credentials fetched since.
        A refresh already in flight is joined rather than doubled. Static credentials cannot
        be refreshed, so for them this does nothing. Returns whether anything was invalidated.
        """
        with self._lock:
            current = self._current
            if self._static or current is None:
                return False
            if credentials is not None and credentials.access_key_id != current.access_key_id:
                return False
            self._invalidated = True
            self._fast = None
            return True

    @property
    def credentials(self) -> Credentials | None:
        """The credentials held now, without refreshing (``None`` before the first)."""
        with self._lock:
            return self._current

    @property
    def next_refresh(self) -> datetime | None:
        """When :meth:`get` would next call the source: the jittered refresh point of the
        credentials held, or the end of a backoff (``None``: static credentials, or credentials
        that never expire). Agents and simulations wait until then instead of polling."""
        with self._lock:
            if self._static:
                return None
            now = self._clock()
            backoff = self._next_advisory if self._backing_off(now) else None
            if self._inflight is not None or self._current is None or self._invalidated:
                due = now
            elif self._current.expiration is None:
                return None
            else:
                due = self._current.expiration - timedelta(seconds=self._refresh_left)
            return max(due, backoff) if backoff is not None else due

    @property
    def refreshes(self) -> int:
        """Source calls that returned usable credentials."""
        return self._refreshes

    @property
    def failures(self) -> int:
        """Source calls that raised, or returned unusable credentials."""
        return self._failures

    def close(self) -> None:
        """Stop the helper event loop; a refresh still running there fails.

        With ``close_source=True``, also close the source first: an async source's ``aclose()``
        runs on the helper loop, where its connections live; a sync source's ``close()`` here.
        """
        with self._lock:
            source, self._to_close = self._to_close, None
        if source is not None:
            aclose = getattr(source, "aclose", None)
            close = getattr(source, "close", None)
            if self._async_fn is not None and callable(aclose):
                self._loop_thread.submit(_await(aclose())).result(timeout=30)
            elif callable(close):
                close()
        self._loop_thread.close()

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        import asyncio

        await asyncio.to_thread(self.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        with self._lock:
            current = self._current
        held = "None" if current is None else f"{current.access_key_id!r}"
        expiration = None if current is None else current.expiration
        return (
            f"RefreshingCredentials(source={self._source_name}, access_key_id={held}, "
            f"expiration={expiration!r}, refreshes={self._refreshes}, failures={self._failures})"
        )

    # --- the state machine ------------------------------------------------------------------------

    def _usable(self, now: datetime) -> Credentials | None:
        """The current credentials if they may be handed out at ``now`` (lock held)."""
        current = self._current
        if current is None or self._invalidated:
            return None
        if current.seconds_left(now) > self._windows.mandatory:
            return current
        return None

    def _plan(self) -> _Plan:
        now = self._clock()
        with self._lock:
            current = self._current
            if self._static:
                assert current is not None
                left = current.seconds_left(now)
                if left <= MIN_REMAINING:
                    raise CredentialsError(
                        f"the static credentials expire in {left:.0f} s (60 s or less) and "
                        "cannot be refreshed: supply a refreshable source"
                    )
                return _Plan(credentials=current)
            usable = self._usable(now)
            if self._inflight is not None:
                if usable is not None:
                    return _Plan(credentials=usable)
                return _Plan(wait=self._inflight)
            backing_off = self._backing_off(now)
            if usable is not None:
                advisory_due = usable.seconds_left(now) <= self._refresh_left
                if not advisory_due or backing_off:
                    return _Plan(credentials=usable)
            elif backing_off and self._throttled is not None:
                raise _again(self._throttled)
            future: concurrent.futures.Future[Credentials] = concurrent.futures.Future()
            # RUNNING: a waiter's cancelled wrap_future() cannot cancel the shared future.
            future.set_running_or_notify_cancel()
            self._inflight = future
            return _Plan(lead=future, advisory=usable is not None)

    def _backing_off(self, now: datetime) -> bool:
        """Whether a backoff runs at ``now`` (lock held). One that ends further away than the
        longest backoff began in the future: the wall clock went back, so it is over."""
        end = self._next_advisory
        if end is None or now >= end:
            return False
        return (end - now).total_seconds() <= self._backoff[1]

    def _fallback(self, plan: _Plan, error: Exception) -> Credentials:
        """After a failed refresh this caller led: the current credentials if it was advisory
        and they are still usable, else ``error`` again."""
        if plan.advisory:
            now = self._clock()
            with self._lock:
                kept = self._usable(now)
            if kept is not None:
                return kept
        raise error

    def _launch(self, future: concurrent.futures.Future[Credentials], advisory: bool) -> None:
        """Start the refresh away from the caller: on the helper loop, or in a worker thread.

        If it cannot even start, the future fails at once, so nobody waits forever.
        """
        try:
            if self._async_fn is not None:
                coro = self._refresh_async(future, advisory)
                try:
                    self._loop_thread.submit(coro)
                except BaseException:
                    coro.close()
                    raise
            else:
                context = contextvars.copy_context()
                threading.Thread(
                    target=context.run,
                    args=(self._refresh_sync, future, advisory, False),
                    name="rolesanywhere-refresh",
                    daemon=True,
                ).start()
        except BaseException as exc:
            self._complete(future, advisory, None, exc)
            if not isinstance(exc, Exception):
                raise

    def _refresh_sync(
        self, future: concurrent.futures.Future[Credentials], advisory: bool, reraise: bool
    ) -> None:
        assert self._sync_fn is not None
        try:
            result = self._sync_fn()
            if inspect.isawaitable(result):  # an async source we could not recognise up front
                result = self._loop_thread.submit(_await(result)).result()
        except BaseException as exc:
            self._complete(future, advisory, None, exc)
            if reraise and not isinstance(exc, Exception):
                raise
            return
        self._complete(future, advisory, result, None)

    async def _refresh_async(
        self, future: concurrent.futures.Future[Credentials], advisory: bool
    ) -> None:
        assert self._async_fn is not None
        try:
            result = await self._async_fn()
        except BaseException as exc:
            self._complete(future, advisory, None, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._complete(future, advisory, result, None)

    def _complete(
        self,
        future: concurrent.futures.Future[Credentials],
        advisory: bool,
        result: object,
        error: BaseException | None,
    ) -> None:
        """Record the refresh's outcome, then wake everyone waiting for it (exactly once)."""
        now = self._clock()
        fresh: Credentials | None = None
        if error is None:
            if not isinstance(result, Credentials):
                error = CredentialsError(
                    f"the credential source returned {type(result).__name__}, not Credentials"
                )
            elif (left := result.seconds_left(now)) <= MIN_REMAINING:
                error = CredentialsError(
                    f"the credential source returned credentials that expire in {left:.0f} s, "
                    "60 s or less: check the session duration and the system clock"
                )
            else:
                fresh = result
        shared: BaseException | None = error
        if error is not None and not isinstance(error, Exception):
            shared = CredentialsError(
                f"the credential refresh was interrupted ({type(error).__name__}): try again"
            )
        kept: Credentials | None = None
        backoff = 0.0
        with self._lock:
            self._inflight = None
            old = self._current
            if fresh is not None:
                self._current = fresh
                self._windows = windows = refresh_windows(fresh.seconds_left(now))
                spread = 1.0 - REFRESH_SPREAD * (1.0 - self._rand())
                self._refresh_left = max(windows.mandatory, windows.advisory * spread)
                self._fast = (fresh, _hand_out_until(fresh, self._refresh_left))
                self._invalidated = False
                self._next_advisory = None
                self._throttled = None
                self._streak = 0
                self._refreshes += 1
            else:
                self._failures += 1
                self._streak += 1
                backoff = full_jitter(self._streak, *self._backoff, self._rand)
                self._next_advisory = now + timedelta(seconds=backoff)
                self._throttled = error if isinstance(error, ThrottlingError) else None
                kept = self._usable(now) if advisory else None
        if error is not None:
            hide = (old.secret_access_key, old.session_token) if old is not None else ()
            reason = _describe(error, hide)
            if kept is not None:
                logger.warning(
                    "advisory credential refresh failed, keeping the current credentials "
                    "(%.0f s left), next attempt in %.0f s: %s",
                    kept.seconds_left(now),
                    backoff,
                    reason,
                )
            else:
                logger.debug("credential refresh failed: %s", reason)
        if fresh is not None:
            future.set_result(fresh)
        else:
            assert shared is not None
            future.set_exception(shared)
