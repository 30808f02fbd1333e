"""The fleet simulation of CreateSession (``benchmarks/fleet_sim.py``) on tiny fleets: hosts get
credentials, the quota is never exceeded, the loopback sample (real clients against the
emulator) takes the very decisions the in-process model takes, and the one-shot storm reports
the throttled ones. The figures themselves are the benchmark's, not asserted here."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import ModuleType

import pytest

from rolesanywhere.errors import ThrottlingError
from tests.benchmark_modules import load


@pytest.fixture(scope="module")
def fleet_sim() -> ModuleType:
    return load("fleet_sim")


@pytest.fixture(autouse=True)
def quiet() -> Iterator[None]:
    logger = logging.getLogger("rolesanywhere.session.refresh")
    level = logger.level
    logger.setLevel(logging.ERROR)  # a warning per throttled host otherwise
    yield
    logger.setLevel(level)


def test_a_storm_ends_with_every_host_holding_credentials(fleet_sim: ModuleType) -> None:
    r = fleet_sim.run_boot_storm(60, rate=1.0, burst=2.0)
    assert r["with_credentials"] == 60
    assert r["attempts"] == 60 + r["throttled"]
    elapsed = r["time_to_credentials"]["max"]
    assert sum(r["accepted_per_second"]) == 60 <= 2 + 1.0 * (elapsed + 1)


def test_without_jitter_hosts_retry_in_step_and_few_get_through(fleet_sim: ModuleType) -> None:
    jittered = fleet_sim.run_boot_storm(60, rate=1.0, burst=2.0, horizon=600)
    lockstep = fleet_sim.run_boot_storm(60, rate=1.0, burst=2.0, horizon=600, jitter=False)
    assert lockstep["with_credentials"] < jittered["with_credentials"] == 60


def test_the_loopback_sample_decides_as_the_model_does(fleet_sim: ModuleType) -> None:
    model = fleet_sim.run_boot_storm(12, rate=0.5, burst=1.0)
    wire = fleet_sim.run_boot_storm(12, rate=0.5, burst=1.0, loopback=True)
    assert wire["with_credentials"] == model["with_credentials"] == 12
    assert wire["times"] == model["times"]
    assert wire["attempts"] == model["attempts"]


def test_one_shot_runs_in_a_storm_give_up_throttled(fleet_sim: ModuleType) -> None:
    r = fleet_sim.run_one_shot_storm(40, rate=1.0, burst=2.0)
    assert 2 <= r["succeeded"] < 40
    assert isinstance(r["error"], ThrottlingError)
    assert "throttled on 3 of 3 attempts" in str(r["error"])


def test_a_steady_fleet_refreshes_about_once_per_period(fleet_sim: ModuleType) -> None:
    r = fleet_sim.run_steady_day(50, hours=3)
    assert r["calls_per_host_hour"] == pytest.approx(3600 / 2925, rel=0.15)
    assert r["throttled"] == 0 and r["gaps"] == 0
