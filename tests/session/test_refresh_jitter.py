"""The refresher at fleet scale: jittered refresh points, full-jitter backoff, throttled
callers answered at once while the backoff runs, and ``next_refresh``."""

from __future__ import annotations

import random
import statistics
from datetime import timedelta

import pytest

from rolesanywhere import errors
from rolesanywhere.session.refresh import (
    ADVISORY_BACKOFF_BASE,
    RefreshingCredentials,
    refresh_windows,
)
from tests.session.test_refresh import FakeClock, FakeSource

THROTTLE = errors.ThrottlingError("Rate exceeded", status=429)


def refresh_point(seed: int, lifetime: float = 3600) -> float:
    """Seconds before expiry at which one host refreshes."""
    clock = FakeClock()
    source = FakeSource(clock, lifetime)
    creds = RefreshingCredentials(source, clock=clock, rand=random.Random(seed).random)
    first = creds.get()
    assert first.expiration is not None
    due = creds.next_refresh
    assert due is not None
    left = (first.expiration - due).total_seconds()
    clock.advance(lifetime - left - 1)
    creds.get()
    assert source.calls == 1  # not yet
    clock.advance(1.001)  # datetimes count microseconds
    creds.get()
    assert source.calls == 2  # refreshed at the point next_refresh named
    return left


def test_hosts_started_together_refresh_at_points_spread_over_the_window() -> None:
    window = refresh_windows(3600).advisory  # 900 s
    points = [refresh_point(seed) for seed in range(200)]
    assert all(window / 2 <= p <= window for p in points)
    assert statistics.pstdev(points) > 100  # uniform over 450 s: about 130 s
    # 200 hosts that started together no longer call in the same second
    assert max(points.count(p) for p in {round(x) for x in points}) < 10


def test_the_refresh_point_stays_clear_of_the_mandatory_window() -> None:
    # a 300 s session: advisory 75 s, half of it (37.5 s) would be inside the 60 s mandatory one
    clock = FakeClock()
    creds = RefreshingCredentials(FakeSource(clock, 300), clock=clock, rand=lambda: 0.0)
    held = creds.get()
    assert held.expiration is not None and creds.next_refresh is not None
    assert (held.expiration - creds.next_refresh).total_seconds() == 60


def test_backoff_after_a_failed_refresh_is_full_jitter() -> None:
    clock = FakeClock()
    source = FakeSource(clock, 900)
    creds = RefreshingCredentials(source, clock=clock, rand=lambda: 0.25)
    creds.get()
    clock.advance(900 - 100)
    source.fail = THROTTLE
    creds.get()  # advisory failure: kept
    due = creds.next_refresh
    assert due is not None
    assert (due - clock()).total_seconds() == pytest.approx(0.25 * ADVISORY_BACKOFF_BASE)


def test_throttled_callers_without_credentials_get_the_throttle_at_once() -> None:
    clock = FakeClock()
    source = FakeSource(clock)
    source.fail = THROTTLE
    creds = RefreshingCredentials(source, clock=clock, rand=lambda: 1.0)
    for _ in range(50):  # a busy process at boot: 50 callers, one CreateSession
        with pytest.raises(errors.ThrottlingError):
            creds.get()
    assert source.calls == 1
    due = creds.next_refresh
    assert due is not None and due == clock() + timedelta(seconds=ADVISORY_BACKOFF_BASE)
    clock.advance(ADVISORY_BACKOFF_BASE)
    source.fail = None
    assert creds.get().access_key_id.startswith("ASIAFAKE")
    assert source.calls == 2


def test_other_failures_are_still_tried_again_by_the_next_caller() -> None:
    clock = FakeClock()
    source = FakeSource(clock)
    source.fail = errors.NetworkError("connection refused")
    creds = RefreshingCredentials(source, clock=clock)
    for _ in range(3):
        with pytest.raises(errors.NetworkError):
            creds.get()
    assert source.calls == 3


def test_next_refresh_is_none_for_static_credentials() -> None:
    clock = FakeClock()
    creds = RefreshingCredentials(FakeSource(clock)(), clock=clock)
    assert creds.next_refresh is None


def test_each_caller_gets_its_own_throttle_exception() -> None:
    clock = FakeClock()
    source = FakeSource(clock)
    source.fail = THROTTLE
    creds = RefreshingCredentials(source, clock=clock, rand=lambda: 1.0)
    caught = []
    for _ in range(200):
        with pytest.raises(errors.ThrottlingError) as info:
            creds.get()
        caught.append(info.value)
    assert len({id(e) for e in caught[1:]}) == 199  # not one object raised again and again
    assert str(caught[-1]) == str(THROTTLE)
    depth = 0
    tb = caught[-1].__traceback__
    while tb is not None:
        depth, tb = depth + 1, tb.tb_next
    assert depth < 10


def test_a_wall_clock_stepping_back_does_not_stretch_a_backoff() -> None:
    clock = FakeClock()
    source = FakeSource(clock)
    source.fail = THROTTLE
    creds = RefreshingCredentials(source, clock=clock, rand=lambda: 1.0)
    with pytest.raises(errors.ThrottlingError):
        creds.get()
    clock.advance(-3600)  # NTP steps the clock back an hour during the 10 s backoff
    source.fail = None
    assert creds.get().access_key_id.startswith("ASIAFAKE")
    assert source.calls == 2


@pytest.mark.parametrize("bad", [float("nan"), -1.0, 1e300, float("inf")])
def test_nonsense_backoffs_are_refused(bad: float) -> None:
    with pytest.raises(errors.InvalidParameterError, match="backoff"):
        RefreshingCredentials(FakeSource(FakeClock()), backoff_max=bad)
    with pytest.raises(errors.InvalidParameterError, match="backoff"):
        RefreshingCredentials(FakeSource(FakeClock()), backoff_base=bad)
