"""The CreateSession flow under throttling: gentler waits, Retry-After, the attempt budget for
throttles, the message of a call that stays throttled, and the adaptive rate limiter. The flow is
sans-I/O, so it is driven here step by step on a fake clock."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from rolesanywhere import errors
from rolesanywhere.credentials import Credentials
from rolesanywhere.ratelimit import AdaptiveRateLimiter
from rolesanywhere.retry import LONG_RUNNING, RetryPolicy
from rolesanywhere.session.client import ClientConfig, _Send, _session_flow, _Sleep
from rolesanywhere.session.endpoints import resolve_endpoint
from rolesanywhere.session.protocol import SessionParams
from rolesanywhere.session.transport import Answer
from rolesanywhere.testing.pki import PKI
from rolesanywhere.x509.identity import Identity

ANCHOR = (
    "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/a1b2c3d4-0000-0000-0000-000000000001"
)
PROFILE = (
    "arn:aws:rolesanywhere:us-east-1:123456789012:profile/a1b2c3d4-0000-0000-0000-000000000002"
)
ROLE = "arn:aws:iam::123456789012:role/test"
THROTTLED = Answer(
    429,
    (("x-amzn-ErrorType", "ThrottlingException"), ("content-type", "application/json")),
    json.dumps({"message": "Rate exceeded"}).encode(),
)
OK = Answer(
    201,
    (("content-type", "application/json"),),
    json.dumps(
        {
            "credentialSet": [
                {
                    "credentials": {
                        "accessKeyId": "ASIAFLOW",
                        "secretAccessKey": "flow-secret",
                        "sessionToken": "flow-token",
                        "expiration": "2099-01-01T00:00:00Z",
                    }
                }
            ]
        }
    ).encode(),
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def identity() -> Identity:
    return PKI().leaf("ec-p256").identity()


def config(identity: Identity, clock: Clock, **kw: object) -> ClientConfig:
    params = SessionParams(trust_anchor_arn=ANCHOR, profile_arn=PROFILE, role_arn=ROLE)
    return ClientConfig(
        identity,
        params,
        resolve_endpoint("us-east-1"),
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )


def run(
    cfg: ClientConfig, clock: Clock, answer: Callable[[int], Answer]
) -> tuple[list[str], object]:
    """Drive the flow; ``answer(n)`` is the n-th (1-based) answer. Returns the steps and the
    credentials or the exception."""
    steps: list[str] = []
    flow = _session_flow(cfg)
    sent = 0
    outcome: Answer | None = None
    try:
        while True:
            step = flow.send(outcome)
            if isinstance(step, _Sleep):
                steps.append(f"sleep {step.seconds:.3f}")
                clock.now += step.seconds
                outcome = None
            else:
                assert isinstance(step, _Send)
                sent += 1
                steps.append("send")
                outcome = answer(sent)
    except StopIteration as stop:
        return steps, stop.value
    except errors.RolesAnywhereError as exc:
        return steps, exc


def test_throttles_wait_longer_than_server_errors(identity: Identity) -> None:
    clock = Clock()
    policy = RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=20, throttle_base_delay=2.0)
    waits = []
    for answer in (THROTTLED, Answer(503, (), b"")):
        steps, result = run(config(identity, clock, retry=policy), clock, lambda n, a=answer: a)
        waits.append([float(s.split()[1]) for s in steps if s.startswith("sleep")])
        assert isinstance(result, errors.ServiceError)
    throttled, failed = waits
    assert len(throttled) == len(failed) == 2
    assert max(throttled) > max(failed)  # jitter aside, ceilings of 2 s and 4 s vs 0.1 s and 0.2 s
    assert all(w <= c for w, c in zip(failed, (0.1, 0.2), strict=True))


def test_retry_after_is_honoured(identity: Identity) -> None:
    clock = Clock()
    asked = Answer(429, (*THROTTLED.headers, ("Retry-After", "7")), THROTTLED.body)
    steps, result = run(
        config(identity, clock, timeout=30.0), clock, lambda n: asked if n == 1 else OK
    )
    assert steps[:2] == ["send", "sleep 7.000"]
    assert isinstance(result, Credentials)


def test_a_retry_after_beyond_the_deadline_stops_at_once(identity: Identity) -> None:
    clock = Clock()
    asked = Answer(429, (*THROTTLED.headers, ("Retry-After", "60")), THROTTLED.body)
    steps, result = run(config(identity, clock, timeout=30.0), clock, lambda n: asked)
    assert steps == ["send"]
    assert isinstance(result, errors.ThrottlingError)
    assert clock.now == 100.0  # it did not wait for nothing


def test_a_call_that_stays_throttled_says_so_and_what_to_do(identity: Identity) -> None:
    clock = Clock()
    steps, result = run(config(identity, clock), clock, lambda n: THROTTLED)
    assert steps.count("send") == 3
    assert isinstance(result, errors.ThrottlingError)
    text = str(result)
    assert "throttled on 3 of 3 attempts in" in text
    assert "CreateSession quota" in text and "ask AWS for a higher quota" in text
    assert "\n" not in text


def test_long_running_callers_leave_throttles_to_their_refresher(identity: Identity) -> None:
    clock = Clock()
    steps, result = run(config(identity, clock, retry=LONG_RUNNING), clock, lambda n: THROTTLED)
    assert steps == ["send"]
    assert isinstance(result, errors.ThrottlingError)
    # ... but still retry a server fault at once
    steps, result = run(
        config(identity, clock, retry=LONG_RUNNING),
        clock,
        lambda n: Answer(503, (), b"") if n < 3 else OK,
    )
    assert steps.count("send") == 3
    assert isinstance(result, Credentials)


def test_the_rate_limiter_learns_from_throttles_and_paces_later_calls(identity: Identity) -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(clock=clock, window=10)
    cfg = config(identity, clock, retry=RetryPolicy(max_attempts=1), rate_limiter=limiter)
    for _ in range(20):  # 20 calls in 2 s, the last one throttled
        run(cfg, clock, lambda n: OK)
        clock.now += 0.1
    assert limiter.rate is None
    run(cfg, clock, lambda n: THROTTLED)
    assert limiter.throttles == 1
    steps, result = run(cfg, clock, lambda n: OK)
    assert steps[0].startswith("sleep") and steps[1] == "send"  # paced, not refused
    assert isinstance(result, Credentials)


def test_a_limiter_that_would_hold_a_call_past_its_deadline_says_so(identity: Identity) -> None:
    clock = Clock()
    limiter = AdaptiveRateLimiter(max_rate=0.01, clock=clock)  # one call per 100 s
    cfg = config(identity, clock, retry=RetryPolicy(max_attempts=1), rate_limiter=limiter)
    assert isinstance(run(cfg, clock, lambda n: OK)[1], Credentials)
    steps, result = run(cfg, clock, lambda n: OK)
    assert steps == []  # nothing sent, nothing slept
    assert isinstance(result, errors.RequestTimeoutError)
    assert "rate limiter" in str(result) and "would hold this call past its 30 s" in str(result)
    clock.now += 100
    assert isinstance(run(cfg, clock, lambda n: OK)[1], Credentials)  # no debt left behind
