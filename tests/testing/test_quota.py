"""Shared limits: the pure quota counter, the Roles Anywhere emulator's CreateSession quota and the
OSIS emulator's pipeline capacity, over real loopback sockets, on a fake monotonic clock."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rolesanywhere.errors import InvalidParameterError, ThrottlingError
from rolesanywhere.retry import RetryPolicy
from rolesanywhere.session.client import RolesAnywhereClient
from rolesanywhere.testing.emulator import RolesAnywhereEmulator
from rolesanywhere.testing.osis import OsisEmulator
from rolesanywhere.testing.pki import PKI
from rolesanywhere.testing.quota import Capacity, Quota, QuotaCounter, QuotaSecond, QuotaStats

NO_RETRY = RetryPolicy(max_attempts=1)


class FakeMonotonic:
    """A monotonic clock that moves only when told to (thread-safe)."""

    def __init__(self, start: float = 500.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


# --- the pure counter ----------------------------------------------------------------------------


def test_a_quota_admits_a_burst_then_one_call_per_1_over_rate() -> None:
    clock = FakeMonotonic()
    counter = QuotaCounter(Quota(rate=4, burst=3), clock=clock)
    assert [counter.admit() for _ in range(4)] == [True, True, True, False]
    assert counter.wait_time() == pytest.approx(0.25)
    clock.advance(0.25)
    assert [counter.admit(), counter.admit()] == [True, False]
    clock.advance(2.0)  # second 2: the bucket has refilled to its burst, no more
    assert [counter.admit() for _ in range(4)] == [True, True, True, False]
    assert counter.stats() == QuotaStats(7, 3, accepted_units=7, throttled_units=3)
    assert counter.history() == [
        QuotaSecond(0, accepted=4, throttled=2, accepted_units=4, throttled_units=2),
        QuotaSecond(1, 0, 0, 0, 0),  # quiet seconds are there, for plotting
        QuotaSecond(2, 3, 1, 3, 1),
    ]
    counter.reset()
    assert counter.stats() == QuotaStats(0, 0, 0, 0) and counter.history() == []


def test_no_limit_admits_everything_and_still_counts() -> None:
    counter = QuotaCounter(clock=FakeMonotonic())
    assert all(counter.admit(5) for _ in range(100))
    assert counter.stats() == QuotaStats(100, 0, 500, 0)
    assert counter.wait_time(10**9) == 0.0


def test_a_capacity_takes_whole_requests_that_fit_in_the_free_buffer() -> None:
    clock = FakeMonotonic()
    buffer = QuotaCounter(Capacity(events_per_second=100, buffer=250), clock=clock)
    assert buffer.admit(200)
    assert not buffer.admit(60)  # 50 free: refused whole, nothing taken
    assert buffer.admit(50)
    clock.advance(0.5)  # 50 events drained
    assert not buffer.admit(51) and buffer.admit(50)
    assert buffer.wait_time(251) == math.inf  # larger than the buffer: never fits
    assert not buffer.admit(251)
    assert buffer.stats() == QuotaStats(3, 3, 300, 362)


def test_set_limit_starts_full_and_none_lifts_it() -> None:
    counter = QuotaCounter(Quota(1, 1), clock=FakeMonotonic())
    assert counter.admit() and not counter.admit()
    counter.set_limit(Quota(1, 2))
    assert counter.limit == Quota(1, 2)
    assert counter.admit() and counter.admit() and not counter.admit()
    counter.set_limit(None)
    assert all(counter.admit() for _ in range(10))
    assert counter.stats().throttled == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Quota(0, 1), "Quota rate must be a finite number of at least 0"),
        (lambda: Quota(10, 0.5), "Quota burst must be a finite number of at least 1"),
        (lambda: Quota(math.inf, 1), "Quota rate"),
        (lambda: Quota(True, 1), "Quota rate must be a number"),
        (lambda: Capacity(100, 1.5), "Capacity buffer is a number of events, a whole number"),
        (lambda: Capacity(-1, 10), "Capacity events_per_second"),
        (lambda: QuotaCounter("10/s"), "a limit is a Quota, a Capacity or None, not str"),  # type: ignore[arg-type]
        (lambda: QuotaCounter().admit(-1), "units must be a whole number >= 0"),
    ],
)
def test_bad_limits_say_what_is_wrong(make: object, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        make()  # type: ignore[operator]


@settings(max_examples=200, deadline=None)
@given(
    rate=st.sampled_from([0.5, 1, 4, 10, 100]),
    burst=st.integers(1, 20),
    steps=st.lists(
        st.tuples(st.floats(0, 3, allow_nan=False), st.integers(0, 30), st.integers(1, 5)),
        max_size=30,
    ),
)
def test_admitted_never_exceed_burst_plus_rate_times_elapsed(
    rate: float, burst: int, steps: list[tuple[float, int, int]]
) -> None:
    clock = FakeMonotonic(0.0)
    counter = QuotaCounter(Capacity(rate, burst), clock=clock)
    admitted = offered = 0
    for pause, calls, units in steps:
        clock.advance(pause)
        for _ in range(calls):
            offered += units
            admitted += units if counter.admit(units) else 0
            assert admitted <= burst + rate * clock() + 1e-6
    stats = counter.stats()
    assert (stats.accepted_units, stats.accepted_units + stats.throttled_units) == (
        admitted,
        offered,
    )
    history = counter.history()
    assert sum(s.accepted_units for s in history) == admitted
    # Any one second admits at most a second's refill plus what was saved up.
    assert all(s.accepted_units <= rate + burst + 1e-6 for s in history)


# --- the Roles Anywhere emulator's CreateSession quota --------------------------------------------


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def quota_emu(pki: PKI, clock: FakeMonotonic) -> Iterator[RolesAnywhereEmulator]:
    with RolesAnywhereEmulator.for_pki(pki, quota=Quota(rate=4, burst=3), monotonic=clock) as emu:
        yield emu


def call(client: RolesAnywhereClient) -> str:
    """``ok`` or the error's class name."""
    try:
        client.create_session()
    except ThrottlingError:
        return "throttled"
    return "ok"


def signed_post(emu: RolesAnywhereEmulator, pki: PKI, http: httpx.Client) -> httpx.Response:
    """One CreateSession request as the client builds it, sent raw to read the answer."""
    from rolesanywhere.session.endpoints import resolve_endpoint
    from rolesanywhere.session.protocol import SessionParams, build_create_session_request

    params = SessionParams(
        trust_anchor_arn=emu.trust_anchor_arn, profile_arn=emu.profile_arn, role_arn=emu.role_arn
    )
    endpoint = resolve_endpoint(emu.region, endpoint=emu.url)
    request = build_create_session_request(pki.leaf().identity(), params, endpoint)
    return http.post(request.url, content=request.body, headers=dict(request.headers))


def test_burst_calls_pass_then_throttling_until_the_clock_moves(
    quota_emu: RolesAnywhereEmulator, pki: PKI, clock: FakeMonotonic, http: httpx.Client
) -> None:
    with quota_emu.client(pki.leaf().identity(), retry=NO_RETRY) as client:
        assert [call(client) for _ in range(4)] == ["ok", "ok", "ok", "throttled"]
        with pytest.raises(ThrottlingError, match="Rate exceeded") as caught:
            client.create_session()
        assert caught.value.status == 429
        clock.advance(0.25)  # 1 / rate: one more token
        assert [call(client), call(client)] == ["ok", "throttled"]
    answer = signed_post(quota_emu, pki, http)
    assert answer.status_code == 429
    assert answer.json() == {"message": "Rate exceeded"}
    assert answer.headers["x-amzn-errortype"] == "ThrottlingException"
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-amzn-requestid"]
    assert "retry-after" not in answer.headers  # the service sends none
    assert (quota_emu.accepted, quota_emu.throttled) == (4, 4)
    assert (quota_emu.calls, quota_emu.successes) == (8, 4)
    assert quota_emu.quota_history() == [QuotaSecond(0, 4, 4, 4, 4)]
    clock.advance(1.0)
    assert signed_post(quota_emu, pki, http).status_code == 201
    assert [s.accepted for s in quota_emu.quota_history()] == [4, 1]


def test_the_quota_throttles_before_the_signature_is_checked(
    quota_emu: RolesAnywhereEmulator, http: httpx.Client
) -> None:
    url = f"{quota_emu.url}/sessions"
    for _ in range(3):  # counted against the quota, then refused for what they are
        assert http.post(url, content=b"{}").status_code == 403
    answer = http.post(url, content=b"{}")
    assert answer.status_code == 429, "throttled before any work, as the service does"
    assert http.get(f"{quota_emu.url}/other").status_code == 404  # not CreateSession: no quota
    assert quota_emu.quota_stats() == QuotaStats(3, 1, 3, 1)


def test_fail_next_answers_without_spending_the_quota(
    quota_emu: RolesAnywhereEmulator, pki: PKI
) -> None:
    quota_emu.fail_next(2, 429)
    with quota_emu.client(pki.leaf().identity(), retry=NO_RETRY) as client:
        assert [call(client) for _ in range(6)] == ["throttled"] * 2 + ["ok"] * 3 + ["throttled"]
    assert (quota_emu.accepted, quota_emu.throttled) == (3, 1)


def test_retry_after_when_asked_is_the_wait_rounded_up(
    pki: PKI, clock: FakeMonotonic, http: httpx.Client
) -> None:
    quota = Quota(rate=0.4, burst=1)  # a token every 2.5 s
    with RolesAnywhereEmulator.for_pki(pki, quota=quota, monotonic=clock, retry_after=True) as emu:
        assert signed_post(emu, pki, http).status_code == 201
        answer = signed_post(emu, pki, http)
        assert answer.status_code == 429 and answer.headers["retry-after"] == "3"
        clock.advance(2.0)  # 0.5 s left: still a whole second
        assert signed_post(emu, pki, http).headers["retry-after"] == "1"
        clock.advance(0.5)
        assert signed_post(emu, pki, http).status_code == 201


def test_set_quota_later_and_lift_it(pki: PKI, clock: FakeMonotonic, http: httpx.Client) -> None:
    with RolesAnywhereEmulator.for_pki(pki, monotonic=clock) as emu:
        assert emu.quota is None
        assert all(signed_post(emu, pki, http).status_code == 201 for _ in range(3))
        emu.set_quota(2)  # burst defaults to the rate, the bucket starts full
        assert emu.quota == Quota(2, 2)
        codes = [signed_post(emu, pki, http).status_code for _ in range(3)]
        assert codes == [201, 201, 429]
        emu.set_quota(None)
        assert signed_post(emu, pki, http).status_code == 201
        assert (emu.accepted, emu.throttled) == (6, 1)
        emu.reset()
        assert (emu.accepted, emu.throttled, emu.quota_history()) == (0, 0, [])


def test_concurrent_clients_share_one_quota(pki: PKI, clock: FakeMonotonic) -> None:
    rate, burst, threads, calls, step = 10.0, 5, 8, 6, 0.01
    outcomes: list[str] = []
    lock = threading.Lock()
    with RolesAnywhereEmulator.for_pki(pki, quota=Quota(rate, burst), monotonic=clock) as emu:
        start = clock()
        barrier = threading.Barrier(threads)

        def host() -> None:
            with emu.client(pki.leaf().identity(), retry=NO_RETRY) as client:
                barrier.wait()
                for _ in range(calls):
                    outcome = call(client)
                    clock.advance(step)
                    with lock:
                        outcomes.append(outcome)

        workers = [threading.Thread(target=host) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = clock() - start
        assert elapsed == pytest.approx(threads * calls * step)
        accepted = outcomes.count("ok")
        assert burst <= accepted <= burst + rate * elapsed + 1e-9
        assert (emu.accepted, emu.throttled) == (accepted, threads * calls - accepted)
        assert emu.successes == accepted
        assert sum(s.accepted + s.throttled for s in emu.quota_history()) == threads * calls


# --- the OSIS emulator's pipeline capacity --------------------------------------------------------


@pytest.fixture
def pipeline(clock: FakeMonotonic) -> Iterator[OsisEmulator]:
    capacity = Capacity(events_per_second=100, buffer=300)
    with OsisEmulator(verify_signatures=False, capacity=capacity, monotonic=clock) as osis:
        yield osis


def batch(n: int, tag: str = "e") -> bytes:
    return json.dumps([{"log": f"{tag} {i}"} for i in range(n)]).encode()


def test_a_full_buffer_answers_429_and_stores_nothing(
    pipeline: OsisEmulator, clock: FakeMonotonic, http: httpx.Client
) -> None:
    url = pipeline.ingest_url
    assert http.post(url, content=batch(200, "a")).status_code == 200
    full = http.post(url, content=batch(101, "b"))
    assert full.status_code == 429
    assert full.text == "Too Many Requests: the pipeline has too many pending requests"
    assert full.headers["content-type"] == "text/plain; charset=utf-8"
    assert "retry-after" not in full.headers
    assert pipeline.count() == 200 and "b 0" not in pipeline.logs()
    assert http.post(url, content=batch(100, "c")).status_code == 200  # fits exactly
    clock.advance(0.5)  # 50 events drained
    assert http.post(url, content=batch(60, "d")).status_code == 429
    assert http.post(url, content=batch(50, "e")).status_code == 200
    too_big = http.post(url, content=batch(301, "f"))  # never fits: split it
    assert too_big.status_code == 413 and "the buffer holds 300" in too_big.text
    assert pipeline.count() == 350
    assert pipeline.capacity_stats() == QuotaStats(3, 2, 350, 161)
    stats = pipeline.stats()
    assert stats.status_counts == {200: 3, 429: 2, 413: 1}
    assert stats.events_accepted == 350
    assert pipeline.capacity_history() == [QuotaSecond(0, 3, 2, 350, 161)]


def test_draining_over_time_accepts_again_and_the_rate_holds(
    pipeline: OsisEmulator, clock: FakeMonotonic, http: httpx.Client
) -> None:
    for _ in range(40):  # 10 s of 4 offers of 90 events a second, 360/s against 100/s
        for _ in range(4):
            http.post(pipeline.ingest_url, content=batch(90))
        clock.advance(0.25)
    history = pipeline.capacity_history()
    assert len(history) == 10
    assert all(s.accepted_units <= 100 + 300 for s in history)
    assert all(s.throttled for s in history[1:])
    total = sum(s.accepted_units for s in history)
    assert total == pipeline.count() <= 300 + 100 * 10
    assert total >= 100 * 9  # draining lets it keep up with the rate
    pipeline.set_capacity(None)
    assert http.post(pipeline.ingest_url, content=batch(1000)).status_code == 200


def test_capacity_retry_after_and_set_capacity(clock: FakeMonotonic, http: httpx.Client) -> None:
    with OsisEmulator(verify_signatures=False, monotonic=clock, retry_after=True) as osis:
        assert osis.capacity is None
        osis.set_capacity(10)  # a one-second buffer by default
        assert osis.capacity == Capacity(10, 10)
        assert http.post(osis.ingest_url, content=batch(8)).status_code == 200
        refused = http.post(osis.ingest_url, content=batch(5))
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        osis.set_capacity(Capacity(events_per_second=1, buffer=10))
        assert http.post(osis.ingest_url, content=batch(10)).status_code == 200
        assert http.post(osis.ingest_url, content=batch(3)).headers["retry-after"] == "3"
