"""Fleets of hosts against one account's CreateSession quota, on a simulated clock (issue 12).

A host is the package's own :class:`~rolesanywhere.session.refresh.RefreshingCredentials` (the
refresher of ``serve``, ``ship``, ``SigV4Auth`` and boto3 sessions) on the simulation's clock,
with its own random draws. Its source makes one CreateSession attempt, as a long-running
caller's client does (:data:`~rolesanywhere.retry.LONG_RUNNING`: a throttle is not retried at
once), against the shared quota of :mod:`rolesanywhere.testing.quota` (the emulator's own
decision). A host acts when its refresher says (:attr:`~RefreshingCredentials.next_refresh`),
so a simulated day of thousands of hosts runs in seconds. One-shot ``credential-process`` runs
are the package's CreateSession flow itself (the generator both clients drive), with its
default retry policy, on the same clock.

``run_boot_storm(..., loopback=True)`` does the same for a sample of hosts over real sockets:
real clients against the Roles Anywhere emulator, whose quota runs on the simulated clock.
"""

from __future__ import annotations

import heapq
import json
import random
import statistics
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from rolesanywhere.credentials import Credentials
from rolesanywhere.errors import ThrottlingError
from rolesanywhere.retry import LONG_RUNNING, RetryPolicy
from rolesanywhere.session.client import ClientConfig, _Send, _session_flow, _Sleep
from rolesanywhere.session.endpoints import resolve_endpoint
from rolesanywhere.session.protocol import SessionParams, service_error
from rolesanywhere.session.refresh import RefreshingCredentials, refresh_windows
from rolesanywhere.session.transport import Answer
from rolesanywhere.testing.quota import Quota, QuotaCounter

T0 = datetime(2030, 1, 1, tzinfo=UTC)
ANCHOR = (
    "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/a1b2c3d4-0000-0000-0000-000000000001"
)
PROFILE = (
    "arn:aws:rolesanywhere:us-east-1:123456789012:profile/a1b2c3d4-0000-0000-0000-000000000002"
)
ROLE = "arn:aws:iam::123456789012:role/fleet"
#: The service's throttling answer, as the emulator sends it.
THROTTLED_HEADERS = (
    ("x-amzn-ErrorType", "ThrottlingException"),
    ("content-type", "application/json"),
)
THROTTLED_BODY = b'{"message":"Rate exceeded"}'


class Sim:
    """A discrete-event clock: callbacks at simulated instants, in order."""

    def __init__(self, origin: datetime = T0) -> None:
        self.origin = origin
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0

    def at(self, when: float, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (max(when, self.now), self._seq, fn))

    def run(self, until: float) -> None:
        while self._heap and self._heap[0][0] <= until:
            self.now, _, fn = heapq.heappop(self._heap)
            fn()
        self.now = until

    def dt(self) -> datetime:
        return self.origin + timedelta(seconds=self.now)


def _source(
    sim: Sim,
    quota: QuotaCounter,
    lifetime: float,
    calls: list[int],
    i: int,
    held: float | None = None,
) -> Callable[[], Credentials]:
    """One host's CreateSession: one attempt against the shared quota. ``held``: the host is
    already running, and its first call returns the credentials it holds (``held`` seconds
    left) without a CreateSession."""
    first = [held]

    def create_session() -> Credentials:
        if first[0] is not None:
            left, first[0] = first[0], None
            return Credentials(
                "ASIAHELD", "fleet-secret", "fleet-token", sim.dt() + timedelta(seconds=left)
            )
        calls[i] += 1
        if quota.admit():
            return Credentials(
                f"ASIA{i:016d}",
                "fleet-secret",
                "fleet-token",
                sim.dt() + timedelta(seconds=lifetime),
            )
        raise service_error(429, THROTTLED_HEADERS, THROTTLED_BODY)

    return create_session


class _Agent:
    """One long-running host: asks its refresher for credentials when the refresher says."""

    def __init__(self, sim: Sim, creds: RefreshingCredentials, keep_going: bool) -> None:
        self.sim = sim
        self.creds = creds
        self.keep_going = keep_going
        self.got: float | None = None
        self.gaps = 0  # throttled with no credentials after having had some

    def step(self) -> None:
        try:
            self.creds.get()
        except ThrottlingError:
            self.gaps += self.got is not None
            self.sim.at(_until(self.creds.next_refresh, self.sim), self.step)
            return
        if self.got is None:
            self.got = self.sim.now
        if self.keep_going:
            self.sim.at(_until(self.creds.next_refresh, self.sim), self.step)


def _until(due: datetime | None, sim: Sim) -> float:
    if due is None:
        return float("inf")
    return max(sim.now + 1e-3, (due - sim.origin).total_seconds())


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": ordered[-1]}


def run_boot_storm(
    hosts: int = 5000,
    *,
    rate: float = 10.0,
    burst: float = 10.0,
    backoff_base: float = 10.0,
    backoff_max: float = 120.0,
    jitter: bool = True,
    horizon: float = 7200.0,
    seed: int = 0,
    loopback: bool = False,
) -> dict[str, Any]:
    """``hosts`` long-running agents boot at t = 0 and each wants credentials at once.

    Returns the time-to-credentials distribution, CreateSession attempts and throttles, and the
    accepted / throttled calls per second. ``jitter=False`` draws every random number as 1.0:
    every host waits the same backoff ceiling (the synchronized control case). ``loopback``
    sends every attempt over a real socket to the Roles Anywhere emulator.
    """
    # Over loopback the emulator issues credentials on the real clock: start the simulated one
    # there (a storm lasts minutes of simulated time, far less than the credentials' hour).
    sim = Sim(datetime.now(UTC) if loopback else T0)
    quota = QuotaCounter(Quota(rate, burst), clock=lambda: sim.now)
    agents: list[_Agent] = []
    calls = [0] * hosts
    emulator = client = None
    if loopback:
        emulator, client = _loopback(sim, rate, burst)
    try:
        for i in range(hosts):
            rand = random.Random(seed * 1_000_003 + i).random if jitter else (lambda: 1.0)
            if client is None:
                source: Callable[[], Credentials] = _source(sim, quota, 3600, calls, i)
            else:
                source = _counted(client.create_session, calls, i)
            creds = RefreshingCredentials(
                source, clock=sim.dt, rand=rand, backoff_base=backoff_base, backoff_max=backoff_max
            )
            agents.append(_Agent(sim, creds, keep_going=False))
            sim.at(0.0, agents[-1].step)
        sim.run(horizon)
        if emulator is None:
            history, stats = quota.history(), quota.stats()
        else:
            history, stats = emulator.quota_history(), emulator.quota_stats()
    finally:
        if client is not None:
            client.close()
        if emulator is not None:
            emulator.stop()
    times = [a.got for a in agents if a.got is not None]
    return {
        "hosts": hosts,
        "backoff": (backoff_base, backoff_max),
        "jitter": jitter,
        "with_credentials": len(times),
        "time_to_credentials": _percentiles(times),
        "times": times,
        "attempts": sum(calls),
        "attempts_per_host": sum(calls) / hosts,
        "throttled": stats.throttled,
        "accepted_per_second": [s.accepted for s in history],
        "throttled_per_second": [s.throttled for s in history],
    }


def _counted(fn: Callable[[], Credentials], calls: list[int], i: int) -> Callable[[], Credentials]:
    def call() -> Credentials:
        calls[i] += 1
        return fn()

    return call


def _loopback(sim: Sim, rate: float, burst: float) -> tuple[Any, Any]:
    """The Roles Anywhere emulator with its quota on the simulated clock, and a real client."""
    from rolesanywhere.testing.emulator import RolesAnywhereEmulator
    from rolesanywhere.testing.pki import PKI

    pki = PKI(name="fleet")
    emulator = RolesAnywhereEmulator.for_pki(
        pki, quota=Quota(rate, burst), monotonic=lambda: sim.now
    )
    emulator.start()
    client = emulator.client(pki.leaf("ec-p256").identity(), retry=LONG_RUNNING)
    return emulator, client


def run_one_shot_storm(
    processes: int = 5000,
    *,
    rate: float = 10.0,
    burst: float = 10.0,
    policy: RetryPolicy | None = None,
    timeout: float = 30.0,
    seed: int = 0,
) -> dict[str, Any]:
    """``processes`` one-shot ``credential-process`` runs start at t = 0, each driving the
    package's CreateSession flow (default retry policy and 30 s budget) on the simulated clock.
    Returns the share that got credentials within the budget and one of the errors."""
    from rolesanywhere.testing.pki import PKI

    sim = Sim()
    quota = QuotaCounter(Quota(rate, burst), clock=lambda: sim.now)
    identity = PKI(name="fleet").leaf("ec-p256").identity()
    params = SessionParams(trust_anchor_arn=ANCHOR, profile_arn=PROFILE, role_arn=ROLE)
    endpoint = resolve_endpoint("us-east-1")
    ok_body = json.dumps(
        {
            "credentialSet": [
                {
                    "credentials": {
                        "accessKeyId": "ASIAONESHOT",
                        "secretAccessKey": "one-shot-secret",
                        "sessionToken": "one-shot-token",
                        "expiration": "2030-01-01T01:00:00Z",
                    }
                }
            ]
        }
    ).encode()
    results: list[object] = [None] * processes
    attempts = [0]
    random.seed(seed)  # the flow's jitter draws from the random module
    ok = Answer(201, (("content-type", "application/json"),), ok_body)
    throttled = Answer(429, THROTTLED_HEADERS, THROTTLED_BODY)

    class Process:
        def __init__(self, i: int) -> None:
            self.i = i
            config = ClientConfig(
                identity, params, endpoint, timeout=timeout, retry=policy, clock=lambda: sim.now
            )
            self.flow = _session_flow(config)

        def advance(self, outcome: Answer | None = None) -> None:
            try:
                step = self.flow.send(outcome)
            except StopIteration as stop:
                results[self.i] = stop.value
                return
            except ThrottlingError as exc:
                results[self.i] = exc
                return
            if isinstance(step, _Sleep):
                sim.at(sim.now + step.seconds, self.advance)
                return
            assert isinstance(step, _Send)
            attempts[0] += 1
            answer = ok if quota.admit() else throttled
            sim.at(sim.now + 0.05, lambda: self.advance(answer))  # a 50 ms round trip

    for i in range(processes):
        sim.at(0.0, Process(i).advance)
    sim.run(timeout + 60)
    errors = [r for r in results if isinstance(r, ThrottlingError)]
    return {
        "processes": processes,
        "succeeded": sum(isinstance(r, Credentials) for r in results),
        "attempts": attempts[0],
        "error": errors[0] if errors else None,
    }


def run_steady_day(
    hosts: int,
    *,
    hours: float = 6.0,
    lifetime: float = 3600.0,
    rate: float = 10.0,
    burst: float = 10.0,
    backoff_base: float = 10.0,
    backoff_max: float = 120.0,
    seed: int = 0,
) -> dict[str, Any]:
    """``hosts`` long-running agents in their steady state, refreshing for ``hours``. The hosts
    start at instants drawn uniformly over one mean refresh period, each with a fresh session
    that costs no call (a fleet that has been running for a while: a boot storm is
    :func:`run_boot_storm`); counting starts one lifetime later. Counts CreateSession calls
    per host per hour, the account's peak call rate, throttles, and hosts that were ever
    without credentials."""
    sim = Sim()
    quota = QuotaCounter(Quota(rate, burst), clock=lambda: sim.now)
    calls = [0] * hosts
    phase = random.Random(seed)
    window = refresh_windows(lifetime).advisory
    period = lifetime - 0.75 * window  # the mean refresh period (refresh points: W/2 to W)
    agents = []
    for i in range(hosts):
        creds = RefreshingCredentials(
            _source(sim, quota, lifetime, calls, i, held=lifetime),
            clock=sim.dt,
            rand=random.Random(seed * 1_000_003 + i + 1).random,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )
        agents.append(_Agent(sim, creds, keep_going=True))
        sim.at(phase.uniform(0, period), agents[-1].step)
    warm = lifetime
    sim.run(warm)
    before = sum(calls)
    sim.run(warm + hours * 3600)
    history = quota.history()
    measured = [s for s in history if s.second >= warm]
    per_second = [s.accepted + s.throttled for s in measured]
    per_minute = [sum(per_second[k : k + 60]) / 60 for k in range(0, len(per_second), 60)]
    return {
        "hosts": hosts,
        "calls_per_host_hour": (sum(calls) - before) / hosts / hours,
        "target_per_host_hour": 1.05 * 3600 / (lifetime - window),
        "largest_fleet": rate * (lifetime - window),
        "peak_per_second": max(per_second, default=0),
        "peak_per_minute": max(per_minute, default=0.0),
        "mean_per_second": statistics.fmean(per_second) if per_second else 0.0,
        "throttled": sum(s.throttled for s in measured),
        "gaps": sum(a.gaps for a in agents),
        "calls_per_minute": per_minute,
    }
