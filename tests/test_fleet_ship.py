"""The bookkeeping of the fleet shipping simulation (``benchmarks/fleet_ship.py``) on a tiny
fleet: every line is read or still in the file, every event read is delivered or pending, and a
seed gives one run. The figures themselves are the benchmark's, not asserted here."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.benchmark_modules import load


@pytest.fixture(scope="module")
def fleet_ship() -> ModuleType:
    return load("fleet_ship")


def test_every_event_is_delivered_pending_or_still_in_the_file(fleet_ship: ModuleType) -> None:
    res = fleet_ship.run_ship_fleet(shippers=8, capacity_for=6, seconds=60, seed=3)
    assert res["generated"] == 8 * 60 * 100
    assert res["generated"] == res["at_source"] + res["submitted"]
    assert res["submitted"] == res["delivered"] + res["pending"] + res["quarantined"]
    assert res["lost"] == 0 and res["quarantined"] == 0
    # the pipeline's count: what the hosts were told, and answers still on the way
    assert sum(res["series"]["delivered"]) == res["delivered"] + res["accepted_unanswered"]
    assert sum(res["series"]["throttled"]) == res["throttled"] > 0  # it was overloaded
    assert res["requests"] > res["throttled"]
    assert 0 < res["delivered_rate"] <= res["capacity"] * 1.1


def test_a_seed_gives_one_run(fleet_ship: ModuleType) -> None:
    def run(seed: int) -> dict[str, object]:
        res: dict[str, object] = fleet_ship.run_ship_fleet(
            shippers=8, capacity_for=6, seconds=60, seed=seed
        )
        del res["wall_seconds"]
        return res

    assert run(1) == run(1)
    assert run(1) != run(2)  # latencies and jitter come from the seed


def test_autocorrelation_finds_a_period(fleet_ship: ModuleType) -> None:
    waves = [10.0 if t % 8 == 0 else 0.0 for t in range(400)]
    r = fleet_ship.autocorrelation(waves, range(1, 17))
    assert r[7] > 0.9 and r[15] > 0.9  # lags 8 and 16
    assert abs(r[0]) < 0.2
    assert fleet_ship.autocorrelation([1.0] * 10, range(1, 3)) == [0.0, 0.0]


def test_the_loopback_sample_loses_nothing(fleet_ship: ModuleType) -> None:
    loopback = load("fleet_ship_loopback")  # imports fleet_ship's settings
    r = loopback.run_ship_loopback(
        shippers=3, capacity_for=2, seconds=3, events_per_second=100, warmup=1
    )
    assert r["submitted"] > 0 and r["throttled"] > 0  # it was overloaded
    assert r["submitted"] == r["delivered"] + r["pending"] + r["quarantined"]
    assert r["lost"] == 0
