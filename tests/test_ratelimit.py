"""The token bucket and the adaptive limiter, on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rolesanywhere.errors import InvalidParameterError
from rolesanywhere.ratelimit import AdaptiveRateLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 5, clock=clock)
    assert [bucket.try_take() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.1
    assert bucket.try_take()
    assert not bucket.try_take()
    assert bucket.wait_time() == pytest.approx(0.1)


def test_an_empty_bucket_starts_with_nothing() -> None:
    clock = Clock()
    bucket = TokenBucket(2, 4, clock=clock, full=False)
    assert not bucket.try_take()
    clock.now += 1
    assert bucket.try_take(2)


def test_reservations_queue_callers_behind_each_other() -> None:
    clock = Clock()
    bucket = TokenBucket(4, 1, clock=clock)
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0, 0.25, 0.5, 0.75])
    clock.now += 1
    assert bucket.tokens == pytest.approx(1.0)


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(100, 3, clock=clock)
    clock.now += 3600
    assert bucket.tokens == 3


@given(
    rate=st.floats(0.1, 100),
    burst=st.floats(1, 50),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_a_bucket_never_grants_more_than_burst_plus_rate_times_time(
    rate: float, burst: float, gaps: list[float]
) -> None:
    clock = Clock()
    bucket = TokenBucket(rate, burst, clock=clock)
    granted = 0
    for gap in gaps:
        clock.now += gap
        granted += bucket.try_take()
    assert granted <= burst + rate * sum(gaps) + 1e-6


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan")])
def test_bad_rates_are_refused(bad: float) -> None:
    with pytest.raises(InvalidParameterError, match="rate must be a positive"):
        TokenBucket(bad, 1)


def test_the_limiter_lets_everything_through_until_a_throttle() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(clock=clock)
    assert limiter.rate is None
    assert [limiter.acquire() for _ in range(50)] == [0.0] * 50


def test_a_throttle_cuts_the_rate_below_what_was_sent_and_it_recovers() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(window=10, clock=clock)
    for _ in range(100):  # 10 per second for 10 s
        limiter.acquire()
        clock.now += 0.1
    limiter.record(throttled=True)
    cut = limiter.rate
    assert cut is not None and cut == pytest.approx(7.0, rel=0.05)
    waits = [limiter.acquire() for _ in range(8)]
    assert waits == pytest.approx([(i + 1) / cut for i in range(8)], rel=0.01)  # queued
    clock.now += 60
    recovered = limiter.rate
    assert recovered is not None and recovered > cut
    limiter.record(throttled=False)
    assert limiter.throttles == 1


def test_max_rate_limits_from_the_start() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(max_rate=2, clock=clock)
    waits = [limiter.acquire() for _ in range(5)]
    assert waits == pytest.approx([0, 0.5, 1.0, 1.5, 2.0])
    limiter.record(throttled=True)
    assert (limiter.rate or 0) <= 2


def test_a_reservation_longer_than_the_caller_can_wait_takes_nothing() -> None:
    clock = Clock()
    bucket = TokenBucket(1, 1, clock=clock)
    assert bucket.reserve(max_wait=0) == 0  # the token there
    assert bucket.reserve(max_wait=0.5) is None  # the next one is 1 s away: nothing taken
    assert bucket.tokens == 0
    assert bucket.reserve(max_wait=1.0) == pytest.approx(1.0)


def test_callers_that_give_up_leave_no_debt_behind() -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(window=10, clock=clock)
    for _ in range(50):
        limiter.acquire()
        clock.now += 0.2
    limiter.record(throttled=True)  # capped at 0.7 x 5/s
    for _ in range(10_000):  # a busy process whose calls cannot wait 10 s
        waited = limiter.acquire(max_wait=10)
        assert waited is None or waited <= 10
    clock.now += 2
    assert limiter.acquire(max_wait=10) is not None  # not locked out
