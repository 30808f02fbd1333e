"""RefreshingCredentials: windows, failures, invalidation, single-flight for threads and tasks.

Unit tests drive a fake source with a fake clock; the emulator tests use a real
``RolesAnywhereClient`` over real sockets on 127.0.0.1, with the emulator reading the same fake
clock (its 5-minute signature-age check is widened, since the client signs with the real time).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rolesanywhere import errors
from rolesanywhere.credentials import Credentials
from rolesanywhere.retry import RetryPolicy
from rolesanywhere.session.client import AsyncRolesAnywhereClient, RolesAnywhereClient
from rolesanywhere.session.refresh import (
    ADVISORY_BACKOFF_BASE,
    MIN_REMAINING,
    RefreshingCredentials,
    refresh_windows,
)
from rolesanywhere.testing import emulator as emulator_module
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.pki import PKI
from rolesanywhere.x509.identity import Identity

T0 = datetime(2030, 1, 1, tzinfo=UTC)
ONE_ATTEMPT = RetryPolicy(max_attempts=1)


def Unjittered(*args: Any, **kw: Any) -> RefreshingCredentials:
    """The refresher with its random draws at 1.0: refresh at the start of the advisory window
    and backoffs at their ceilings, so these tests can name the exact instants (the jitter has
    its own tests in test_refresh_jitter.py)."""
    kw.setdefault("rand", lambda: 1.0)
    return RefreshingCredentials(*args, **kw)


class FakeClock:
    """A thread-safe clock that moves only when told to."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.reads = 0

    def __call__(self) -> datetime:
        with self._lock:
            self.reads += 1
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


class FakeSource:
    """Issues credentials valid ``lifetime`` s from now; can fail, or block on a gate."""

    def __init__(self, clock: FakeClock, lifetime: float = 3600.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.fail: Exception | None = None
        self.gate: threading.Event | None = None
        self.started = threading.Event()
        self.threads: list[str] = []
        self._lock = threading.Lock()

    def issue(self) -> Credentials:
        with self._lock:
            self.calls += 1
            n = self.calls
            self.threads.append(threading.current_thread().name)
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        if self.fail is not None:
            raise self.fail
        return Credentials(
            access_key_id=f"ASIAFAKE{n:012d}",
            secret_access_key=f"secret-{n}-wJalrXUtnFEMI",
            session_token=f"token-{n}-IQoJb3JpZ2luX2Vj",
            expiration=self.clock() + timedelta(seconds=self.lifetime),
        )

    def __call__(self) -> Credentials:
        return self.issue()


class AsyncFakeSource(FakeSource):
    """The same, as an object with ``async def __call__``."""

    async def __call__(self) -> Credentials:  # type: ignore[override]
        await asyncio.sleep(0)
        return self.issue()


def run_in_threads(n: int, fn: Callable[[], object]) -> list[object]:
    """Call ``fn`` from ``n`` threads released together; results or exceptions, in order."""
    barrier = threading.Barrier(n, timeout=10)

    def one() -> object:
        barrier.wait()
        try:
            return fn()
        except Exception as exc:
            return exc

    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(one) for _ in range(n)]
        return [f.result(timeout=20) for f in futures]


# --- window math ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "advisory", "mandatory"),
    [
        (900, 225, 60),  # L/4 beats 15 min; botocore would be in its window from the start
        (3600, 900, 60),
        (43200, 900, 60),
        (400, 100, 60),
        (200, 60, 60),  # L/4 < 60 s: no advisory phase at all
        (math.inf, 900, 60),
    ],
)
def test_refresh_windows(lifetime: float, advisory: float, mandatory: float) -> None:
    windows = refresh_windows(lifetime)
    assert (windows.advisory, windows.mandatory) == (advisory, mandatory)


@pytest.mark.parametrize("lifetime", [900, 3600, 43200])
def test_windows_drive_the_refreshes(lifetime: int) -> None:
    clock = FakeClock()
    source = FakeSource(clock, lifetime)
    creds = Unjittered(source, clock=clock)
    first = creds.get()
    advisory = refresh_windows(lifetime).advisory

    clock.advance(lifetime - advisory - 1)  # one second before the advisory window
    assert creds.get() is first
    assert source.calls == 1

    clock.advance(1)  # advisory: refreshed by this caller
    second = creds.get()
    assert source.calls == 2
    assert second is not first
    assert second.seconds_left(clock()) == lifetime

    # Advisory failures keep the current credentials right down to the mandatory window...
    source.fail = errors.ThrottlingError("Rate exceeded", status=429)
    clock.advance(lifetime - advisory)
    assert creds.get() is second
    clock.advance(advisory - MIN_REMAINING - 1)  # 61 s left, backoff long over
    assert creds.get() is second
    assert source.calls == 4
    # ...where callers get the error instead of credentials with 60 s or less: at once, while
    # the throttle's backoff (20 s after the failure 1 s ago) runs, then from a new attempt.
    clock.advance(1)
    with pytest.raises(errors.ThrottlingError):
        creds.get()
    assert (source.calls, creds.refreshes, creds.failures) == (4, 2, 2)
    clock.advance(19)
    with pytest.raises(errors.ThrottlingError):
        creds.get()
    assert (source.calls, creds.refreshes, creds.failures) == (5, 2, 3)


def test_900s_session_is_not_refreshed_on_every_call() -> None:
    clock = FakeClock()
    source = FakeSource(clock, 900)
    creds = Unjittered(source, clock=clock)
    for _ in range(100):  # 100 calls over 300 s
        assert creds.get().seconds_left(clock()) > 600
        clock.advance(3)
    assert source.calls == 1


# --- failures -------------------------------------------------------------------------------


def test_advisory_failure_keeps_credentials_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    source = FakeSource(clock, 3600)
    creds = Unjittered(source, clock=clock)
    first = creds.get()
    clock.advance(3600 - 900)
    # A careless source that puts a secret in its error message: the log must not repeat it.
    source.fail = RuntimeError(f"upstream said no to {first.secret_access_key}")
    with caplog.at_level(logging.DEBUG, logger="rolesanywhere.session.refresh"):
        assert creds.get() is first
    assert creds.failures == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].name == "rolesanywhere.session.refresh"
    message = warnings[0].getMessage()
    assert "RuntimeError: upstream said no" in message
    assert "\n" not in message
    assert "900 s left" in message
    for secret in (first.secret_access_key, first.session_token):
        assert secret is not None
        assert secret not in caplog.text


def test_advisory_backoff_after_failure() -> None:
    clock = FakeClock()
    source = FakeSource(clock, 3600)
    creds = Unjittered(source, clock=clock)
    first = creds.get()
    clock.advance(3600 - 900)
    source.fail = errors.NetworkError("cannot reach the endpoint")
    for _ in range(50):  # hammering inside the backoff does not reach the source
        assert creds.get() is first
    assert source.calls == 2
    clock.advance(ADVISORY_BACKOFF_BASE - 0.5)
    assert creds.get() is first
    assert source.calls == 2
    clock.advance(0.5)  # backoff over: one more attempt, which fails again
    assert creds.get() is first
    assert source.calls == 3
    clock.advance(ADVISORY_BACKOFF_BASE)  # the backoff doubled
    assert creds.get() is first
    assert source.calls == 3
    clock.advance(ADVISORY_BACKOFF_BASE)
    source.fail = None
    fresh = creds.get()
    assert source.calls == 4
    assert fresh is not first


def test_backoff_does_not_delay_a_mandatory_refresh() -> None:
    clock = FakeClock()
    source = FakeSource(clock, 900)
    creds = Unjittered(source, clock=clock)
    first = creds.get()
    clock.advance(900 - 70)  # 70 s left: advisory
    source.fail = errors.NetworkError("down")
    assert creds.get() is first
    source.fail = None
    clock.advance(10)  # 60 s left, still inside the 10 s backoff: mandatory wins
    fresh = creds.get()
    assert fresh is not first
    assert source.calls == 3


@pytest.mark.parametrize("use_async", [False, True])
def test_mandatory_failure_raises_the_source_error(use_async: bool) -> None:
    clock = FakeClock()
    source = FakeSource(clock)
    source.fail = errors.AccessDeniedError("Untrusted Signing Certificate", status=403)
    creds = Unjittered(source, clock=clock)
    with pytest.raises(errors.AccessDeniedError, match="Untrusted"):
        asyncio.run(creds.aget()) if use_async else creds.get()
    # No backoff without credentials: the next caller tries again.
    source.fail = None
    assert creds.get().access_key_id == "ASIAFAKE000000000002"
    assert (source.calls, creds.refreshes, creds.failures) == (2, 1, 1)


def test_mandatory_failure_reaches_every_waiter() -> None:
    clock = FakeClock()
    source = FakeSource(clock)
    source.gate = gate = threading.Event()
    source.fail = errors.ServiceError("Internal server error", status=500)
    creds = Unjittered(source, clock=clock)

    async def tasks() -> list[object]:
        return await asyncio.gather(*(creds.aget() for _ in range(20)), return_exceptions=True)

    with concurrent.futures.ThreadPoolExecutor(max_workers=21) as pool:
        threads = [pool.submit(creds.get) for _ in range(20)]
        loop = pool.submit(asyncio.run, tasks())
        assert source.started.wait(5)
        deadline = time.monotonic() + 10
        while clock.reads < 40 and time.monotonic() < deadline:  # every caller has looked...
            time.sleep(0.01)
        time.sleep(0.05)  # ...and queued behind the one refresh
        gate.set()
        outcomes: list[object] = [f.exception(timeout=10) for f in threads]
        outcomes += loop.result(timeout=10)
    assert len(outcomes) == 40
    assert all(type(o) is errors.ServiceError for o in outcomes)
    assert source.calls == 1
    assert creds.failures == 1


def test_short_lived_or_wrong_results_are_refused() -> None:
    clock = FakeClock()
    source = FakeSource(clock, lifetime=60)
    creds = Unjittered(source, clock=clock)
    with pytest.raises(errors.CredentialsError, match="expire in 60 s"):
        creds.get()
    wrong = Unjittered(lambda: "not credentials", clock=clock)  # type: ignore[arg-type]
    with pytest.raises(errors.CredentialsError, match="returned str"):
        wrong.get()
    with pytest.raises(TypeError, match="not int"):
        Unjittered(42)  # type: ignore[arg-type]


# --- invalidation -----------------------------------------------------------------------------


def test_invalidate_forces_one_refresh() -> None:
    clock = FakeClock()
    source = FakeSource(clock)
    creds = Unjittered(source, clock=clock)
    assert not creds.invalidate()  # nothing to invalidate yet
    first = creds.get()
    assert creds.invalidate(first)
    second = creds.get()
    assert second is not first
    assert creds.get() is second
    assert not creds.invalidate(first)  # a late 403 for the old credentials changes nothing
    assert creds.get() is second
    assert source.calls == 2


def test_invalidate_during_a_refresh_joins_it() -> None:
    clock = FakeClock()
    source = FakeSource(clock)
    creds = Unjittered(source, clock=clock)
    first = creds.get()
    source.gate = gate = threading.Event()
    source.started.clear()
    clock.advance(3600 - 900)  # advisory: the leader's thread refreshes, the others pass
    with concurrent.futures.ThreadPoolExecutor(max_workers=11) as pool:
        leader = pool.submit(creds.get)
        assert source.started.wait(5)
        assert creds.get() is first  # advisory, refresh in flight: served at once
        assert creds.invalidate(first)
        waiters = [pool.submit(creds.get) for _ in range(10)]
        time.sleep(0.1)
        assert not any(w.done() for w in waiters)  # invalidated: they wait for the same refresh
        gate.set()
        results = [leader.result(timeout=5)] + [w.result(timeout=5) for w in waiters]
    assert source.calls == 2
    assert len({r.access_key_id for r in results}) == 1
    assert results[0] is not first
    assert creds.get() is results[0]  # the invalidation was answered by that refresh
    assert source.calls == 2


# --- source kinds ---------------------------------------------------------------------------


def test_static_credentials_are_never_refreshed() -> None:
    clock = FakeClock()
    forever = Credentials("AKIASTATIC", "static-secret")
    creds = Unjittered(forever, clock=clock)
    assert creds.get() is forever
    assert asyncio.run(creds.aget()) is forever
    assert not creds.invalidate(forever)
    assert creds.get() is forever
    expiring = Credentials("ASIASTATIC", "s", "t", expiration=T0 + timedelta(seconds=120))
    creds = Unjittered(expiring, clock=clock)
    assert creds.get() is expiring
    clock.advance(60)
    with pytest.raises(errors.CredentialsError, match="cannot be refreshed"):
        creds.get()
    assert (creds.refreshes, creds.failures) == (0, 0)


class SyncClientLike:
    def __init__(self, source: FakeSource) -> None:
        self.source = source

    def create_session(self) -> Credentials:
        return self.source.issue()


class AsyncClientLike:
    def __init__(self, source: FakeSource) -> None:
        self.source = source

    async def create_session(self) -> Credentials:
        return self.source.issue()


def _kinds(source: FakeSource) -> dict[str, object]:
    async def coro_fn() -> Credentials:
        return source.issue()

    return {
        "sync-callable": source,
        "async-function": coro_fn,
        "sync-client": SyncClientLike(source),
        "async-client": AsyncClientLike(source),
        # Not recognisable up front: a sync callable returning an awaitable.
        "lambda-coroutine": lambda: coro_fn(),
    }


@pytest.mark.parametrize(
    "kind", ["sync-callable", "async-function", "sync-client", "async-client", "lambda-coroutine"]
)
@pytest.mark.parametrize("caller", ["get", "aget"])
def test_every_source_kind_from_both_worlds(kind: str, caller: str) -> None:
    clock = FakeClock()
    source = FakeSource(clock)
    with Unjittered(_kinds(source)[kind], clock=clock) as creds:  # type: ignore[arg-type]

        async def twice() -> tuple[Credentials, Credentials, str]:
            first = await creds.aget()
            return first, await creds.aget(), threading.current_thread().name

        if caller == "get":
            first, again, caller_thread = creds.get(), creds.get(), threading.current_thread().name
        else:
            first, again, caller_thread = asyncio.run(twice())
    assert first is again
    assert first.access_key_id == "ASIAFAKE000000000001"
    assert source.calls == 1
    ran_on = source.threads[0]
    if kind.startswith("sync"):
        # A sync source runs in the calling thread for get(), in a worker thread for aget().
        assert ran_on == (caller_thread if caller == "get" else "rolesanywhere-refresh")
    else:
        assert ran_on == "rolesanywhere-refresh-loop"


def test_aget_does_not_block_the_loop_on_a_sync_source() -> None:
    clock = FakeClock()
    source = FakeSource(clock)
    source.gate = gate = threading.Event()
    creds = Unjittered(source, clock=clock)

    async def main() -> int:
        pending = asyncio.ensure_future(creds.aget())
        ticks = 0
        while not source.started.is_set() or ticks < 20:
            await asyncio.sleep(0.005)
            ticks += 1
        gate.set()
        await pending
        return ticks

    assert asyncio.run(main()) >= 20


def test_sync_get_inside_a_running_loop_does_not_deadlock() -> None:
    """A task leads an async refresh; a sync get() on the same loop's thread then waits for it."""
    clock = FakeClock()
    source = AsyncFakeSource(clock)
    source.gate = gate = threading.Event()
    creds = Unjittered(source, clock=clock)

    async def main() -> tuple[Credentials, Credentials]:
        leader = asyncio.ensure_future(creds.aget())
        await asyncio.sleep(0)
        assert await asyncio.to_thread(source.started.wait, 5)
        threading.Timer(0.1, gate.set).start()
        blocked = creds.get()  # blocks this loop: fine, the refresh runs on the helper loop
        return blocked, await leader

    with creds:
        blocked, led = asyncio.run(main())
    assert blocked is led
    assert source.calls == 1


@pytest.mark.parametrize("source_type", [FakeSource, AsyncFakeSource])
def test_cancelled_leader_does_not_cancel_the_refresh(source_type: type[FakeSource]) -> None:
    clock = FakeClock()
    source = source_type(clock)
    source.gate = gate = threading.Event()
    creds = Unjittered(source, clock=clock)

    async def main() -> list[Credentials]:
        leader = asyncio.ensure_future(creds.aget())
        assert await asyncio.to_thread(source.started.wait, 5)
        followers = [asyncio.ensure_future(creds.aget()) for _ in range(5)]
        await asyncio.sleep(0.01)
        leader.cancel()
        followers[0].cancel()  # a cancelled waiter must not cancel the shared refresh
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await leader
        return [await f for f in followers[1:]]

    with creds:
        results = asyncio.run(main())
    assert len({r.access_key_id for r in results}) == 1
    assert source.calls == 1
    assert creds.get() is results[0]


def test_close_during_an_async_refresh_fails_the_waiters() -> None:
    started = threading.Event()

    async def stuck() -> Credentials:
        started.set()
        await asyncio.sleep(30)
        raise AssertionError("not reached")

    creds = Unjittered(stuck)
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        waiters = [pool.submit(creds.get) for _ in range(3)]
        assert started.wait(5)
        began = time.monotonic()
        creds.close()
        for waiter in waiters:
            with pytest.raises(errors.CredentialsError, match="interrupted"):
                waiter.result(timeout=5)
    assert time.monotonic() - began < 5
    assert creds.failures == 1


def test_repr_shows_no_secret() -> None:
    clock = FakeClock()
    creds = Unjittered(FakeSource(clock), clock=clock)
    assert "access_key_id=None" in repr(creds)
    got = creds.get()
    text = repr(creds)
    assert "ASIAFAKE000000000001" in text
    assert "refreshes=1" in text
    assert got.secret_access_key not in text
    assert got.session_token is not None
    assert got.session_token not in text


def test_never_hands_out_credentials_with_60_s_or_less_simulated() -> None:
    """Simulated days, random steps; each session's refresh meets an outage of random length."""
    rng = random.Random(1234)
    for lifetime in (900, 3600, 43200):
        clock = FakeClock()
        source = FakeSource(clock, lifetime)
        creds = Unjittered(source, clock=clock)
        advisory = refresh_windows(lifetime).advisory
        served = refused = 0
        closest = math.inf
        end = T0 + timedelta(seconds=max(lifetime * 3, 6 * 3600))
        outage_for: set[str] = set()
        outage_until = T0
        while clock() < end:
            held = creds.credentials
            turning = held is not None and held.seconds_left(clock()) <= advisory + 1
            if turning and held is not None and held.access_key_id not in outage_for:
                outage_for.add(held.access_key_id)  # an outage as this session turns advisory
                outage_until = clock() + timedelta(seconds=rng.uniform(0, advisory + 300))
            source.fail = errors.NetworkError("outage") if clock() < outage_until else None
            try:
                got = creds.get()
            except errors.NetworkError:
                refused += 1
            else:
                served += 1
                left = got.seconds_left(clock())
                assert left > MIN_REMAINING
                closest = min(closest, left)
            clock.advance(rng.uniform(0.5, 30))
        # Some outages drove the credentials down to the floor and past it.
        assert closest < MIN_REMAINING + 30
        assert refused > 0
        assert served > 500
        # One refresh per advisory period; failed advisory attempts backed off, not per call.
        assert creds.refreshes <= (end - T0).total_seconds() / (lifetime - advisory) + 2
        assert creds.failures - refused <= creds.refreshes * (advisory / 120 + 6)


# --- against the emulator ---------------------------------------------------------------------


@pytest.fixture
def shared_clock(
    rolesanywhere_emulator: RolesAnywhereEmulator, monkeypatch: pytest.MonkeyPatch
) -> FakeClock:
    """A fake clock read by both the emulator and the refresher (signature age check widened)."""
    monkeypatch.setattr(emulator_module, "MAX_CLOCK_SKEW", timedelta(days=2))
    clock = FakeClock(datetime.now(UTC))
    rolesanywhere_emulator.clock = clock
    return clock


@pytest.fixture
def identity(rolesanywhere_pki: PKI) -> Identity:
    leaf = rolesanywhere_pki.leaf("ec-p256")
    return leaf.identity()


def client_for(
    emu: RolesAnywhereEmulator, identity: Identity, duration: int = 900
) -> RolesAnywhereClient:
    return emu.client(identity, duration_seconds=duration, retry=ONE_ATTEMPT)


@pytest.fixture
def refresher(
    rolesanywhere_emulator: RolesAnywhereEmulator, identity: Identity, shared_clock: FakeClock
) -> Iterator[RefreshingCredentials]:
    with (
        client_for(rolesanywhere_emulator, identity) as client,
        Unjittered(client, clock=shared_clock) as creds,
    ):
        yield creds


@pytest.mark.parametrize("step", [0.0, 3.0])
def test_emulator_900s_session_100_calls_one_create_session(
    refresher: RefreshingCredentials,
    rolesanywhere_emulator: RolesAnywhereEmulator,
    shared_clock: FakeClock,
    step: float,
) -> None:
    keys = set()
    for _ in range(100):
        keys.add(refresher.get().access_key_id)
        shared_clock.advance(step)
    assert rolesanywhere_emulator.calls == 1
    assert len(keys) == 1
    issued = rolesanywhere_emulator.lookup(keys.pop())
    assert issued is not None
    assert refresher.credentials is not None
    assert refresher.credentials.expiration == issued.expiration


@pytest.mark.parametrize("trigger", ["clock", "invalidate"])
def test_emulator_pile_up_of_threads_and_tasks_one_create_session(
    refresher: RefreshingCredentials,
    rolesanywhere_emulator: RolesAnywhereEmulator,
    shared_clock: FakeClock,
    trigger: str,
) -> None:
    first = refresher.get()
    if trigger == "clock":
        shared_clock.advance(900 - 30)  # 30 s left: mandatory
    else:
        assert refresher.invalidate(first)
    rolesanywhere_emulator.delay = 0.2
    threads, loops, tasks_per_loop = 200, 2, 100
    barrier = threading.Barrier(threads + loops, timeout=20)

    def in_thread() -> Credentials:
        barrier.wait()
        return refresher.get()

    def in_loop() -> list[Credentials]:
        async def main() -> list[Credentials]:
            go = asyncio.Event()

            async def one() -> Credentials:
                await go.wait()
                return await refresher.aget()

            tasks = [asyncio.ensure_future(one()) for _ in range(tasks_per_loop)]
            await asyncio.to_thread(barrier.wait)
            go.set()
            return await asyncio.gather(*tasks)

        return asyncio.run(main())

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads + loops) as pool:
        thread_results = [pool.submit(in_thread) for _ in range(threads)]
        loop_results = [pool.submit(in_loop) for _ in range(loops)]
        results = [f.result(timeout=30) for f in thread_results]
        for f in loop_results:
            results.extend(f.result(timeout=30))
    assert time.monotonic() - started >= 0.2  # they really waited for the slow refresh
    assert len(results) == threads + loops * tasks_per_loop
    assert rolesanywhere_emulator.calls == 2  # the first session and exactly one refresh
    assert {r.access_key_id for r in results} == {results[0].access_key_id}
    assert results[0].access_key_id != first.access_key_id
    assert results[0].seconds_left(shared_clock()) > 800
    assert (refresher.refreshes, refresher.failures) == (2, 0)


def test_emulator_timeline_never_below_60_s(
    refresher: RefreshingCredentials,
    rolesanywhere_emulator: RolesAnywhereEmulator,
    shared_clock: FakeClock,
) -> None:
    """Three simulated hours of 900 s sessions, with service errors now and then."""
    rng = random.Random(42)
    end = shared_clock() + timedelta(hours=3)
    served = refused = 0
    while shared_clock() < end:
        if rng.random() < 0.02:
            rolesanywhere_emulator.fail_next(rng.randint(1, 4), rng.choice([500, 503, 429]))
        try:
            got = refresher.get()
        except errors.ServiceError:
            refused += 1
        else:
            served += 1
            now = shared_clock()
            assert got.seconds_left(now) > MIN_REMAINING
            issued = rolesanywhere_emulator.lookup(got.access_key_id)
            assert issued is not None  # really issued by the service...
            assert not issued.expired(now + timedelta(seconds=MIN_REMAINING))  # ...and valid
        shared_clock.advance(rng.uniform(1, 20))
    assert served > 900
    # 10800 s / 675 s between refreshes = 16 sessions; failed attempts are backed off.
    assert rolesanywhere_emulator.successes <= 18
    assert rolesanywhere_emulator.calls < 18 + 60
    assert refresher.failures == rolesanywhere_emulator.calls - rolesanywhere_emulator.successes


def test_emulator_async_client_from_several_loops_and_threads(
    rolesanywhere_emulator: RolesAnywhereEmulator, identity: Identity
) -> None:
    """An AsyncRolesAnywhereClient's pool is loop-bound: every refresh runs on the helper loop."""
    emu = rolesanywhere_emulator
    client = AsyncRolesAnywhereClient(
        identity,
        trust_anchor_arn=emu.trust_anchor_arn,
        profile_arn=emu.profile_arn,
        role_arn=emu.role_arn,
        endpoint=emu.url,
        duration_seconds=900,
        retry=ONE_ATTEMPT,
    )
    creds = Unjittered(client, close_source=True)
    seen: list[Credentials] = []

    def in_new_loop() -> Credentials:
        return asyncio.run(creds.aget())

    for call in (in_new_loop, creds.get, in_new_loop):
        seen.append(call())
        assert call() is seen[-1]
        creds.invalidate()
    assert emu.calls == 3
    assert len({c.access_key_id for c in seen}) == 3
    assert client._transport is not None
    creds.close()  # closes the client on the loop its connections belong to
    assert client._transport is None
