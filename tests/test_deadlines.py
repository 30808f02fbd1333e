"""Every httpx network call ends by its deadline, however slowly the server sends (issue 8).

Real sockets on 127.0.0.1 (tests/faults.py): a server that drips one body byte at a time, one
that drips the response head, one that stalls, one that answers a huge body. Each call runs on a
daemon thread so that a regression fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from rolesanywhere import errors
from rolesanywhere.auth.sigv4auth import SigV4Auth
from rolesanywhere.errors import TransportFailure
from rolesanywhere.retry import RetryPolicy
from rolesanywhere.session.client import (
    AsyncRolesAnywhereClient,
    ClientConfig,
    RolesAnywhereClient,
    _Send,
    _session_flow,
    attempt_timeout,
)
from rolesanywhere.session.endpoints import resolve_endpoint
from rolesanywhere.session.protocol import SessionParams
from rolesanywhere.session.transport import MAX_RESPONSE_BYTES, HttpxTransport, exchange
from rolesanywhere.ship.loghandler import OsisHandler
from rolesanywhere.ship.shipper import AsyncShipper, Shipper, ShipperConfig
from rolesanywhere.testing.pki import PKI
from rolesanywhere.x509.identity import Identity
from tests.faults import FaultServer, http_response
from tests.session import test_client

ANCHOR = (
    "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/a1b2c3d4-0000-0000-0000-000000000001"
)
PROFILE = (
    "arn:aws:rolesanywhere:us-east-1:123456789012:profile/a1b2c3d4-0000-0000-0000-000000000002"
)
ROLE = "arn:aws:iam::123456789012:role/test"
FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002)
DEADLINE = 1.0
SLACK = 1.0  # the target: every call ends by its deadline + 1 s
#: How long a call may run before the test calls it hung (well past the target).
HUNG = DEADLINE + SLACK + 3.0
FAULTS = [("drip", 0.05), ("stall", 0.05), ("drip_head", 0.05)]

OK_BODY = json.dumps(test_client.OK_BODY).encode()


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI()


@pytest.fixture(scope="module")
def identity(pki: PKI) -> Identity:
    return pki.leaf("ec-p256").identity()


def timed(call: Callable[[], Any], limit: float = HUNG) -> tuple[float, Any]:
    """Run ``call`` on a daemon thread; (seconds it took, what it returned or raised).

    Fails the test when it is still running after ``limit`` seconds."""
    box: list[Any] = []
    start = time.monotonic()

    def run() -> None:
        try:
            box.append(call())
        except BaseException as exc:
            box.append(exc)
        box.append(time.monotonic() - start)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still running after {limit:g} s"
    return box[1], box[0]


def client(identity: Identity, url: str, cls: type = RolesAnywhereClient, **kw: Any) -> Any:
    return cls(
        identity,
        trust_anchor_arn=ANCHOR,
        profile_arn=PROFILE,
        role_arn=ROLE,
        endpoint=url,
        timeout=kw.pop("timeout", DEADLINE),
        retry=kw.pop("retry", FAST),
        proxy_from_env=False,
        **kw,
    )


@pytest.mark.parametrize(("behaviour", "interval"), FAULTS)
def test_sync_client_ends_by_its_deadline(
    identity: Identity, behaviour: Any, interval: float
) -> None:
    with FaultServer(behaviour, interval=interval) as server:
        rac = client(identity, server.url)
        elapsed, outcome = timed(rac.create_session)
        rac.close()
    assert isinstance(outcome, errors.RequestTimeoutError), outcome
    assert elapsed <= DEADLINE + SLACK


@pytest.mark.parametrize(("behaviour", "interval"), FAULTS)
def test_async_client_ends_by_its_deadline(
    identity: Identity, behaviour: Any, interval: float
) -> None:
    async def call() -> Any:
        async with client(identity, server.url, AsyncRolesAnywhereClient) as rac:
            return await rac.create_session()

    with FaultServer(behaviour, interval=interval) as server:
        elapsed, outcome = timed(lambda: asyncio.run(call()))
    assert isinstance(outcome, errors.RequestTimeoutError), outcome
    assert elapsed <= DEADLINE + SLACK


@pytest.mark.parametrize("behaviour", ["drip", "stall"])
def test_sigv4auth_from_roles_anywhere_ends_by_its_deadline(
    pki: PKI, tmp_path: Path, behaviour: Any
) -> None:
    cert, key = pki.leaf("ec-p256").write(tmp_path, "client")
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.intermediate.cert_pem())
    with FaultServer(behaviour, interval=0.05) as server:
        auth = SigV4Auth.from_roles_anywhere(
            certificate=str(cert),
            private_key=str(key),
            intermediates=str(chain),
            trust_anchor_arn=ANCHOR,
            profile_arn=PROFILE,
            role_arn=ROLE,
            endpoint=server.url,
            service="osis",
            timeout=DEADLINE,
        )
        elapsed, outcome = timed(auth.credentials.get)
    assert isinstance(outcome, errors.RolesAnywhereError), outcome
    assert elapsed <= DEADLINE + SLACK


def shipper_config(tmp_path: Path, url: str, **options: Any) -> dict[str, Any]:
    return {
        "url": f"{url}/log/ingest",
        "state_dir": str(tmp_path),
        "trust_env": False,
        "request_timeout": DEADLINE,
        "batch_events": 1,
        "backoff_base": 0.001,
        "backoff_max": 0.01,
        **options,
    }


def first_timeout(stats: Callable[[], Any], start: float) -> float:
    """Seconds from ``start`` until the stats count a timed-out post (polls up to HUNG)."""
    while time.monotonic() - start < HUNG:
        if stats().answers.get("timeout", 0) >= 1:
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"no post gave up within {HUNG:g} s")


@pytest.mark.parametrize("behaviour", ["drip", "stall"])
def test_shipper_post_ends_by_its_deadline(tmp_path: Path, behaviour: Any) -> None:
    with FaultServer(behaviour, interval=0.05) as server:
        shipper = Shipper(ShipperConfig(**shipper_config(tmp_path, server.url)))
        start = time.monotonic()
        shipper.submit([b"one line"])
        try:
            elapsed = first_timeout(shipper.stats, start)
        finally:
            shipper.close(timeout=0)
    assert elapsed <= DEADLINE + SLACK


@pytest.mark.parametrize("behaviour", ["drip", "stall"])
def test_async_shipper_post_ends_by_its_deadline(tmp_path: Path, behaviour: Any) -> None:
    async def run() -> float:
        shipper = AsyncShipper(ShipperConfig(**shipper_config(tmp_path, server.url)))
        start = time.monotonic()
        await shipper.submit([b"one line"])
        try:
            while time.monotonic() - start < HUNG:
                if shipper.stats().answers.get("timeout", 0) >= 1:
                    return time.monotonic() - start
                await asyncio.sleep(0.02)
            raise AssertionError(f"no post gave up within {HUNG:g} s")
        finally:
            await shipper.aclose(timeout=0)

    with FaultServer(behaviour, interval=0.05) as server:
        elapsed = asyncio.run(run())
    assert elapsed <= DEADLINE + SLACK


@pytest.mark.parametrize("behaviour", ["drip", "stall"])
def test_osis_handler_post_ends_by_its_deadline(tmp_path: Path, behaviour: Any) -> None:
    log = logging.getLogger(f"deadlines.{behaviour}")
    log.propagate = False
    with FaultServer(behaviour, interval=0.05) as server:
        options = shipper_config(tmp_path, server.url, flush_interval=0.01)
        handler = OsisHandler(
            options.pop("url"), shipper_options=options, close_timeout=0, stream=io.StringIO()
        )
        log.addHandler(handler)
        start = time.monotonic()
        log.warning("one record")
        try:
            elapsed = first_timeout(handler.shipper_stats, start)
        finally:
            log.removeHandler(handler)
            handler.close()
    assert elapsed <= DEADLINE + SLACK


def test_a_stalled_first_attempt_leaves_time_for_a_second(identity: Identity) -> None:
    json_type = {"Content-Type": "application/json"}
    raw = http_response(201, OK_BODY, reason="Created", headers=json_type)
    with FaultServer("canned", raw=raw, stall_first=1) as server:
        rac = client(identity, server.url, timeout=2.0)
        elapsed, outcome = timed(rac.create_session)
        rac.close()
    assert not isinstance(outcome, BaseException), outcome
    assert outcome.access_key_id == "ASIAUNIT"
    assert rac.attempts == 2 and server.connections == 2
    assert elapsed <= 2.0 + SLACK


def test_each_attempt_gets_its_share_of_the_budget(identity: Identity) -> None:
    """Pure flow, fake clock: attempt 1 gets half, attempt 2 what is left, no more."""
    now = [100.0]
    config = ClientConfig(
        identity,
        SessionParams(trust_anchor_arn=ANCHOR, profile_arn=PROFILE, role_arn=ROLE),
        resolve_endpoint("us-east-1"),
        timeout=10.0,
        connect_timeout=8.0,
        retry=RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0),
        clock=lambda: now[0],
    )
    flow = _session_flow(config)
    sends = []

    def drive() -> None:
        step = next(flow)
        while True:
            if isinstance(step, _Send):
                sends.append((step.timeout, step.connect_timeout))
                now[0] += step.timeout  # the attempt stalls for all it was given
                step = flow.send(TransportFailure("stalled", timed_out=True))
            else:
                step = flow.send(None)

    with pytest.raises(errors.RequestTimeoutError, match="within 10 s"):
        drive()
    assert sends == [(5.0, 5.0), (5.0, 5.0)]
    assert attempt_timeout(10.0, 1) == 10.0


def test_a_huge_answer_is_not_read_whole() -> None:
    with FaultServer("huge", size=16 * MAX_RESPONSE_BYTES) as server:
        with httpx.Client(trust_env=False) as http:
            request = http.build_request("GET", server.url)
            response, body, whole = exchange(http, request, deadline=time.monotonic() + 5)
        assert response.status_code == 200
        assert len(body) == MAX_RESPONSE_BYTES and not whole
        transport = HttpxTransport(trust_env=False)
        from rolesanywhere.session.protocol import HttpRequest

        with pytest.raises(TransportFailure, match="larger than"):
            transport.send(HttpRequest("GET", server.url, (), b""), timeout=5, connect_timeout=5)
        transport.close()
